"""Submission bundles: pack, verify (re-scoring every number), add; hostile bundles are inert."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from conftest import run_dir

from vlmbench.cli import main

NAME = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(["run", "--model", "random", "--tasks", "perception-image,perception-text,alignment-text", "--output_path", str(out)]) == 0
    return run_dir(out)


@pytest.fixture(scope="module")
def bundle(scored_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "random"
    assert main(["submit", str(scored_run), "--out", str(out), "--org", "../../etc", "--name", NAME, "--license", "MIT",
                 "--date", "2026-01-01", "--revision", "v1"]) == 0
    return out.with_name("random.tar.gz")


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


def repack(files: dict[str, bytes], path: Path, rehash: bool = True) -> Path:
    """Write a bundle from member bytes; ``rehash`` recomputes the manifest as a careful forger would."""
    files = dict(files)
    if rehash:
        manifest = json.loads(files["manifest.json"])
        manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in files.items() if n != "manifest.json"}
        files["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def verify(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], str]:
    capsys.readouterr()
    code = main(["leaderboard", "verify", str(path)])
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


def edit_json(files: dict[str, bytes], name: str, change) -> dict[str, bytes]:
    value = json.loads(files[name])
    change(value)
    return {**files, name: json.dumps(value).encode()}


def test_an_honest_bundle_is_accepted_and_added_once(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, errors, out = verify(bundle, capsys)
    assert code == 0 and errors == [] and f"accepted: {bundle}: {NAME} (v1)" in out
    data = tmp_path / "data"
    assert main(["leaderboard", "add", str(bundle), "--data", str(data)]) == 0
    (entry,) = list(data.iterdir())
    assert entry.name == "etc__script-alert-1-script__v1"  # a safe folder name inside the data folder
    assert json.loads((entry / "metadata.json").read_text())["name"] == NAME
    assert sorted(p.name for p in (entry / "samples").iterdir()) == ["alignment-text.jsonl", "perception-image.jsonl", "perception-text.jsonl"]
    capsys.readouterr()
    assert main(["leaderboard", "add", str(bundle), "--data", str(data)]) == 2
    assert "already on the leaderboard; pass --replace" in capsys.readouterr().err
    assert main(["leaderboard", "add", str(bundle), "--data", str(data), "--replace"]) == 0
    assert [p.name for p in data.iterdir()] == [entry.name]


def test_packing_is_deterministic(scored_run: Path, bundle: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    main(["submit", str(scored_run), "--out", str(again), "--org", "../../etc", "--name", NAME, "--license", "MIT",
          "--date", "2026-01-01", "--revision", "v1"])
    assert again.with_name("again.tar.gz").read_bytes() == bundle.read_bytes()


def test_an_edited_headline_number_is_rejected_naming_the_metric(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def inflate(results: dict) -> None:
        results["tasks"]["perception-image"]["metrics"]["accuracy"]["value"] = 0.91

    forged = repack(edit_json(members(bundle), "results.json", inflate), tmp_path / "forged.tar.gz")
    code, errors, _ = verify(forged, capsys)
    assert code == 1 and len(errors) == 1
    assert errors[0].startswith(f"rejected: {forged}: results.json: tasks.perception-image.metrics.accuracy.value = 0.91 but the responses give 0.2")


def test_edited_responses_with_matching_numbers_are_still_rejected(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = members(bundle)
    lines = files["samples/perception-image.jsonl"].decode().splitlines()
    first = json.loads(lines[0])
    first["prompt"] = "What does this image show? (easy version) " + first["prompt"]
    files["samples/perception-image.jsonl"] = "\n".join([json.dumps(first), *lines[1:]]).encode() + b"\n"
    code, errors, _ = verify(repack(files, tmp_path / "prompt.tar.gz"), capsys)
    assert code == 1 and "is not the sample this task builds" in errors[0] and "rerun task perception-image" in errors[0]


def rewrite_records(files: dict[str, bytes], name: str, change) -> dict[str, bytes]:
    lines = [json.loads(line) for line in files[name].decode().splitlines()]
    for record in lines:
        change(record)
    return {**files, name: "".join(json.dumps(r) + "\n" for r in lines).encode()}


@pytest.mark.parametrize("forgery", ["wrong answers marked as errors", "wrong answers relabelled", "options swapped"])
def test_record_fields_other_than_the_answer_are_not_trusted(forgery: str, bundle: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Rescoring a forged samples file with `vlmbench score` makes results that match it: verify must still reject."""
    def forge(record: dict) -> None:
        if record["correct"] is False:
            if forgery == "wrong answers marked as errors":
                record["error"] = "x"
            elif forgery == "wrong answers relabelled":
                record["doc"]["label"] = "other"
            else:
                record["target"] = record["parsed"]
                record["doc"]["options"] = {k: record["doc"]["concept"] for k in "ABCD"}

    files = members(bundle)
    task = "perception-image" if forgery == "options swapped" else "alignment-text"
    files = rewrite_records(files, f"samples/{task}.jsonl", forge)
    folder = tmp_path / "run"
    (folder / "samples").mkdir(parents=True)
    for name, data in files.items():
        if name != "manifest.json":
            (folder / name).write_bytes(data)
    assert main(["score", str(folder)]) in (0, 1)  # the forger's own rescoring
    files["results.json"] = (folder / "results.json").read_bytes()
    files[f"samples/{task}.jsonl"] = (folder / "samples" / f"{task}.jsonl").read_bytes()
    code, errors, _ = verify(repack(files, tmp_path / "forged.tar.gz"), capsys)
    assert code == 1 and len(errors) == 1
    expected = {"wrong answers marked as errors": "have no answer (failed requests)",
                "wrong answers relabelled": f"results.json: tasks.{task}.metrics",
                "options swapped": f"results.json: tasks.{task}.metrics.accuracy.value = 1.0 but the responses give 0.26"}[forgery]
    assert expected in errors[0]


def test_changed_generation_settings_are_stale(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def hotter(document: dict) -> None:
        document["tasks"]["alignment-text"]["config_hash"] = "0" * 64

    files = edit_json(edit_json(members(bundle), "run.json", hotter), "results.json", hotter)
    code, errors, _ = verify(repack(files, tmp_path / "hot.tar.gz"), capsys)
    assert code == 1 and "stale: rerun task alignment-text (its configuration" in errors[0]


@pytest.mark.parametrize("damage", ["run.json is a list", "task entry is text", "samples not UTF-8", "sample is a number"])
def test_malformed_content_is_a_one_line_rejection(damage: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = members(bundle)
    if damage == "run.json is a list":
        files["run.json"] = b"[]"
    elif damage == "task entry is text":
        files = edit_json(files, "run.json", lambda run: run["tasks"].update({"alignment-text": "x"}))
    elif damage == "samples not UTF-8":
        files["samples/alignment-text.jsonl"] = b"\xff\xfe\n"
    else:
        files["samples/alignment-text.jsonl"] = b"42\n" * 450
    code, errors, _ = verify(repack(files, tmp_path / "bad.tar.gz"), capsys)
    assert code == 1 and len(errors) == 1 and errors[0].startswith("rejected: ")


def test_another_seed_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", "--model", "random", "--tasks", "alignment-text", "--seed", "7", "--output_path", str(tmp_path / "runs")])
    main(["submit", str(run_dir(tmp_path / "runs")), "--out", str(tmp_path / "seeded"), "--name", "m"])
    code, errors, _ = verify(tmp_path / "seeded.tar.gz", capsys)
    assert code == 1 and errors[0].endswith("run.json: seed 7; this leaderboard uses --seed 0")


def test_a_changed_file_without_its_hash_is_rejected(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = members(bundle)
    files["samples/alignment-text.jsonl"] += b"\n"
    code, errors, _ = verify(repack(files, tmp_path / "hash.tar.gz", rehash=False), capsys)
    assert code == 1 and errors[0].endswith("samples/alignment-text.jsonl: sha256 does not match manifest.json (the file was changed after packing)")


def test_a_stale_task_version_is_rejected(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def old(document: dict) -> None:
        document["tasks"]["alignment-text"]["version"] = "0"

    files = edit_json(edit_json(members(bundle), "run.json", old), "results.json", old)
    code, errors, _ = verify(repack(files, tmp_path / "stale.tar.gz"), capsys)
    assert code == 1 and errors[0].endswith("stale: rerun task alignment-text (submitted version 0, current 1; prompts match)")


def test_missing_samples_are_rejected(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = members(bundle)
    files["samples/alignment-text.jsonl"] = b"".join(files["samples/alignment-text.jsonl"].splitlines(keepends=True)[:-5])
    code, errors, _ = verify(repack(files, tmp_path / "short.tar.gz"), capsys)
    assert code == 1 and errors[0].endswith("incomplete: samples/alignment-text.jsonl has 445 samples; the task has 450")


def test_a_limited_run_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", "--model", "random", "--tasks", "alignment-text", "--limit", "3", "--output_path", str(tmp_path / "runs")])
    main(["submit", str(run_dir(tmp_path / "runs")), "--out", str(tmp_path / "limited"), "--name", "m"])
    code, errors, _ = verify(tmp_path / "limited.tar.gz", capsys)
    assert code == 1 and errors[0].endswith("run.json: incomplete run (--limit 3); rerun without --limit")


def hostile(tmp_path: Path, name: str, kind: str, bundle: Path) -> Path:
    files = members(bundle)
    path = tmp_path / f"{kind}.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(name)
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(info)
        else:
            info.size = 3
            archive.addfile(info, io.BytesIO(b"bad"))
    return path


@pytest.mark.parametrize(("name", "kind", "reason"), [
    ("../../outside.txt", "traversal", 'member "../../outside.txt": unexpected name'),
    ("/tmp/absolute.txt", "absolute", 'member "/tmp/absolute.txt": unexpected name'),
    ("samples/link.jsonl", "symlink", 'member "samples/link.jsonl": not a regular file'),
])
def test_hostile_members_are_refused_and_nothing_is_written(name: str, kind: str, reason: str, bundle: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = hostile(tmp_path, name, kind, bundle)
    before = {p for p in tmp_path.parent.rglob("*")}
    data = tmp_path / "data"
    assert main(["leaderboard", "add", str(path), "--data", str(data)]) == 1
    assert reason in capsys.readouterr().err
    assert not data.exists() or not any(data.iterdir())
    assert {p for p in tmp_path.parent.rglob("*")} - before <= {data}
    assert not Path("/tmp/absolute.txt").exists()


def test_oversized_and_non_utf8_members_are_refused(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    huge = tmp_path / "huge.tar.gz"
    with tarfile.open(huge, "w:gz") as archive:
        info = tarfile.TarInfo("samples/huge.jsonl")
        info.size = 300 * 2**20

        class Zeros(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, buffer):  # type: ignore[no-untyped-def]
                buffer[:] = bytes(len(buffer))
                return len(buffer)

        archive.addfile(info, io.BufferedReader(Zeros(), 2**20))
    code, errors, _ = verify(huge, capsys)
    assert code == 1 and "too large (314572800 bytes" in errors[0]
    files = members(bundle)
    files["metadata.json"] = b'{"name": "\xff\xfe"}'
    code, errors, _ = verify(repack(files, tmp_path / "latin.tar.gz"), capsys)
    assert code == 1 and errors[0].endswith("metadata.json: not UTF-8")


def test_not_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"<html>not an archive</html>")
    code, errors, _ = verify(junk, capsys)
    assert code == 1 and "not a .tar.gz bundle" in errors[0]


def test_publish_to_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html></html>")
    assert main(["leaderboard", "publish", str(site), "--to", str(tmp_path / "public")]) == 0
    assert (tmp_path / "public" / "index.html").read_text() == "<html></html>"
    assert main(["leaderboard", "publish", str(tmp_path / "nothing"), "--to", str(tmp_path / "x")]) == 2
    assert "no index.html; build the site first" in capsys.readouterr().err


def test_the_sample_site_is_one_command(tmp_path: Path) -> None:
    """`vlmbench leaderboard sample` runs the baselines, submits, verifies, adds and builds."""
    assert main(["leaderboard", "sample", "--out", str(tmp_path / "sample")]) == 0
    site = tmp_path / "sample" / "site"
    assert (site / "index.html").is_file() and (site / "leaderboard.md").is_file()
    board = json.loads((site / "leaderboard.json").read_text())
    text = json.dumps(board)
    for name in ("random", "always-safe", "always-unsafe"):
        assert f'"{name}"' in text
    assert sorted(p.name for p in (tmp_path / "sample" / "data").iterdir()) == [
        "vlmbench__always-safe__main", "vlmbench__always-unsafe__main", "vlmbench__random__main"]
