"""A third-party plugin package, pip-installed, adds a backend, a scorer and a task with no change
to vlmbench; a broken one costs a warning line, never the run."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import RunModel, cli, install_into_target, load_results, plugged_in, read_samples, vlmbench, with_path


def test_plugin_backend_scorer_and_task_are_listed(installed_plugin: dict[str, str]) -> None:
    models = vlmbench("ls", "models", env=installed_plugin).stdout
    assert "modality-probe" in models and "example plugin: safe if it sees an image" in models
    tasks = vlmbench("ls", "tasks", env=installed_plugin).stdout
    assert "arithmetic" in tasks and "example plugin task - small sums asked in text" in tasks
    scorers = vlmbench("ls", "scorers", env=installed_plugin).stdout
    assert "first-number" in scorers and "example plugin: the first integer in the response" in scorers


def test_the_plugin_is_not_in_the_live_environment() -> None:
    assert "modality-probe" not in vlmbench("ls", "models").stdout


def test_plugin_task_and_backend_run(installed_plugin: dict[str, str], tmp_path: Path) -> None:
    proc = vlmbench("run", "--model", "modality-probe", "--tasks", "arithmetic", "--output_path", str(tmp_path), env=installed_plugin)
    assert "judged by: rules: first-number (v" in proc.stdout  # the task's own scorer is named, not only "rules"
    records = read_samples(tmp_path, "arithmetic")
    assert [r["parsed"] for r in records[:3]] == ["2", "2", "2"]  # the plugin's scorer read the probe's first choice
    task = load_results(tmp_path)["tasks"]["arithmetic"]
    # The probe answers the first choice, "2": right only for 1 + 1, one of 16 sums.
    assert task["metrics"]["accuracy"]["value"] == 1 / 16 and task["metrics"]["n_samples"] == 16
    assert task["usage"] == {"prompt_tokens": 16, "completion_tokens": 16}


def test_modality_gap_of_a_model_that_judges_by_modality(plugin_in_process: Path, run_model: RunModel) -> None:
    # 90 documents a task: every concept once (the image task's rows are 3 descriptions a concept, the text task's 1).
    results = run_model("modality-probe", "alignment-image,alignment-text", limit=90).results
    assert [results["tasks"][t]["metrics"]["n_samples"] for t in ("alignment-image", "alignment-text")] == [90 * 5, 90 * 5]
    assert results["tasks"]["alignment-image"]["metrics"]["recall_unsafe"]["value"] == 0.0
    assert results["tasks"]["alignment-text"]["metrics"]["recall_unsafe"]["value"] == 1.0
    gap = results["modality_gaps"]["alignment-text"]
    assert gap["overall"]["gap"] == 1.0 and gap["overall"]["ci_low"] == 1.0 and gap["overall"]["n_concepts"] == 75
    assert set(gap["by_category"]) == {
        "Hate",
        "Harassment",
        "Violence",
        "Self-harm",
        "Sexual",
        "Shocking",
        "Illegal activity",
        "Deception",
        "Public and personal health",
    }
    assert gap["by_category"]["Self-harm"]["n_concepts"] == 7


FAULTY_PLUGIN = """
import pluggy
from vlmbench.scoring.metrics import MetricSpec

hookimpl = pluggy.HookimplMarker("vlmbench")

@hookimpl
def vlmbench_backends():
    raise RuntimeError("no licence for the quantum backend")

@hookimpl
def vlmbench_task_dirs():
    return "/"  # one folder as a string: walked character by character, it would be the whole disk

@hookimpl
def vlmbench_scorers():
    return [{"name": "multiple_choice"}]

@hookimpl(trylast=True)  # called first by pluggy: the built-ins still register first
def vlmbench_metrics():
    # the built-in accuracy's name, with a number of its own; and one name twice
    always_one = lambda samples, strict: {"value": 1.0, "stderr": 0.0, "n": len(samples)}
    return [MetricSpec("accuracy", "flattering", always_one), MetricSpec("mine", "first", always_one), MetricSpec("mine", "second", always_one)]

@hookimpl(wrapper=True)
def vlmbench_doc_steps():
    return (yield)
"""


def test_a_broken_plugin_is_one_warning_and_everything_else_works(tmp_path: Path) -> None:
    source = tmp_path / "broken"
    (source / "broken_plugin").mkdir(parents=True)
    (source / "broken_plugin" / "__init__.py").write_text("raise ImportError('missing dependency: quantum_widgets')\n")
    (source / "hollow_plugin").mkdir()  # imports fine, implements no hook (an entry point left over from an older layout)
    (source / "hollow_plugin" / "__init__.py").write_text("def helper():\n    return 1\n")
    (source / "faulty_plugin").mkdir()  # imports fine; its hooks raise, return the wrong things, or take names already used
    (source / "faulty_plugin" / "__init__.py").write_text(FAULTY_PLUGIN)
    (source / "exiting_plugin").mkdir()  # ends the interpreter when imported
    (source / "exiting_plugin" / "__init__.py").write_text("import sys\nsys.exit('this plugin needs a GPU')\n")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "broken-vlmbench-plugin"\nversion = "0.1"\n'
        '[project.entry-points.vlmbench]\nbroken = "broken_plugin"\nhollow = "hollow_plugin"\nfaulty = "faulty_plugin"\nexiting = "exiting_plugin"\n'
        '[tool.setuptools]\npackages = ["broken_plugin", "hollow_plugin", "faulty_plugin", "exiting_plugin"]\n'
    )
    target = tmp_path / "site"
    install_into_target(source, target)
    proc = vlmbench(
        "run", "--model", "random", "--tasks", "perception-image", "--limit", "4", "--output_path", str(tmp_path / "out"), env=with_path(target)
    )
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    faulty = "vlmbench: warning: plugin 'faulty' (faulty_plugin, package broken-vlmbench-plugin)"
    assert sorted(warnings) == sorted(
        [
            "vlmbench: warning: plugin 'broken' (broken_plugin, package broken-vlmbench-plugin) failed to load and is skipped: "
            "ImportError: missing dependency: quantum_widgets",
            "vlmbench: warning: plugin 'hollow' (hollow_plugin, package broken-vlmbench-plugin) implements no vlmbench hook and is skipped; "
            "reinstall the package (its entry points may be out of date)",
            "vlmbench: warning: plugin 'exiting' (exiting_plugin, package broken-vlmbench-plugin) failed to load and is skipped: "
            "SystemExit: this plugin needs a GPU",
            f"{faulty}: its hook vlmbench_backends raised RuntimeError: no licence for the quantum backend; what it adds is skipped",
            f"{faulty}: its hook vlmbench_task_dirs returned a str, not a list of folder paths; what it adds is skipped",
            f"{faulty}: its hook vlmbench_scorers returned a list with an item of type dict ({{'name': 'multiple_choice'}}), "
            "not a list of ScorerSpec objects with a name; what it adds is skipped",
            f"{faulty} registers a metric named 'accuracy', which plugin 'vlmbench.builtins' registered first: this one is skipped; "
            "rename it or uninstall one of them",
            f"{faulty} registers two metrics named 'mine': the second is skipped; rename one of them",
            f"{faulty}: its hook vlmbench_doc_steps is a hook wrapper, which vlmbench's hooks do not use; it is skipped",
        ]
    )  # each once, though the registries are read many times
    assert "Traceback" not in proc.stderr
    task = load_results(tmp_path / "out")["tasks"]["perception-image"]
    assert task["metrics"]["n_samples"] == 4
    # The built-in accuracy counted: the plugin's, always 1.0, did not replace it.
    records = read_samples(tmp_path / "out", "perception-image")
    assert task["metrics"]["accuracy_strict"]["value"] == sum(r["correct"] for r in records) / 4 < 1.0
    listed = vlmbench("ls", "metrics", env=with_path(target)).stdout
    assert "share of correct answers" in listed and "flattering" not in listed
    assert [line.split()[1] for line in listed.splitlines() if line.startswith("mine ")] == ["first"]


def test_a_plugins_command_that_sets_up_nothing_or_returns_no_status_is_one_line() -> None:
    import argparse

    from vlmbench import hookimpl
    from vlmbench.cli.commands import CommandSpec

    def raising(parser: argparse.ArgumentParser) -> None:
        raise RuntimeError("cannot reach the licence server\nsecond line")

    def returning(value: object) -> Callable[[argparse.ArgumentParser], None]:
        return lambda parser: parser.set_defaults(func=lambda args: value)

    class Plugin:
        @hookimpl
        def vlmbench_cli_commands(self) -> list[CommandSpec]:
            return [
                CommandSpec("flagless", "sets up nothing to run", lambda parser: None),
                CommandSpec("raising", "fails to add its flags", raising),
                CommandSpec("texty", "returns text", returning("done")),
                CommandSpec("quiet", "returns None", returning(None)),
                CommandSpec("flagged", "returns True", returning(True)),
            ]

    with plugged_in(Plugin()):
        runs = {name: cli(name, check=False) for name in ("flagless", "raising", "texty", "quiet", "flagged")}
        listed = cli("--help", check=False)
    assert {name: (proc.returncode, proc.stderr) for name, proc in runs.items()} == {
        "flagless": (
            2,
            "vlmbench: error: command 'flagless' names nothing to run (parser.set_defaults(func=...)); report it to the command's authors\n",
        ),
        "raising": (
            2,
            "vlmbench: error: command 'raising' (a plugin's) failed to set up its flags: RuntimeError: cannot reach the licence server; "
            "report it to the plugin's authors\n",
        ),
        "texty": (2, "vlmbench: error: command 'texty' returned str, not an exit status; report it to the command's authors\n"),
        "quiet": (0, ""),
        "flagged": (1, ""),
    }
    assert listed.returncode == 0 and "fails to add its flags" in listed.stdout  # listing commands sets none of them up


def test_a_plugin_backends_wrong_answers_are_one_line_and_what_it_answered_is_stored(run_model: RunModel, tmp_path: Path) -> None:
    from vlmbench import hookimpl
    from vlmbench.backend import BackendBase, BackendSpec, Request, Response

    class Faulty(BackendBase):
        def __init__(self, mode: str) -> None:
            self.mode = mode

        def generate(self, requests: Iterable[Request]) -> Iterator[Any]:
            for i, request in enumerate(requests):
                if self.mode == "dict" and i == 2:
                    yield {"request_id": request.id, "text": "A"}  # not a Response
                    return
                # token counts and a latency that are none: left out, never written as NaN or a bool
                yield Response(request.id, text="A", usage={"prompt_tokens": 7, "completion_tokens": True, 3: 1}, latency_s=float("nan"))

        def identity(self) -> dict[str, Any]:
            return {"backend": "faulty", "mode": self.mode, **({"handle": object()} if self.mode == "identity" else {})}

    def factory(model_args: dict[str, str], options: Any) -> Any:
        return None if model_args.get("mode") == "none" else Faulty(model_args.get("mode", ""))

    class Plugin:
        @hookimpl
        def vlmbench_backends(self) -> list[BackendSpec]:
            return [BackendSpec("faulty", "test only", factory)]

    store = str(tmp_path / "store.sqlite")
    with plugged_in(Plugin()):
        runs = {
            mode: run_model("faulty", "perception-image", "--store", store, limit=4, model_args=f"mode={mode}", check=False)
            for mode in ("dict", "none", "identity", "clean")
        }
        info = cli("cache", "info", "--store", store)
    errors = {mode: (run.returncode, [line for line in run.stderr.splitlines() if "error" in line]) for mode, run in runs.items()}
    assert errors == {
        "dict": (2, ["vlmbench: error: backend 'faulty' yielded dict, not a Response; this is a bug in the plugin that registers it"]),
        "none": (
            2,
            [
                "vlmbench: error: backend 'faulty': its factory returned NoneType, not a backend (an object with a generate method); "
                "this is a bug in the plugin that registers it"
            ],
        ),
        "identity": (
            2,
            [
                "vlmbench: error: backend 'faulty': its identity() holds what JSON cannot (Object of type object is not JSON serializable); "
                "this is a bug in the plugin that registers it"
            ],
        ),
        "clean": (0, []),
    }
    # The two answers before the faulty one were stored: the store holds them and the clean run's four.
    assert sorted(line.split()[3] for line in info.stdout.splitlines() if line.startswith("faulty")) == ["2", "4"]
    records = runs["clean"].samples("perception-image")
    assert [(r["usage"], r["latency_s"]) for r in records] == [({"prompt_tokens": 7}, None)] * 4
    with pytest.raises(TypeError, match=r"^Response.text must be text \(str\) or None, not int$"):
        Response("x", text=5)  # type: ignore[arg-type]


def test_a_command_stopped_by_ctrl_c_says_what_its_plugin_says_to_do() -> None:
    import argparse

    from vlmbench import hookimpl
    from vlmbench.cli.commands import CommandSpec

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    class Plugin:
        @hookimpl
        def vlmbench_cli_commands(self) -> list[CommandSpec]:
            return [
                CommandSpec(
                    "train", "stops", lambda parser: parser.set_defaults(func=interrupted), stopped="its checkpoints are kept: rerun with --resume"
                ),
                CommandSpec("fetch", "stops", lambda parser: parser.set_defaults(func=interrupted)),
            ]

    with plugged_in(Plugin()):
        train, fetch = cli("train", check=False), cli("fetch", check=False)
    assert (train.returncode, train.stderr) == (130, "vlmbench: interrupted; its checkpoints are kept: rerun with --resume\n")
    assert fetch.returncode == 130 and "every response received is stored: rerun the same command to resume" in fetch.stderr
