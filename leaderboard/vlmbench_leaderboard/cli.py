"""Command-line subcommands for submitters (``submit``) and maintainers (``leaderboard ...``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vlmbench import hookimpl
from vlmbench.cli.commands import CommandSpec
from vlmbench.errors import UserError

if TYPE_CHECKING:
    from vlmbench_leaderboard.verify_judges import JudgePolicy

SUBMIT_FIELDS = ("name", "org", "hub_id", "api", "revision", "parameters", "license", "precision", "date")


def cmd_submit(args: argparse.Namespace) -> int:
    """Pack a scored run folder into a submission bundle, refusing what ``verify`` would reject."""
    from vlmbench_leaderboard.submit import submit
    from vlmbench_leaderboard.text import terminal

    if not args.out:  # Path("") is the current folder
        raise UserError("submit: --out is empty; pass the bundle file to write (e.g. --out my-model.tar.gz)")
    overrides = {name: getattr(args, name, None) for name in SUBMIT_FIELDS}
    out = submit(Path(args.run_dir), Path(args.out), overrides, force=bool(getattr(args, "force", False)))
    print(f"bundle: {terminal(out, 400)}")
    return 0


def judge_policy(args: argparse.Namespace) -> JudgePolicy:
    """The judges ``verify`` accepts (the config's ``judges:``) and, with ``--rejudge``, the maintainer's judge."""
    from vlmbench.evaluation import parse_key_values
    from vlmbench.scoring.aggregate import JudgeConfig
    from vlmbench.scoring.base import ScorerOptions
    from vlmbench_leaderboard.config import load_config
    from vlmbench_leaderboard.verify import LEADERBOARD_SEED
    from vlmbench_leaderboard.verify_judges import JudgePolicy

    if args.judge_args and not args.rejudge:
        raise UserError("--judge_args: the maintainer's judge arguments are for --rejudge; add --rejudge or leave them out")
    pins = load_config(Path(args.config) if args.config else None).judges
    if not args.rejudge:
        return JudgePolicy(pins)
    store = Path(args.store).expanduser() if args.store else None
    rejudge = JudgeConfig((), parse_key_values(args.judge_args, "--judge_args"), ScorerOptions(store=store, seed=LEADERBOARD_SEED))
    return JudgePolicy(pins, rejudge, args.max_disagreement)


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify (and with ``--data``, add) bundles; one line per bundle and per reason. A bad bundle never stops the others.

    Exit status: 0 all accepted, 1 some rejected, 2 some accepted bundle could not be added (e.g. already there).
    """
    from vlmbench_leaderboard.data import add_entry, check_data_dir
    from vlmbench_leaderboard.judges import entry_judges, judge_text, rules_only
    from vlmbench_leaderboard.problems import Rejected
    from vlmbench_leaderboard.text import terminal
    from vlmbench_leaderboard.verify import verify_bundle

    policy = judge_policy(args)
    data_dir = check_data_dir(Path(args.data)) if getattr(args, "data", None) else None
    failed = conflicts = 0
    for path in args.bundles:
        shown = terminal(path, 400)
        try:
            verified = verify_bundle(Path(path), policy=policy)
        except Rejected as exc:
            reasons = exc.reasons
        except UserError as exc:
            reasons = [str(exc)]
        except Exception as exc:  # a bundle must never stop the batch, whatever it trips over
            reasons = [f"cannot verify it ({type(exc).__name__}: {str(exc)[:120]}); please report this"]
        else:
            reasons = []
        if reasons:
            failed += 1
            for reason in reasons:
                print(f"rejected: {shown}: {terminal(reason, 400)}", file=sys.stderr)
            continue
        meta = verified.bundle.metadata
        where = ""
        if data_dir is not None:
            try:
                where = f" -> {terminal(add_entry(verified, data_dir, replace=args.replace), 400)}"
            except UserError as exc:
                conflicts += 1
                print(f"vlmbench: error: {shown}: {terminal(exc, 400)}", file=sys.stderr)
                continue
        uses = entry_judges(verified.results)
        judged = "" if rules_only(uses) else f", judged by {terminal(judge_text(uses), 1000)}"
        print(
            f"accepted: {shown}: {terminal(meta['name'])} ({terminal(meta.get('revision') or 'main')}), "
            f"submitted with vlmbench {terminal(verified.results.get('vlmbench_version'), 40)}{judged}{where}"
        )
        for note in verified.notes:
            print(f"note: {shown}: {terminal(note, 400)}")
    return 2 if conflicts else 1 if failed else 0


def cmd_build(args: argparse.Namespace) -> int:
    """Build the static site from a data folder."""
    from vlmbench_leaderboard.build import build_site

    summary = build_site(Path(args.data_dir), Path(args.out), Path(args.config) if args.config else None)
    print(f"site: {Path(args.out) / 'index.html'} ({summary.get('models', '?')} models)")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Copy or upload a built site."""
    from vlmbench_leaderboard.data import publish

    print(f"published: {publish(Path(args.site_dir), args.to)}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Build the sample site from the built-in baselines: evaluate (the library API), submit, verify + add, build."""
    import tempfile

    from vlmbench.evaluation import EvalConfig, evaluate
    from vlmbench_leaderboard.metadata import BASELINES

    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="vlmbench-sample-") as tmp:
        work = Path(tmp)
        for model in BASELINES:
            result = evaluate(EvalConfig(model=model, tasks="all", output_path=work / "runs" / model))
            if (
                _command(
                    add_submit_arguments,
                    [
                        str(result.run_dir),
                        "--out",
                        str(work / "bundles" / model),
                        "--org",
                        "vlmbench",
                        "--name",
                        model,
                        "--license",
                        "MIT",
                        "--date",
                        args.date,
                    ],
                )
                != 0
            ):
                return 1
        bundles = sorted(str(p) for p in (work / "bundles").glob("*.tar.gz"))
        if _command(add_leaderboard_arguments, ["add", *bundles, "--data", str(out / "data"), "--replace"]) != 0:
            return 1
    return _command(add_leaderboard_arguments, ["build", str(out / "data"), "--out", str(out / "site")])


def _command(add_arguments: Callable[[argparse.ArgumentParser], None], argv: list[str]) -> int:
    """Run one of this module's commands in-process, parsed exactly as on the command line."""
    parser = argparse.ArgumentParser(prog="vlmbench")
    add_arguments(parser)
    namespace = parser.parse_args(argv)
    return int(namespace.func(namespace))


def add_submit_arguments(submit: argparse.ArgumentParser) -> None:
    """The flags of ``vlmbench submit``."""
    submit.add_argument("run_dir")
    submit.add_argument("--out", required=True, help="bundle file to write (.tar.gz)")
    for name, help_text in (
        ("name", "model name"),
        ("org", "organisation"),
        ("hub_id", "Hugging Face model id"),
        ("api", "API endpoint, for API models"),
        ("revision", "model revision or version"),
        ("parameters", "parameter count, e.g. 7B"),
        ("license", "model license"),
        ("precision", "e.g. bfloat16"),
        ("date", "evaluation date, YYYY-MM-DD"),
    ):
        submit.add_argument(f"--{name}", default=None, help=help_text)
    submit.add_argument("--force", action="store_true", help="overwrite the bundle file if it exists")
    submit.set_defaults(func=cmd_submit)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share from 0 to 1 (e.g. 0.02)")
    return value


def add_judge_arguments(parser: argparse.ArgumentParser) -> None:
    """The judge flags of ``leaderboard verify`` and ``add``: the accepted judges, and rejudging."""
    parser.add_argument("--config", default=None, help="leaderboard YAML whose judges: section lists the accepted judges (default: the shipped one)")
    parser.add_argument(
        "--rejudge", action="store_true", help="judge model-judged answers again with your own judge (--judge_args) and compare the verdicts"
    )
    parser.add_argument(
        "--judge_args", default="", metavar="k=v,...", help="your judge's arguments for --rejudge, e.g. backend=openai,model=NAME,base_url=URL"
    )
    parser.add_argument("--store", default=None, help="response store for your judge's calls with --rejudge (default: none)")
    parser.add_argument(
        "--max_disagreement",
        type=_share,
        default=0.0,
        help="with --rejudge: the share of verdicts that may differ from the submitted ones (default 0)",
    )


def add_leaderboard_arguments(board: argparse.ArgumentParser) -> None:
    """The actions of ``vlmbench leaderboard``."""
    actions = board.add_subparsers(dest="action", required=True)
    verify = actions.add_parser("verify", help="check bundles (schema, hashes, current tasks, judges, recomputed numbers)")
    verify.add_argument("bundles", nargs="+")
    add_judge_arguments(verify)
    verify.set_defaults(func=cmd_verify)
    add = actions.add_parser("add", help="verify bundles and store the accepted ones in the data folder")
    add.add_argument("bundles", nargs="+")
    add.add_argument("--data", required=True, help="the leaderboard data folder")
    add.add_argument("--replace", action="store_true", help="replace an entry of the same model and revision")
    add_judge_arguments(add)
    add.set_defaults(func=cmd_verify)
    build = actions.add_parser("build", help="write leaderboard.md/.csv/.json, index.html and plots")
    build.add_argument("data_dir")
    build.add_argument("--out", required=True)
    build.add_argument("--config", default=None, help="table configuration YAML (default: the shipped leaderboard.yaml)")
    build.set_defaults(func=cmd_build)
    publish = actions.add_parser("publish", help="copy the site to a folder or push it to hf://datasets/ORG/NAME")
    publish.add_argument("site_dir")
    publish.add_argument("--to", required=True)
    publish.set_defaults(func=cmd_publish)
    sample = actions.add_parser("sample", help="build the sample site from the built-in baselines (one command)")
    sample.add_argument("--out", required=True)
    sample.add_argument("--date", default="2026-01-01", help="date recorded for the baseline entries (fixed, for reproducibility)")
    sample.set_defaults(func=cmd_sample)


@hookimpl
def vlmbench_cli_commands() -> list[CommandSpec]:
    """``vlmbench submit`` and ``vlmbench leaderboard``, added to the core command line through its hook."""
    return [
        CommandSpec("submit", "pack a scored run folder into a leaderboard submission bundle", add_submit_arguments),
        CommandSpec("leaderboard", "maintainers: verify and add bundles, build and publish the site", add_leaderboard_arguments),
    ]
