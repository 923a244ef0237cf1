"""``vlmbench align``: fine-tune a vision-language model to judge unsafe images, then evaluate it before and after.

    vlmbench align --method grpo --model_args pretrained=llava-hf/llava-1.5-7b-hf --output_dir runs/grpo

Reads the study's training split (:mod:`.data`), trains with TRL (:mod:`.trainers`; rewards from judged
responses for grpo/rloo, :mod:`.rewards`), writes the adapter with the processor, the split file, the
training log and the model card (:mod:`.card`), then evaluates the base and the tuned model on the
held-out test split and on general capability (:mod:`.compare`). ``--resume`` continues from the last
checkpoint (a run stopped before its first starts again from the first step in the same folder). Under
``accelerate launch`` every process runs the command; the main one writes the files.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmbench import UserError, whole_number
from vlmbench_plugins.align import card as cards
from vlmbench_plugins.align.resume import CHECKPOINTS, Resume, check_output, run_config, write_state

if TYPE_CHECKING:  # the trainers' module is imported when `vlmbench align` is configured or runs, not for `vlmbench --help`
    from vlmbench_plugins.align.trainers import Settings

MISSING_DEPS = "vlmbench align needs torch, transformers, trl and peft: pip install 'vlmbench[align]'"
TRAIN_LOG = "train_log.jsonl"


def _finite(text: str) -> float | None:
    """``text`` as a finite number, or None (not a number, NaN or infinite: no setting means either)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _float_or_none(text: str) -> float | str:
    if text.lower() == "none":
        return "none"
    value = _finite(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number or 'none'")
    return value


def _number(text: str) -> float:
    value = _finite(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
    return value


def _positive_float(text: str) -> float:
    value = _finite(text)
    if value is not None and value > 0:
        return value
    raise argparse.ArgumentTypeError(f"'{text}' is not a positive finite number")


def _non_negative_float(text: str) -> float:
    value = _finite(text)
    if value is not None and value >= 0:
        return value
    raise argparse.ArgumentTypeError(f"'{text}' is not a finite number >= 0")


def _probability(text: str) -> float:
    """A share in (0, 1]: nucleus sampling's top_p."""
    value = _finite(text)
    if value is not None and 0 < value <= 1:
        return value
    raise argparse.ArgumentTypeError(f"'{text}' is not a number above 0 and at most 1")


def _dropout(text: str) -> float:
    """A dropout rate in [0, 1)."""
    value = _finite(text)
    if value is not None and 0 <= value < 1:
        return value
    raise argparse.ArgumentTypeError(f"'{text}' is not a number from 0 up to (not including) 1")


def _seed(text: str) -> int:
    """A seed numpy and torch both take: an integer from 0 to 2**32 - 1."""
    number = whole_number(text)
    if number is not None and number < 2**32:
        return number
    raise argparse.ArgumentTypeError(f"'{text}' is not an integer from 0 to {2**32 - 1}")


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    return _positive_int(text)


def _positive_int(text: str) -> int:
    number = whole_number(text)
    if number:
        return number
    raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer")


def _limit(text: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    number = whole_number(text)
    if number:
        return number
    if 0 < value < 1:
        return value
    raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer or a fraction between 0 and 1")


# Flags that map one to one onto Settings fields (None: not given, so the preset or the default applies).
SETTING_FLAGS: dict[str, tuple[Any, str]] = {
    "epochs": (_positive_float, "passes over the training split (default 1; paper 4)"),
    "max_steps": (int, "stop after this many optimiser steps (default: the epochs decide)"),
    "learning_rate": (_positive_float, "learning rate (default 3e-5)"),
    "batch_size": (int, "batch per device; for grpo/rloo in responses, a multiple of --num_generations (default 8; paper 32)"),
    "grad_accum": (int, "gradient accumulation steps (default 1)"),
    "lora_r": (int, "LoRA rank (default 16; paper 128)"),
    "lora_alpha": (int, "LoRA alpha (default 32; paper 256)"),
    "lora_dropout": (_dropout, "LoRA dropout (default 0.05)"),
    "lora_targets": (str, "regex of the module names LoRA adapts (default: the language model's q/k/v/o_proj)"),
    "beta": (_non_negative_float, "KL coefficient for grpo/rloo (0: none), DPO's beta (default 0.1)"),
    "num_generations": (int, "responses sampled per prompt, grpo/rloo (default 4)"),
    "max_completion_length": (int, "longest sampled response in tokens, grpo/rloo (default 128; paper 512)"),
    "temperature": (_positive_float, "sampling temperature, grpo/rloo (default 1.0)"),
    "top_p": (_probability, "nucleus sampling, grpo/rloo (default 1.0)"),
    "entropy_coef": (_number, "entropy bonus coefficient, grpo (default 0; paper 0.02)"),
    "length_bonus": (_number, "reward bonus x response length / max length (default: 4.0 with paper-classifier, else 0)"),
    "no_stop_penalty": (_float_or_none, "reward of a response that never stops (default -8, the study's; none: no penalty)"),
    "save_steps": (int, "write a checkpoint every N steps (default 50); --resume continues from the last"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``vlmbench align``."""
    from vlmbench_plugins.align.trainers import DTYPES, METHODS, PRESETS

    parser.add_argument(
        "--method", choices=METHODS, default="grpo", help="grpo (default) or rloo: RL from judged responses; sft, dpo: the study's baselines"
    )
    parser.add_argument(
        "--model_args", default="", help="pretrained=ID_OR_DIR[,revision=...,dtype=...,trust_remote_code=true,attn_implementation=...]"
    )
    parser.add_argument("--output_dir", required=True, help="folder for the adapter, processor, split file, model card and evaluation")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="paper: the study's settings (LoRA r 128/alpha 256, lr 3e-5, KL 0.1, 4 epochs, batch 32, classifier reward)",
    )
    parser.add_argument("--data", default="builtin", help="builtin (default, offline) or hub (the study's images; see --data_files)")
    parser.add_argument("--data_files", action="append", metavar="HUB_ID=PATH", help="load a hub dataset from a local copy (repeatable)")
    parser.add_argument(
        "--judge", default=None, help="who rewards responses (grpo/rloo): rules (default), paper-classifier (the study's), llm-judge, or a plugin's"
    )
    parser.add_argument("--judge_args", default="", metavar="k=v,...", help="arguments of the judge, e.g. alignment=DIR for paper-classifier")
    parser.add_argument("--seed", type=_seed, default=0, help="training seed, 0 to 2**32 - 1 (the split's own seed is the study's 2024)")
    parser.add_argument(
        "--dtype", choices=DTYPES, default=None, help="auto (default: bfloat16 on a GPU that has it, else float32), float32, bfloat16, float16"
    )
    for name, (kind, text) in SETTING_FLAGS.items():
        parser.add_argument(f"--{name}", type=_positive_int if kind is int else kind, default=None, help=text)
    parser.add_argument("--full", action="store_true", default=None, help="train every weight instead of a LoRA adapter")
    parser.add_argument("--gradient_checkpointing", action="store_true", default=None, help="trade compute for memory")
    parser.add_argument(
        "--train_limit", type=_positive_int, default=None, help="train on N images of the training split, spread evenly (a quick trial)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --output_dir from its last checkpoint (none yet: from the first step)"
    )
    parser.add_argument("--no_eval", action="store_true", help="skip the before/after evaluation")
    parser.add_argument("--eval_limit", type=_limit, default=None, help="documents per evaluation task (N or a fraction); default all")
    parser.add_argument("--eval_judge", default=None, help="judge of the evaluation (default rules)")
    parser.add_argument("--eval_judge_args", default="", metavar="k=v,...", help="arguments of the evaluation judge")
    parser.add_argument("--general_task", default="general-capability", help="the general-capability task of the evaluation ('none' skips it)")
    parser.add_argument("--eval_batch_size", type=_batch_size, default=None, help="batch size of the evaluation (default auto)")
    parser.set_defaults(func=cmd_align)


def _data_files(values: list[str] | None) -> dict[str, str]:
    """``--data_files`` as a mapping; each local copy must exist (align reads the data before any evaluation)."""
    from vlmbench import parse_data_files  # the evaluation module: not imported for `vlmbench --help`

    mapping = parse_data_files(values)
    for hub_id, local in mapping.items():
        if not Path(local).expanduser().exists():
            raise UserError(f"--data_files: {local} does not exist; point {hub_id} to a local copy of the dataset")
    return mapping


def _require_deps() -> None:
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401
    except ImportError:
        raise UserError(MISSING_DEPS) from None


def cmd_align(ns: argparse.Namespace) -> int:
    """Train, save, describe, evaluate."""
    from vlmbench import parse_key_values  # the evaluation module: not imported for `vlmbench --help`
    from vlmbench_plugins.align.trainers import RL_METHODS, parse_model_args, settings_from

    model_args = parse_model_args(parse_key_values(ns.model_args, "--model_args"))
    explicit = {name: getattr(ns, name) for name in SETTING_FLAGS}
    no_penalty = explicit.get("no_stop_penalty") == "none"
    if no_penalty:
        explicit["no_stop_penalty"] = None
    explicit.update(full=ns.full, gradient_checkpointing=ns.gradient_checkpointing, seed=ns.seed, dtype=ns.dtype or model_args.get("dtype"))
    settings = settings_from(ns.method, ns.preset, explicit)
    if no_penalty:
        settings = dataclasses.replace(settings, no_stop_penalty=None)
    if ns.method not in RL_METHODS and (ns.judge or ns.judge_args):
        raise UserError(f"--judge: {ns.method} trains on the study's answer templates and uses no judge; --judge is for grpo and rloo")
    judge = ns.judge or ("paper-classifier" if ns.preset == "paper" else "rules")
    if judge == "rules" and ns.judge_args:
        raise UserError(
            "--judge_args is set, but the judge rules takes no arguments; name a model judge (e.g. --judge llm-judge) or leave out --judge_args"
        )
    if ns.method in RL_METHODS:
        from vlmbench_plugins.align.rewards import check_judge

        check_judge(judge)
    if ns.data not in ("builtin", "hub"):
        raise UserError(f"--data {ns.data}: use builtin or hub")
    if not ns.no_eval:  # the evaluation runs after training: a mistake in its flags must not cost the training
        from vlmbench_plugins.align.rewards import check_judge

        for name in (part.strip() for part in (ns.eval_judge or "").split(",") if part.strip()):
            check_judge(name, "--eval_judge")
        parse_key_values(ns.eval_judge_args, "--eval_judge_args")
    data_files = _data_files(ns.data_files)
    out_dir = Path(ns.output_dir).expanduser()
    _require_deps()
    rl = ns.method in RL_METHODS
    config = run_config(settings, model_args, judge if rl else None, parse_key_values(ns.judge_args, "--judge_args") if rl else {})
    resume = check_output(out_dir, ns.resume, ns.method, ns.data, config)
    general = None if ns.general_task.lower() == "none" else ns.general_task
    return run(ns, model_args, settings, judge, data_files, out_dir, resume, general, config)


def run(
    ns: argparse.Namespace,
    model_args: dict[str, str],
    settings: Settings,
    judge: str,
    data_files: dict[str, str],
    out_dir: Path,
    resume: Resume | None,
    general_task: str | None,
    config: dict[str, Any],
) -> int:
    """Everything after the checks (torch, trl and peft are importable from here on)."""
    from accelerate import PartialState

    from vlmbench import parse_key_values
    from vlmbench_plugins.align import compare
    from vlmbench_plugins.align.data import SPLIT_FILE, TEMPLATES, load_split, split_file, training_dataset
    from vlmbench_plugins.align.rewards import build_reward
    from vlmbench_plugins.align.trainers import RL_METHODS, build_trainer, eos_ids, load_model, resolve_dtype, versions

    state = PartialState()
    settings = dataclasses.replace(settings, dtype=resolve_dtype(settings.dtype))
    data = load_split(ns.data, data_files, settings.seed, ns.train_limit)
    split_text, split_sha = split_file(data)  # every process reads the same split; the main one writes it
    if resume and resume.split_sha256 != split_sha:
        raise UserError(
            f"--resume: the training split differs from the one {out_dir} was trained on (data or --train_limit changed); resume with the same data"
        )
    resume_from = resume.checkpoint if resume else None
    if state.is_main_process:
        if resume and resume_from is None:
            print(f"align: --resume: no checkpoint in {out_dir / CHECKPOINTS} yet; training starts from the first step", file=sys.stderr)
        print(
            f"align: {settings.method} on {model_args['pretrained']}: {len(data.train)} training images "
            f"({data.counts['train_unsafe']} unsafe, {data.counts['train_safe']} safe in the split), {len(data.test)} held out",
            file=sys.stderr,
        )
    processor, model = load_model(model_args, settings.dtype)
    reward = None
    if settings.method in RL_METHODS:
        reward = build_reward(
            judge,
            parse_key_values(ns.judge_args, "--judge_args"),
            settings.max_completion_length,
            eos_ids(processor, model),
            settings.length_bonus,
            settings.no_stop_penalty,
        )
    # Written once the model and the reward are loaded: a model that cannot load leaves --output_dir as it was,
    # so the corrected command needs no --resume.
    if state.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / SPLIT_FILE).write_text(split_text, encoding="utf-8")
        write_state(out_dir, {"method": settings.method, "data": ns.data, "split_sha256": split_sha, "status": "training", "config": config})
    state.wait_for_everyone()
    trainer = build_trainer(settings, model, processor, training_dataset(data, settings.method), out_dir / CHECKPOINTS, reward)
    started = time.perf_counter()
    start_step = int(resume_from.name.rpartition("-")[2]) if resume_from else 0
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    seconds = time.perf_counter() - started
    trainer.save_model(str(out_dir))
    steps = int(trainer.state.global_step)
    base = {"pretrained": model_args["pretrained"], "revision": model_args.get("revision")}
    tuned_args = {"pretrained": str(out_dir)} if settings.full else {"pretrained": model_args["pretrained"], "adapter": str(out_dir)}
    tuned_args.update({k: v for k, v in model_args.items() if k in ("revision", "trust_remote_code", "attn_implementation") and not settings.full})
    tuned_args["dtype"] = settings.dtype
    card: dict[str, Any] = {}
    if state.is_main_process:
        with open(out_dir / TRAIN_LOG, "a" if resume_from else "w", encoding="utf-8") as log:
            for entry in trainer.state.log_history:
                if int(entry.get("step", 0)) > start_step:
                    log.write(json.dumps(entry) + "\n")
        done = max(steps - start_step, 1)
        card = {
            "method": settings.method,
            "created": cards.now(),
            "adapter": not settings.full,
            "base_model": base,
            "data": {
                "variant": ns.data,
                "split_file": SPLIT_FILE,
                "split_sha256": split_sha,
                "counts": data.counts,
                "datasets": data.datasets,
                "rule": data.split_record()["rule"],
            },
            "judge": reward.identity() if reward is not None else None,
            "templates": TEMPLATES if settings.method in ("sft", "dpo") else None,
            "hyperparameters": settings.record(),
            "seed": settings.seed,
            "versions": versions(),
            "training": {
                "steps": steps,
                "seconds": round(seconds, 3),
                "seconds_per_step": round(seconds / done, 4),
                "resumed_from": str(resume_from) if resume_from else None,
                "final": {k: v for k, v in (trainer.state.log_history[-1] if trainer.state.log_history else {}).items()},
            },
            "evaluate_with": "vlmbench run --model hf --model_args "
            + ",".join(f"{k}={v}" for k, v in tuned_args.items())
            + f" --tasks alignment-test-split --data {ns.data}",
            "command": recorded_command(sys.argv[1:]) if sys.argv and "align" in sys.argv else None,
        }
        cards.write_card(out_dir, card)
        write_state(
            out_dir, {"method": settings.method, "data": ns.data, "split_sha256": split_sha, "status": "trained", "steps": steps, "config": config}
        )
        print(f"align: {steps} steps in {seconds:.1f} s; {'adapter' if not settings.full else 'model'} and processor in {out_dir}", file=sys.stderr)
    del trainer, model
    if reward is not None:
        reward.close()
    _free_memory()
    if ns.no_eval:
        return 0
    plan = compare.EvalPlan(
        data=ns.data,
        data_files=data_files,
        limit=ns.eval_limit,
        seed=settings.seed,
        general_task=general_task,
        judge=ns.eval_judge,
        judge_args=ns.eval_judge_args,
        batch_size=ns.eval_batch_size,
    )
    base_args = {**{k: v for k, v in model_args.items() if k != "dtype"}, "dtype": settings.dtype}
    rows = [
        compare.evaluate_model("base", "-", base_args, plan, out_dir / "eval"),
        compare.evaluate_model("tuned", settings.method, tuned_args, plan, out_dir / "eval"),
    ]
    if state.is_main_process and all(r is not None for r in rows):
        text = compare.write([r for r in rows if r is not None], out_dir, plan)
        card["evaluation"] = {"rows": rows, "markdown": text}
        cards.write_card(out_dir, card)
        print(text)
    return 0


KEY_VALUE_FLAGS = ("--model_args", "--judge_args", "--eval_judge_args")


def recorded_command(argv: list[str]) -> str:
    """The command line as the model card records it: in ``k=v`` flags, a secret-named key's value is masked
    (``--judge_args backend=openai,api_key=***``, as the error messages suggest passing keys), and every URL
    loses its credentials and query."""
    from vlmbench.redact import redact_text

    shown: list[str] = []
    for index, arg in enumerate(argv):
        name, equals, value = arg.partition("=")
        if index and argv[index - 1] in KEY_VALUE_FLAGS:
            shown.append(_masked_pairs(arg))
        elif equals and name in KEY_VALUE_FLAGS:
            shown.append(f"{name}={_masked_pairs(value)}")
        else:
            shown.append(redact_text(arg))
    return shlex.join(["vlmbench", *shown])


def _masked_pairs(text: str) -> str:
    from vlmbench.redact import MASK, is_secret_name, redact_text

    pairs = []
    for pair in text.split(","):
        key, equals, value = pair.partition("=")
        secret = equals and value and is_secret_name(key.strip().rpartition(".")[2])  # "llm-judge.api_key" names api_key
        pairs.append(f"{key}={MASK}" if secret else redact_text(pair))
    return ",".join(pairs)


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
