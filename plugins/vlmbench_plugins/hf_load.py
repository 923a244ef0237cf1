"""Loading the ``hf`` backend's processor and model (torch and transformers are imported here only
when a model is built); loading problems become one-line user errors. The weights are loaded apart
from the processor, so that a run that needs no generation never loads them (:class:`LoadedDtypes`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlmbench import FileRefused, cache_dir, read_regular_file
from vlmbench.errors import UserError
from vlmbench_plugins.hf_args import HFArgs, one_line


def local_files_fingerprint(pretrained: str) -> str | None:
    """For a local model folder (no hub commit to name it): a hash of the names and contents of the files at
    its top level, those ``from_pretrained`` reads (a subfolder of checkpoints or logs is not the model). New
    weights saved to the same path are another model; a copy of the same files, or a file touched or
    re-permissioned, is the same one. Each file's content hash is kept between runs while the file is
    unchanged (:class:`vlmbench.FileHashes`), so only new or changed files are read."""
    from vlmbench import FileHashes

    folder = Path(pretrained).expanduser()
    if not folder.is_dir():
        return None
    kept = FileHashes(cache_dir() / "file-sha256" / f"{hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:32]}.json")
    entries = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            entries.append((path.name, kept.sha256(str(path))))
        except OSError as exc:  # loading will say what is wrong with it, if the model needs it
            entries.append((path.name, f"unreadable ({exc.strerror or type(exc).__name__})"))
    kept.save()
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def resolve_device(device: str | None) -> str:
    """The device to put the model on (``device=`` as given, else CUDA when torch sees a GPU); a device
    that is not there is a one-line error."""
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


@contextlib.contextmanager
def _loading(args: HFArgs) -> Iterator[None]:
    """Loading problems as one-line user errors."""
    try:
        yield
    except OSError as exc:
        raise UserError(
            f"--model hf: cannot load pretrained={args.pretrained} ({one_line(exc)}); "
            "check the hub id or folder, HF_TOKEN for gated models, and HF_HUB_OFFLINE"
        ) from exc
    except (ValueError, KeyError) as exc:
        advice = (
            "pick a vision-language model, or add trust_remote_code=true"
            if _unknown_architecture(exc)
            else "its files (config.json, generation_config.json, the processor's) hold a value transformers refuses: fix them, or pick another model"
        )
        raise UserError(f"--model hf: pretrained={args.pretrained} does not load as an image-text-to-text model ({one_line(exc)}); {advice}") from exc
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":  # safetensors' own error type, raised for a damaged file
            raise
        raise UserError(
            f"--model hf: the weights of pretrained={args.pretrained} cannot be read ({one_line(exc)}); "
            "a file is damaged or incomplete: download the model again"
        ) from exc


def _unknown_architecture(exc: BaseException) -> bool:
    """Whether transformers failed for want of the model's code (an architecture it does not know), the
    one case ``trust_remote_code`` can help with."""
    text = str(exc).lower()
    return isinstance(exc, KeyError) or "recogni" in text or "model type" in text or "trust_remote_code" in text


def hub_commit(args: HFArgs) -> str | None:
    """The hub commit a hub id's ``revision`` (None: the default branch) points to now, read from where its
    ``config.json`` resolves (the cache's snapshot folder, offline too); None for a local folder or when it
    cannot be told. The backend reads every other file of the model at this commit, and names it."""
    if Path(args.pretrained).expanduser().is_dir():
        return None
    from transformers.utils import CONFIG_NAME
    from transformers.utils.hub import cached_file, extract_commit_hash

    with _loading(args):
        resolved = cached_file(args.pretrained, CONFIG_NAME, revision=args.revision)
    return extract_commit_hash(resolved, None)


def _hub_kwargs(args: HFArgs, revision: str | None) -> dict[str, Any]:
    return {"revision": revision, "trust_remote_code": args.trust_remote_code}


def load_processor(args: HFArgs, revision: str | None) -> Any:
    """The model's processor (tokenizer, image processor, chat template) at ``revision``: small files, read
    when the backend is built."""
    from transformers import AutoProcessor

    with _loading(args):
        return AutoProcessor.from_pretrained(args.pretrained, **_hub_kwargs(args, revision))  # type: ignore[no-untyped-call]


def load_weights(args: HFArgs, revision: str | None, device: str | None) -> Any:
    """The model with its weights (and adapter) at ``revision``, on ``device`` (None: where ``device_map``
    puts it), in eval mode."""
    import torch
    from transformers import AutoModelForImageTextToText

    model_kwargs: dict[str, Any] = {"dtype": args.dtype if args.dtype == "auto" else getattr(torch, args.dtype), **_hub_kwargs(args, revision)}
    if args.device_map:
        model_kwargs["device_map"] = args.device_map
    if args.attn_implementation:
        model_kwargs["attn_implementation"] = args.attn_implementation
    with _loading(args):
        model = AutoModelForImageTextToText.from_pretrained(args.pretrained, **model_kwargs)
    if args.adapter:
        model = _with_adapter(model, args.adapter)
    if device is not None:
        model = model.to(device)  # type: ignore[arg-type]
    return model.eval()  # type: ignore[no-untyped-call]


_DTYPE = re.compile(r"[a-z][a-z0-9_]{0,31}")


class LoadedDtypes:
    """The dtype a model's weights loaded in, kept between runs, so that a run whose every answer is in the
    response store names the model (its identity holds the dtype) without loading the weights.

    ``dtype=auto`` (the default) takes it from the model's files, so it is known for sure only once they
    are loaded. Each record is keyed by everything that decides it: the model as given and its hub commit,
    a local folder's files (:func:`local_files_fingerprint`), the ``dtype``, device, ``device_map``,
    ``attn_implementation``, ``trust_remote_code`` and adapter settings, and the transformers and torch
    versions."""

    def __init__(self, args: HFArgs, commit_hash: str | None, local_files_sha256: str | None, adapter_sha256: str | None, device: str | None) -> None:
        import torch
        import transformers

        self.key = {
            "pretrained": args.pretrained,
            "revision": args.revision,
            "commit_hash": commit_hash,
            "local_files_sha256": local_files_sha256,
            "dtype": args.dtype,
            "device": device,
            "device_map": args.device_map,
            "attn_implementation": args.attn_implementation,
            "trust_remote_code": args.trust_remote_code,
            "adapter_sha256": adapter_sha256,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()
        self.path = cache_dir() / "hf-dtypes" / f"{digest[:32]}.json"

    def recorded(self) -> str | None:
        """The dtype the last load with this key gave (None: never loaded, or a record this module did not write)."""
        try:  # a regular file of a record's size only: a link to /dev/zero or a FIFO must not hang a run
            document: Any = json.loads(read_regular_file(self.path, 64 * 1024, "dtype record").decode("utf-8"))
        except (OSError, FileRefused, ValueError, RecursionError):
            return None
        if not isinstance(document, dict) or document.get("key") != self.key:
            return None
        dtype = document.get("dtype")
        return dtype if isinstance(dtype, str) and _DTYPE.fullmatch(dtype) else None

    def record(self, dtype: str) -> None:
        """Keep the dtype a load gave (atomically); never fails a run."""
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            scratch = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            scratch.write_text(json.dumps({"key": self.key, "dtype": dtype}), encoding="utf-8")
            os.replace(scratch, self.path)


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
