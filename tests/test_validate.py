"""Task files are validated on load; every mistake is one line naming file, field, value and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, cli, plugged_in
from vlmbench.errors import UserError

GOOD = """\
task: my-task
description: a test task
ability: general
modality: image
dataset_path: builtin:shapes-vqa
doc_to_image: image
doc_to_text: "{{ question }}"
doc_to_choice: choices
doc_to_target: "{{ answer }}"
scorer: choice
generation_kwargs:
  max_new_tokens: 8
metric_list:
  - metric: accuracy
metadata:
  version: 1
"""


def write(tmp_path: Path, text: str, name: str = "task.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_task_files_validate_templates_included() -> None:
    files = sorted(str(p) for p in (REPO / "tasks").glob("*.yaml"))
    proc = cli("validate", *files)
    assert proc.stdout.count("ok: ") == len(files) == 13
    assert proc.stdout.count("(template)") == 1 and "_unsafeconcepts.yaml (template)" in proc.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("doc_to_text:", "doc_to_txt:"), "field 'doc_to_txt': unknown field (did you mean 'doc_to_text'?)"),
        (
            ("scorer: choice", "scorer: choise"),
            "field 'scorer' = \"choise\": unknown scorer (did you mean 'choice'?); registered: choice, llm-judge, multiple_choice, paper-classifier, refusal, relative-judge, relative_score, rules, safety",
        ),
        (("max_new_tokens: 8", "max_new_tokens: -1"), "field 'generation_kwargs.max_new_tokens' = -1: expected a number >= 1"),
        (("max_new_tokens: 8", "max_new_tokens: many"), "field 'generation_kwargs.max_new_tokens' = \"many\": expected an integer"),
        (("  - metric: accuracy", "  - metric: acuracy"), "field 'metric_list.0.metric' = \"acuracy\": unknown metric (did you mean 'accuracy'?)"),
        (("task: my-task\n", ""), "field 'task' is missing"),
        (("task: my-task", "task: My Task"), "field 'task' = \"My Task\": expected the task name: lowercase letters"),
    ],
)
def test_bad_field_gets_one_line(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    proc = cli("validate", str(path), check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert all(line.startswith(f"error: {path}: ") for line in lines), proc.stderr
    assert expected in lines[0]
    # A renamed field also leaves the real one missing: both are listed, nothing else.
    assert len(lines) == (2 if change[0] == "doc_to_text:" else 1), proc.stderr


def test_every_problem_of_a_file_is_listed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD.replace("max_new_tokens: 8", "max_new_tokens: -1")
        .replace("modality: image", "modality: audio")
        .replace("scorer: choice", "scorer: choise"),
    )
    proc = cli("validate", str(path), check=False)
    lines = proc.stderr.strip().splitlines()
    # Schema problems first (both listed); names are checked once the schema holds.
    assert len(lines) == 2 and "generation_kwargs.max_new_tokens" in proc.stderr and "'modality' = \"audio\"" in proc.stderr
    fixed = write(tmp_path, GOOD.replace("scorer: choice", "scorer: choise").replace("  - metric: accuracy", "  - metric: acc"), "two.yaml")
    lines = cli("validate", str(fixed), check=False).stderr.strip().splitlines()
    assert [("unknown scorer" in line, "unknown metric" in line) for line in lines] == [(True, False), (False, True)]


def test_earlier_field_name_answer_parser_still_loads(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("scorer: choice", "answer_parser: choice"))
    assert "ok: " in cli("validate", str(path)).stdout


def test_document_steps_are_checked_by_name_and_arguments(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "process_docs:\n  - keep_unsafee\n  - multiple_choice_options: {num_distractors: 9}\n")
    lines = cli("validate", str(path), check=False).stderr.strip().splitlines()
    assert "field 'process_docs.0' = \"keep_unsafee\": unknown document step (did you mean 'keep_unsafe'?)" in lines[0]
    assert "field 'process_docs.1.multiple_choice_options.num_distractors' = 9: expected a number <= 3" in lines[1]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "oops: [unclosed\n")
    proc = cli("validate", str(path), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{path}: line 18" in proc.stderr and "invalid YAML" in proc.stderr


def test_include_merges_and_cycles_are_reported(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "_base.yaml")
    child = write(tmp_path, "include: _base.yaml\ntask: child-task\n", "child.yaml")
    assert "task 'child-task'" in cli("validate", str(child)).stdout
    write(tmp_path, "include: b.yaml\n", "a.yaml")
    write(tmp_path, "include: a.yaml\n", "b.yaml")
    proc = cli("validate", str(tmp_path / "a.yaml"), check=False)
    assert "field 'include' forms a cycle" in proc.stderr


def test_bad_variant_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "variants:\n  hub:\n    scorer: nope\n")
    proc = cli("validate", str(path), check=False)
    assert "field 'variants.hub.scorer' = \"nope\": unknown scorer" in proc.stderr


def test_a_task_file_read_again_is_checked_as_it_is_now(tmp_path: Path) -> None:
    """Every command reads the task files again (parsed and checked once per content): an edit between
    two reads is seen, and what one caller changes in its config reaches no other."""
    from vlmbench.taskconfig import load_file

    path = write(tmp_path, GOOD)
    assert "ok: " in cli("validate", str(path)).stdout
    write(tmp_path, GOOD.replace("max_new_tokens: 8", "max_new_tokens: -1"))
    assert "field 'generation_kwargs.max_new_tokens' = -1: expected a number >= 1" in cli("validate", str(path), check=False).stderr
    write(tmp_path, GOOD)
    assert "ok: " in cli("validate", str(path)).stdout
    first = load_file(path)
    assert first is not None
    first.fields["generation_kwargs"]["max_new_tokens"] = 999
    second = load_file(path)
    assert second is not None and second.fields["generation_kwargs"]["max_new_tokens"] == 8


def test_a_plugin_task_folder_that_is_missing_holds_no_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plugin may name a task folder it did not ship: the other tasks are still listed and run."""
    from vlmbench import hookimpl
    from vlmbench.cli import main

    class Plugin:
        @hookimpl
        def vlmbench_task_dirs(self) -> list[str]:
            return [str(tmp_path / "not-shipped"), str(tmp_path / "a-file.yaml")]

    (tmp_path / "a-file.yaml").write_text("task: not-a-folder\n")
    with plugged_in(Plugin()):
        capsys.readouterr()
        assert main(["ls", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "perception-image" in out and "not-a-folder" not in out


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        (("max_new_tokens: 8", "max_new_tokens: 8\n  do_sample: true\n  temperature: .inf"), "generation_kwargs.temperature", ".inf"),
        (("max_new_tokens: 8", "max_new_tokens: 8\n  do_sample: true\n  temperature: .nan"), "generation_kwargs.temperature", ".nan"),
        (("max_new_tokens: 8", "max_new_tokens: 8\n  top_p: .NaN"), "generation_kwargs.top_p", ".nan"),
        (("  - metric: accuracy", "  - metric: accuracy\n    weight: -.inf"), "metric_list.0.weight", "-.inf"),
        (("max_new_tokens: 8", "max_new_tokens: 8\n  temperature: 1.0e+999"), "generation_kwargs.temperature", ".inf"),
        (
            ("version: 1", "version: 1\nvariants:\n  hub:\n    generation_kwargs: {temperature: .inf}"),
            "variants.hub.generation_kwargs.temperature",
            ".inf",
        ),
    ],
)
def test_a_number_that_is_not_finite_is_one_line_naming_its_field(tmp_path: Path, change: tuple[str, str], field: str, value: str) -> None:
    """NaN and infinities pass a schema's number checks, yet no request or JSON file (run.json, results.json) can hold one."""
    path = write(tmp_path, GOOD.replace(*change))
    proc = cli("validate", str(path), check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        1,
        "",
        f"error: {path}: field '{field}' = {value}: expected a finite number; write a number (such as 0.7) or remove the field\n",
    )


def test_a_number_that_is_not_finite_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    base = write(tmp_path, GOOD.replace("max_new_tokens: 8", "max_new_tokens: 8\n  do_sample: true\n  temperature: .inf"), "_base.yaml")
    child = write(tmp_path, "include: _base.yaml\ntask: child-task\n", "child.yaml")
    proc = cli("validate", str(child), check=False)
    message = f"{base}: field 'generation_kwargs.temperature' = .inf: expected a finite number; write a number (such as 0.7) or remove the field"
    assert (proc.returncode, proc.stderr) == (1, f"error: {message}\n")


def test_a_long_key_above_many_values_is_read_in_the_memory_of_the_file(tmp_path: Path) -> None:
    """The walk for NaN spelled each value's path as it went: a 20,000-character key above 20,000 items (a 60 kB
    file) took 400 MB, and a 900 kB file all the memory there was. The place of each value is kept instead."""
    import tracemalloc

    from vlmbench.taskconfig import read_yaml

    path = tmp_path / "wide.yaml"
    path.write_text("task: x\n? " + "k" * 20_000 + "\n: [" + ",".join(["0"] * 19_999 + [".nan"]) + "]\n")
    tracemalloc.start()
    try:
        with pytest.raises(UserError) as info:
            read_yaml(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == f"{path}: field '{'k' * 60}.19999' = .nan: expected a finite number; write a number (such as 0.7) or remove the field"
    assert peak < 50 * 2**20, peak
