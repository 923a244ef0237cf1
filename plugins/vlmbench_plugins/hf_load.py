"""Loading the ``hf`` backend's processor and model (torch and transformers are imported here only
when a model is built); loading problems become one-line user errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from vlmbench.errors import UserError
from vlmbench_plugins.hf_args import HFArgs, one_line


def local_files_fingerprint(pretrained: str) -> str | None:
    """For a local model folder (no hub commit to name it): a hash of its files' names, sizes and
    modification times, so retrained weights saved to the same path count as another model."""
    folder = Path(pretrained).expanduser()
    if not folder.is_dir():
        return None
    entries = sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def _resolve_device(device: str | None) -> str:
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--model hf: device={device} but torch sees no CUDA GPU; use device=cpu")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise UserError(f"--model hf: device={device} but only {torch.cuda.device_count()} CUDA device(s) exist; use cuda:0")
    if device == "mps" and not torch.backends.mps.is_available():
        raise UserError("--model hf: device=mps but MPS is not available here; use device=cpu")
    return device


def load_model(args: HFArgs) -> tuple[Any, Any]:
    """Load the processor and model; loading problems become one-line user errors."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = None if args.device_map else _resolve_device(args.device)
    common = {"revision": args.revision, "trust_remote_code": args.trust_remote_code}
    model_kwargs: dict[str, Any] = {"dtype": args.dtype if args.dtype == "auto" else getattr(torch, args.dtype), **common}
    if args.device_map:
        model_kwargs["device_map"] = args.device_map
    if args.attn_implementation:
        model_kwargs["attn_implementation"] = args.attn_implementation
    try:
        processor = AutoProcessor.from_pretrained(args.pretrained, **common)  # type: ignore[no-untyped-call]
        model = AutoModelForImageTextToText.from_pretrained(args.pretrained, **model_kwargs)
    except OSError as exc:
        raise UserError(
            f"--model hf: cannot load pretrained={args.pretrained} ({one_line(exc)}); "
            "check the hub id or folder, HF_TOKEN for gated models, and HF_HUB_OFFLINE"
        ) from exc
    except (ValueError, KeyError) as exc:
        raise UserError(
            f"--model hf: pretrained={args.pretrained} does not load as an image-text-to-text model "
            f"({one_line(exc)}); pick a vision-language model, or add trust_remote_code=true"
        ) from exc
    if args.adapter:
        model = _with_adapter(model, args.adapter)
    if device is not None:
        model = model.to(device)  # type: ignore[arg-type]
    return processor, model.eval()  # type: ignore[no-untyped-call]


def _with_adapter(model: Any, adapter: str) -> Any:
    """``model`` with the PEFT adapter in ``adapter`` loaded over it (peft is imported only here)."""
    try:
        from peft import PeftModel
    except ImportError:
        raise UserError("--model hf: adapter= needs peft: pip install 'vlmbench[align]'") from None
    try:
        return PeftModel.from_pretrained(model, adapter)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise UserError(
            f"--model hf: cannot load adapter={adapter} over this model ({one_line(exc)}); is it an adapter of this base model?"
        ) from None
