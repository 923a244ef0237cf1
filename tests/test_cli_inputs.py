"""What the user names on the command line may be the wrong kind of thing: a file where a run folder goes, a
named pipe (FIFO) where a file goes, a file where an --out path needs a folder, the input file as --out, a
folder that cannot be written. Each is one line naming it and the fix, exit 2 (or one `rejected:` line in a
batch that goes on), never a traceback or a wait, and nothing the user has is changed.

A command that could wait on a FIFO runs in a subprocess with a timeout, so that a regression fails the test
rather than hanging it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import RunModel, cli, vlmbench

TIMEOUT = 60  # a command that waits on a FIFO is killed (and the test fails) after this many seconds
SUBMIT = ["--org", "o", "--name", "m", "--license", "MIT", "--date", "2026-01-01"]
NOT_A_RUN_FOLDER = "not a folder; pass a run folder written by `vlmbench run` (results/<model>/<time>)"
NOT_A_BUNDLE = "is a named pipe (FIFO), not a regular file; pass the .tar.gz that `vlmbench submit` wrote"


def digests(folder: Path) -> dict[str, str]:
    """Every regular file under ``folder`` (its path, relative) and the sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def small_run(run_model: RunModel) -> Path:
    return run_model("random", "perception-image,alignment-image", limit=3).run_dir


@pytest.fixture(scope="module")
def bundle(random_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "good.tar.gz"
    cli("submit", str(random_run), "--out", str(out), *SUBMIT)
    return out


# --- 1. a file or a FIFO named as the run folder ---------------------------------------------------------------------------------


def test_score_names_a_file_given_as_the_run_folder(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("precious\n")
    for named in (afile, afile / "sub"):
        proc = cli("score", str(named), check=False)
        assert proc.returncode == 2 and proc.stderr == f"vlmbench: error: {named}: {NOT_A_RUN_FOLDER}\n", proc.stderr
    proc = cli("view", str(afile), check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and f"{afile}: not a folder" in proc.stderr
    proc = cli("submit", str(afile), "--out", str(tmp_path / "b"), *SUBMIT, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and f"{afile}: not a folder" in proc.stderr
    assert afile.read_text() == "precious\n" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_fifo_given_as_the_run_folder_is_one_line_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    proc = vlmbench("score", str(fifo), check=False, timeout=TIMEOUT)
    assert proc.returncode == 2 and proc.stderr == f"vlmbench: error: {fifo}: {NOT_A_RUN_FOLDER}\n", proc.stderr
    for command in (("view", str(fifo)), ("submit", str(fifo), "--out", str(tmp_path / "b"), *SUBMIT)):
        proc = vlmbench(*command, check=False, timeout=TIMEOUT)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


# --- 2. submit --out "" --------------------------------------------------------------------------------------------------------------


def test_submit_refuses_an_empty_out(small_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    proc = cli("submit", str(small_run), "--out", "", *SUBMIT, check=False)
    expected = "vlmbench: error: submit: --out is empty; pass the bundle file to write (e.g. --out my-model.tar.gz)\n"
    assert proc.returncode == 2 and proc.stderr == expected, proc.stderr
    proc = cli("submit", str(small_run), "--out", "/", *SUBMIT, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--out '/': names a folder, not a file" in proc.stderr, proc.stderr
    assert list(work.iterdir()) == []


# --- 3. an --out whose parent is a file ----------------------------------------------------------------------------------------------


def test_an_out_under_a_file_says_the_parent_is_not_a_folder(random_run: Path, tmp_path: Path) -> None:
    """On a complete run, so that ``submit`` gets as far as writing the bundle (where it said "already exists", --force or not)."""
    afile = tmp_path / "afile"
    afile.write_text("precious\n")
    responses = tmp_path / "answers.jsonl"
    responses.write_text('{"id": "1", "response": "unsafe"}\n')
    run_files = digests(random_run)
    for out, extra in ((afile / "b", ()), (afile / "b", ("--force",)), (afile / "c" / "b.tar.gz", ("--force",))):
        proc = cli("submit", str(random_run), "--out", str(out), *SUBMIT, *extra, check=False)
        bundle = out if out.name.endswith(".tar.gz") else out.with_name(out.name + ".tar.gz")
        expected = f"vlmbench: error: submit: --out {bundle}: {afile} is not a folder; choose an --out in a folder\n"
        assert proc.returncode == 2 and proc.stderr == expected, proc.stderr
    proc = cli("view", str(random_run), "--out", str(afile / "v.html"), check=False)
    expected = f"vlmbench: error: --out {afile / 'v.html'}: {afile} is not a folder; pass --out with a file in a folder\n"
    assert proc.returncode == 2 and proc.stderr == expected, proc.stderr
    proc = cli("judge", "--task", "alignment-image", str(responses), "--out", str(afile / "v.jsonl"), check=False)
    expected = f"vlmbench: error: --out {afile / 'v.jsonl'}: {afile} is not a folder; choose an --out in a folder\n"
    assert proc.returncode == 2 and proc.stderr == expected, proc.stderr
    assert afile.read_text() == "precious\n" and digests(random_run) == run_files


# --- 4. leaderboard add into a folder that cannot be written -------------------------------------------------------------------------


def unprivileged() -> list[str]:
    """The command prefix that runs a command without the power to write where permissions forbid it (as root:
    without the capabilities that override them)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("runs as root without setpriv: cannot make a folder unwritable to the command")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def test_add_into_a_folder_that_cannot_be_written_is_one_line(bundle: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "keep.txt").write_text("precious\n")
    data.chmod(0o555)
    try:
        proc = subprocess.run(
            [*unprivileged(), sys.executable, "-m", "vlmbench", "leaderboard", "add", str(bundle), "--data", str(data)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    finally:
        data.chmod(0o755)
    expected = (
        f"vlmbench: error: {bundle}: --data {data}: cannot store the entry there (Permission denied); "
        "make the folder writable or pass another --data\n"
    )
    assert proc.returncode == 2 and proc.stderr == expected, proc.stderr
    assert [p.name for p in data.iterdir()] == ["keep.txt"] and (data / "keep.txt").read_text() == "precious\n"


# --- 5. a FIFO where a file goes: refused without being opened ---------------------------------------------------------------------------


def test_a_fifo_bundle_is_rejected_without_waiting_and_the_batch_goes_on(bundle: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.tar.gz"
    os.mkfifo(fifo)
    proc = vlmbench("leaderboard", "verify", str(fifo), str(bundle), check=False, timeout=TIMEOUT)
    assert proc.returncode == 1 and proc.stderr == f"rejected: {fifo}: {NOT_A_BUNDLE}\n", proc.stderr
    assert proc.stdout.startswith(f"accepted: {bundle}: ")
    data = tmp_path / "data"
    proc = vlmbench("leaderboard", "add", str(fifo), str(bundle), "--data", str(data), check=False, timeout=TIMEOUT)
    assert proc.returncode == 1 and proc.stderr == f"rejected: {fifo}: {NOT_A_BUNDLE}\n", proc.stderr
    assert len([p for p in data.iterdir() if not p.name.startswith(".")]) == 1
    proc = vlmbench("leaderboard", "verify", str(bundle), "--config", str(fifo), check=False, timeout=TIMEOUT)
    expected = f"vlmbench: error: --config {fifo}: not a regular file; pass a leaderboard YAML file or leave --config out for the default\n"
    assert proc.returncode == 2 and proc.stderr == expected, proc.stderr


def test_a_fifo_for_judge_or_in_a_run_folder_for_view_is_never_waited_on(small_run: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "answers.jsonl"
    os.mkfifo(fifo)
    proc = vlmbench("judge", "--task", "alignment-image", str(fifo), check=False, timeout=TIMEOUT)
    expected = f"vlmbench: error: responses file {fifo}: is a named pipe (FIFO), not a regular file; point it at a regular file\n"
    assert proc.returncode == 2 and proc.stderr == expected, proc.stderr
    samples = small_run / "samples" / "perception-image.jsonl"
    samples.unlink()
    os.mkfifo(samples)
    proc = vlmbench("view", str(small_run), "--out", str(tmp_path / "page.html"), check=False, timeout=TIMEOUT)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    proc = vlmbench("score", str(small_run), check=False, timeout=TIMEOUT)
    assert (
        proc.returncode == 2 and proc.stderr == f"vlmbench: error: {samples}: is a named pipe (FIFO), not a regular file; the run folder is damaged\n"
    )


def test_submit_names_a_fifo_in_the_run_folder_without_waiting(small_run: Path, tmp_path: Path) -> None:
    for name in ("samples/perception-image.jsonl", "results.json", "run.json"):  # run.json last: read first
        (small_run / name).unlink()
        os.mkfifo(small_run / name)
        proc = vlmbench("submit", str(small_run), "--out", str(tmp_path / "b"), *SUBMIT, check=False, timeout=TIMEOUT)
        expected = f"vlmbench: error: {'submit: ' if name == 'run.json' else ''}{small_run / name}: not a regular file; the run folder is damaged\n"
        assert proc.returncode == 2 and proc.stderr == expected, proc.stderr
    assert not (tmp_path / "b.tar.gz").exists()


# --- 6. judge --out the responses file ----------------------------------------------------------------------------------------------


def test_judge_never_writes_its_verdicts_over_its_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    responses = tmp_path / "j1.jsonl"
    text = '{"id": "1", "response": "unsafe"}\n'
    responses.write_text(text)
    (tmp_path / "link.jsonl").symlink_to(responses)
    for out in ("j1.jsonl", str(responses), f"../{tmp_path.name}/j1.jsonl", "link.jsonl"):
        proc = cli("judge", "--task", "alignment-image", "j1.jsonl", "--out", out, check=False)
        expected = f"vlmbench: error: --out {Path(out)}: that is the responses file j1.jsonl itself, which the verdicts would replace; choose another --out\n"
        assert proc.returncode == 2 and proc.stderr == expected, proc.stderr
        assert responses.read_text() == text and (tmp_path / "link.jsonl").is_symlink()
    proc = cli("judge", "--task", "alignment-image", "j1.jsonl", "--out", "verdicts.jsonl")  # another file is written as before
    assert '"verdict": "unsafe"' in (tmp_path / "verdicts.jsonl").read_text() and responses.read_text() == text
