"""Tiny random-weight vision-language models, built offline for tests.

``build_tiny_vlm(arch, out_dir)`` writes a model folder that ``AutoProcessor`` and
``AutoModelForImageTextToText`` (and ``transformers serve``) load like any hub checkout: a
byte-level BPE tokenizer trained on a small local corpus, a chat template, an image processor
and a seeded random model small enough to build in well under a second. Nothing is downloaded
and nothing is cached between calls; callers pass a temporary directory.

Architectures: ``llava``, ``idefics3``, ``gemma3``; ``qwen2_vl`` needs torchvision (its processor
requires a video processor) and raises :class:`TinyModelUnavailable` without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SEED = 0
ARCHS = ("llava", "idefics3", "gemma3", "qwen2_vl")

# The image placeholder each architecture's chat template writes once per image (the processor
# then expands it to the vision tower's token count).
IMAGE_TOKENS = {"llava": "<image>", "idefics3": "<image>", "gemma3": "<start_of_image>", "qwen2_vl": "<|image_pad|>"}


class TinyModelUnavailable(RuntimeError):
    """The architecture cannot be built in this environment (e.g. torchvision is missing)."""


_VOCAB_WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "of",
    "to",
    "and",
    "in",
    "on",
    "for",
    "with",
    "this",
    "that",
    "it",
    "image",
    "picture",
    "photo",
    "shows",
    "what",
    "describe",
    "question",
    "answer",
    "user",
    "assistant",
    "system",
    "please",
    "safe",
    "unsafe",
    "yes",
    "no",
    "option",
    "choose",
    "most",
    "relevant",
    "from",
    "or",
    "could",
    "be",
    "shown",
    "general",
    "audience",
    "social",
    "media",
    "generate",
    "such",
    "using",
    "community",
    "guidelines",
    "online",
    "forums",
    "free",
    "elements",
    "harmful",
    "exploitative",
    "viewing",
    "if",
    "does",
    "adhere",
    "without",
    "causing",
    "harm",
    "distress",
    "weapon",
    "drug",
    "violence",
    "blood",
    "knife",
    "gun",
    "flower",
    "cat",
    "dog",
    "tree",
    "car",
]


def _corpus() -> list[str]:
    n = len(_VOCAB_WORDS)
    return [" ".join(_VOCAB_WORDS[(i * 7 + j * 3) % n] for j in range(12)) + "." for i in range(300)]


def _tokenizer(specials: Sequence[str], chat_template: str, *, bos: str = "<s>", eos: str = "</s>", named: dict[str, str] | None = None) -> Any:
    """A left-padding byte-level BPE tokenizer (every string encodes, so no <unk> is ever needed)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    base = ["<unk>", bos, eos, "<pad>"]
    extra = [t for t in specials if t not in base]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=base + extra, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(_corpus(), trainer=trainer)
    # Named extra special tokens (e.g. Gemma 3's ``image_token``) become tokenizer attributes the
    # processor reads; a plain list is enough for the others.
    extra_special: Any = named if named else extra
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
        model_max_length=2048,
        extra_special_tokens=extra_special,
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def _text_config(tokenizer: Any, **overrides: Any) -> dict[str, Any]:
    """A 2-layer decoder; head_dim 32 because some kernels reject smaller heads."""
    config = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config.update(overrides)
    return config


def _vision_config(image_size: int, patch: int, **overrides: Any) -> dict[str, Any]:
    config = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=image_size, patch_size=patch)
    config.update(overrides)
    return config


def _save(model_cls: Any, config: Any, processor: Any, tokenizer: Any, out_dir: Path) -> None:
    import torch

    torch.manual_seed(SEED)
    model = model_cls(config).eval()
    generation = model.generation_config
    generation.pad_token_id, generation.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    generation.bos_token_id, generation.do_sample = tokenizer.bos_token_id, False
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)


def _template(turn_open: str, turn_close: str, image: str, generation_prompt: str, prefix: str = "") -> str:
    """A Jinja chat template walking a content list of image/text items in order."""
    return (
        prefix + "{% for message in messages %}" + turn_open + "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}{{ '" + image + "' }}"
        "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
        "{% endfor %}{% endif %}" + turn_close + "{% endfor %}"
        "{% if add_generation_prompt %}{{ '" + generation_prompt + "' }}{% endif %}"
    )


def _build_llava(out_dir: Path) -> None:
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    template = _template("{{ message['role'].upper() + ': ' }}", "{{ '\\n' }}", "<image>\\n", "ASSISTANT:")
    tokenizer = _tokenizer(["<image>"], template)
    size, patch = 32, 8  # 16 patches + CLS; the 'default' strategy drops CLS -> 16 image tokens
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**_vision_config(size, patch, projection_dim=32)),
        text_config=LlamaConfig(**_text_config(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(size // patch) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template,
    )
    _save(LlavaForConditionalGeneration, config, processor, tokenizer, out_dir)


def _build_idefics3(out_dir: Path) -> None:
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil, Idefics3Processor

    template = _template("{{ message['role'] | capitalize + ': ' }}", "{{ '<end_of_utterance>\\n' }}", "<image>", "Assistant:", prefix="<|im_start|>")
    grid = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tokenizer = _tokenizer(
        ["<|im_start|>", "<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *grid], template, eos="<end_of_utterance>"
    )
    size, patch, scale = 32, 8, 2  # 16 patches, pixel-shuffled by 2x2 -> 4 <image> tokens
    config = Idefics3Config(
        vision_config=_vision_config(size, patch),
        text_config=_text_config(tokenizer, model_type="llama"),
        scale_factor=scale,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": size}, max_image_size={"longest_edge": size}, do_image_splitting=False)
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=(size // patch) ** 2 // scale**2, chat_template=template
    )
    _save(Idefics3ForConditionalGeneration, config, processor, tokenizer, out_dir)


def _build_gemma3(out_dir: Path) -> None:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor

    template = _template(
        "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' }}",
        "{{ '<end_of_turn>\\n' }}",
        "<start_of_image>",
        "<start_of_turn>model\\n",
        prefix="{{ bos_token }}",
    )
    named = {
        "boi_token": "<start_of_image>",
        "eoi_token": "<end_of_image>",
        "image_token": "<image_soft_token>",
        "sot": "<start_of_turn>",
        "eot": "<end_of_turn>",
    }
    tokenizer = _tokenizer(list(named.values()), template, bos="<bos>", eos="<eos>", named=named)
    size, patch, soft_tokens = 32, 8, 4  # 4x4 patches average-pooled to 2x2 soft tokens
    text = _text_config(tokenizer, query_pre_attn_scalar=32, sliding_window=16)
    config = Gemma3Config(
        text_config=text,
        vision_config=_vision_config(size, patch, model_type="siglip_vision_model"),
        mm_tokens_per_image=soft_tokens,
        boi_token_index=tokenizer.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tokenizer.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image_soft_token>"),
    )
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(size={"height": size, "width": size}),
        tokenizer=tokenizer,
        image_seq_length=soft_tokens,
        chat_template=template,
    )
    _save(Gemma3ForConditionalGeneration, config, processor, tokenizer, out_dir)


def _require_torchvision() -> None:
    from transformers.utils import is_torchvision_available  # type: ignore[attr-defined]

    if not is_torchvision_available():
        raise TinyModelUnavailable(
            "qwen2_vl needs torchvision (Qwen2-VL processors require a video processor): pip install torchvision matching your torch"
        )


def _build_qwen2_vl(out_dir: Path) -> None:
    _require_torchvision()
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil, Qwen2VLProcessor, Qwen2VLVideoProcessor

    template = _template(
        "{{ '<|im_start|>' + message['role'] + '\\n' }}",
        "{{ '<|im_end|>\\n' }}",
        "<|vision_start|><|image_pad|><|vision_end|>",
        "<|im_start|>assistant\\n",
    )
    specials = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer = _tokenizer(specials, template, eos="<|im_end|>")
    ids = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in (
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        )
    }
    # head_dim 32 -> 16 rotary frequencies, which the multimodal rope sections must sum to.
    text = _text_config(tokenizer, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]})
    text.pop("head_dim")
    vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=4, mlp_ratio=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, **ids)
    # 56x56 pixels -> 4x4 patches of 14 -> merged 2x2 -> 4 <|image_pad|> tokens per image
    pixels = {"shortest_edge": 56 * 56, "longest_edge": 56 * 56}
    grid = dict(patch_size=14, merge_size=2, temporal_patch_size=2)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessorPil(size=pixels, **grid),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=pixels, **grid),
        chat_template=template,
    )
    _save(Qwen2VLForConditionalGeneration, config, processor, tokenizer, out_dir)


_BUILDERS: dict[str, Callable[[Path], None]] = {
    "llava": _build_llava,
    "idefics3": _build_idefics3,
    "gemma3": _build_gemma3,
    "qwen2_vl": _build_qwen2_vl,
}


def build_tiny_vlm(arch: str, out_dir: Path) -> Path:
    """Build a tiny random-weight ``arch`` model in ``out_dir`` (created if needed) and return it.

    The folder loads with ``AutoProcessor`` / ``AutoModelForImageTextToText``. Weights are seeded,
    so two builds are identical. Raises :class:`TinyModelUnavailable` when the architecture cannot
    be built here (``qwen2_vl`` without torchvision) and ``ValueError`` for an unknown ``arch``.
    """
    if arch not in _BUILDERS:
        raise ValueError(f"unknown tiny model arch '{arch}'; choose one of {', '.join(ARCHS)}")
    if arch == "qwen2_vl":
        _require_torchvision()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _BUILDERS[arch](out_dir)
    return out_dir


def build_tiny_paper_classifier(
    out_dir: Path, num_labels: int, *, module_prefix: bool = False, file_name: str = "epoch_10.pt", base_size: bool = False
) -> Path:
    """A tiny stand-in for the study's response classifiers, in their checkpoint format.

    Writes a RoBERTa config and tokenizer (hidden 32, 2 layers; with ``base_size`` roberta-base's
    hidden 768, 12 layers, 512 positions, for throughput benchmarks) and ``file_name``: a state dict of
    ``roberta.*`` (pooler and ``position_ids`` buffer included, as the study saved them) plus a
    ``classifier`` linear layer (32 -> ``num_labels``) with seeded random weights. With
    ``module_prefix`` every key starts with ``module.`` (a DataParallel checkpoint).
    """
    import torch
    from tokenizers import processors
    from transformers import RobertaConfig, RobertaModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(["<mask>"], "", bos="<s>", eos="</s>")
    backend = tokenizer.backend_tokenizer
    backend.post_processor = processors.RobertaProcessing(("</s>", backend.token_to_id("</s>")), ("<s>", backend.token_to_id("<s>")))
    tokenizer.padding_side = "right"
    tokenizer.model_max_length = 512 if base_size else 128
    hidden, layers, heads, intermediate = (768, 12, 12, 3072) if base_size else (32, 2, 4, 64)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        type_vocab_size=1,
        max_position_embeddings=tokenizer.model_max_length + tokenizer.pad_token_id + 1,  # positions start after the pad id
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(SEED)
    roberta = RobertaModel(config)
    head = torch.nn.Linear(config.hidden_size, num_labels)
    state = {f"roberta.{k}": v for k, v in roberta.state_dict().items()}
    state["roberta.embeddings.position_ids"] = torch.arange(config.max_position_embeddings).unsqueeze(0)
    state.update({f"classifier.{k}": v for k, v in head.state_dict().items()})
    if module_prefix:
        state = {f"module.{k}": v for k, v in state.items()}
    config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    torch.save(state, out_dir / file_name)
    return out_dir


if __name__ == "__main__":
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny_models")
    for name in sys.argv[2:] or ARCHS:
        try:
            print("built", name, "->", build_tiny_vlm(name, root / name))
        except TinyModelUnavailable as exc:
            print("skipped", name, ":", exc)
