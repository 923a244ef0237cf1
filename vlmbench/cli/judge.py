"""``vlmbench judge --task TASK --judge NAME FILE.jsonl``: judge a file of responses (e.g. to validate a judge)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vlmbench.cli import args as types
from vlmbench.cli.commands import CommandSpec
from vlmbench.errors import UserError


def judge(ns: argparse.Namespace) -> int:
    """Read the responses, judge them with the task's answer format, write one line per response."""
    from vlmbench.evaluation import parse_key_values
    from vlmbench.registry import discover
    from vlmbench.scoring.base import ScorerOptions
    from vlmbench.scoring.judgefile import ERROR, judge_items, read_inputs, read_lines, verdict_lines
    from vlmbench.scoring.judging import JudgeConfig, parse_judge_names
    from vlmbench.store import default_store_path

    if ns.out:  # before any judge call: a model judge's calls cost money
        _check_out(Path(ns.out), Path(ns.file))
    registry = discover(list(ns.include_path or []))
    if ns.task not in registry.tasks:
        from vlmbench.pluginmanager import did_you_mean

        raise UserError(f"--task: unknown task '{ns.task}'{did_you_mean(ns.task, registry.tasks)}; see `vlmbench ls tasks`")
    task = registry.tasks[ns.task]
    items = read_inputs(read_lines(ns.file), ns.file, task.scorer)
    store = None if ns.no_store else Path(ns.store).expanduser() if ns.store else default_store_path()
    config = JudgeConfig(parse_judge_names(ns.judge), parse_key_values(ns.judge_args, "--judge_args"), ScorerOptions(store=store))
    rows = list(judge_items(items, task, config.names, config))
    lines = verdict_lines(rows)
    if ns.out:
        _write(Path(ns.out), lines)
        print(f"{len(lines)} verdicts written to {ns.out}", file=sys.stderr)
    else:
        sys.stdout.writelines(lines)
    failed = sum(row["verdict"] == ERROR for row in rows)
    if failed:  # a failed call is no verdict: whoever compares the verdicts with labels must leave these out
        print(f"vlmbench: {failed} of {len(rows)} judge calls failed: their verdict is \"error\" (see 'detail' under 'verdicts')", file=sys.stderr)
    return 0


def _check_out(out: Path, responses: Path) -> None:
    """``--out`` can be written and is not the responses file (the same path, or a link to the same file)."""
    import os

    from vlmbench.cli.outpath import not_a_folder

    blocker = not_a_folder(out)
    if blocker is not None:
        raise UserError(f"--out {out}: {blocker} is not a folder; choose an --out in a folder")
    try:
        same = out.resolve() == responses.resolve() or (os.path.lexists(out) and os.path.samefile(out, responses))
    except (OSError, RuntimeError):  # a link loop, a file that cannot be looked at: the write names what goes wrong
        same = False
    if same:
        raise UserError(f"--out {out}: that is the responses file {responses} itself, which the verdicts would replace; choose another --out")


def _write(out: Path, lines: list[str]) -> None:
    """Write ``lines`` to ``out`` whole or not at all (:func:`vlmbench.safefiles.replace_file`)."""
    from vlmbench.safefiles import replace_file

    try:
        replace_file(out, "".join(lines))
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write ({exc.strerror}); choose a writable path") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``vlmbench judge``."""
    parser.add_argument(
        "file", type=types.path, help="JSON Lines: one object per response with 'id', 'response' and optionally 'prompt', 'options', 'choices'"
    )
    parser.add_argument("--task", required=True, help="the task whose answer format the responses answer (e.g. alignment-image)")
    types.add_judges(parser)
    types.add_include_path(parser)
    parser.add_argument("--out", default=None, type=types.path, help="write the verdicts here (default: standard output)")
    parser.add_argument(
        "--store", default=None, type=types.path, help="response store for model judges' calls (default: $VLMBENCH_STORE or the cache folder)"
    )
    parser.add_argument("--no_store", action="store_true", help="neither reuse nor store judge calls")
    parser.set_defaults(func=judge)


COMMAND = CommandSpec("judge", "judge a JSON Lines file of responses with one or more judges (validate a judge on your labels)", add_arguments)
