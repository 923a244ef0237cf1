"""CLI behaviour: listings, selections, and one-line errors for every user mistake."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, RunModel, cli, vlmbench


def test_ls_lists_builtin_tasks_groups_and_models() -> None:
    tasks = vlmbench("ls", "tasks").stdout
    for name in ("perception-image", "perception-text", "alignment-image", "alignment-text", "general-capability"):
        assert name in tasks
    assert "unsafeconcepts  perception-image, perception-text, alignment-image, alignment-text" in tasks
    names = [line.split()[0] for line in tasks.split("\n\n")[0].splitlines()[2:]]
    # by name, the standalone task (never part of `all`) last and marked
    assert names[-1] == "alignment-test-split" and names[:-1] == sorted(names[:-1])
    assert "(standalone: not in all)" in tasks.splitlines()[len(names) + 1]
    models = vlmbench("ls", "models").stdout
    for name in ("random", "always-safe", "always-unsafe"):
        assert name in models


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "random", "--tasks", "perception-imag"], "unknown task or group 'perception-imag' (did you mean 'perception-image'?)"),
        (["--model", "randon"], "unknown model backend 'randon' (did you mean 'random'?)"),
        (["--model", "random", "--tasks", "zzz-*"], "pattern 'zzz-*' matches no task"),
        (["--model", "random", "--model_args", "oops"], "--model_args: 'oops' is not key=value"),
        (["--model", "random", "--model_args", "a=b"], "--model random takes no --model_args (got a)"),
        (["--model", "random", "--data", "hbu"], "--data: unknown data variant 'hbu' (did you mean 'hub'?)"),
        (["--model", "random", "--data", ""], "--data: unknown data variant ''"),  # an unset shell variable: not the default
        # a setting given twice is no silent last-wins (a value, maybe a secret, is never shown)
        (["--model", "openai", "--model_args", "model=m,api_key=SECRET-1,api_key=SECRET-2"], "--model_args: 'api_key' is given twice"),
        (["--model", "random", "--gen_kwargs", "temperature=0,max_new_tokens=8,temperature=1"], "--gen_kwargs: 'temperature' is given twice"),
        (["--model", "random", "--gen_kwargs", "stop=###,until=END"], "--gen_kwargs: stop and until are the same setting, given twice"),
        (["--model", "random", "--gen_kwargs", "until="], "--gen_kwargs: until=[''] is invalid ('' should be non-empty)"),
        (["--model", "random", "--judge", "rules", "--judge_args", "a=1,a=2"], "--judge_args: 'a' is given twice"),
        (
            ["--model", "random", "--data", "hub", "--data_files", "yiting/UnsafeConcepts=/a", "--data_files", "yiting/UnsafeConcepts=/b"],
            "--data_files: 'yiting/UnsafeConcepts' is given twice (/a and /b); give each dataset one copy",
        ),
    ],
)
def test_user_errors_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    proc = cli("run", *args, "--output_path", str(tmp_path), check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vlmbench: error: ") and message in lines[0]
    assert "SECRET" not in proc.stderr + proc.stdout
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing was written


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["run", "--seed", "abc"], "vlmbench run: error: argument --seed: invalid int value: 'abc'; see `vlmbench run --help`"),
        (["run", "--limit"], "vlmbench run: error: argument --limit: expected one argument; see `vlmbench run --help`"),
        (["cache", "clear", "--nope"], "vlmbench: error: unrecognized arguments: --nope; see `vlmbench cache --help`"),
        # an empty path (an unset shell variable) was quietly the default store, or the current folder
        (
            ["run", "--store", ""],
            "vlmbench run: error: argument --store: is empty; pass a path (an unset shell variable?); see `vlmbench run --help`",
        ),
        (
            ["run", "--output_path", " "],
            "vlmbench run: error: argument --output_path: is empty; pass a path (an unset shell variable?); see `vlmbench run --help`",
        ),
        (
            ["cache", "salvage", ""],
            "vlmbench cache: error: argument path: is empty; pass a path (an unset shell variable?); see `vlmbench cache --help`",
        ),
        ([], "vlmbench: error: the following arguments are required: command; see `vlmbench --help`"),
    ],
)
def test_a_flag_mistake_is_one_line_pointing_to_the_help(args: list[str], line: str) -> None:
    """argparse printed its whole usage (13 to 25 lines) before the error."""
    proc = cli(*args, check=False)
    assert proc.returncode == 2 and proc.stderr == line + "\n" and proc.stdout == ""


def test_a_data_variant_from_the_environment_is_named_as_such(tmp_path: Path) -> None:
    """The line named --data, which the user never typed."""
    run = ("run", "--model", "random", "--tasks", "alignment-text", "--output_path", str(tmp_path))
    proc = cli(*run, check=False, env={"VLMBENCH_DATA": "bogus"})
    assert proc.returncode == 2 and proc.stderr == (
        "vlmbench: error: VLMBENCH_DATA=bogus: unknown data variant 'bogus'; the selected tasks offer: builtin, hub; or pass --data\n"
    )
    typed = cli(*run, "--data", "hbu", check=False, env={"VLMBENCH_DATA": "bogus"})  # what is typed wins, and is named
    assert typed.returncode == 2 and typed.stderr.startswith("vlmbench: error: --data: unknown data variant 'hbu' (did you mean 'hub'?)")


def test_a_user_error_in_the_real_command_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = vlmbench("run", "--model", "randon", "--output_path", str(tmp_path), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "vlmbench: error: unknown model backend 'randon' (did you mean 'random'?); `vlmbench ls models` lists them"


def test_an_argument_that_is_not_utf8_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 in the command line (Python reads them as lone surrogates) could be written to
    no file: one line naming the argument, and no run folder."""
    proc = cli(
        "run", "--model", "random", "--tasks", "perception-image", "--system_instruction", "x\udcff", "--output_path", str(tmp_path), check=False
    )
    assert proc.returncode == 2 and proc.stderr.strip() == "vlmbench: error: argument 'x\\udcff' is not valid UTF-8; pass text and paths in UTF-8"
    assert not any(tmp_path.iterdir())


def test_limit_spreads_documents_over_categories(run_model: RunModel) -> None:
    records = run_model("always-safe", "alignment-image", limit=9).samples("alignment-image")
    assert len(records) == 9 * 5
    assert len({r["doc"]["category"] for r in records}) >= 6


def test_run_prints_a_summary_and_names_the_data(run_model: RunModel) -> None:
    run = run_model("always-safe", "general-capability")
    assert "general-capability" in run.stdout and "accuracy" in run.stdout
    assert "built-in synthetic VQA" in run.stdout
    general = run.results["tasks"]["general-capability"]
    yes = sum(r["target"] == "Yes" for r in run.samples("general-capability"))
    assert 10 < yes < 30
    # "Yes." is right exactly on the position questions whose answer is yes; elsewhere it is unparsed.
    assert general["by_category"]["position"]["accuracy"]["value"] == yes / 40
    assert general["metrics"]["accuracy_strict"]["value"] == pytest.approx(yes / 240)
    assert general["metrics"]["unparsed_rate"] == pytest.approx(200 / 240)


def test_a_regular_install_ships_tasks_and_plugins(tmp_path: Path) -> None:
    # Build from a copy of the tracked files, so the checkout never gets a build/ folder (a second copy of every module).
    source = tmp_path / "source"
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheel"), str(source)], check=True, capture_output=True, cwd=source
    )
    wheel = next((tmp_path / "wheel").glob("vlmbench-*.whl"))
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    code = (
        "import sys, vlmbench, vlmbench_plugins.tasks as t; from vlmbench.cli import main; print(vlmbench.__file__); "
        "print(t.builtin_task_dir()); sys.exit(main(['ls', 'tasks']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr
    module, task_dir = proc.stdout.splitlines()[:2]
    assert module.startswith(str(site)) and task_dir == str(site / "vlmbench_tasks")
    for task in ("perception-image", "alignment-text", "general-capability"):
        assert task in proc.stdout
    # The installed `vlmbench` command: its console script, as pip wrote it down, exits as the command would.
    script = (
        "import sys; from importlib import metadata; "
        f"dist = next(metadata.distributions(name='vlmbench', path=[{str(site)!r}])); "
        "command = next(p for p in dist.entry_points if p.group == 'console_scripts' and p.name == 'vlmbench'); "
        "sys.argv = ['vlmbench', *sys.argv[1:]]; sys.exit(command.load()())"
    )
    runs = {
        args[0]: subprocess.run(
            [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)}
        )
        for args in (["ls", "models"], ["run", "--model", "no-such-model"])
    }
    assert runs["ls"].returncode == 0 and "random" in runs["ls"].stdout, runs["ls"].stderr
    assert runs["run"].returncode == 2 and "unknown model backend 'no-such-model'" in runs["run"].stderr
    shipped = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert {
        "vlmbench_tasks/_unsafeconcepts.yaml",
        "vlmbench_tasks/data/concepts.yaml",
        "vlmbench/schemas/task.schema.json",
        "vlmbench/schemas/results.schema.json",
        "vlmbench_leaderboard/page.html",
        "vlmbench_leaderboard/leaderboard.yaml",
    } <= shipped
    assert not (REPO / "build").exists() and not (source / "tasks" / "__init__.py").exists()


def test_hf_without_torch_says_what_to_install(tmp_path: Path) -> None:
    # sys.modules[name] = None makes `import name` fail, as on a machine without torch.
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from vlmbench.cli import main\n"
        f"sys.exit(main(['run', '--model', 'hf', '--model_args', 'pretrained=x', '--output_path', {str(tmp_path)!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "vlmbench: error: --model hf needs torch and transformers: pip install 'vlmbench[hf]'"


FREEZE_PROBE = """
import gc, json, sys
import vlmbench.evaluation as evaluation
import vlmbench.runner as runner
import vlmbench.samples as samples
import vlmbench.forked as forked
import vlmbench.scoring.aggregate as aggregate
from vlmbench import cli, collector

seen = {}
evaluate, render, dispatch, summary = evaluation.evaluate, samples.render, runner.dispatch, aggregate._summary


def probe(config):
    seen.update(frozen=gc.get_freeze_count(), pyarrow="pyarrow" in sys.modules, threshold=gc.get_threshold()[0])
    return evaluate(config)


def rendering(*args, **kwargs):
    seen.setdefault("rendering prompts", gc.get_threshold()[0])
    return render(*args, **kwargs)


def sending(*args, **kwargs):
    for answer in dispatch(*args, **kwargs):
        seen.setdefault("answering requests", gc.get_threshold()[0])
        yield answer


def scoring(*args, **kwargs):
    seen.setdefault("computing metrics", gc.get_threshold()[0])
    return summary(*args, **kwargs)


evaluation.evaluate, samples.render, runner.dispatch, aggregate._summary = probe, rendering, sending, scoring
forked.can_fork = lambda: False  # metrics are computed in this process, where the probe sees them (not in a scoring child)
sys.argv = ["vlmbench", *sys.argv[1:]]
code = cli.console()
print(json.dumps({"code": code, **seen, "after": collector.enabled()}))
"""


RUNPY_THEN_MAIN = """
import gc, json, runpy, sys
from vlmbench.cli import main

run_args, sys.argv = sys.argv[1:], ["vlmbench", "--version"]
try:
    runpy.run_module("vlmbench", run_name="__main__")
except SystemExit:
    pass
code = main(run_args)
print(json.dumps({"code": code, "frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()[0]}))
"""


def test_the_command_keeps_its_libraries_out_of_full_collections_collects_less_where_it_sends_nothing_and_a_program_keeps_its_gc(
    tmp_path: Path,
) -> None:
    import gc
    import json

    from vlmbench import collector

    args = ["run", "--model", "random", "--tasks", "perception-image", "--limit", "2", "--no_store"]
    # The `vlmbench` command's own process: by the time the run starts, pyarrow (which every run reads
    # its data through) is imported and everything alive is frozen (full collections during the run skip it).
    proc = subprocess.run(
        [sys.executable, "-c", FREEZE_PROBE, *args, "--output_path", str(tmp_path / "own")], capture_output=True, text=True, timeout=300
    )
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["code"] == 0 and seen["pyarrow"] is True and seen["frozen"] > 10_000, proc.stderr
    # Its young objects are collected every 50,000 allocations while it computes metrics, at Python's pace (700)
    # while a task file's templates render and requests are answered; the library is left as it was once the command is done.
    paces = {k: seen[k] for k in ("threshold", "rendering prompts", "answering requests", "computing metrics", "after")}
    assert paces == {"threshold": 700, "rendering prompts": 700, "answering requests": 700, "computing metrics": 50_000, "after": False}
    # A program that ran the command (runpy, its exit caught) and goes on: its later main() calls freeze nothing.
    after_runpy = subprocess.run(
        [sys.executable, "-c", RUNPY_THEN_MAIN, *args, "--output_path", str(tmp_path / "later")], capture_output=True, text=True, timeout=300
    )
    assert json.loads(after_runpy.stdout.strip().splitlines()[-1]) == {"code": 0, "frozen": 0, "threshold": 700}, after_runpy.stderr
    # A program (or this test) calling main() in a process that goes on: nothing of it is frozen (frozen objects
    # that are freed leave the count, a freeze would add every object alive).
    before, thresholds = gc.get_freeze_count(), gc.get_threshold()
    assert cli(*args, "--output_path", str(tmp_path / "program")).returncode == 0
    assert gc.get_freeze_count() <= before and gc.get_threshold() == thresholds and not collector.enabled()


def test_stored_answers_are_read_with_fewer_collections_and_requests_answered_at_pythons_pace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the command's pace on (`vlmbench.collector`), looking answers up in the store collects young objects
    every 50,000 allocations; answering the requests it did not find keeps Python's pace."""
    import gc
    from collections.abc import Iterator

    from vlmbench import EvalConfig, collector, evaluate, runner
    from vlmbench.store import ResponseStore
    from vlmbench.testing.fault_server import FaultServer

    seen: dict[str, int] = {}
    get_many, dispatch = ResponseStore.get_many, runner.dispatch

    def reading(store: ResponseStore, keys: Any) -> Any:
        seen.setdefault("reading stored answers", gc.get_threshold()[0])
        return get_many(store, keys)

    def sending(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for answer in dispatch(*args, **kwargs):
            seen.setdefault("answering requests", gc.get_threshold()[0])
            yield answer

    monkeypatch.setattr(ResponseStore, "get_many", reading)
    monkeypatch.setattr(runner, "dispatch", sending)
    thresholds = gc.get_threshold()
    collector.enable()
    try:
        with FaultServer() as server:
            args = {"base_url": server.base_url, "model": "tiny"}
            for name in ("first", "again"):
                config = EvalConfig(
                    model="openai", model_args=args, tasks="alignment-text", limit=1, store=tmp_path / "store.sqlite", output_path=tmp_path / name
                )
                assert evaluate(config).requests_reused == (5 if name == "again" else 0)
    finally:
        collector.enable(False)
    assert seen == {"reading stored answers": 50_000, "answering requests": thresholds[0]} and gc.get_threshold() == thresholds
