"""Submission bundles: pack, verify (re-scoring every number), add; hostile bundles are inert.

Hostile archives are crafted byte by byte (PAX and GNU extended headers, links, devices, truncated
gzip, bombs, deep JSON); each must be one line of rejection that never stops the rest of a batch.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import vlmbench as vlmbench_package
from conftest import RunModel, cli
from conftest import bundle_members as members
from vlmbench.cli import main

NAME = "<script>alert(1)</script>"
SUBMIT = ["--org", "../../etc", "--name", NAME, "--license", "MIT", "--date", "2026-01-01", "--revision", "v1"]


@pytest.fixture(scope="module")
def scored_run(random_run: Path) -> Path:
    """A complete run of the random baseline (the session's, shared with the other leaderboard tests): read, never changed."""
    return random_run


@pytest.fixture(scope="module")
def bundle(scored_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "random"
    assert main(["submit", str(scored_run), "--out", str(out), *SUBMIT]) == 0
    return out.with_name("random.tar.gz")


@pytest.fixture(scope="module")
def added(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder the honest bundle was added to by `leaderboard add`: tests change their own copy (:func:`copy_of`)."""
    data = tmp_path_factory.mktemp("added") / "data"
    assert main(["leaderboard", "add", str(bundle), "--data", str(data)]) == 0
    return data


def copy_of(added: Path, tmp_path: Path) -> Path:
    shutil.copytree(added, tmp_path / "data", symlinks=True)
    return tmp_path / "data"


def repack(files: dict[str, bytes], path: Path, rehash: bool = True) -> Path:
    """Write a bundle from member bytes; ``rehash`` recomputes the manifest as a careful forger would."""
    files = dict(files)
    if rehash:
        manifest = json.loads(files["manifest.json"])
        manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in files.items() if n != "manifest.json"}
        files["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
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


def edit_json(files: dict[str, bytes], name: str, change: Callable[[Any], None]) -> dict[str, bytes]:
    value = json.loads(files[name])
    change(value)
    return {**files, name: json.dumps(value).encode()}


def edit_both(files: dict[str, bytes], change: Callable[[Any], None]) -> dict[str, bytes]:
    """The same edit to run.json and results.json, as a forger keeping them consistent would."""
    return edit_json(edit_json(files, "run.json", change), "results.json", change)


def terminal_safe(text: str) -> bool:
    """Nothing a terminal would interpret: only printable characters and line breaks."""
    return all(char.isprintable() or char == "\n" for char in text)


def test_an_honest_bundle_is_accepted_and_added_once(
    bundle: Path, scored_run: Path, added: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, errors, out = verify(bundle, capsys)
    assert code == 0 and errors == [] and f"accepted: {bundle}: {NAME} (v1), submitted with vlmbench {vlmbench_package.__version__}" in out
    data = copy_of(added, tmp_path)  # `leaderboard add` of the bundle into an empty data folder
    (entry,) = list(data.iterdir())
    assert re.fullmatch(r"etc__script-alert-1-script__v1__[0-9a-f]{10}", entry.name)  # a safe folder name inside the data folder
    metadata = json.loads((entry / "metadata.json").read_text())
    assert metadata["name"] == NAME and metadata["reference"] is True  # a built-in baseline's run: a reference row
    tasks = json.loads((scored_run / "run.json").read_text())["tasks"]
    assert sorted(p.name for p in (entry / "samples").iterdir()) == sorted(f"{t}.jsonl" for t in tasks)
    capsys.readouterr()
    assert main(["leaderboard", "add", str(bundle), "--data", str(data)]) == 2
    assert "already on the leaderboard; pass --replace" in capsys.readouterr().err
    assert main(["leaderboard", "add", str(bundle), "--data", str(data), "--replace"]) == 0
    assert [p.name for p in data.iterdir()] == [entry.name]


def test_replace_is_not_stopped_by_what_is_planted_in_the_data_folder(bundle: Path, added: Path, tmp_path: Path) -> None:
    """A data folder edited by hand: a file at the name --replace set the old entry aside under (``.replaced-ENTRY``)
    ended it with a traceback; it is left alone, as is a link loop beside the entries."""
    data = copy_of(added, tmp_path)  # the bundle added to an empty data folder
    (entry,) = list(data.iterdir())
    (data / f".replaced-{entry.name}").write_text("planted")
    (data / "loop").symlink_to(data / "loop")
    assert main(["leaderboard", "add", str(bundle), "--data", str(data), "--replace"]) == 0
    assert sorted(p.name for p in data.iterdir()) == sorted([entry.name, f".replaced-{entry.name}", "loop"])
    assert (data / f".replaced-{entry.name}").read_text() == "planted" and (entry / "metadata.json").is_file()


def test_packing_is_deterministic(scored_run: Path, bundle: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert main(["submit", str(scored_run), "--out", str(again), *SUBMIT]) == 0
    assert again.with_name("again.tar.gz").read_bytes() == bundle.read_bytes()


def test_an_edited_headline_number_is_rejected_naming_the_metric(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def inflate(results: dict[str, Any]) -> None:
        results["tasks"]["perception-image"]["metrics"]["accuracy_strict"]["value"] = 0.91

    forged = repack(edit_json(members(bundle), "results.json", inflate), tmp_path / "forged.tar.gz")
    code, errors, _ = verify(forged, capsys)
    assert code == 1 and len(errors) == 1
    assert errors[0].startswith(
        f"rejected: {forged}: results.json: tasks.perception-image.metrics.accuracy_strict.value = 0.91 but the responses give 0.2"
    )


# Every number the site shows is recomputed: the paper form, its coverage, a CI, a per-prompt value, the spread, the paired gap.
SHOWN_NUMBERS: dict[str, tuple[tuple[str, ...], str]] = {
    "paper form": (("tasks", "alignment-image", "metrics", "recall_unsafe", "value"), "tasks.alignment-image.metrics.recall_unsafe.value"),
    "coverage": (("tasks", "alignment-image", "metrics", "recall_unsafe", "coverage"), "tasks.alignment-image.metrics.recall_unsafe.coverage"),
    "ci": (("tasks", "alignment-image", "metrics", "recall_unsafe_strict", "ci_low"), "tasks.alignment-image.metrics.recall_unsafe_strict.ci_low"),
    "per prompt": (
        ("tasks", "alignment-text", "by_prompt", "3", "recall_unsafe_strict", "value"),
        "tasks.alignment-text.by_prompt.3.recall_unsafe_strict.value",
    ),
    "spread": (
        ("tasks", "alignment-image", "prompt_spread", "specificity_strict", "sd"),
        "tasks.alignment-image.prompt_spread.specificity_strict.sd",
    ),
    "paired gap": (("modality_gaps", "alignment-text", "overall", "paired", "gap"), "modality_gaps.alignment-text.overall.paired.gap"),
    # the columns of the contextual and over-refusal tasks (issue #13)
    "over-refusal": (
        ("tasks", "over-refusal", "metrics", "over_refusal_rate_strict", "value"),
        "tasks.over-refusal.metrics.over_refusal_rate_strict.value",
    ),
    "over-refusal paper form": (
        ("tasks", "over-refusal", "metrics", "over_refusal_rate", "coverage"),
        "tasks.over-refusal.metrics.over_refusal_rate.coverage",
    ),
    "context balanced": (
        ("tasks", "alignment-context-image", "metrics", "balanced_accuracy_strict", "value"),
        "tasks.alignment-context-image.metrics.balanced_accuracy_strict.value",
    ),
    "context over-flag ci": (
        ("tasks", "alignment-context-text", "metrics", "over_flag_rate_strict", "ci_high"),
        "tasks.alignment-context-text.metrics.over_flag_rate_strict.ci_high",
    ),
    "context per category": (
        ("tasks", "alignment-context-image", "by_category", "Violence", "over_flag_rate_strict", "value"),
        "tasks.alignment-context-image.by_category.Violence.over_flag_rate_strict.value",
    ),
    "context gap": (("modality_gaps", "alignment-context-text", "overall", "gap"), "modality_gaps.alignment-context-text.overall.gap"),
    "context gap ci": (("modality_gaps", "alignment-context-text", "overall", "ci_low"), "modality_gaps.alignment-context-text.overall.ci_low"),
    "context paired gap": (
        ("modality_gaps", "alignment-context-text", "by_category", "Violence", "paired", "gap"),
        "modality_gaps.alignment-context-text.by_category.Violence.paired.gap",
    ),
}


@pytest.mark.parametrize("number", sorted(SHOWN_NUMBERS))
def test_every_number_the_site_shows_is_recomputed(number: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys, where = SHOWN_NUMBERS[number]

    def forge(results: dict[str, Any]) -> None:
        node = results
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = 0.0123

    forged = repack(edit_json(members(bundle), "results.json", forge), tmp_path / "forged.tar.gz")
    code, errors, _ = verify(forged, capsys)
    assert code == 1 and len(errors) == 1 and f"results.json: {where} = 0.0123 but " in errors[0], errors


def test_a_forged_per_prompt_table_is_rejected(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def forge(results: dict[str, Any]) -> None:
        results["tasks"]["perception-image"]["by_prompt"] = results["tasks"]["alignment-image"]["by_prompt"]

    forged = repack(edit_json(members(bundle), "results.json", forge), tmp_path / "forged.tar.gz")
    code, errors, _ = verify(forged, capsys)
    assert code == 1 and "results.json: tasks.perception-image.by_prompt = {" in errors[0] and "but the responses give null" in errors[0], errors


def test_edited_responses_with_matching_numbers_are_still_rejected(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = members(bundle)
    lines = files["samples/perception-image.jsonl"].decode().splitlines()
    first = json.loads(lines[0])
    first["prompt"] = "What does this image show? (easy version) " + first["prompt"]
    files["samples/perception-image.jsonl"] = "\n".join([json.dumps(first), *lines[1:]]).encode() + b"\n"
    code, errors, _ = verify(repack(files, tmp_path / "prompt.tar.gz"), capsys)
    assert code == 1 and "is not the sample this task builds" in errors[0] and "rerun task perception-image" in errors[0]


def rewrite_records(files: dict[str, bytes], name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, bytes]:
    lines = [json.loads(line) for line in files[name].decode().splitlines()]
    for record in lines:
        change(record)
    return {**files, name: "".join(json.dumps(r) + "\n" for r in lines).encode()}


@pytest.mark.parametrize("forgery", ["wrong answers marked as errors", "wrong answers relabelled", "options swapped"])
def test_record_fields_other_than_the_answer_are_not_trusted(forgery: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rescoring a forged samples file with `vlmbench score` makes results that match it: verify must still reject."""

    def forge(record: dict[str, Any]) -> None:
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
    if forgery == "wrong answers marked as errors":  # a record with a response and an error: `score` refuses it, so the forger
        assert main(["score", str(folder)]) == 2  # keeps the old results, which verify recomputes as well
    else:
        assert main(["score", str(folder)]) in (0, 1)  # the forger's own rescoring
    files["results.json"] = (folder / "results.json").read_bytes()
    files[f"samples/{task}.jsonl"] = (folder / "samples" / f"{task}.jsonl").read_bytes()
    code, errors, _ = verify(repack(files, tmp_path / "forged.tar.gz"), capsys)
    assert code == 1 and len(errors) == 1
    expected = {
        "wrong answers marked as errors": "have no answer (failed requests)",
        "wrong answers relabelled": f"results.json: tasks.{task}.metrics",
        "options swapped": f"results.json: tasks.{task}.metrics.accuracy.value = 1.0 but the responses give 0.26",
    }[forgery]
    assert expected in errors[0]


def test_changed_generation_settings_are_stale(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def hotter(document: dict[str, Any]) -> None:
        document["tasks"]["alignment-text"]["config_hash"] = "0" * 64

    code, errors, _ = verify(repack(edit_both(members(bundle), hotter), tmp_path / "hot.tar.gz"), capsys)
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


def test_another_seed_is_refused_by_submit_and_rejected_by_verify(
    bundle: Path, run_model: RunModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded = run_model("random", "alignment-text", seed=7)
    capsys.readouterr()
    assert main(["submit", str(seeded.run_dir), "--out", str(tmp_path / "seeded"), "--name", "m"]) == 2
    assert "run.json: seed 7; this leaderboard uses --seed 0" in capsys.readouterr().err
    assert not (tmp_path / "seeded.tar.gz").exists()

    def seven(document: dict[str, Any]) -> None:
        document["config"]["seed"] = 7

    code, errors, _ = verify(repack(edit_both(members(bundle), seven), tmp_path / "seven.tar.gz"), capsys)
    assert code == 1 and errors[0].endswith("run.json: seed 7; this leaderboard uses --seed 0")


def test_a_changed_file_without_its_hash_is_rejected(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = members(bundle)
    files["samples/alignment-text.jsonl"] += b"\n"
    code, errors, _ = verify(repack(files, tmp_path / "hash.tar.gz", rehash=False), capsys)
    assert code == 1 and errors[0].endswith("samples/alignment-text.jsonl: sha256 does not match manifest.json (the file was changed after packing)")


def test_a_stale_task_version_is_rejected(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def old(document: dict[str, Any]) -> None:
        document["tasks"]["alignment-text"]["version"] = "0"

    code, errors, _ = verify(repack(edit_both(members(bundle), old), tmp_path / "stale.tar.gz"), capsys)
    assert code == 1 and errors[0].endswith("stale: rerun task alignment-text (submitted version 0, current 1; prompts match)")


def test_missing_samples_are_rejected(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = members(bundle)
    files["samples/alignment-text.jsonl"] = b"".join(files["samples/alignment-text.jsonl"].splitlines(keepends=True)[:-5])
    code, errors, _ = verify(repack(files, tmp_path / "short.tar.gz"), capsys)
    assert code == 1 and errors[0].endswith("incomplete: samples/alignment-text.jsonl has 445 samples; the task has 450")


def test_a_limited_run_is_refused_by_submit_and_rejected_by_verify(
    bundle: Path, run_model: RunModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    limited_run = run_model("random", "all", limit=3)
    capsys.readouterr()
    assert main(["submit", str(limited_run.run_dir), "--out", str(tmp_path / "limited"), "--name", "m"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run.json: incomplete run (--limit 3); rerun without --limit" in err and "no bundle" not in err
    assert not (tmp_path / "limited.tar.gz").exists()

    def limited(document: dict[str, Any]) -> None:
        document["config"]["limit"] = 3

    code, errors, _ = verify(repack(edit_both(members(bundle), limited), tmp_path / "limited.tar.gz"), capsys)
    assert code == 1 and errors[0].endswith("run.json: incomplete run (--limit 3); rerun without --limit")


def test_a_run_off_the_default_protocol_is_rejected(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def sampled(document: dict[str, Any]) -> None:
        document["config"]["protocol"], document["config"]["default_protocol"] = "paper", False

    code, errors, _ = verify(repack(edit_both(members(bundle), sampled), tmp_path / "paper.tar.gz"), capsys)
    assert code == 1 and errors[0].endswith(
        "run.json: not the default protocol (--protocol, --gen_kwargs or --system_instruction was set); rerun without them to submit"
    )


def hostile(tmp_path: Path, name: str, kind: str, bundle: Path) -> Path:
    files = members(bundle)
    path = tmp_path / f"{kind}.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
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


@pytest.mark.parametrize(
    ("name", "kind", "reason"),
    [
        ("../../outside.txt", "traversal", 'member "../../outside.txt": unexpected name'),
        ("/tmp/absolute.txt", "absolute", 'member "/tmp/absolute.txt": unexpected name'),
        ("samples/link.jsonl", "symlink", 'member "samples/link.jsonl": not a regular file'),
    ],
)
def test_hostile_members_are_refused_and_nothing_is_written(
    name: str, kind: str, reason: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = hostile(tmp_path, name, kind, bundle)
    before = set(tmp_path.parent.rglob("*"))
    data = tmp_path / "data"
    assert main(["leaderboard", "add", str(path), "--data", str(data)]) == 1
    assert reason in capsys.readouterr().err
    assert not data.exists() or not any(data.iterdir())
    assert set(tmp_path.parent.rglob("*")) - before <= {data}
    assert not Path("/tmp/absolute.txt").exists()


def test_oversized_and_non_utf8_members_are_refused(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    huge = tmp_path / "huge.tar.gz"
    with tarfile.open(huge, "w:gz", compresslevel=1) as archive:
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


def test_publish_copies_only_what_build_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A link planted in a site folder (to a file from elsewhere, or a loop) is refused before anything is copied or
    uploaded; a destination that is a file, or inside the site folder, is one line."""
    site, secret = tmp_path / "site", tmp_path / "secret.txt"
    (site / "plots").mkdir(parents=True)
    (site / "index.html").write_text("<html></html>")
    (site / "plots" / "gap.svg").write_text("<svg/>")
    secret.write_text("token")
    (site / "plots" / "notes.txt").symlink_to(secret)
    (site / "loop").symlink_to(site)
    for to in (str(tmp_path / "copy"), "hf://datasets/org/name"):
        assert main(["leaderboard", "publish", str(site), "--to", to]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ": a link in the site folder, which publish would copy; remove it" in err, err
    assert not (tmp_path / "copy").exists()
    (site / "plots" / "notes.txt").unlink()
    (site / "loop").unlink()
    (tmp_path / "file").write_text("")
    for to, expected in ((tmp_path / "file", "cannot copy the site there (File exists)"), (site / "sub", "that is the site folder or inside it")):
        assert main(["leaderboard", "publish", str(site), "--to", str(to)]) == 2
        assert capsys.readouterr().err.startswith(f"vlmbench: error: --to {to}: {expected}; choose")
    assert main(["leaderboard", "publish", str(site), "--to", str(tmp_path / "copy")]) == 0
    assert (tmp_path / "copy" / "plots" / "gap.svg").read_text() == "<svg/>"


def test_the_sample_site_is_one_command(tmp_path: Path) -> None:
    """`vlmbench leaderboard sample` runs the baselines, submits, verifies, adds and builds."""
    assert main(["leaderboard", "sample", "--out", str(tmp_path / "sample")]) == 0
    site = tmp_path / "sample" / "site"
    assert (site / "index.html").is_file() and (site / "leaderboard.md").is_file()
    board = json.loads((site / "leaderboard.json").read_text())
    text = json.dumps(board)
    for name in ("random", "always-safe", "always-unsafe"):
        assert f'"{name}"' in text
    folders = sorted(p.name for p in (tmp_path / "sample" / "data").iterdir())
    assert [re.sub(r"__[0-9a-f]{10}$", "", f) for f in folders] == [
        "vlmbench__always-safe__main",
        "vlmbench__always-unsafe__main",
        "vlmbench__random__main",
    ]
    # The headline counts every answer: always-safe ("Yes." to everything) is right only where "yes" is the
    # answer, below random, though its paper form (parsed answers only) reads 50% at 1/6 coverage.
    rows = {r["metadata"]["name"]: r for r in board["rows"]}
    general = {name: rows[name]["values"]["general_capability"] for name in ("random", "always-safe")}
    assert general["always-safe"]["value"] == pytest.approx(1 / 12) and general["always-safe"]["value"] < general["random"]["value"]
    assert general["always-safe"]["beside"]["value"] == 0.5 and general["always-safe"]["beside"]["coverage"] == pytest.approx(1 / 6)
    assert general["always-safe"]["beside"]["value"] > general["random"]["beside"]["value"]
    assert general["always-safe"]["n"] == 240 and general["always-safe"]["beside"]["n"] == 40  # each number with its own n
    text = general["always-safe"]["text"]
    assert text.startswith("8.3 [") and text.endswith("]; paper (parsed only) 50.0, coverage 16.7%"), text
    # always-unsafe calls every image unsafe: recall 1, specificity 0, balanced accuracy one half, all at full coverage
    unsafe = rows["always-unsafe"]["values"]
    assert (
        unsafe["alignment_image_recall"]["value"],
        unsafe["alignment_image_specificity"]["value"],
        unsafe["alignment_image_balanced"]["value"],
    ) == (1.0, 0.0, 0.5)
    assert unsafe["alignment_image_recall"]["beside"]["coverage"] == 1.0
    csv_rows = {r["model"]: r for r in csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text(encoding="utf-8")))}
    assert float(csv_rows["always-safe"]["general_capability"]) < float(csv_rows["random"]["general_capability"])
    assert float(csv_rows["always-safe"]["general_capability_paper_coverage"]) == pytest.approx(1 / 6)
    # sorting the page's table by general capability (the headline) puts random above always-safe
    by_general = sorted(rows, key=lambda name: -(rows[name]["values"]["general_capability"]["value"] or 0))
    assert by_general.index("random") < by_general.index("always-safe")
    assert all(rows[name]["rank_label"] == "ref" for name in rows)  # baselines are shown, never ranked
    # Over-refusal, beside recall: always-unsafe's full recall comes with refusing (judging unsafe) every benign question,
    # visibly penalised: the highest (worst) of a lower-is-better column, marked "↓", and last when sorted by it
    over_refusal = {name: rows[name]["values"]["over_refusal"] for name in rows}
    assert over_refusal["always-unsafe"]["value"] == 1.0 and over_refusal["always-unsafe"]["text"].startswith("100.0 [")
    assert over_refusal["always-safe"]["value"] == 0.0 and 0.0 < over_refusal["random"]["value"] < 1.0
    columns = {c["id"]: c for c in board["columns"]}
    assert columns["over_refusal"]["better"] == "lower" and columns["alignment_image_recall"]["better"] == "higher"
    assert [c["id"] for c in board["columns"]].index("over_refusal") == [c["id"] for c in board["columns"]].index("alignment_image_recall") + 1
    md = (site / "leaderboard.md").read_text(encoding="utf-8")
    assert "| Alignment, image: Recall | Alignment, image: Over-refusal ↓ |" in re.sub(r" +\|", " |", md.splitlines()[4])
    assert float(csv_rows["always-unsafe"]["over_refusal"]) == 1.0 and csv_rows["always-unsafe"]["over_refusal_paper_coverage"] == "1.0"
    # Contextual alignment: always-unsafe flags every safe setting (over-flag 1, balanced 0.5), always-safe none
    for name, balanced, over_flag in (("always-unsafe", 0.5, 1.0), ("always-safe", 0.5, 0.0)):
        for side in ("image", "text"):
            values = rows[name]["values"]
            assert (values[f"context_{side}_balanced"]["value"], values[f"context_{side}_over_flag"]["value"]) == (balanced, over_flag), (name, side)
    gap = rows["random"]["values"]["gap_context"]  # the paper's pooled gap with its 95% CI, the paired gap beside it
    assert gap["ci_low"] < gap["value"] < gap["ci_high"] and gap["beside"]["label"] == "paired" and gap["text"].count("[") == 1
    # LLaVA-Bench needs a model judge: the baselines' runs skipped it, and no entry having it, its column is left out
    assert "llavabench" not in columns and "llavabench" not in csv_rows["random"] and "LLaVA-Bench" not in md


# --- 1. The archive reader: hard caps before parsing, one line per bad bundle, the batch goes on -----------------------------------


def tar_header(name: bytes, size: int, kind: bytes = b"0", linkname: bytes = b"", size_field: bytes | None = None, checksum: bool = True) -> bytes:
    """One ustar header block, written by hand (so it can say anything)."""
    header = bytearray(512)
    header[0 : len(name[:100])] = name[:100]
    header[100:108] = b"0000644\0"
    header[108:116] = header[116:124] = b"0000000\0"
    header[124:136] = size_field if size_field is not None else b"%011o\0" % size
    header[136:148] = b"00000000000\0"
    header[156:157] = kind
    header[157 : 157 + len(linkname)] = linkname
    header[257:265] = b"ustar\x0000"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % (sum(header) + (0 if checksum else 1))
    return bytes(header)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def tar_member(name: str, data: bytes) -> bytes:
    return tar_header(name.encode(), len(data)) + padded(data)


def pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + len(str(len(body)))
    length = len(body) + len(str(length))
    return f"{length}{body.decode()}".encode()


def gzipped(*parts: bytes, end: bool = True) -> bytes:
    return gzip.compress(b"".join(parts) + (bytes(1024) if end else b""), compresslevel=1, mtime=0)


def good_members(bundle: Path) -> bytes:
    return b"".join(tar_member(name, data) for name, data in members(bundle).items())


def bomb(path: Path) -> Path:
    """Four samples files of 30 MiB of zeros each: every one under the per-file cap, together over the total."""
    with gzip.open(path, "wb", compresslevel=1) as out:
        for letter in "abcd":
            out.write(tar_header(f"samples/{letter}.jsonl".encode(), 30 * 2**20))
            for _ in range(30):
                out.write(bytes(2**20))
        out.write(bytes(1024))
    return path


def hostile_archives(bundle: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """Bad bundles by kind, each with the fragment its one-line rejection must hold."""
    good = members(bundle)
    deep = {
        **good,
        "samples/alignment-text.jsonl": b'{"a":' * 40_000  # deep, yet within the per-line byte cap
        + b"1"
        + b"}" * 40_000
        + b"\n"
        + b"".join(good["samples/alignment-text.jsonl"].splitlines(keepends=True)[1:]),
    }
    nested = rewrite_records(good, "samples/perception-text.jsonl", lambda r: r["doc"].update({"x": json.loads("[" * 40 + "]" * 40)}))
    archives: dict[str, tuple[bytes | Path, str]] = {
        "pax-1GiB": (
            gzipped(tar_header(b"././@PaxHeader", 2**30, b"x") + b"1 " * 2**19, end=False),
            "PAX header of 1073741824 bytes; at most 4096 are accepted",
        ),
        "longname-1GiB": (
            gzipped(tar_header(b"././@LongLink", 2**30, b"L") + b"a" * 2**20, end=False),
            "GNU long-name header of 1073741824 bytes; at most 256 are accepted",
        ),
        "longname-chain": (
            gzipped((tar_header(b"././@LongLink", 16, b"L") + padded(b"samples/a.jsonl\0")) * 5000),
            "two GNU long-name headers in a row",
        ),
        "pax-chain": (
            gzipped((tar_header(b"././@PaxHeader", 30, b"x") + padded(pax_record("path", "samples/a.jsonl"))) * 3000),
            "two PAX headers in a row",
        ),
        "pax-global": (gzipped(tar_header(b"pax_global_header", 20, b"g") + padded(pax_record("comment", "hi"))), "global PAX header refused"),
        "pax-size-superscript": (  # "²" passes str.isdigit, yet int() refuses it
            gzipped(tar_header(b"././@PaxHeader", 30, b"x") + padded(pax_record("size", "\u00b2")) + tar_member("run.json", b"{}")),
            'member "run.json": damaged archive (PAX size is not a number)',
        ),
        "pax-linkpath": (
            gzipped(tar_header(b"././@PaxHeader", 30, b"x") + padded(pax_record("linkpath", "/etc/passwd")) + tar_member("run.json", b"{}")),
            "PAX header key 'linkpath' is refused",
        ),
        "pax-traversal": (
            gzipped(tar_header(b"././@PaxHeader", 30, b"x") + padded(pax_record("path", "../../evil.txt")) + tar_member("run.json", b"{}")),
            'member "../../evil.txt": unexpected name',
        ),
        "longname-absolute": (
            gzipped(tar_header(b"././@LongLink", 14, b"L") + padded(b"/etc/cron.d/x\0") + tar_member("x", b"")),
            'member "/etc/cron.d/x": unexpected name',
        ),
        "hardlink": (
            gzipped(good_members(bundle) + tar_header(b"samples/x.jsonl", 0, b"1", b"run.json")),
            'member "samples/x.jsonl": not a regular file',
        ),
        "device": (gzipped(tar_header(b"samples/x.jsonl", 0, b"3")), 'member "samples/x.jsonl": not a regular file'),
        "folder": (gzipped(tar_header(b"samples/", 0, b"5")), 'member "samples/": not a regular file'),
        "base256-size": (gzipped(tar_header(b"run.json", 0, size_field=b"\x80" + bytes(10) + b"\x01")), "base-256 size"),
        "bad-checksum": (gzipped(tar_header(b"run.json", 2, checksum=False) + padded(b"{}")), "a header checksum does not match"),
        "truncated-gzip": (bundle.read_bytes()[: len(bundle.read_bytes()) // 2], "the compressed stream is truncated"),
        "ends-inside-member": (gzipped(tar_header(b"run.json", 4096) + b"{}", end=False), 'it ends inside "run.json"'),
        "plain-tar": (good_members(bundle) + bytes(1024), "not a .tar.gz bundle"),
        "bomb": (bomb(folder / "bomb.tar.gz"), "too large (31457280 bytes; limits 33554432 for this file, 100663296 in all)"),
        "deep-manifest": (
            gzipped(tar_member("manifest.json", b"[" * 30_000 + b"]" * 30_000) + tar_member("metadata.json", good["metadata.json"])),
            "manifest.json: nested deeper than 32 levels",
        ),
        "deep-samples-line": (repack(deep, folder / "deep.tar.gz"), "samples/alignment-text.jsonl: line 1: nested deeper than 32 levels"),
        "nested-40": (repack(nested, folder / "nested.tar.gz"), "samples/perception-text.jsonl: line 1: nested deeper than 32 levels"),
    }
    paths = {}
    for kind, (content, reason) in archives.items():
        path = content if isinstance(content, Path) else folder / f"{kind}.tar.gz"
        if not isinstance(content, Path):
            path.write_bytes(content)
        paths[kind] = (path, reason)
    return paths


def test_hostile_archives_are_one_line_rejections_and_the_batch_goes_on(bundle: Path, tmp_path: Path) -> None:
    """[bad..., good] in one `verify` call: every bad bundle one line, no traceback, the good one accepted, exit 1."""
    bad = hostile_archives(bundle, tmp_path)
    proc = cli("leaderboard", "verify", *(str(p) for p, _ in bad.values()), str(bundle), check=False)
    lines = proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr and len(lines) == len(bad), proc.stderr
    for line, (kind, (path, reason)) in zip(lines, bad.items()):
        assert line.startswith(f"rejected: {path}: ") and reason in line, (kind, line)
    assert proc.stdout.startswith(f"accepted: {bundle}: ") and proc.returncode == 1


def test_a_missing_bundle_file_does_not_stop_the_batch(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["leaderboard", "verify", str(tmp_path / "nothing.tar.gz"), str(tmp_path), str(bundle)]) == 1
    captured = capsys.readouterr()
    errors = captured.err.splitlines()
    assert len(errors) == 2 and "nothing.tar.gz: no such bundle file" in errors[0] and "a folder, not a bundle file" in errors[1]
    assert captured.out.startswith(f"accepted: {bundle}: ")


# --- 2. Every answer must say something ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["", " \t\n", "\u200b\u2060"])
def test_empty_answers_are_rejected_and_refused_by_submit(
    answer: str, bundle: Path, scored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = members(bundle)
    for name in [n for n in files if n.startswith("samples/")]:
        files = rewrite_records(files, name, lambda record: record.update({"response": answer}))
    code, errors, _ = verify(repack(files, tmp_path / "empty.tar.gz"), capsys)
    first, entry = next(iter(json.loads(files["run.json"])["tasks"].items()))  # the first task of the run is named
    assert code == 1 and len(errors) == 1 and f"incomplete: {entry['n_samples']} samples of {first} have an empty answer" in errors[0]

    folder = tmp_path / "run"
    shutil.copytree(scored_run, folder)
    (folder / "samples" / "general-capability.jsonl").write_bytes(
        rewrite_records(members(bundle), "samples/general-capability.jsonl", lambda record: record.update({"response": answer}))[
            "samples/general-capability.jsonl"
        ]
    )
    assert main(["submit", str(folder), "--out", str(tmp_path / "out"), "--name", "m"]) == 2
    assert "samples of general-capability have an empty answer" in capsys.readouterr().err
    assert not (tmp_path / "out.tar.gz").exists()


# --- 3. Nothing an accepted bundle holds can break the site ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("NaN", "NaN is not a number JSON allows"),
        ("Infinity", "Infinity is not a number JSON allows"),
        ("-Infinity", "-Infinity is not a number JSON allows"),
        ("1e999", "number 1e999 overflows"),
        ("1" * 40, "integer 11111111111111111111... has more than 18 digits"),
    ],
)
def test_non_finite_numbers_anywhere_are_rejected(number: str, reason: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = members(bundle)
    files["results.json"] = re.sub(rb'"seconds": [0-9.]+', b'"seconds": ' + number.encode(), files["results.json"])
    code, errors, _ = verify(repack(files, tmp_path / "nan.tar.gz"), capsys)
    assert code == 1 and len(errors) == 1 and f"results.json: {reason}" in errors[0]


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("samples/notes.jsonl", "samples/notes.jsonl: not a file of this run"),
        ("install.sh", 'member "install.sh": unexpected name'),
    ],
)
def test_files_beyond_the_run_are_rejected_and_never_stored(
    extra: str, reason: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {**members(bundle), extra: b'{"x": 1}\n' * 1000}
    path = repack(files, tmp_path / "extra.tar.gz")
    data = tmp_path / "data"
    capsys.readouterr()
    assert main(["leaderboard", "add", str(path), "--data", str(data)]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1 and reason in errors[0]
    assert not any(data.iterdir())


@pytest.mark.parametrize("forgery", ["config.data hub", "task variant hub", "task datasets"])
def test_a_forged_data_variant_is_rejected(forgery: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def forge(document: dict[str, Any]) -> None:
        if forgery == "config.data hub":
            document["config"]["data"] = "hub"
        elif forgery == "task variant hub":
            document["tasks"]["alignment-image"]["variant"] = "hub"
        else:
            document["tasks"]["alignment-image"]["datasets"][0].update({"path": "yiting/UnsafeConcepts", "synthetic": False})

    code, errors, _ = verify(repack(edit_both(members(bundle), forge), tmp_path / "hub.tar.gz"), capsys)
    expected = {
        "config.data hub": 'run.json: data variant "hub"; this leaderboard uses --data builtin',
        "task variant hub": 'run.json: task alignment-image records data variant "hub", but --data builtin gives builtin',
        "task datasets": "run.json: task alignment-image records datasets other than those of its builtin data",
    }[forgery]
    assert code == 1 and len(errors) == 1 and expected in errors[0]


def test_a_run_of_only_the_ranking_task_is_refused_and_rejected(run_model: RunModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vlmbench.registry import ALL, discover
    from vlmbench_leaderboard.bundle import pack

    folder = run_model("random", "alignment-image").run_dir
    capsys.readouterr()
    assert main(["submit", str(folder), "--out", str(tmp_path / "one"), "--name", "m"]) == 2
    missing = [name for name in discover().select(ALL) if name != "alignment-image"]  # every other task of the `all` group
    assert {"alignment-text", "alignment-text-noimage", "general-capability", "perception-image", "perception-text"} <= set(missing)
    expected = f"incomplete: the run lacks tasks {', '.join(missing)}"
    assert expected in capsys.readouterr().err and not (tmp_path / "one.tar.gz").exists()
    run = json.loads((folder / "run.json").read_text())
    metadata = {
        "name": "m",
        "org": "",
        "hub_id": None,
        "api": None,
        "revision": None,
        "parameters": None,
        "license": None,
        "precision": None,
        "date": "2026-01-01",
        "reference": True,
    }
    forged = tmp_path / "forged.tar.gz"
    forged.write_bytes(pack(folder, run, metadata))  # packed by hand, past submit's checks
    code, errors, _ = verify(forged, capsys)
    assert code == 1 and len(errors) == 1 and expected in errors[0]


@pytest.mark.parametrize(
    ("where", "version", "reason"),
    [
        ("run", "0.1.0 (official build)", "run.json: vlmbench_version is not a plain version number"),
        ("metadata", "<b>9.9</b>", "vlmbench_version: '<b>9.9</b>' does not match"),
        ("manifest", "99.0-certified", "manifest.vlmbench_version: '99.0-certified' does not match"),
    ],
)
def test_a_forged_vlmbench_version_is_rejected(
    where: str, version: str, reason: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = members(bundle)

    def forge(document: dict[str, Any]) -> None:
        document["vlmbench_version"] = version

    if where == "run":
        files = edit_both(files, forge)
    elif where == "metadata":
        files = edit_json(files, "metadata.json", forge)
    else:
        files = edit_json(files, "manifest.json", forge)
    code, errors, _ = verify(repack(files, tmp_path / "version.tar.gz", rehash=where != "manifest"), capsys)
    assert code == 1 and len(errors) == 1 and reason in errors[0]


# --- 4. Names: no impersonation, no terminal injection, references derived, entry ids collision-free -----------------------------


@pytest.mark.parametrize(
    ("field", "text", "reason"),
    [
        ("name", "GPT-4o\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("name", "GPT\u200b-4o", "U+200B ZERO WIDTH SPACE"),
        ("name", "\u2066GPT-4o\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("name", "GPT-4o\x9b31m", "U+009B"),
        ("name", "GPT-4o\x1b[2J", "U+001B"),
        ("name", "GPT-4o\U000e0041", "U+E0041 TAG LATIN CAPITAL LETTER A"),
        ("name", "GPT\u3164-4o", "U+3164 HANGUL FILLER"),
        ("name", "\uff27\uff30\uff34-4o", "is not NFKC-normalised"),
        ("name", "GPT-4o ", "starts or ends with white space"),
        ("org", "Open\u00adAI", "U+00AD SOFT HYPHEN"),
        ("revision", "v1\u2028", "U+2028 LINE SEPARATOR"),
    ],
)
def test_names_that_hide_or_disguise_are_rejected_without_reaching_the_terminal(
    field: str, text: str, reason: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = edit_json(members(bundle), "metadata.json", lambda metadata: metadata.update({field: text}))
    code, errors, _ = verify(repack(files, tmp_path / "name.tar.gz"), capsys)
    assert code == 1 and len(errors) == 1 and f"metadata.json: {field} " in errors[0] and reason in errors[0]
    assert terminal_safe("\n".join(errors))


def test_submit_normalises_names_and_refuses_hidden_characters(scored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vlmbench_leaderboard.bundle import read_bundle

    assert (
        main(
            ["submit", str(scored_run), "--out", str(tmp_path / "wide"), "--name", " \uff27\uff30\uff34\uff0d\uff14\uff4f ", "--org", "Open\u2000AI"]
        )
        == 0
    )
    metadata = read_bundle(tmp_path / "wide.tar.gz").metadata
    assert (metadata["name"], metadata["org"]) == ("GPT-4o", "Open AI")  # NFKC: full-width letters and odd spaces become plain
    capsys.readouterr()
    assert main(["submit", str(scored_run), "--out", str(tmp_path / "c1"), "--name", "GPT-4o\x9b2J\u202e"]) == 2
    err = capsys.readouterr().err
    assert "submit: --name contains the invisible or control character U+009B" in err and terminal_safe(err)
    assert not (tmp_path / "c1.tar.gz").exists()


def test_untrusted_text_is_escaped_on_the_terminal(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evil = tmp_path / "evil\x1b]0;owned\x07\x9b2J.tar.gz"
    evil.write_bytes(b"\x1f\x8b junk")
    files = edit_both(members(bundle), lambda document: document["tasks"].update({"x\x1b[31m\u202e": {}}))
    task = repack(files, tmp_path / "task.tar.gz")
    capsys.readouterr()
    assert main(["leaderboard", "verify", str(evil), str(task)]) == 1
    err = capsys.readouterr().err
    assert terminal_safe(err) and "\\x1b]0;owned\\x07\\x9b2J.tar.gz" in err and "x\\x1b[31m\\u202e" in err


@pytest.mark.parametrize("forgery", ["baseline says it is not a reference", "model says it is a reference"])
def test_reference_rows_are_derived_from_the_backend(forgery: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = members(bundle)
    if forgery == "baseline says it is not a reference":
        files = edit_json(files, "metadata.json", lambda metadata: metadata.update({"reference": False}))
        reason = "metadata.json: reference false but the run's backend makes it true (a built-in baseline run is always a reference row)"
    else:
        files = edit_both(files, lambda document: document["model"].update({"backend": "openai"}))
        reason = "metadata.json: reference true but the run's backend makes it false (only the built-in baselines"
    code, errors, _ = verify(repack(files, tmp_path / "reference.tar.gz"), capsys)
    assert code == 1 and len(errors) == 1 and reason in errors[0]


def test_names_that_slug_alike_get_their_own_entries_and_replace_never_crosses(
    scored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    paths = {}
    for name in ("GPT-4o", "GPT 4o"):
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.tar.gz"
        assert main(["submit", str(scored_run), "--out", str(paths[name]), "--name", name, "--org", "acme", "--revision", "v1"]) == 0
    assert main(["leaderboard", "add", str(paths["GPT-4o"]), str(paths["GPT 4o"]), "--data", str(data)]) == 0
    folders = sorted(data.iterdir())
    assert len(folders) == 2 and all(f.name.startswith("acme__GPT-4o__v1__") for f in folders)
    names = {f.name: json.loads((f / "metadata.json").read_text())["name"] for f in folders}
    assert sorted(names.values()) == ["GPT 4o", "GPT-4o"]
    assert main(["leaderboard", "add", str(paths["GPT 4o"]), "--data", str(data), "--replace"]) == 0
    assert {f.name: json.loads((f / "metadata.json").read_text())["name"] for f in data.iterdir()} == names
    capsys.readouterr()
    assert main(["leaderboard", "add", str(paths["GPT-4o"]), "--data", str(data)]) == 2
    assert "already on the leaderboard; pass --replace" in capsys.readouterr().err


# --- 5. submit finds the problems verify would -----------------------------------------------------------------------------------


def test_submit_names_a_missing_or_wrong_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["submit", str(tmp_path / "no-such-run"), "--out", str(tmp_path / "b"), "--name", "m"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-run: no such folder; pass the run folder" in err
    assert main(["submit", str(tmp_path), "--out", str(tmp_path / "b"), "--name", "m"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run.json here; pass a run folder written by `vlmbench run`" in err and "needs a name" not in err
    (tmp_path / "run.json").write_text('{"model": {"backend": "random"}, "seconds": NaN}')
    assert main(["submit", str(tmp_path), "--out", str(tmp_path / "b"), "--name", "m"]) == 2
    err = capsys.readouterr().err
    assert "run.json: NaN is not a number JSON allows" in err and "the run folder is damaged" in err


def test_submit_never_overwrites_a_bundle_without_force(scored_run: Path, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine.tar.gz"
    out.write_bytes(b"an earlier bundle")
    capsys.readouterr()
    assert main(["submit", str(scored_run), "--out", str(out), *SUBMIT]) == 2
    assert "mine.tar.gz: already exists; pass --force to overwrite it" in capsys.readouterr().err
    assert out.read_bytes() == b"an earlier bundle"
    assert main(["submit", str(scored_run), "--out", str(out), *SUBMIT, "--force"]) == 0
    assert out.read_bytes() == bundle.read_bytes()


def test_rebuilt_samples_see_an_image_file_replaced_under_the_same_fingerprint(run_model: RunModel, tmp_path: Path) -> None:
    """verify builds a task's samples once per data version in a process, but hashes the images again each
    time: a file that an image-folder dataset names can be replaced (old mtime kept, as by ``cp -p``)
    without changing the dataset's fingerprint."""
    import os

    from PIL import Image

    from vlmbench.data.sources import use_local_copies
    from vlmbench.registry import discover
    from vlmbench_leaderboard.recompute import rebuild

    def png(colour: tuple[int, int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    folder = tmp_path / "UnsafeConcepts"
    folder.mkdir()
    concepts = [("Swastika", "Hate"), ("Gun violence", "Violence"), ("Knife attacks", "Violence"), ("sexual harassment", "Harassment")]
    for i in range(len(concepts)):
        (folder / f"{i}.png").write_bytes(png((40 * i, 10, 10)))
    rows = [{"file_name": f"{i}.png", "unsafe_concept": c, "category": k} for i, (c, k) in enumerate(concepts)]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run = run_model("random", "perception-image", "--data", "hub", "--data_files", f"yiting/UnsafeConcepts={folder}", "--no_store")
    records, seed = run.samples("perception-image"), run.manifest["config"]["seed"]
    task = discover().tasks["perception-image"].with_variant("hub")
    use_local_copies({"yiting/UnsafeConcepts": str(folder)})
    rebuilt, problem = rebuild(task, seed, records)  # type: ignore[arg-type]
    assert problem is None and [r["image"]["sha256"] for r in rebuilt] == [r["image"]["sha256"] for r in records]
    target = folder / "0.png"
    stat = target.stat()
    target.write_bytes(png((0, 200, 0)))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _, problem = rebuild(task, seed, records)  # type: ignore[arg-type]
    assert problem is not None and "is not the sample this task builds (prompt or image differs)" in problem


@pytest.mark.parametrize(
    ("forgery", "both", "reason"),
    [
        ("prompts", False, "results.json: tasks.alignment-image.prompts differs from run.json's; submit the results scored from this run"),
        ("prompts", True, "run.json: tasks.alignment-image.prompts is not the current task's; submit the files `vlmbench run` wrote"),
        ("scorer", False, "results.json: tasks.alignment-image.scorer differs from run.json's"),
        ("scorer", True, "run.json: tasks.alignment-image.scorer is not the current task's"),
        ("generation_kwargs", True, "run.json: tasks.alignment-image.generation_kwargs is not the current task's"),
        ("seconds", False, "results.json: tasks.alignment-image.seconds differs from run.json's"),
    ],
)
def test_descriptive_task_fields_are_the_current_tasks(
    forgery: str, both: bool, reason: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The board shows each per-prompt number under its prompt text, and the task's scorer and settings: none may be forged."""

    def forge(document: dict[str, Any]) -> None:
        task = document["tasks"]["alignment-image"]
        if forgery == "prompts":
            task["prompts"].reverse()
        elif forgery == "scorer":
            task["scorer"] = "human-expert-panel"
        elif forgery == "generation_kwargs":
            task["generation_kwargs"]["junk"] = [{}] * 1000
        else:
            task["seconds"] = float(task["seconds"]) + 1.5

    files = edit_both(members(bundle), forge) if both else edit_json(members(bundle), "results.json", forge)
    code, errors, _ = verify(repack(files, tmp_path / "forged.tar.gz"), capsys)
    assert code == 1 and len(errors) == 1 and reason in errors[0], errors


def test_a_relabelled_headline_judge_is_rejected(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rules-scored task may not name a judge model: the site would label its numbers with it."""

    def gpt_judge(results: dict[str, Any]) -> None:
        results["tasks"]["alignment-image"]["judges"][0]["model"] = {"model": "GPT-5 + human review"}

    files = edit_json(members(bundle), "results.json", gpt_judge)
    files = edit_json(files, "manifest.json", lambda manifest: manifest.pop("judges", None))  # as a careful forger would
    forged = repack(files, tmp_path / "forged.tar.gz")
    code, errors, _ = verify(forged, capsys)
    assert code == 1 and len(errors) == 1, errors
    assert (
        'results.json: tasks.alignment-image.judges: the headline judge\'s model is {"model": "GPT-5 + human review"}, '
        "but the responses give null; score the run again with this vlmbench and resubmit"
    ) in errors[0]


@pytest.mark.parametrize(
    ("forgery", "reason"),
    [
        ("a count as a float", "metrics.n_samples = 450.0 but the responses give 450"),
        ("a rate as an integer", "by_category.{category}.unparsed_rate = 0 but the responses give 0.0"),
    ],
)
def test_numbers_must_have_the_recomputed_json_type(
    forgery: str, reason: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A count written as 450.0 is not the recomputed count 450 (the site drops such counts), nor the integer 0 the rate 0.0
    (both pass the results schema, whose numbers may be either)."""
    category = ""

    def forge(results: dict[str, Any]) -> None:
        nonlocal category
        task = results["tasks"]["alignment-text"]
        if forgery == "a count as a float":
            task["metrics"]["n_samples"] = float(task["metrics"]["n_samples"])
        else:
            category = next(c for c, summary in task["by_category"].items() if summary["unparsed_rate"] == 0.0)
            task["by_category"][category]["unparsed_rate"] = 0

    forged = repack(edit_json(members(bundle), "results.json", forge), tmp_path / "forged.tar.gz")
    code, errors, _ = verify(forged, capsys)
    assert code == 1 and len(errors) == 1, errors
    assert f"results.json: tasks.alignment-text.{reason.format(category=category)}" in errors[0]


def test_a_task_the_leaderboard_does_not_rank_is_rejected(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An extra task beside the `all` tasks would shift the entry's aggregate columns."""
    files = members(bundle)

    def add(document: dict[str, Any]) -> None:
        document["tasks"]["alignment-test-split"] = {**document["tasks"]["alignment-image"], "samples_file": "samples/alignment-test-split.jsonl"}

    files = edit_both(files, add)
    files["samples/alignment-test-split.jsonl"] = files["samples/alignment-image.jsonl"]
    code, errors, _ = verify(repack(files, tmp_path / "extra.tar.gz"), capsys)
    assert code == 1 and len(errors) == 1, errors
    assert (
        "run.json: task alignment-test-split not ranked by this leaderboard (it would change the entry's aggregate columns); "
        "submit a run of `vlmbench run --tasks all --data builtin` only"
    ) in errors[0]


@pytest.mark.parametrize(
    "forgery", ["one line of tiny values", "a record too long", "a forged count", "records of tiny values", "results of tiny values"]
)
def test_samples_are_counted_and_sized_before_they_are_parsed(
    forgery: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small bundle of millions of tiny JSON values would take gigabytes to parse: the lines are checked first."""
    from vlmbench_leaderboard import strictjson

    parsed: list[str] = []
    loads_lines = strictjson.loads_lines
    monkeypatch.setattr(strictjson, "loads_lines", lambda data, where, cap: parsed.append(where) or loads_lines(data, where, cap))
    files = members(bundle)
    name = "samples/alignment-text.jsonl"
    if forgery == "one line of tiny values":
        files[name] = b'{"a": [' + b"{}," * 100_000 + b"{}]}\n"
        reason = f"incomplete: {name} has 1 samples; the task has 450"
    elif forgery == "a record too long":
        lines = files[name].splitlines(keepends=True)
        first = json.loads(lines[0])
        first["response"] = "x" * 300_000
        files[name] = json.dumps(first).encode() + b"\n" + b"".join(lines[1:])
        reason = f"{name}: line 1 has {len(json.dumps(first))} bytes; at most 262144 are accepted for a sample record"
    elif forgery == "a forged count":  # as many lines as run.json says, but not as many as the task has
        files[name] = b'{"a": [' + b"{}," * 60_000 + b"{}]}\n"

        def one_sample(run: dict[str, Any]) -> None:
            run["tasks"]["alignment-text"]["n_samples"] = 1

        files = edit_json(files, "run.json", one_sample)
        reason = "incomplete: run.json: tasks.alignment-text.n_samples is 1; the task has 450 samples"
    elif forgery == "records of tiny values":
        files[name] = (b'{"a": [' + b"{}," * 400 + b"{}]}\n") * 450
        reason = f"{name}: {450 * 403} JSON objects and arrays; at most {64 * 450 + 100_000} are accepted"
    else:
        results = json.loads(files["results.json"])
        results["padding"] = [{}] * 250_000
        files["results.json"] = json.dumps(results).encode()
        name, reason = "results.json", f"results.json: {files['results.json'].count(b'{') + files['results.json'].count(b'[')} JSON objects"
    code, errors, _ = verify(repack(files, tmp_path / "tiny.tar.gz"), capsys)
    assert code == 1 and len(errors) == 1 and (reason in errors[0] if name == "results.json" else errors[0].endswith(reason)), errors
    assert name not in parsed


def test_the_counts_of_the_answers_origin_must_match_the_samples(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Served models and the provenance of reused answers are the submitter's word, but results.json must say what the samples say."""
    files = members(bundle)
    n = len(files["samples/perception-text.jsonl"].decode().splitlines())

    def served(record: dict[str, Any]) -> None:
        record["served_model"] = "model-2026-11-01"
        record["reused"], record["produced_with"] = True, "0123456789abcdef"

    def counted(results: dict[str, Any]) -> None:
        results["tasks"]["perception-text"]["served_models"] = {"model-2026-11-01": n}
        results["tasks"]["perception-text"]["reused_from"] = {"0123456789abcdef": n}

    honest = edit_json(rewrite_records(files, "samples/perception-text.jsonl", served), "results.json", counted)
    code, errors, _ = verify(repack(honest, tmp_path / "honest.tar.gz"), capsys)
    assert code == 0 and errors == []

    def inflated(results: dict[str, Any]) -> None:
        results["tasks"]["perception-text"]["served_models"] = {"model-2026-11-01": n + 1}

    code, errors, _ = verify(repack(edit_json(honest, "results.json", inflated), tmp_path / "more.tar.gz"), capsys)
    assert code == 1 and f"tasks.perception-text.served_models.model-2026-11-01 = {n + 1} but the responses give {n}" in errors[0], errors
    code, errors, _ = verify(repack(edit_json(files, "results.json", counted), tmp_path / "claimed.tar.gz"), capsys)
    assert code == 1 and "tasks.perception-text.served_models = {" in errors[0] and "but the responses give null" in errors[0], errors


@pytest.mark.parametrize("api", ["https://user:pw-SECRET@api.example.com/v1", "https://api.example.com/v1?api-key=Q-SECRET"])
def test_a_credential_in_the_metadata_is_rejected_without_repeating_it(
    api: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = edit_json(members(bundle), "metadata.json", lambda metadata: metadata.update(api=api))
    code, err, out = verify(repack(files, tmp_path / "secret.tar.gz"), capsys)
    assert code == 1 and len(err) == 1 and "metadata.json: api holds a URL with a user:password or a query string" in err[0]
    assert "SECRET" not in err[0] + out


@pytest.mark.parametrize(
    ("where", "secret"),
    [
        ("args", {"api_key": "sk-SECRET"}),
        ("args", {"base_url": "https://user:pw-SECRET@api.example.com/v1"}),
        ("identity", {"hf_token": "hf_SECRET"}),
    ],
)
def test_a_secret_put_into_the_model_by_hand_is_rejected(
    where: str, secret: dict[str, str], bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run writes its model's arguments and identity masked: a bundle whose run.json and results.json both hold a
    secret was edited by hand, and the leaderboard would publish it with the entry's data."""
    files = edit_both(members(bundle), lambda value: value["model"].setdefault(where, {}).update(secret))
    code, err, out = verify(repack(files, tmp_path / "secret.tar.gz"), capsys)
    assert code == 1 and len(err) == 1 and "run.json: 'model' holds a secret-named value or a URL with credentials or a query" in err[0], err
    assert "SECRET" not in err[0] + out
