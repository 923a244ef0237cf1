"""Task files are data: templates cannot run code, YAML cannot explode, every failure is one line;
secret-looking model args never reach a file, whatever their spelling."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

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


def _unblocking(fifo: Path, call: Any, timeout: float = 20) -> Any:
    """``call()`` in a thread; should it still wait on ``fifo`` after ``timeout`` s (a hang), a writer opens and closes
    the FIFO so the thread ends, and the test fails. Returns what ``call`` returned or raised."""
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(_outcome(call)), daemon=True)
    thread.start()
    thread.join(timeout)
    hung = thread.is_alive()
    if hung:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
    assert not hung, f"blocked on the FIFO {fifo}"
    return outcome[0]


def _outcome(call: Any) -> Any:
    try:
        return call()
    except Exception as exc:
        return exc


fifo_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")


def test_a_name_ending_in_a_newline_and_a_link_to_itself_are_one_line(tmp_path: Path) -> None:
    """Python's ``$`` also matches before a final newline: the schema's name patterns end at the text's end."""
    folder = tmp_path / "tasks"
    for field, text in (("task", BASE.replace("task: hostile", 'task: "evil\\n"')), ("group", BASE + 'group: "all\\n"\n')):
        proc = cli("validate", str(write(folder, text)), check=False)
        assert proc.returncode == 1 and f"field '{field}'" in proc.stderr, proc.stderr
    (folder / "hostile.yaml").unlink()
    loop = folder / "loop.yaml"
    loop.symlink_to(loop)
    for command in (("validate", str(loop)), ("ls", "tasks", "--include_path", str(folder))):
        proc = cli(*command, check=False)
        line = one_line_error(proc.stderr)
        assert proc.returncode in (1, 2) and f"{loop}: cannot be followed" in line and "symbolic link loop" in line


@fifo_only
def test_a_fifo_named_as_a_task_file_is_refused_without_hanging(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    fifo = folder / "pipe.yaml"
    os.mkfifo(fifo)
    proc = _unblocking(fifo, lambda: cli("validate", str(fifo), check=False))
    assert proc.returncode == 1 and "is a named pipe (FIFO), not a regular file" in one_line_error(proc.stderr)
    proc = _unblocking(fifo, lambda: cli("ls", "tasks", "--include_path", str(folder), check=False))
    line = one_line_error(proc.stderr)
    assert proc.returncode == 2 and str(fifo) in line and "not a regular file" in line


@fifo_only
def test_an_image_path_to_a_fifo_or_a_huge_file_is_a_bad_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vlmbench.data import images

    fifo = tmp_path / "image.png"
    os.mkfifo(fifo)
    error = _unblocking(fifo, lambda: images.encoded_bytes({"bytes": None, "path": str(fifo)}))
    assert isinstance(error, images.BadImage) and "named pipe (FIFO)" in str(error) and str(fifo) in str(error)
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\0" * 2000)
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 1000)
    with pytest.raises(images.BadImage, match="larger than the limit of 1000 bytes"):
        images.encoded_bytes({"bytes": None, "path": str(big)})


def test_read_regular_file_refuses_devices_and_reads_at_most_the_cap(tmp_path: Path) -> None:
    from vlmbench.safefiles import FileRefused, read_regular_file

    if os.path.exists("/dev/zero"):
        with pytest.raises(FileRefused, match="character device"):
            read_regular_file("/dev/zero", 10, "image file")
    with pytest.raises(FileRefused, match="folder"):
        read_regular_file(tmp_path, 10)
    (tmp_path / "f").write_bytes(b"x" * 11)
    with pytest.raises(FileRefused, match=r"larger than the limit of 10 bytes"):
        read_regular_file(tmp_path / "f", 10)
    assert read_regular_file(tmp_path / "f", 11) == b"x" * 11


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("\"{{ 'x' * 10**9 }}\"", "would repeat 1 item(s) 1000000000 times"),
        ('"{{ (2 ** 100000) ** 100000 }}"', "a power of more than"),
        ('"{% for i in [1] recursive %}{{ loop([1]) }}{% endfor %}"', "recursive loops are not allowed"),
    ],
)
def test_validate_refuses_templates_that_would_exhaust_memory(tmp_path: Path, template: str, expected: str) -> None:
    path = write(tmp_path, BASE.replace('"{{ question }}"', template))
    started = time.monotonic()
    proc = cli("validate", str(path), check=False)
    line = one_line_error(proc.stderr)
    assert proc.returncode == 1 and "field 'doc_to_text': the template asks for too much" in line and expected in line
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "template",
    [
        '"{{ question * 1000000 }}"',
        '"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x"',
        '"{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"',
        # A text doubled 34 times (16 GiB), widths and replacements that would make gigabytes from a few bytes.
        '"{% set ns = namespace(x=question) %}{% for i in range(34) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}"',
        '"{{ question|center(10000000000) }}"',
        "\"{{ '%10000000000s' % question }}\"",
        "\"{{ '{:>10000000000}'.format(question) }}\"",
        "\"{{ question|replace('', question * 300) }}\"",
        # '+' doubling a text or a list; a list holding itself twice, shown, joined, serialised or summed;
        # a {% set %} block doubling its own text; the template's own text repeated; lipsum and join widths.
        '"{% set ns = namespace(x=question) %}{% for i in range(40) %}{% set ns.x = ns.x + ns.x %}{% endfor %}{{ ns.x|length }}"',
        '"{% set ns = namespace(x=[1]) %}{% for i in range(40) %}{% set ns.x = ns.x + ns.x %}{% endfor %}{{ ns.x|length }}"',
        '"{% set ns = namespace(x=[question]) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x }}"',
        '"{% set ns = namespace(x=[question]) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x|string|length }}"',
        '"{% set ns = namespace(x=[question]) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x|tojson|length }}"',
        '"{% set ns = namespace(x=question) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x]|join %}{% endfor %}{{ ns.x|length }}"',
        '"{% set ns = namespace(x=[[1]]) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x]|sum(start=[]) %}{% endfor %}{{ 1 }}"',
        '"{% set ns = namespace(x=question) %}{% for i in range(40) %}{% set ns.x %}{{ ns.x }}{{ ns.x }}{% endset %}{% endfor %}{{ 1 }}"',
        '"{% for i in range(99999) %}' + "y" * 50 + '{% endfor %}"',
        "\"{% set x = range(100000)|join('y' * 99999) %}{{ x|length }}\"",
        '"{{ lipsum(1000000)|length }}"',
        '"{{ lipsum(1, max=1000000000.0, min=999999999.0) }}"',
        # Methods of texts and numbers, widths taken from the arguments, block text, fills and wraps.
        '"{{ question.ljust(1000000000)|length }}"',
        "\"{{ ('a' * 100000).replace('', 'b' * 100000)|length }}\"",
        "\"{{ ('y' * 99999).join(['a'] * 100000)|length }}\"",
        "\"{{ (7).to_bytes(1000000000, 'big')|length }}\"",
        "\"{{ '%*s' % (1000000000, 'x') }}\"",
        "\"{{ '{:>{}}'.format('x', 1000000000) }}\"",
        '"{% set x %}{% for i in range(90000) %}' + "z" * 500 + '{% endfor %}{% endset %}{{ x|length }}"',
        '"{{ [1]|batch(1000000000, 0)|list|length }}"',
        "\"{{ ('a ' * 50000)|wordwrap(1, wrapstring='x' * 99999)|length }}\"",
        '"{{ ([1] * 20000)|tojson(indent=99999)|length }}"',
        # The same list held many times over, shown through the namespace, a dict, %, escaping, comparison.
        '"{% set ns = namespace(x=[question]) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns }}"',
        '"{% set ns = namespace(x=[question]) %}{% for i in range(40) %}{% set ns.x = dict(a=ns.x, b=ns.x) %}{% endfor %}{{ 1 }}"',
        '"{% set ns = namespace(x=(question,)) %}{% for i in range(40) %}{% set ns.x = (ns.x, ns.x) %}{% endfor %}{{ ns.x == ns.x }}"',
        # Fields repeated in a format, methods that grow a text or make containers, huge numbers from text.
        "\"{{ ('{0}' * 2000).format(question * 20000)|length }}\"",
        "\"{{ (('%(a)s' * 2000) % {'a': question * 20000})|length }}\"",
        "\"{{ question.translate({97: 'b' * 999999})|length }}\"",
        "\"{{ question.encode('utf-32').hex()|length }}\"",
        '"{{ {}.fromkeys(range(3000), question * 20000).values()|string|length }}"',
        '"{{ (question * 100000)|int(base=16) }}"',
        pytest.param('"' + "{{ 'a'|center(999999) }}x" * 300 + '"', id="constants-folded-at-compile-time"),
        # Many large values made one after the other (each allowed alone), by '*', slicing or a filter.
        '"{% for i in range(300) %}{% set t = question * 200000 %}{% endfor %}{{ 1 }}"',
        '"{% set s = question * 200000 %}{% for i in range(300) %}{% set t = s[::-1] %}{% endfor %}{{ 1 }}"',
        '"{% set s = question * 200000 %}{% for i in range(300) %}{% set t = s|lower %}{% endfor %}{{ 1 }}"',
        '"{{ (question * 1000)|urlize|length }}"',
    ],
)
def test_templates_that_would_run_for_ever_fail_in_one_line(tmp_path: Path, template: str) -> None:
    path = write(tmp_path / "tasks", BASE.replace('"{{ question }}"', template))
    started = time.monotonic()
    proc = run_hostile(path, tmp_path / "out")
    line = one_line_error(proc.stderr)
    assert proc.returncode == 2 and "field 'doc_to_text': the template asks for too much" in line
    assert time.monotonic() - started < 30


def test_a_rendering_has_a_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    from vlmbench import template_limits
    from vlmbench.templates import PromptTooLong, render

    monkeypatch.setattr(template_limits, "MAX_SECONDS", 0.05)  # every step below is cheap, but there are many
    started = time.monotonic()
    with pytest.raises(PromptTooLong, match=r"more than 0.05 s to render"):
        render("t.yaml", "doc_to_text", "{% for i in range(99990) %}{% set x = 7 ** 30000 %}{% endfor %}", {})
    assert time.monotonic() - started < 5


def test_long_document_fields_may_be_cut_to_a_prompt() -> None:
    from vlmbench.templates import PromptTooLong, render

    text = ("lorem ipsum dolor sit amet " * 6000)[:150_000]  # longer than a prompt: cut by the template
    doc = {"title": "T", "text": text}
    assert render("t.yaml", "doc_to_text", "{{ (title + ': ' + text)|truncate(30) }}", doc) == "T: lorem ipsum dolor sit..."
    assert render("t.yaml", "doc_to_text", "{{ (title ~ ': ' ~ text)[:9] }} {{ [text]|join|length }}", doc) == "T: lorem  150000"
    with pytest.raises(PromptTooLong, match="renders more than 100000 characters"):
        render("t.yaml", "doc_to_text", "{{ text }}", doc)


def test_ordinary_templates_still_render() -> None:
    from vlmbench.templates import render

    doc = {"choices": ["a", "b", "c"], "n": 3}
    template = "{% for c in choices if c != 'b' %}{{ loop.index }}{{ c }}{{ loop.length }}{% else %}-{% endfor %} {{ 'ab' * n }} {{ 2 ** 10 }}"
    assert render("t.yaml", "doc_to_text", template, doc) == "1a22c2 ababab 1024"
    template = (
        "{{ choices[0] ~ n ~ '!' }} {{ '%s-%02d' % ('x', n) }} {{ '{}:{:>3}'.format('y', n) }} {{ 'b'|center(5) }} {{ 'a.b'|replace('.', '-') }}"
    )
    assert render("t.yaml", "doc_to_text", template, doc) == "a3! x-03 y:  3   b   a-b"
    # Long numbers that are no widths, a replacement with a count, an error in a branch never taken.
    template = "{{ choices + ['d'] }} {{ 'x' + 'y' }} {{ choices|join('/') }} {{ choices|tojson }} {{ [[1], [2]]|sum(start=[]) }} "
    template += "{% set block %}{{ n }}{{ n }}{% endset %}{{ block }} {{ lipsum(1, html=false)|length > 10 }} {{ range(3)|join('-') }}"
    assert render("t.yaml", "doc_to_text", template, doc) == "['a', 'b', 'c', 'd'] xy a/b/c [\"a\", \"b\", \"c\"] [1, 2] 33 True 0-1-2"
    template = "{{ 'Case 2024001: %s' % n }} {{ 'ID 1234567: {}'.format(n) }} {{ ('a' * 60000)|replace('a', 'bb', 1)|length }}"
    template += "{% if false %}{{ 'a' * 'b' }}{% endif %}"
    assert render("t.yaml", "doc_to_text", template, doc) == "Case 2024001: 3 ID 1234567: 3 60001"


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (None, "null (no value)"),
        (float("nan"), "NaN"),
        (float("-inf"), "an infinity"),
        (["a", "b"], "a list"),
        (("a",), "a tuple"),
        ({"k": 1}, "a mapping"),
    ],
)
def test_a_prompt_never_shows_a_value_as_python_writes_it(value: object, what: str) -> None:
    """A document field that is no text, printed as it is, would reach the model as "None", "nan" or "['a', 'b']"."""
    from vlmbench.templates import ShowsNoText, render

    doc = {"concept": "Knife", "caption": value}
    with pytest.raises(ShowsNoText) as caught:
        render("t.yaml", "doc_to_text", "Is {{ concept }} in {{ caption }} safe?", doc)
    assert str(caught.value).startswith(f"t.yaml: field 'doc_to_text': the document's 'caption' is {what}, which a prompt would show as Python")
    assert caught.value.column == "caption"
    # What the template makes of such a field is its author's choice: joined, tested, or a list it builds itself.
    template = "{{ caption | join(', ') if caption is iterable and caption is not string else 'none' }} {{ [concept, 1] }}"
    assert render("t.yaml", "doc_to_text", template, doc).endswith(" ['Knife', 1]")


@pytest.mark.parametrize(
    ("template", "doc"),
    [
        ("Context: {{ 'ctx: ' ~ x }}", {"x": None}),
        ("{{ x ~ '' }}", {"x": ["a", "b"]}),
        ("{{ x | trim }}", {"x": None}),
        ("{{ x | upper }}", {"x": None}),
        ("{{ x | e }}", {"x": None}),
        ("{{ x | string }}", {"x": ["a"]}),
        ("{{ x | safe }}", {"x": ["a"]}),
        ("{{ x | join(', ') }}", {"x": [None, "a"]}),
        ("{{ x | join(', ') }}", {"x": [["a"], {"k": 1}]}),
        ("{{ x.inner }}", {"x": {"inner": ["a", "b"]}}),
        ("{{ x[0] }}", {"x": [["a", "b"]]}),
        ("{% for v in x %}{{ v }};{% endfor %}", {"x": ["a", None]}),
        ("{{ x | int }}", {"x": float("nan")}),
        ("{{ x }}", {"x": b"abc"}),
        ("{{ '%s' | format(x) }}", {"x": None}),
        ("{{ 'a %s b' % x }}", {"x": None}),
        ("{{ 'a %s b' % x }}", {"x": ["l"]}),
        ("{{ '{}'.format(x) }}", {"x": None}),
        ("{{ x | reject('equalto', 'a') | join(', ') }}", {"x": ["a", None]}),
        ("{{ x | map('first') | join(', ') }}", {"x": [["a"], [["b"]]]}),
        ("{{ x.values() | join(', ') }}", {"x": {"k": None}}),
        ("{{ '%s' % x }}", {"x": {"k": "1"}}),
        ("{{ '%s' % (x,) }}", {"x": ["a", "b"]}),
        ("{{ '{}'.format(x) }}", {"x": ["a", "b"]}),
        ("{{ '%s' | format(x) }}", {"x": ["a", "b"]}),
        ("{{ x | pprint }}", {"x": None}),
        ("{{ x | urlize }}", {"x": ["a"]}),
    ],
)
def test_a_prompt_never_shows_python_text_through_filters_operators_or_nested_fields(template: str, doc: dict[str, object]) -> None:
    """The common ways a template turns a value into text (``~``, text filters, ``join``, ``%``, ``format``, a nested
    field, a loop variable) are held to the same rule as ``{{ x }}``."""
    from vlmbench.templates import ShowsNoText, render

    with pytest.raises(ShowsNoText, match="which a prompt would show as Python writes it"):
        render("t.yaml", "doc_to_text", template, doc)


def test_templates_that_make_text_of_fields_themselves_still_render() -> None:
    from vlmbench.templates import render

    doc = {"x": {"a": 1, "b": "two"}, "n": None, "names": ["a", "b"], "pairs": {"k": "v"}}
    template = "{{ x | urlencode }} {{ n | default('none', true) }} {{ names | length }} {{ names | first }} {{ '%(k)s' % pairs }} "
    template += "{{ names | tojson }} {% if n is none %}-{% endif %} {{ names | map('upper') | join('/') }}"
    assert render("t.yaml", "doc_to_text", template, doc) == 'a=1&b=two none 2 a v ["a", "b"] - A/B'


def test_only_a_field_the_template_reads_is_blamed() -> None:
    from vlmbench.templates import ShowsNoText, render

    with pytest.raises(ShowsNoText) as caught:
        render("t.yaml", "doc_to_text", "{% for v in x %}{{ v }}{% endfor %}", {"hint": None, "x": ["a", None]})
    assert caught.value.column is None and "a value is null" in str(caught.value)  # not 'hint', which it never reads


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ('[""]', "field 'group.0' = \"\": expected text matching"),
        ('["../../etc/x"]', "field 'group.0' = \"../../etc/x\""),
        ("all", "field 'group': the group name 'all' is reserved"),
        ("unsafeconcepts", "field 'group': 'unsafeconcepts' is a group of the installed tasks"),
        ("perception-image", "field 'group': 'perception-image' is the name of a task"),
    ],
)
def test_a_task_file_cannot_join_reserved_or_built_in_groups(tmp_path: Path, group: str, expected: str) -> None:
    path = write(tmp_path / "tasks", BASE + f"group: {group}\n")
    proc = cli("ls", "tasks", "--include_path", str(path.parent), check=False)
    line = one_line_error(proc.stderr)
    assert proc.returncode == 2 and str(path) in line and expected in line


def test_outside_tasks_may_form_their_own_group(tmp_path: Path) -> None:
    write(tmp_path / "tasks", BASE + "group: [mine, theirs]\n")
    # A group file beside them, which the task also joins from its side.
    (tmp_path / "tasks" / "theirs.yaml").write_text("group: theirs\ndescription: an outside group\ntask:\n  - hostile\n")
    proc = cli("ls", "tasks", "--include_path", str(tmp_path / "tasks"))
    assert any(line.split()[:2] == ["mine", "hostile"] for line in proc.stdout.splitlines()), proc.stdout
    assert any(line.split()[:2] == ["theirs", "hostile"] for line in proc.stdout.splitlines()), proc.stdout


def test_a_task_folder_deeper_than_the_recursion_limit_is_listed(tmp_path: Path) -> None:
    """A folder from elsewhere nested 1,100 levels deep (Path.rglob recursed once per level: RecursionError)."""
    deep = folder = tmp_path / "tasks"
    for _ in range(1100):
        deep = deep / "d"
        deep.mkdir(parents=True)
    try:
        write(deep, BASE)
        proc = cli("ls", "tasks", "--include_path", str(folder))
        assert any(line.split()[:1] == ["hostile"] for line in proc.stdout.splitlines()), proc.stdout
    finally:  # level by level: pytest's own clean-up (shutil.rmtree) recurses once per level too
        (deep / "hostile.yaml").unlink(missing_ok=True)
        while deep != folder:
            deep.rmdir()
            deep = deep.parent


def test_what_a_task_file_says_reaches_the_terminal_inert(tmp_path: Path) -> None:
    """Escape sequences and bidirectional overrides in a task's description, or in a field name an error line
    quotes, are shown as replacement characters: they can neither clear the screen nor reorder the line."""
    write(tmp_path / "tasks", BASE.replace("description: a task file from someone else", 'description: "clear \\e[2J\\e]0;title\\a \\u202eevil"'))
    listed = cli("ls", "tasks", "--include_path", str(tmp_path / "tasks")).stdout
    assert "clear \ufffd[2J\ufffd]0;title\ufffd \ufffdevil" in listed and "\x1b" not in listed and "\u202e" not in listed
    path = write(tmp_path / "bad", BASE + '"field\\e[31m\\u202e": 1\n')
    proc = cli("validate", str(path), check=False)
    assert proc.returncode == 1 and "\x1b" not in proc.stderr and "\u202e" not in proc.stderr and "field\ufffd[31m\ufffd" in proc.stderr


def test_max_new_tokens_is_bounded_in_a_task_file_and_on_the_command_line(tmp_path: Path) -> None:
    """The length a reply may have follows max_new_tokens (vlmbench.http.limits): an absurd one would lift every bound."""
    path = write(tmp_path / "tasks", BASE + "generation_kwargs:\n  max_new_tokens: 1000000000000\n")
    proc = cli("validate", str(path), check=False)
    assert proc.returncode == 1 and "field 'generation_kwargs.max_new_tokens'" in proc.stderr and "131072" in proc.stderr, proc.stderr
    proc = cli("run", "--model", "random", "--tasks", "perception-text", "--gen_kwargs", "max_new_tokens=131073", check=False)
    assert proc.returncode == 2 and "max_new_tokens=131073 is invalid (131073 is greater than the maximum of 131072)" in proc.stderr


def test_a_temperature_too_small_to_sample_with_and_a_world_size_that_is_no_number_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    proc = cli("run", "--model", "random", "--tasks", "perception-text", "--gen_kwargs", "do_sample=true,temperature=1e-40", check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "vlmbench: error: generation: temperature 1e-40 is too small to sample with (at least 0.001); for greedy decoding set do_sample=false"
    )
    for world in ("abc", "9" * 5000, "\u00b2"):  # 5,000 digits: more than int() reads; "²": isdigit, yet no number
        monkeypatch.setenv("WORLD_SIZE", world)
        proc = cli("run", "--model", "random", "--tasks", "perception-text", "--limit", "1", check=False)
        assert proc.returncode == 2 and f"WORLD_SIZE={world[:40]!r} is not a number of processes" in proc.stderr and proc.stderr.count("\n") == 1
    # a rank outside the group would wait for ever for its peers (with MASTER_ADDR set, torch waits for the rendezvous)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29555")
    for name, value in (("RANK", "5"), ("RANK", "-1"), ("LOCAL_RANK", "2")):
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv(name, value)
        proc = cli("run", "--model", "random", "--tasks", "perception-text", "--limit", "1", check=False)
        assert proc.returncode == 2 and proc.stderr.strip() == (
            f"vlmbench: error: {name}='{value}' is not one of the 2 processes WORLD_SIZE names (0 to 1); unset both, or launch with `accelerate launch`"
        )


def test_a_leaderboard_config_is_read_as_task_files_are(tmp_path: Path) -> None:
    """No YAML aliases (a billion laughs in a title), as for task files."""
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\ntitle: *c\n'
    config = tmp_path / "leaderboard.yaml"
    config.write_text(bomb, encoding="utf-8")
    (tmp_path / "data").mkdir()
    proc = cli("leaderboard", "build", str(tmp_path / "data"), "--out", str(tmp_path / "site"), "--config", str(config), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "alias" in proc.stderr and str(config) in proc.stderr, proc.stderr


def test_an_options_file_is_read_as_data(tmp_path: Path) -> None:
    """--options_file: anything but a regular file, text that is not UTF-8, and lines whose fields are not text
    are one line each (before: a hang on a FIFO, memory exhausted on /dev/zero, tracebacks)."""
    import os

    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    run = ("run", "--model", "random", "--tasks", "perception-image", "--limit", "1", "--output_path", str(tmp_path / "out"), "--options_file")
    for path, message in ((fifo, "is a named pipe (FIFO), not a regular file"), (Path("/dev/zero"), "is a character device, not a regular file")):
        proc = cli(*run, str(path), check=False)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    rows = cli("run", "--model", "random", "--tasks", "perception-image", "--output_path", str(tmp_path / "count")).stdout
    count = json.loads(next((tmp_path / "count").glob("*/*/run.json")).read_text())["tasks"]["perception-image"]["n_samples"]
    bad = tmp_path / "options.jsonl"
    bad.write_text("".join('{"option_str": 5, "correct_option": ["A"]}\n' for _ in range(count)), encoding="utf-8")
    proc = cli(*run, str(bad), check=False)
    assert proc.returncode == 2 and "line 1 needs JSON with 'option_str' and 'correct_option' as text" in proc.stderr, (rows, proc.stderr)
    bad.write_bytes(b"\xff\xfe" * 10)
    proc = cli(*run, str(bad), check=False)
    assert proc.returncode == 2 and "not UTF-8 text" in proc.stderr, proc.stderr
    # An integer too long for Python to read is a bad line, not a traceback.
    bad.write_text("".join('{"option_str": ' + "9" * 5000 + ', "correct_option": "A"}\n' for _ in range(count)), encoding="utf-8")
    proc = cli(*run, str(bad), check=False)
    assert proc.returncode == 2 and "line 1 needs JSON with 'option_str' and 'correct_option' as text" in proc.stderr, proc.stderr


BAD_OPTIONS = (
    "A: {c}\nB: {c}\nC: {c}\nD: {c}",  # the answer four times: any model scores 100%
    "A: {c}",  # one option
    "A: {c}\nB: other\nHint: the answer is A",  # a line that is no option reaches the prompt
    "B: other\nA: {c}",  # out of order
    "A: {c}\nB: \nC: x",  # an empty option
    "A: {c}\nB: x\nC: {c}",  # the answer twice (the study's file repeats distractors only)
)


def test_an_options_file_must_hold_real_choices(tmp_path: Path) -> None:
    """The options file's lines are checked to be a set of choices, not only to name the row's concept."""
    run = ("run", "--model", "random", "--tasks", "perception-image", "--output_path", str(tmp_path / "out"))
    cli(*run)
    records = [json.loads(line) for line in next((tmp_path / "out").glob("*/*/samples/perception-image.jsonl")).read_text().splitlines()]
    concepts = [record["doc"]["concept"] for record in records]
    options = tmp_path / "options.jsonl"
    lines = [{"option_str": f"A: {c}\nB: other {i}\nC: third {i}\nD: fourth {i}", "correct_option": "A"} for i, c in enumerate(concepts)]
    lines[1]["option_str"] = lines[1]["option_str"].replace("other 1", "other\u20281")  # raw in the file: no line break in JSON Lines
    lines[2]["option_str"] = lines[2]["option_str"].replace("third 2", "other 2")  # a distractor given twice, as the study's file has
    options.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    cli(*run, "--options_file", str(options))
    for option_str in BAD_OPTIONS:
        lines[0]["option_str"] = option_str.format(c=concepts[0])
        options.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
        proc = cli(*run, "--options_file", str(options), check=False)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, (option_str, proc.stderr)
        assert "line 1: 'option_str' must be one line per option, lettered from A in order" in proc.stderr, proc.stderr


@pytest.mark.parametrize("folder", ["/dev/null", "/proc/1/cache-here", "/tmp/\udcff\udcfe"])
def test_a_cache_folder_that_cannot_be_one_is_one_line(folder: str) -> None:
    proc = cli("run", "--model", "random", "--tasks", "perception-text", "--limit", "1", env={"VLMBENCH_CACHE_DIR": folder}, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "cannot be used" in proc.stderr and "set $VLMBENCH_CACHE_DIR to a writable folder" in proc.stderr


@pytest.mark.parametrize("how", ["absolute path", "dot-dot", "link out of the folder", "not a YAML file"])
def test_an_include_cannot_read_a_file_outside_the_task_folders(tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]) -> None:
    from vlmbench.cli import main

    secret = tmp_path / "private" / "credentials.yaml"
    secret.parent.mkdir()
    secret.write_text("aws_secret_access_key: s3cret-key-123\n")
    folder = tmp_path / "tasks"
    folder.mkdir()
    include = {"absolute path": str(secret), "dot-dot": "../private/credentials.yaml", "link out of the folder": "_base.yaml"}.get(how)
    if how == "link out of the folder":
        (folder / "_base.yaml").symlink_to(secret)
    if how == "not a YAML file":
        (folder / "_notes.txt").write_text(BASE)
        include = "_notes.txt"
    path = write(folder, f"include: {include}\ntask: sneaky\n")
    capsys.readouterr()
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "s3cret" not in err and "aws_secret" not in err
    assert f"field 'include' = '{include}': only a .yaml file in this file's folder, its task folder or a registered task folder" in one_line_error(
        err
    )


def test_an_include_may_name_a_file_beside_it_below_it_or_in_a_task_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vlmbench.cli import main
    from vlmbench.pluginmanager import task_dirs

    shipped = next(folder / "perception-text.yaml" for folder in task_dirs() if (folder / "perception-text.yaml").is_file())
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "_base.yaml").write_text(f"include: {shipped}\n")
    path = write(tmp_path, "include: common/_base.yaml\ntask: nested-include\n")
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_a_task_in_a_subfolder_of_an_include_path_may_include_a_file_of_that_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vlmbench.cli import main

    (tmp_path / "mytasks" / "variants").mkdir(parents=True)
    (tmp_path / "mytasks" / "_base.yaml").write_text(BASE.replace("task: hostile\n", ""))
    (tmp_path / "mytasks" / "variants" / "x.yaml").write_text("include: ../_base.yaml\ntask: from-a-variant\n")
    (tmp_path / "mytasks" / "variants" / "long.yaml").write_text(f"include: {'x' * 300}.yaml\ntask: long-name\n")
    capsys.readouterr()
    assert main(["validate", str(tmp_path / "mytasks" / "variants" / "long.yaml")]) == 1  # a name too long to look up: no such file
    assert "no such file next to it" in one_line_error(capsys.readouterr().err)
    (tmp_path / "mytasks" / "variants" / "long.yaml").unlink()
    assert main(["ls", "tasks", "--include_path", str(tmp_path / "mytasks")]) == 0, capsys.readouterr().err
    assert "from-a-variant" in capsys.readouterr().out


@pytest.mark.parametrize("value", [".inf", ".nan"])
def test_a_number_that_is_not_finite_in_a_task_file_stops_the_run_in_one_line(tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A sampling temperature of .inf reached the request (openai: "Out of range float values are not JSON compliant")
    and run.json and results.json (`"temperature": Infinity`, which no JSON reader takes)."""
    from vlmbench.cli import main

    path = write(tmp_path / "tasks", BASE + f"generation_kwargs:\n  do_sample: true\n  temperature: {value}\n")
    run = ["run", "--model", "random", "--tasks", "hostile", "--include_path", str(path.parent), "--limit", "2", "--no_store"]
    capsys.readouterr()
    assert main([*run, "--output_path", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        f"vlmbench: error: {path}: field 'generation_kwargs.temperature' = {value}: expected a finite number; "
        "write a number (such as 0.7) or remove the field\n"
    )
    assert not (tmp_path / "out").exists()
    # On the command line it was refused already.
    assert main(["run", "--model", "random", "--tasks", "perception-text", "--gen_kwargs", "do_sample=true,temperature=inf", "--no_store"]) == 2
    assert "temperature" in one_line_error(capsys.readouterr().err)


def test_an_include_path_that_is_missing_or_empty_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty --include_path was the current folder; a missing one must not leave its tasks out without a word."""
    from vlmbench.cli import main

    missing = tmp_path / "does" / "not" / "exist"
    cases = {
        str(missing): f"--include_path: '{missing}': no such folder; pass a folder of task YAML files",
        "": "--include_path: '' is empty; pass a folder of task YAML files (e.g. --include_path ./my-tasks)",
    }
    run = ["run", "--model", "random", "--tasks", "perception-text", "--limit", "1", "--no_store", "--output_path", str(tmp_path / "out")]
    for folder, expected in cases.items():
        for command in (["ls", "tasks"], run):
            capsys.readouterr()
            assert main([*command, "--include_path", folder]) == 2
            assert capsys.readouterr().err == f"vlmbench: error: {expected}\n", command
    assert not (tmp_path / "out").exists()


def test_an_include_path_that_cannot_be_listed_is_one_line(tmp_path: Path) -> None:
    """A folder of mode 000: its tasks were left out without a word. Root lists any folder: there, the command runs
    without the capabilities that allow it (setpriv), as a user would."""
    import shutil
    import sys

    folder = tmp_path / "locked"
    write(folder, BASE)
    command = [sys.executable, "-m", "vlmbench"]
    folder.chmod(0)
    try:
        if os.access(folder, os.R_OK):  # root
            setpriv = shutil.which("setpriv")
            drop = [str(setpriv), "--bounding-set", "-dac_override,-dac_read_search,-fowner"]
            probe = subprocess.run([*drop, sys.executable, "-c", f"import os; os.listdir({str(folder)!r})"], capture_output=True, check=False)
            if setpriv is None or probe.returncode == 0:
                pytest.skip("this process can list any folder and cannot drop that capability")
            command = [*drop, *command]
        expected = (
            f"vlmbench: error: --include_path: '{folder}': cannot list the folder (Permission denied); make it readable, or pass another folder\n"
        )
        for args in (["ls", "tasks"], ["run", "--model", "random", "--tasks", "hostile", "--no_store", "--output_path", str(tmp_path / "out")]):
            proc = subprocess.run([*command, *args, "--include_path", str(folder)], capture_output=True, text=True, timeout=300, check=False)
            assert (proc.returncode, proc.stderr) == (2, expected), args
    finally:
        folder.chmod(0o755)
    assert not (tmp_path / "out").exists()
