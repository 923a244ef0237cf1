"""The leaderboard data folder: one sub-folder per accepted model and revision."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from vlmbench.errors import UserError
from vlmbench_leaderboard.verify import Verified


def entry_id(metadata: dict) -> str:
    """A safe folder name for a model+revision: letters, digits, '.', '_' and '-' only, never starting with '.'."""
    def slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-_")[:80] or "x"

    org = f"{slug(metadata['org'])}__" if metadata.get("org") else ""
    return f"{org}{slug(metadata['name'])}__{slug(metadata.get('revision') or 'main')}"


def add_entry(verified: Verified, data_dir: Path, replace: bool = False) -> Path:
    """Store an accepted bundle under ``data_dir/<entry id>/``; an existing entry is replaced only with ``replace``."""
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--data {data_dir}: cannot use it as the data folder ({exc.strerror}); pass a folder") from None
    target = data_dir / entry_id(verified.bundle.metadata)
    if target.resolve().parent != data_dir.resolve():
        raise UserError(f"entry folder {target.name!r} would leave {data_dir}; refusing")  # cannot happen with entry_id, kept as a guard
    if target.exists() and not replace:
        raise UserError(f"{target}: this model and revision is already on the leaderboard; pass --replace to replace it")
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=data_dir))
    try:
        (staging / "samples").mkdir()
        for name, data in verified.bundle.files.items():
            (staging / name).write_bytes(data)
        if target.exists():
            old = data_dir / f".replaced-{target.name}"
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def publish(site_dir: Path, destination: str) -> str:
    """Copy a built site to a folder, or upload it to a Hugging Face dataset repo (``hf://datasets/ORG/NAME``)."""
    site_dir = Path(site_dir)
    if not (site_dir / "index.html").is_file():
        raise UserError(f"{site_dir}: no index.html; build the site first with `vlmbench leaderboard build`")
    if destination.startswith("hf://"):
        return _publish_hub(site_dir, destination)
    target = Path(destination)
    if target.resolve() == site_dir.resolve():
        raise UserError(f"--to {destination}: that is the site folder itself; choose another folder")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(site_dir, target, dirs_exist_ok=True)
    return str(target)


def _publish_hub(site_dir: Path, destination: str) -> str:
    import os

    match = re.fullmatch(r"hf://(datasets|spaces)/([\w.-]+/[\w.-]+)", destination)
    if not match:
        raise UserError(f"--to {destination}: expected hf://datasets/ORG/NAME or hf://spaces/ORG/NAME")
    from huggingface_hub import HfApi

    repo_type = match.group(1).rstrip("s")
    try:
        HfApi(token=os.environ.get("HF_TOKEN")).upload_folder(
            repo_id=match.group(2), repo_type=repo_type, folder_path=str(site_dir), commit_message="Update the vlmbench leaderboard")
    except Exception as exc:  # the hub client raises many types (HTTP, auth, offline)
        raise UserError(f"--to {destination}: upload failed ({str(exc).splitlines()[0][:200]}); check HF_TOKEN and the repo") from None
    return destination

