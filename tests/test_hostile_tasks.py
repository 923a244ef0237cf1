"""Task files are data: templates cannot run code, YAML cannot explode, every failure is one line;
secret-looking model args never reach a file, whatever their spelling."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import cli, run_dir

BASE = """\
task: hostile
description: a task file from someone else
ability: general
modality: text
dataset_path: builtin:shapes-vqa
doc_to_image: null
doc_to_text: "{{ question }}"
doc_to_choice: choices
doc_to_target: "{{ answer }}"
scorer: choice
metric_list:
  - metric: accuracy
metadata:
  version: 1
"""


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hostile.yaml"
    path.write_text(text)
    return path


def run_hostile(path: Path, output: Path) -> subprocess.CompletedProcess[str]:
    """``vlmbench run`` of the task ``hostile`` written at ``path`` (two documents, the random baseline)."""
    return cli(
        "run",
        "--model",
        "random",
        "--tasks",
        "hostile",
        "--include_path",
        str(path.parent),
        "--limit",
        "2",
        "--output_path",
        str(output),
        check=False,
    )


def one_line_error(proc_stderr: str) -> str:
    lines = [line for line in proc_stderr.strip().splitlines() if "error" in line.split(":", 2)[:2] or line.startswith("vlmbench: error")]
    assert len(lines) == 1 and "Traceback" not in proc_stderr, proc_stderr
    return lines[0]


def test_a_template_cannot_reach_python_internals(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = BASE.replace('"{{ question }}"', f"\"{{{{ cycler.__init__.__globals__.os.system('touch {marker}') }}}}\"")
    path = write(tmp_path / "tasks", text)
    proc = run_hostile(path, tmp_path / "out")
    assert proc.returncode == 2 and not marker.exists()
    assert "field 'doc_to_text'" in one_line_error(proc.stderr)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('"{{ 1 / 0 }}"', "the template failed (ZeroDivisionError"),
        ('"{{ question + 1 }}"', "the template failed (TypeError"),
    ],
)
def test_template_errors_are_one_line_naming_the_field(tmp_path: Path, template: str, expected: str) -> None:
    path = write(tmp_path / "tasks", BASE.replace('"{{ question }}"', template))
    proc = run_hostile(path, tmp_path / "out")
    line = one_line_error(proc.stderr)
    assert proc.returncode == 2 and "field 'doc_to_text'" in line and expected in line


def test_validate_compiles_templates(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace('"{{ question }}"', '"{{ question "'))
    proc = cli("validate", str(path), check=False)
    assert proc.returncode == 1 and "field 'doc_to_text': template syntax error" in one_line_error(proc.stderr)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]\n" + BASE,
            "YAML aliases (*a) are not allowed",
        ),
        (BASE + "task: again\n", "duplicate key 'task'"),
        ("deep: " + "[" * 60 + "]" * 60 + "\n" + BASE, "nested more than 32 levels deep"),
        ("padding: '" + "x" * 1_100_000 + "'\n" + BASE, "larger than 1000 kB"),
        ("x: !!python/object/apply:os.system ['true']\n" + BASE, "invalid YAML"),
    ],
)
def test_yaml_bombs_duplicates_and_tags_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    proc = cli("validate", str(path), check=False)
    assert proc.returncode == 1 and expected in one_line_error(proc.stderr)


def test_include_chains_are_bounded(tmp_path: Path) -> None:
    for index in range(12):
        (tmp_path / f"_{index}.yaml").write_text(f"include: _{index + 1}.yaml\n" if index < 11 else BASE)
    path = write(tmp_path, "include: _0.yaml\ntask: chained\n")
    proc = cli("validate", str(path), check=False)
    assert "chains more than 8 files" in one_line_error(proc.stderr)


def test_secret_args_in_any_spelling_never_reach_a_file(plugin_in_process: Path, tmp_path: Path) -> None:
    secrets = {
        "hfToken": "s3cret-hf",
        "accessToken": "s3cret-access",
        "clientSecret": "s3cret-client",
        "pwd": "s3cret-pwd",
        "bearer": "s3cret-bearer",
        "passphrase": "s3cret-pass",
        "API-KEY": "s3cret-api",
    }
    args = ",".join(f"{k}={v}" for k, v in secrets.items()) + ",endpoint=https://user:s3cret-url@example.org/v1?key=s3cret-q"
    store = tmp_path / "store.sqlite"

    def run(model_args: str, output: str) -> None:
        cli("run", "--model", "modality-probe", "--model_args", model_args, "--tasks", "perception-image", "--limit", "2",
            "--output_path", str(tmp_path / output), "--store", str(store))  # fmt: skip

    run(args, "out")
    folder = run_dir(tmp_path / "out")
    written = "".join(p.read_text() for p in folder.rglob("*") if p.is_file())
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 2
        written += json.dumps(db.execute("SELECT * FROM responses").fetchall())
    assert "s3cret" not in written
    model = json.loads((folder / "run.json").read_text())["model"]
    assert all(model["args"][k] == "***" for k in secrets)
    assert model["args"]["endpoint"] == "https://***@example.org/v1?***"
    # Masked alike in files, arguments that differ are still other models to the store: a URL's query (which
    # may choose the model), a value whose name reads as secret (an end-of-sequence token). The same again is reused.
    for changed in (args.replace("?key=s3cret-q", "?model=other"), args + ",eos_token=</s>", args + ",eos_token=<|im_end|>"):
        run(changed, "changed")
        run(changed, "again")
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 2 * 4
        assert "s3cret" not in json.dumps(db.execute("SELECT * FROM responses").fetchall())


def test_prompts_render_each_value_as_written_and_unsafe_templates_fail_alike() -> None:
    """Rendering is reused across documents with the same plain values, never across values that are equal
    but written differently (1, 1.0, True; 0.0, -0.0), and a template's errors are the same one line either way."""
    from vlmbench.errors import UserError
    from vlmbench.templates import render

    source = "{{ n }} {% for i in range(2) %}{{ i }}{% endfor %} {{ name | upper }}"
    assert [render("t.yaml", "doc_to_text", source, {"n": v, "name": "a", "_row": 3}) for v in (1, True, 1.0, 1)] == [
        "1 01 A",
        "True 01 A",
        "1.0 01 A",
        "1 01 A",
    ]
    assert [render("t.yaml", "doc_to_text", "{{ x }}", {"x": v}) for v in (0.0, -0.0, 0, -0.0)] == ["0.0", "-0.0", "0", "-0.0"]
    assert render("t.yaml", "doc_to_text", "{{ options['A'] }}", {"options": {"A": "x"}}) == "x"  # not plain: rendered each time
    for _ in range(2):
        with pytest.raises(UserError) as unsafe:
            render("t.yaml", "doc_to_text", "{{ name.__class__ }}", {"name": "a"})
        assert "the template tried an unsafe operation" in str(unsafe.value)
        with pytest.raises(UserError) as missing:
            render("t.yaml", "doc_to_text", "{{ nme }}", {"name": "a", "_row": 1})
        assert str(missing.value) == "t.yaml: field 'doc_to_text': 'nme' is undefined; available fields: name"
