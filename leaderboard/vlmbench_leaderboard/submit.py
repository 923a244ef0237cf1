"""``vlmbench submit``: pack a run folder, check it as ``verify`` will, and only then write the bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlmbench.errors import UserError
from vlmbench_leaderboard import strictjson
from vlmbench_leaderboard.bundle import MEMBER_CAPS, check_out, pack, read_bundle_bytes, write_bundle
from vlmbench_leaderboard.metadata import TEXT_FIELDS, default_metadata, normalise_metadata
from vlmbench_leaderboard.problems import Rejected
from vlmbench_leaderboard.text import terminal, text_problem
from vlmbench_leaderboard.verify import check_complete


def read_run(run_dir: Path) -> dict[str, Any]:
    """The run.json of a run folder, strictly decoded; one-line errors for a missing or wrong folder."""
    shown = terminal(run_dir)
    if not run_dir.exists():
        raise UserError(f"submit: {shown}: no such folder; pass the run folder `vlmbench run` printed (it holds run.json)")
    if not run_dir.is_dir():
        raise UserError(f"submit: {shown}: not a folder; pass the run folder `vlmbench run` printed (it holds run.json)")
    path = run_dir / "run.json"
    if not path.is_file():  # looked at with os.stat: a named pipe or a device there is never opened
        if path.exists():
            raise UserError(f"submit: {terminal(path)}: not a regular file; the run folder is damaged")
        raise UserError(f"submit: {shown}: no run.json here; pass a run folder written by `vlmbench run` (e.g. results/<model>/<time>)")
    cap = MEMBER_CAPS["run.json"]
    if path.stat().st_size > cap:
        raise UserError(f"submit: {terminal(path)}: larger than {cap} bytes; this is not a run.json `vlmbench run` wrote")
    try:
        run = strictjson.loads(path.read_bytes(), "run.json", cap)
    except Rejected as exc:
        raise UserError(f"submit: {terminal(exc.reasons[0], 300)}; the run folder is damaged") from None
    if not isinstance(run, dict) or not isinstance(run.get("model"), dict) or not isinstance(run["model"].get("backend"), str):
        raise UserError(f"submit: {terminal(path)}: not a vlmbench run manifest; pass a run folder written by `vlmbench run`")
    return run


def submit(run_dir: Path, out: Path, overrides: dict[str, Any], force: bool = False) -> Path:
    """Write the bundle of ``run_dir`` to ``out`` (``.tar.gz``) after the checks ``verify`` runs (all but the recomputation)."""
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    try:
        target = check_out(out, force)
    except UserError as exc:
        raise UserError(f"submit: {exc}") from None
    metadata = normalise_metadata({**default_metadata(run), **{k: v for k, v in overrides.items() if v is not None}})
    if not metadata.get("name"):
        raise UserError("submit: the model needs a name; pass --name")
    for key in TEXT_FIELDS:
        if isinstance(metadata.get(key), str):
            problem = text_problem(metadata[key])
            if problem:
                raise UserError(f"submit: --{key} {problem}")
    try:
        data = pack(run_dir, run, metadata)
    except Rejected as exc:
        raise UserError(f"submit: metadata {terminal(exc.reasons[0], 300)}; fix it with the matching --option") from None
    try:
        check_complete(read_bundle_bytes(data))
    except Rejected as exc:
        raise UserError(f"submit: {terminal(exc.reasons[0], 300)} (the leaderboard would reject this bundle; none was written)") from None
    return write_bundle(data, target, force=force)
