"""TRL trainers for ``vlmbench align``: settings, presets, LoRA on the language model, and the trainer per method.

- ``grpo`` (default) and ``rloo``: online RL from a reward computed on each sampled response
  (:mod:`.rewards`), with a KL penalty (``beta``) to the starting model. TRL has no PPO any more; GRPO
  and RLOO are its maintained online RL trainers (critic-free: the baseline is the other responses
  to the same prompt, ``num_generations`` of them).
- ``sft``: supervised fine-tuning on the study's answer templates.
- ``dpo``: direct preference optimisation, chosen = the correct template, rejected = the other one.

LoRA adapters go on the language model's attention projections only (a regex over module names
matching ``language_model``/``text_model`` and ``q_proj``/``k_proj``/``v_proj``/``o_proj``; the vision
tower has modules of the same names, left frozen). ``full`` trains every weight instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmbench import UserError

METHODS = ("grpo", "rloo", "sft", "dpo")
RL_METHODS = ("grpo", "rloo")
LORA_TARGETS = r".*(language_model|text_model).*\.(q_proj|k_proj|v_proj|o_proj)"
DTYPES = ("auto", "float32", "bfloat16", "float16")
MODEL_ARGS = ("pretrained", "revision", "dtype", "trust_remote_code", "attn_implementation")


@dataclass(frozen=True)
class Settings:
    """Every hyper-parameter of a training run (recorded in the model card)."""

    method: str = "grpo"
    epochs: float = 1.0
    max_steps: int = -1  # > 0: stop after this many optimiser steps (over epochs)
    learning_rate: float = 3e-5
    batch_size: int = 8  # per device; for grpo/rloo counted in responses (prompts x num_generations)
    grad_accum: int = 1
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str = LORA_TARGETS
    full: bool = False
    beta: float = 0.1  # KL coefficient (grpo, rloo) or DPO's beta
    num_generations: int = 4
    max_completion_length: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    entropy_coef: float = 0.0
    length_bonus: float | None = None  # None: the judge's default (4.0 with paper-classifier, else 0)
    no_stop_penalty: float | None = -8.0  # None: no penalty
    save_steps: int = 50
    gradient_checkpointing: bool = False
    dtype: str = "auto"
    seed: int = 0

    def record(self) -> dict[str, Any]:
        """The settings as recorded (only those that apply to the method)."""
        record = dataclasses.asdict(self)
        if self.method not in RL_METHODS:
            for name in ("num_generations", "max_completion_length", "temperature", "top_p", "entropy_coef", "length_bonus", "no_stop_penalty"):
                record.pop(name)
        if self.full:
            for name in ("lora_r", "lora_alpha", "lora_dropout", "lora_targets"):
                record.pop(name)
        return record


# The study's PPO run (LLaVA-1.5-7B): LoRA r 128 / alpha 256 / dropout 0.05, lr 3e-5, KL 0.1, entropy 0.02,
# 4 epochs, rollout batch 32, temperature 1.0, responses up to 512 tokens, length bonus 4.0, no-stop penalty -8.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "epochs": 4.0,
        "learning_rate": 3e-5,
        "batch_size": 32,
        "lora_r": 128,
        "lora_alpha": 256,
        "lora_dropout": 0.05,
        "beta": 0.1,
        "entropy_coef": 0.02,
        "temperature": 1.0,
        "max_completion_length": 512,
        "length_bonus": 4.0,
        "no_stop_penalty": -8.0,
    }
}


def settings_from(method: str, preset: str | None, explicit: Mapping[str, Any]) -> Settings:
    """Defaults, then the preset, then the flags given: the settings of a run (one-line errors for impossible ones)."""
    values: dict[str, Any] = {"method": method, **(PRESETS[preset] if preset else {})}
    values.update({k: v for k, v in explicit.items() if v is not None})
    settings = Settings(**values)
    if method in RL_METHODS:
        if settings.num_generations < 2:
            raise UserError(f"--num_generations {settings.num_generations}: {method} compares several responses per prompt; use 2 or more")
        if settings.batch_size % settings.num_generations:
            raise UserError(
                f"--batch_size {settings.batch_size} is not a multiple of --num_generations {settings.num_generations} "
                f"({method} counts the batch in responses); e.g. --batch_size {settings.num_generations * max(1, settings.batch_size // settings.num_generations)}"
            )
    if settings.dtype not in DTYPES:
        raise UserError(f"--dtype {settings.dtype} is not one of {'|'.join(DTYPES)}")
    return settings


def parse_model_args(model_args: Mapping[str, str]) -> dict[str, str]:
    """``--model_args`` of ``align``: ``pretrained`` (required), ``revision``, ``dtype``, ``trust_remote_code``, ``attn_implementation``."""
    unknown = sorted(set(model_args) - set(MODEL_ARGS))
    if unknown:
        raise UserError(f"--model_args: unknown key '{unknown[0]}' for align; valid: {', '.join(MODEL_ARGS)}")
    if not model_args.get("pretrained"):
        raise UserError("--model_args needs pretrained=<hub id or local folder>, e.g. --model_args pretrained=llava-hf/llava-1.5-7b-hf")
    pretrained = model_args["pretrained"]
    if pretrained.startswith(("/", "./", "../", "~")) and not Path(pretrained).expanduser().is_dir():
        raise UserError(f"--model_args pretrained={pretrained}: no such folder; pass an existing model folder or a hub id")
    return dict(model_args)


def resolve_dtype(dtype: str) -> str:
    """``auto``: bfloat16 on a CUDA GPU that supports it, else float32 (training in float16 needs it said explicitly)."""
    import torch

    if dtype != "auto":
        return dtype
    return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"


def load_model(model_args: Mapping[str, str], dtype: str) -> tuple[Any, Any]:
    """The processor and the model to train; loading problems are one-line errors."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    common = {
        "revision": model_args.get("revision") or None,
        "trust_remote_code": model_args.get("trust_remote_code", "false").lower() in ("true", "1", "yes"),
    }
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), **common}
    if model_args.get("attn_implementation"):
        kwargs["attn_implementation"] = model_args["attn_implementation"]
    pretrained = model_args["pretrained"]
    try:
        processor = AutoProcessor.from_pretrained(pretrained, **common)  # type: ignore[no-untyped-call]
        model = AutoModelForImageTextToText.from_pretrained(pretrained, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"vlmbench align: cannot load pretrained={pretrained} as an image-text-to-text model ({first})") from None
    return processor, model


def eos_ids(processor: Any, model: Any) -> set[int]:
    """Every token id that ends a response (the tokenizer's and the generation config's)."""
    ids: set[int] = set()
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in eos if isinstance(eos, (list, tuple)) else [eos]:
        if value is not None:
            ids.add(int(value))
    tokenizer = getattr(processor, "tokenizer", processor)
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def lora_config(settings: Settings) -> Any:
    """LoRA on the language model's attention projections (``None`` for full fine-tuning)."""
    if settings.full:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.lora_targets,
        task_type="CAUSAL_LM",
    )


def _config(cls: Any, values: Mapping[str, Any]) -> Any:
    """A TRL config from the values its dataclass knows (versions differ in fields)."""
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in known})


def build_trainer(settings: Settings, model: Any, processor: Any, dataset: Any, checkpoints: Path, reward: Any = None) -> Any:
    """The TRL trainer of ``settings.method``; checkpoints go to ``checkpoints``."""
    import torch

    cuda = torch.cuda.is_available()
    common: dict[str, Any] = {
        "output_dir": str(checkpoints),
        "num_train_epochs": settings.epochs,
        "max_steps": settings.max_steps,
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.grad_accum,
        "learning_rate": settings.learning_rate,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": settings.save_steps,
        "save_total_limit": 2,
        "seed": settings.seed,
        "data_seed": settings.seed,
        "report_to": [],
        "bf16": settings.dtype == "bfloat16",
        "fp16": settings.dtype == "float16",
        "use_cpu": not cuda,
        "gradient_checkpointing": settings.gradient_checkpointing,
        "dataloader_num_workers": 0,
        "beta": settings.beta,
    }
    peft = lora_config(settings)
    try:
        if settings.method in RL_METHODS:
            rl = {
                **common,
                "num_generations": settings.num_generations,
                "max_completion_length": settings.max_completion_length,
                "temperature": settings.temperature,
                "top_p": settings.top_p,
                "entropy_coef": settings.entropy_coef,
                "log_completions": False,
            }
            if settings.method == "grpo":
                from trl import GRPOConfig, GRPOTrainer

                return GRPOTrainer(
                    model=model,
                    reward_funcs=reward,
                    args=_config(GRPOConfig, rl),
                    train_dataset=dataset,
                    processing_class=processor,
                    peft_config=peft,
                )
            from trl import RLOOConfig, RLOOTrainer

            return RLOOTrainer(
                model=model, reward_funcs=reward, args=_config(RLOOConfig, rl), train_dataset=dataset, processing_class=processor, peft_config=peft
            )
        if settings.method == "sft":
            from trl import SFTConfig, SFTTrainer

            return SFTTrainer(
                model=model,
                args=_config(SFTConfig, {**common, "max_length": None}),
                train_dataset=dataset,
                processing_class=processor,
                peft_config=peft,
            )
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer(
            model=model, args=_config(DPOConfig, {**common, "max_length": None}), train_dataset=dataset, processing_class=processor, peft_config=peft
        )
    except ValueError as exc:
        text = str(exc)
        if "Target modules" in text or "target_modules" in text:
            raise UserError(
                f"--lora_targets {settings.lora_targets}: matches no module of this model; pass a regex over its module names "
                "(e.g. '.*language_model.*\\.(q_proj|v_proj)') or --full"
            ) from None
        raise


def versions() -> dict[str, str | None]:
    """The versions of the libraries that trained the model."""
    from importlib import metadata

    import vlmbench

    found: dict[str, str | None] = {"vlmbench": vlmbench.__version__}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found
