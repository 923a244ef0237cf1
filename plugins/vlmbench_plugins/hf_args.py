"""The ``hf`` backend's ``--model_args``: what each means, and their checks (one-line errors)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vlmbench import whole_number
from vlmbench.backend import inert_line
from vlmbench.errors import UserError

MODEL_ARGS = {
    "pretrained": "hub id or local folder (required)",
    "revision": "hub branch, tag or commit",
    "dtype": "auto|float32|bfloat16|float16 (default auto)",
    "device": "cpu|cuda|cuda:N|mps (default cuda when available, else cpu)",
    "device_map": "accelerate device map, e.g. auto (instead of device)",
    "trust_remote_code": "true|false (default false)",
    "attn_implementation": "eager|sdpa|flash_attention_2|...",
    "max_new_tokens": "positive int; overrides the task's",
    "adapter": "a PEFT (LoRA) adapter folder, e.g. from `vlmbench align`, loaded over pretrained",
    "prepare_processes": "worker processes preparing batches while the model generates on an accelerator (default: cores/4, at most 4; 0: one thread)",
}
DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class HFArgs:
    """Parsed ``--model_args`` of the hf backend."""

    pretrained: str
    revision: str | None = None
    dtype: str = "auto"
    device: str | None = None
    device_map: str | None = None
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    max_new_tokens: int | None = None
    adapter: str | None = None
    prepare_processes: int | None = None


def check_model_args(model_args: Mapping[str, str]) -> None:
    """The one-line errors the ``hf`` factory raises for ``model_args`` (names, values, a local folder), without torch."""
    parse_model_args(dict(model_args))


def parse_model_args(model_args: dict[str, str]) -> HFArgs:
    """Validate and type the hf backend's ``--model_args`` (raises :class:`UserError` on a mistake)."""
    unknown = sorted(set(model_args) - set(MODEL_ARGS))
    if unknown:
        from vlmbench.pluginmanager import did_you_mean

        raise UserError(f"--model hf: unknown model_arg '{unknown[0]}'{did_you_mean(unknown[0], MODEL_ARGS)}; valid: {', '.join(MODEL_ARGS)}")
    if not model_args.get("pretrained"):
        raise UserError("--model hf needs pretrained=<hub id or local folder>, e.g. --model_args pretrained=llava-hf/llava-1.5-7b-hf")
    _check_folder(model_args["pretrained"])
    dtype = model_args.get("dtype", "auto")
    if dtype not in DTYPES:
        raise UserError(f"--model hf: dtype={dtype} is not one of {'|'.join(DTYPES)}")
    device = model_args.get("device") or None
    if device is not None and not _DEVICE.match(device):
        raise UserError(f"--model hf: device={device} is not cpu, cuda, cuda:N or mps")
    if device and model_args.get("device_map"):
        raise UserError("--model hf: give device= or device_map=, not both")
    return HFArgs(
        pretrained=model_args["pretrained"],
        revision=model_args.get("revision") or None,
        dtype=dtype,
        device=device,
        device_map=model_args.get("device_map") or None,
        trust_remote_code=_parse_bool("trust_remote_code", model_args.get("trust_remote_code", "false")),
        attn_implementation=model_args.get("attn_implementation") or None,
        max_new_tokens=_parse_positive("max_new_tokens", model_args["max_new_tokens"]) if "max_new_tokens" in model_args else None,
        prepare_processes=_parse_count("prepare_processes", model_args["prepare_processes"]) if "prepare_processes" in model_args else None,
        adapter=_check_adapter(model_args["adapter"]) if model_args.get("adapter") else None,
    )


def _check_adapter(adapter: str) -> str:
    """An ``adapter`` must be a folder with ``adapter_config.json``: fail at once, before torch loads."""

    if not (Path(adapter).expanduser() / "adapter_config.json").is_file():
        raise UserError(
            f"--model hf: adapter={adapter}: no adapter_config.json there; pass the folder `vlmbench align` (or PEFT's save_pretrained) wrote"
        )
    return adapter


def adapter_sha256(adapter: str) -> str:
    """sha256 over the adapter's files (``adapter_*``: its config and weights), by name and content."""

    digest = hashlib.sha256()
    for path in sorted(Path(adapter).expanduser().glob("adapter_*")):
        if path.is_file():
            digest.update(path.name.encode() + b"\0")
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def _parse_bool(name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise UserError(f"--model hf: {name}={text} is not true or false")


def _parse_positive(name: str, text: str) -> int:
    number = whole_number(text)
    if number is not None and number > 0:
        return number
    raise UserError(f"--model hf: {name}={inert_line(text, 24) or repr(text)} is not a positive integer")


def _parse_count(name: str, text: str) -> int:
    number = whole_number(text)
    if number is None:
        raise UserError(f"--model hf: {name}={inert_line(text, 24) or repr(text)} is not a whole number of 0 or more")
    return number


def looks_like_path(pretrained: str) -> bool:
    """True for an absolute path or one starting with ``./``, ``../`` or ``~``: a folder, never a hub id."""
    return os.path.isabs(pretrained) or pretrained in (".", "..", "~") or pretrained.startswith(("./", "../", "~/", ".\\", "..\\"))


def _check_folder(pretrained: str) -> None:
    """A path-like ``pretrained`` must be an existing folder: fail at once, before torch loads."""

    if not looks_like_path(pretrained):
        return
    folder = Path(pretrained).expanduser()
    if not folder.exists():
        raise UserError(
            f"--model hf: pretrained={pretrained}: no such folder; pass an existing model folder, or a hub id such as llava-hf/llava-1.5-7b-hf"
        )
    if not folder.is_dir():
        raise UserError(f"--model hf: pretrained={pretrained}: not a folder; pass the folder that holds the model's config.json")


def batch_setting(batch_size: int | str | None) -> int | None:
    """``--batch_size`` as an int, or None for ``auto`` (the largest that fits), which is also the default."""
    if batch_size is None or batch_size == "auto":
        return None
    if isinstance(batch_size, int) and batch_size > 0:
        return batch_size
    raise UserError(f"--batch_size {batch_size} is not a positive integer or 'auto'")


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception message (UserError messages are one line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
