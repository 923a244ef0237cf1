"""A bundle's ``metadata.json``: who made the model, as the site shows it; filled, normalised, checked.

Every text field is NFKC-normalised by ``submit`` and must already be normalised (and free of
invisible, bidi and control characters) when ``verify`` reads it, so the stored text is exactly
the checked text. ``reference`` is not the submitter's to choose: it is true exactly when the
run's backend is one of the built-in baselines.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from vlmbench.redact import redact, redact_text
from vlmbench_leaderboard.problems import Rejected
from vlmbench_leaderboard.text import normalise, text_problem

BASELINES = ("random", "always-safe", "always-unsafe")
METADATA_FIELDS = ("name", "org", "hub_id", "api", "revision", "parameters", "license", "precision", "date", "reference")
TEXT_FIELDS = ("name", "org", "hub_id", "api", "revision", "parameters", "license", "precision")
# A plain PEP 440 version: release, optional pre/post/dev parts and a local label; nothing else.
VERSION = re.compile(
    r"[0-9]{1,6}(\.[0-9]{1,6}){0,4}((a|b|rc)[0-9]{1,6})?(\.post[0-9]{1,6})?(\.dev[0-9]{1,6})?(\+[a-z0-9]{1,20}(\.[a-z0-9]{1,20}){0,4})?"
)


def is_reference(run: dict[str, Any]) -> bool:
    """Whether a run is a reference row: one of the built-in baselines, with no model arguments."""
    model = run.get("model") if isinstance(run, dict) else None
    return isinstance(model, dict) and model.get("backend") in BASELINES and not model.get("args")


def default_metadata(run: dict[str, Any]) -> dict[str, Any]:
    """Metadata filled from what the run recorded about its model; the submitter completes the rest."""
    identity = run["model"].get("identity") or {}
    backend = run["model"]["backend"]
    pretrained = identity.get("pretrained")
    name = str(pretrained or identity.get("model") or backend)
    local = bool(pretrained) and Path(str(pretrained)).exists()
    return {
        "name": name.rstrip("/").split("/")[-1] if pretrained else name,
        "org": name.split("/")[0] if "/" in name and not Path(name).exists() else "",
        "hub_id": pretrained if pretrained and not local else None,
        "api": identity.get("base_url") if backend == "openai" else None,
        "revision": identity.get("revision") or identity.get("commit_hash"),
        "parameters": None,
        "license": None,
        "precision": identity.get("dtype"),
        "date": date.today().isoformat(),
        "reference": is_reference(run),
    }


def normalise_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Text fields NFKC-normalised and stripped (``submit`` stores names this way); other fields as they are."""
    return {key: normalise(value) if key in TEXT_FIELDS and isinstance(value, str) else value for key, value in metadata.items()}


def identity(metadata: dict[str, Any]) -> tuple[str, str, str | None]:
    """What makes two entries the same model: the exact normalised organisation, name and revision."""

    def text(value: Any) -> str:
        return normalise(value) if isinstance(value, str) else ""

    return text(metadata.get("org")), text(metadata.get("name")), text(metadata.get("revision")) or None


def check_text_fields(metadata: Any) -> None:
    """Raise :class:`Rejected` naming the first text field that is not normalised or holds a hiding character."""
    for key in TEXT_FIELDS if isinstance(metadata, dict) else ():
        value = metadata.get(key)
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise Rejected([f"metadata.json: {key} {problem}"])


def check_metadata(metadata: dict[str, Any], run: dict[str, Any]) -> None:
    """Raise :class:`Rejected` naming the first field that cannot be shown as submitted (schema already checked)."""
    check_text_fields(metadata)
    for key in TEXT_FIELDS:  # what vlmbench writes is masked already: an unmasked credential was put there by hand
        value = metadata.get(key)
        if isinstance(value, str) and redact_text(value) != value:
            raise Rejected(
                [
                    f"metadata.json: {key} holds a URL with a user:password or a query string (where keys hide); remove them: a submission carries no secret"
                ]
            )
    for key in ("model", "config"):  # a run writes them masked: a secret there was put in by hand
        if redact(run.get(key)) != run.get(key):
            raise Rejected([f"run.json: '{key}' holds a secret-named value or a URL with credentials or a query; a submission carries no secret"])
    if metadata.get("name", "") == "":
        raise Rejected(["metadata.json: name is empty; pass --name"])
    try:
        date.fromisoformat(str(metadata.get("date")))
    except ValueError:
        raise Rejected([f"metadata.json: date {str(metadata.get('date'))[:12]!r} is not a calendar date; pass --date YYYY-MM-DD"]) from None
    reference = is_reference(run)
    if metadata.get("reference") is not reference:
        why = (
            "only the built-in baselines (random, always-safe, always-unsafe) are reference rows"
            if metadata.get("reference")
            else "a built-in baseline run is always a reference row"
        )
        raise Rejected(
            [
                f"metadata.json: reference {str(metadata.get('reference')).lower()} but the run's backend makes it "
                f"{str(reference).lower()} ({why}); repack with `vlmbench submit`"
            ]
        )
    if "vlmbench_version" in metadata and not plain_version(metadata["vlmbench_version"]):
        raise Rejected(["metadata.json: vlmbench_version is not a plain version number (e.g. 0.1.0); repack with `vlmbench submit`"])


def plain_version(value: Any) -> bool:
    """Whether ``value`` is a plain version string such as ``0.1.0`` or ``1.2rc1``."""
    return isinstance(value, str) and VERSION.fullmatch(value) is not None
