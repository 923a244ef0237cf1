"""Task files are validated on load; every mistake is one line naming file, field, value and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO, vlmbench

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
answer_parser: choice
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


def test_shipped_task_files_validate() -> None:
    files = sorted(str(p) for p in (REPO / "tasks").glob("[!_]*.yaml"))
    proc = vlmbench("validate", *files)
    assert proc.stdout.count("ok: ") == len(files) == 7


@pytest.mark.parametrize(("change", "expected"), [
    (("doc_to_text:", "doc_to_txt:"), "field 'doc_to_txt': unknown field (did you mean 'doc_to_text'?)"),
    (("answer_parser: choice", "answer_parser: mcq"), "field 'answer_parser' = \"mcq\": expected one of 'multiple_choice', 'safety', 'choice'"),
    (("max_new_tokens: 8", "max_new_tokens: -1"), "field 'generation_kwargs.max_new_tokens' = -1: expected a number >= 1"),
    (("max_new_tokens: 8", "max_new_tokens: many"), "field 'generation_kwargs.max_new_tokens' = \"many\": expected an integer"),
    (("  - metric: accuracy", "  - metric: f1"), "field 'metric_list.0.metric' = \"f1\": expected one of 'accuracy'"),
    (("task: my-task\n", ""), "field 'task' is missing"),
    (("task: my-task", "task: My Task"), "field 'task' = \"My Task\": expected text matching"),
])
def test_bad_field_gets_one_line(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    proc = vlmbench("validate", str(path), check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {path}: ")
    assert expected in lines[0]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "oops: [unclosed\n")
    proc = vlmbench("validate", str(path), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{path}: line 18" in proc.stderr and "invalid YAML" in proc.stderr


def test_include_merges_and_cycles_are_reported(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "_base.yaml")
    child = write(tmp_path, "include: _base.yaml\ntask: child-task\n", "child.yaml")
    assert "task 'child-task'" in vlmbench("validate", str(child)).stdout
    write(tmp_path, "include: b.yaml\n", "a.yaml")
    write(tmp_path, "include: a.yaml\n", "b.yaml")
    proc = vlmbench("validate", str(tmp_path / "a.yaml"), check=False)
    assert "field 'include' forms a cycle" in proc.stderr


def test_bad_variant_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "variants:\n  hub:\n    answer_parser: nope\n")
    proc = vlmbench("validate", str(path), check=False)
    assert "field 'variants.hub.answer_parser' = \"nope\": expected one of" in proc.stderr
