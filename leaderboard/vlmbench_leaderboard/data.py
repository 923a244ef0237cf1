"""The leaderboard data folder: one sub-folder per accepted model and revision.

An entry's folder name is a readable slug of organisation, name and revision plus a short hash of
their exact normalised text, so two different models never share a folder (``GPT-4o`` and
``GPT 4o`` slug alike but hash apart), and ``--replace`` only ever replaces the same model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vlmbench.errors import UserError
from vlmbench_leaderboard.metadata import identity
from vlmbench_leaderboard.text import terminal
from vlmbench_leaderboard.verify import Verified

HASH_CHARS = 10
MAX_METADATA_BYTES = 64 * 2**10


def entry_id(metadata: dict[str, Any]) -> str:
    """A safe, collision-free folder name for a model+revision: ``org__name__revision__<hash>``.

    Letters, digits, '.', '_' and '-' only, never starting with '.'; the hash is of the exact
    normalised (organisation, name, revision).
    """

    def slug(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-_")[:60] or "x"

    org, name, revision = identity(metadata)
    digest = hashlib.sha256(json.dumps([org, name, revision], ensure_ascii=False).encode("utf-8")).hexdigest()[:HASH_CHARS]
    prefix = f"{slug(org)}__" if org else ""
    return f"{prefix}{slug(name)}__{slug(revision or 'main')}__{digest}"


def _stored_identity(folder: Path) -> tuple[str, str, str | None] | None:
    """The identity of an existing entry folder, or None when its metadata cannot be read."""
    from vlmbench_leaderboard import strictjson
    from vlmbench_leaderboard.problems import Rejected

    path = folder / "metadata.json"
    try:
        if not path.is_file() or path.stat().st_size > MAX_METADATA_BYTES:
            return None
        metadata = strictjson.loads(path.read_bytes(), str(path), MAX_METADATA_BYTES)
    except (OSError, Rejected):
        return None
    return identity(metadata) if isinstance(metadata, dict) else None


def _same_model(data_dir: Path, model: tuple[str, str, str | None]) -> list[Path]:
    """Existing entry folders of this exact model and revision (whatever their folder name)."""
    return sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and _stored_identity(p) == model)


def check_data_dir(data_dir: Path) -> Path:
    """The data folder, created if missing; a one-line error when it cannot be one."""
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--data {terminal(data_dir)}: cannot use it as the data folder ({exc.strerror}); pass a folder") from None
    return data_dir


def add_entry(verified: Verified, data_dir: Path, replace: bool = False) -> Path:
    """Store an accepted bundle under ``data_dir/<entry id>/``; an entry of the same model is replaced only with ``replace``.

    Another model's entry is never replaced: the folder name carries a hash of the exact identity,
    and an existing folder is replaced only when its own metadata names the same model. A folder that
    cannot be listed or written is a one-line error naming it; the entries already there stay as they were.
    """
    data_dir = check_data_dir(data_dir)
    try:
        return _add_entry(verified, data_dir, replace)
    except OSError as exc:
        raise UserError(
            f"--data {terminal(data_dir)}: cannot store the entry there ({exc.strerror or type(exc).__name__}); "
            "make the folder writable or pass another --data"
        ) from None


def _add_entry(verified: Verified, data_dir: Path, replace: bool) -> Path:
    model = identity(verified.bundle.metadata)
    target = data_dir / entry_id(verified.bundle.metadata)
    if target.resolve().parent != data_dir.resolve():
        raise UserError(f"entry folder {terminal(target.name)!r} would leave {terminal(data_dir)}; refusing")  # cannot happen with entry_id
    if target.exists() and _stored_identity(target) != model:
        raise UserError(f"{terminal(target)}: holds another model (or unreadable metadata); move it away by hand, then add again")
    existing = _same_model(data_dir, model)
    if existing and not replace:
        raise UserError(f"{terminal(existing[0])}: this model and revision is already on the leaderboard; pass --replace to replace it")
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=data_dir))
    try:
        (staging / "samples").mkdir()
        for name, data in verified.bundle.files.items():
            (staging / name).write_bytes(data)
        old_folders = [*existing, *([target] if target.exists() and target not in existing else [])]
        moved = []
        # Set aside in a new folder of its own: a file or link planted at a name chosen in advance would be in the way.
        replaced = Path(tempfile.mkdtemp(prefix=".replaced-", dir=data_dir))
        try:
            for folder in old_folders:
                old = replaced / folder.name
                folder.rename(old)
                moved.append(old)
            staging.rename(target)
        except OSError:  # every entry set aside goes back
            for folder, old in zip(old_folders, moved):
                old.rename(folder)
            replaced.rmdir()
            raise
        shutil.rmtree(replaced, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def publish(site_dir: Path, destination: str) -> str:
    """Copy a built site to a folder, or upload it to a Hugging Face dataset repo (``hf://datasets/ORG/NAME``)."""
    site_dir = Path(site_dir)
    if not (site_dir / "index.html").is_file():
        raise UserError(f"{site_dir}: no index.html; build the site first with `vlmbench leaderboard build`")
    _check_site(site_dir)
    if destination.startswith("hf://"):
        return _publish_hub(site_dir, destination)
    target = Path(destination)
    if target.resolve() == site_dir.resolve() or site_dir.resolve() in target.resolve().parents:
        raise UserError(f"--to {terminal(destination)}: that is the site folder or inside it; choose a folder outside it")
    try:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(site_dir, target, dirs_exist_ok=True)
    except OSError as exc:  # shutil.Error too: one per file that could not be copied
        raise UserError(
            f"--to {terminal(destination)}: cannot copy the site there ({exc.strerror or type(exc).__name__}); choose a writable folder"
        ) from None
    return str(target)


MAX_SITE_DEPTH = 8  # `build` writes files one folder deep (plots/)


def _check_site(site_dir: Path) -> None:
    """Refuse a site folder holding anything but files and folders (at most MAX_SITE_DEPTH deep): publish copies or
    uploads what it holds, and a link planted there would publish a file from elsewhere (a loop of them never ends)."""
    folders = [(site_dir, 0)]
    while folders:
        folder, depth = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            raise UserError(
                f"{terminal(folder)}: cannot be listed ({exc.strerror}); publish a folder that `vlmbench leaderboard build` wrote"
            ) from None
        for entry in entries:
            path = folder / entry.name
            if entry.is_dir(follow_symlinks=False) and depth < MAX_SITE_DEPTH:
                folders.append((path, depth + 1))
            elif not entry.is_file(follow_symlinks=False):
                what = "a link" if entry.is_symlink() else "a folder too deep" if entry.is_dir(follow_symlinks=False) else "not a file"
                raise UserError(
                    f"{terminal(path)}: {what} in the site folder, which publish would copy; remove it, or build the site into a new folder"
                )


def _publish_hub(site_dir: Path, destination: str) -> str:
    match = re.fullmatch(r"hf://(datasets|spaces)/([\w.-]+/[\w.-]+)", destination)
    if not match:
        raise UserError(f"--to {destination}: expected hf://datasets/ORG/NAME or hf://spaces/ORG/NAME")
    from huggingface_hub import HfApi

    repo_type = match.group(1).rstrip("s")
    try:
        HfApi(token=os.environ.get("HF_TOKEN")).upload_folder(
            repo_id=match.group(2), repo_type=repo_type, folder_path=str(site_dir), commit_message="Update the vlmbench leaderboard"
        )
    except Exception as exc:  # the hub client raises many types (HTTP, auth, offline)
        raise UserError(f"--to {destination}: upload failed ({str(exc).splitlines()[0][:200]}); check HF_TOKEN and the repo") from None
    return destination
