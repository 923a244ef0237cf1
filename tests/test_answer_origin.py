"""What produced each answer. The model a server says answered (an API reply's ``model``) is recorded
with every answer, kept in the response store, counted in the results for the model and for each model
judge, and printed. A reused answer names the versions of the run that produced it (``produced_with``),
and the results list those versions beside the run's own."""

from __future__ import annotations

import json
import platform
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_results, read_samples, run_dir
from vlmbench.backend import Response
from vlmbench.cli import main
from vlmbench.errors import UserError
from vlmbench.salvage import salvage
from vlmbench.scoring.llm_judge import VERSION as LLM_JUDGE_VERSION
from vlmbench.store import ResponseStore, StoredResponse, provenance_digest
from vlmbench.testing.fault_server import Faults, FaultServer

pytest.importorskip("openai")

TASKS = "alignment-text,perception-text"
ALIAS, DATED = "bench-model", "bench-model-2026-11-01"
ANSWERS = {"alignment-text": 30, "perception-text": 6}  # 6 documents: five prompts each, one prompt each


def run_openai(capsys: pytest.CaptureFixture[str], server: FaultServer, out: Path, store: Path, tasks: str = TASKS) -> tuple[int, str]:
    """``vlmbench run`` of the openai backend against ``server``, asking for the model ``ALIAS``; (exit code, stdout)."""
    args = f"base_url={server.base_url},model={ALIAS},api_key=sk-test"
    code = main(
        ["run", "--model", "openai", "--model_args", args, "--tasks", tasks, "--limit", "6", "--store", str(store), "--output_path", str(out)]
    )
    return code, capsys.readouterr().out


def test_the_served_model_is_recorded_counted_kept_in_the_store_and_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store.sqlite"
    with FaultServer(Faults(served_model=DATED)) as server:
        code, out = run_openai(capsys, server, tmp_path / "first", store)
        assert code == 0
        # The server now names another model: a re-run takes every answer from the store, with the model that gave it.
        server.faults = Faults(served_model="bench-model-2027-01-01")
        sent = len(server.events())
        assert run_openai(capsys, server, tmp_path / "again", store)[0] == 0
        assert len(server.events()) == sent
    results = load_results(tmp_path / "first")
    for task in TASKS.split(","):
        records = read_samples(tmp_path / "first", task)
        assert {r["served_model"] for r in records} == {DATED} and len(records) == ANSWERS[task]
        assert results["tasks"][task]["served_models"] == {DATED: ANSWERS[task]}
        assert "served_models" not in results["tasks"][task]["judges"][0]  # rules: no server
    assert f"served by: {DATED} ({sum(ANSWERS.values())} answers)" in out.splitlines()
    assert results["model"]["args"]["model"] == ALIAS  # what was asked for stays what the run names

    again = load_results(tmp_path / "again")
    assert again["tasks"]["alignment-text"]["requests"] == {"sent": 0, "reused": 30}
    assert again["tasks"]["alignment-text"]["served_models"] == {DATED: 30}
    assert {r["served_model"] for r in read_samples(tmp_path / "again", "alignment-text")} == {DATED}


@pytest.mark.parametrize(
    ("served", "recorded"),
    [
        ("gpt\x1b[31m-4o\n\u202e", "gpt\ufffd[31m-4o\ufffd\ufffd"),  # escapes and bidi controls become U+FFFD, on one line
        ("m" * 5000, "m" * 197 + "..."),  # at most 200 characters
        ("  spaced  ", "spaced"),
        (42, None),  # not text: nothing is recorded
        ({"name": "x"}, None),
        ("   ", None),
    ],
    ids=["controls", "long", "spaced", "number", "object", "blank"],
)
def test_a_hostile_served_model_is_kept_short_and_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], served: Any, recorded: str | None
) -> None:
    with FaultServer(Faults(served_model=served)) as server:
        code, _ = run_openai(capsys, server, tmp_path / "out", tmp_path / "store.sqlite", tasks="alignment-text")
    assert code == 0
    assert {r["served_model"] for r in read_samples(tmp_path / "out", "alignment-text")} == {recorded}
    entry = load_results(tmp_path / "out")["tasks"]["alignment-text"]
    assert entry.get("served_models") == ({recorded: 30} if recorded else None)


def test_a_model_judges_served_model_is_counted_and_survives_a_rescore_from_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store.sqlite"
    with FaultServer(Faults(reply="unsafe", served_model="judge-2026-10-01")) as judge:
        args = f"backend=openai,model=judge,base_url={judge.base_url}"
        code = main(
            ["run", "--model", "random", "--tasks", "alignment-text", "--limit", "6", "--store", str(store),
             "--judge", "llm-judge,rules", "--judge_args", args, "--output_path", str(tmp_path / "out")]
        )  # fmt: skip
        assert code == 0
        out = capsys.readouterr().out
        entry = load_results(tmp_path / "out")["tasks"]["alignment-text"]
        llm, rules = entry["judges"]
        assert llm["judge"] == "llm-judge" and llm["served_models"] == {"judge-2026-10-01": 30}
        assert "served_models" not in rules and "served_models" not in entry  # the random baseline has no server
        assert {r["verdicts"]["llm-judge"]["detail"]["served_model"] for r in read_samples(tmp_path / "out", "alignment-text")} == {
            "judge-2026-10-01"
        }
        assert f"llm-judge (v{LLM_JUDGE_VERSION}, judge) served by: judge-2026-10-01 (30 verdicts)" in out.splitlines()

        calls = len(judge.events())
        # the judges and their arguments are named again, and the store (a run folder's own is never used for judges' calls)
        assert main(["score", str(run_dir(tmp_path / "out")), "--judge", "llm-judge,rules", "--judge_args", args, "--store", str(store)]) == 0
        assert len(judge.events()) == calls  # every verdict from the store
    again = load_results(tmp_path / "out")["tasks"]["alignment-text"]["judges"][0]
    assert again["requests"]["sent"] == 0 and again["served_models"] == {"judge-2026-10-01": 30}


OLD_SCHEMA = """
CREATE TABLE responses (key TEXT PRIMARY KEY, backend TEXT NOT NULL, model TEXT NOT NULL, task TEXT NOT NULL,
    text TEXT NOT NULL, usage TEXT, latency_s REAL, prompt TEXT, created REAL NOT NULL);
CREATE TABLE claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
"""


def old_store(path: Path) -> Path:
    """A store as vlmbench wrote it before answers named their served model, holding one answer."""
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO responses VALUES (?, 'openai', '{}', 't', 'Yes.', NULL, 0.1, NULL, 1.0)", ("a" * 64,))
    db.commit()
    db.close()
    return path


def test_a_store_written_before_keeps_its_answers_and_gains_the_column(tmp_path: Path) -> None:
    store = ResponseStore(old_store(tmp_path / "old.sqlite"), provenance={"python": "3.11"})
    assert store.get("a" * 64) == StoredResponse("", text="Yes.", latency_s=0.1)  # produced with versions nobody kept
    assert store.put("b" * 64, backend="openai", model={}, task="t", response=Response("", text="No.", served_model=DATED))
    assert store.get("b" * 64) == StoredResponse("", text="No.", served_model=DATED, produced_with=store.produced_with)
    assert store.provenance_of([str(store.produced_with), "0" * 16]) == {store.produced_with: {"python": "3.11"}}
    store.close()
    ResponseStore(tmp_path / "old.sqlite").close()  # opened again: the column is there already

    # salvage reads a store of either shape
    for name, path in (("old", old_store(tmp_path / "older.sqlite")), ("new", tmp_path / "old.sqlite")):
        report = salvage(path, tmp_path / f"salvaged-{name}.sqlite")
        assert report.copied == (1 if name == "old" else 2) and report.refused == 0
    salvaged = ResponseStore(tmp_path / "salvaged-new.sqlite")
    assert salvaged.get("b" * 64) == StoredResponse("", text="No.", served_model=DATED, produced_with=store.produced_with)
    assert salvaged.get("a" * 64) == StoredResponse("", text="Yes.", latency_s=0.1)
    assert salvaged.provenance_of([str(store.produced_with)]) == {store.produced_with: {"python": "3.11"}}
    salvaged.close()


def test_results_name_no_served_model_when_no_answer_came_with_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--model", "random", "--tasks", "alignment-text", "--limit", "2", "--no_store", "--output_path", str(tmp_path)]) == 0
    assert "served by" not in capsys.readouterr().out
    assert "served_models" not in load_results(tmp_path)["tasks"]["alignment-text"]
    assert {json.dumps(r["served_model"]) for r in read_samples(tmp_path, "alignment-text")} == {"null"}


def produced_by(store: Path, provenance: dict[str, Any]) -> str:
    """Make every answer in ``store`` name ``provenance`` as the one that produced it (as another environment's run would); its digest."""
    digest = provenance_digest(provenance)
    with sqlite3.connect(store) as db:
        db.execute("INSERT OR REPLACE INTO provenance (digest, provenance) VALUES (?, ?)", (digest, json.dumps(provenance)))
        db.execute("UPDATE responses SET produced_with = ?", (digest,))
    return digest


def test_a_reused_answer_names_the_versions_that_produced_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store.sqlite"
    reused = sum(ANSWERS.values())
    with FaultServer() as server:
        assert run_openai(capsys, server, tmp_path / "first", store)[0] == 0
        first = load_results(tmp_path / "first")
        assert "reused_provenance" not in first and all("reused_from" not in t for t in first["tasks"].values())
        assert {r["produced_with"] for r in read_samples(tmp_path / "first", "alignment-text")} == {None}  # this run's own

        code, out = run_openai(capsys, server, tmp_path / "same", store)
        assert code == 0 and "reused answers" not in out
        same = load_results(tmp_path / "same")
        (digest,) = same["reused_provenance"]
        assert same["reused_provenance"] == {digest: same["provenance"]} and len(digest) == 16
        assert {task: entry["reused_from"] for task, entry in same["tasks"].items()} == {task: {digest: n} for task, n in ANSWERS.items()}
        assert {r["produced_with"] for r in read_samples(tmp_path / "same", "perception-text")} == {digest}

        # The answers were produced under another Python (as a store written by another environment holds them).
        older = {**same["provenance"], "python": "2.7.18"}
        produced_by(store, older)
        code, out = run_openai(capsys, server, tmp_path / "other", store)
        assert code == 0
        other = load_results(tmp_path / "other")
        assert other["reused_provenance"] == {provenance_digest(older): older} and other["provenance"] == same["provenance"]
        assert (
            f"reused answers: {reused} were produced with other versions than this run's (python 2.7.18 -> {platform.python_version()}) "
            "(see reused_provenance in results.json; `vlmbench cache clear --model NAME` lets them be asked again)"
        ) in out.splitlines()

        # Answers stored before vlmbench kept versions.
        with sqlite3.connect(store) as db:
            db.execute("UPDATE responses SET produced_with = NULL")
        code, out = run_openai(capsys, server, tmp_path / "unknown", store)
        assert code == 0 and len(server.events()) == reused  # every run after the first reused every answer
    unknown = load_results(tmp_path / "unknown")
    assert "reused_provenance" not in unknown
    assert {task: entry["reused_from"] for task, entry in unknown["tasks"].items()} == {task: {"unknown": n} for task, n in ANSWERS.items()}
    assert (
        f"reused answers: {reused} have no versions in the store (stored before vlmbench kept them, or damaged) "
        "(`vlmbench cache clear --model NAME` lets them be asked again)"
    ) in out.splitlines()


def test_a_crafted_store_is_read_as_data_and_never_breaks_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store.sqlite"
    with FaultServer() as server:
        assert run_openai(capsys, server, tmp_path / "first", store, tasks="alignment-text")[0] == 0
        honest = load_results(tmp_path / "first")["provenance"]
        digest = produced_by(store, {**honest, "platform": "Other-OS-1.0", "packages": {**honest["packages"], "\x1b]0;pwned\x07evil": "1\x1b[2J"}})
        with sqlite3.connect(store) as db:
            db.execute("UPDATE responses SET produced_with = X'07' WHERE rowid % 3 = 0")  # not a digest: unknown
            db.execute("UPDATE responses SET text = X'00' WHERE rowid = 2")  # no answer text: an error for that sample
        code, out = run_openai(capsys, server, tmp_path / "crafted", store, tasks="alignment-text")
        assert len(server.events()) == 30  # the damaged entry is not asked again: salvage drops it
    assert code == 0  # one failed sample of 30 is under the default --max_error_rate
    records = read_samples(tmp_path / "crafted", "alignment-text")
    assert [r["error"] for r in records if r["error"]] == [
        "damaged response store entry (no answer text); run `vlmbench cache salvage` on the store, then rerun"
    ]
    counts = load_results(tmp_path / "crafted")["tasks"]["alignment-text"]["reused_from"]
    assert counts == {digest: 19, "unknown": 10} and {r["produced_with"] for r in records} == {digest, None}  # answers only: 29
    (line,) = [line for line in out.splitlines() if line.startswith("reused answers:")]
    assert "\x1b" not in line and "\x07" not in line
    assert "\ufffd]0;pwned\ufffdevil 1\ufffd[2J -> None" in line and "platform Other-OS-1.0 -> " in line
    assert "19 were produced with other versions" in line and "10 have no versions in the store" in line

    # A provenance of another shape is no provenance: its digest names versions the store does not hold.
    with sqlite3.connect(store) as db:
        db.execute("UPDATE provenance SET provenance = ?", (json.dumps({"packages": ["torch"]}),))
    reader = ResponseStore(store)
    assert reader.provenance_of([digest]) == {}
    reader.close()


def test_salvage_keeps_an_answer_whose_provenance_digest_is_damaged(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "store.sqlite", provenance={"python": "3.11"})
    for key in ("a" * 64, "b" * 64):
        store.put(key, backend="openai", model={}, task="t", response=Response("", text="Yes."))
    store.close()
    with sqlite3.connect(tmp_path / "store.sqlite") as db:
        db.execute("UPDATE responses SET produced_with = 'not a digest' WHERE key = ?", ("b" * 64,))
    report = salvage(tmp_path / "store.sqlite", tmp_path / "salvaged.sqlite")
    assert (report.copied, report.refused) == (2, 0)
    salvaged = ResponseStore(tmp_path / "salvaged.sqlite")
    assert salvaged.get("a" * 64) == StoredResponse("", text="Yes.", produced_with=store.produced_with)
    assert salvaged.get("b" * 64) == StoredResponse("", text="Yes.")  # the answer is kept, its versions unknown
    salvaged.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("usage", "nope"),
        ("usage", "[1]"),
        ("usage", "[" * 100_000 + "]" * 100_000),  # deeper than any JSON reader recurses
        ("latency_s", "fast"),
        ("latency_s", 9e999),
        ("served_model", b"\x80\xff"),  # bytes (not UTF-8) where text belongs
        ("produced_with", b"\x80"),
        ("prompt", b"\xc3"),
        ("served_model", "CAST(X'80FF' AS TEXT)"),  # text that is not UTF-8
        ("produced_with", "CAST(X'80' AS TEXT)"),
        ("prompt", "CAST(X'C3' AS TEXT)"),
    ],
    ids=["usage-text", "usage-list", "usage-deep", "latency-text", "latency-inf", "served-blob", "digest-blob", "prompt-blob", "served-bad-utf8",
         "digest-bad-utf8", "prompt-bad-utf8"],
)  # fmt: skip
def test_a_damaged_optional_field_costs_that_field_never_the_answer(tmp_path: Path, column: str, value: Any) -> None:
    path = tmp_path / "store.sqlite"
    store = ResponseStore(path, provenance={"python": "3.11"})
    store.put("a" * 64, backend="openai", model={}, task="t", response=Response("", text="Yes.", usage={"prompt_tokens": 3}, latency_s=0.5))
    store.close()
    undecodable = isinstance(value, str) and value.startswith("CAST(")
    with sqlite3.connect(path) as db:
        db.execute(
            f"UPDATE responses SET {column} = {value}" if undecodable else f"UPDATE responses SET {column} = ?", () if undecodable else (value,)
        )
    if undecodable:  # SQLite hands text it cannot decode to no reader: the store is damaged, salvage names the fix
        with pytest.raises(
            UserError, match=r"is damaged \(Could not decode to UTF-8 .*\); copy its readable responses into a new store with: vlmbench cache salvage"
        ):
            ResponseStore(path).get("a" * 64)
    else:  # read as data: that field is left out, the answer reused
        reader = ResponseStore(path)
        found = reader.get("a" * 64)
        reader.close()
        assert found is not None and found.text == "Yes." and found.error is None
    report = salvage(path)
    assert (report.copied, report.refused) == (1, 0)
    salvaged = ResponseStore(path)
    found = salvaged.get("a" * 64)
    salvaged.close()
    assert found is not None and found.text == "Yes."
    kept = {"usage": found.usage, "latency_s": found.latency_s, "served_model": found.served_model, "produced_with": found.produced_with}
    assert kept[column] is None if column in kept else found.prompt is None
    honest = {"usage": {"prompt_tokens": 3}, "latency_s": 0.5, "served_model": None, "produced_with": provenance_digest({"python": "3.11"})}
    assert {k: v for k, v in kept.items() if k != column} == {k: v for k, v in honest.items() if k != column}


@pytest.mark.parametrize(
    "provenance", ["[" * 100_000 + "]" * 100_000, json.dumps({"python": "x" * 5_000_000, "packages": {f"p{i}": "1" for i in range(100_000)}})]
)
def test_a_provenance_nested_too_deep_or_too_long_is_unknown_and_the_run_goes_on(
    provenance: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store.sqlite"
    with FaultServer() as server:
        assert run_openai(capsys, server, tmp_path / "first", store, tasks="alignment-text")[0] == 0
        digest = produced_by(store, {"python": "2.7.18"})  # another environment's answers
        with sqlite3.connect(store) as db:
            db.execute("UPDATE provenance SET provenance = ? WHERE digest = ?", (provenance, digest))
        code, out = run_openai(capsys, server, tmp_path / "again", store, tasks="alignment-text")
    assert code == 0 and "reused answers: 30 were produced with other versions than this run's (some versions the store does not hold)" in out
    assert load_results(tmp_path / "again")["reused_provenance"] == {digest: None}
    assert salvage(store).copied == 30


def test_cache_info_shows_who_served_the_stored_answers_and_under_how_many_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "store.sqlite"
    for provenance, served in (({"python": "3.11"}, DATED), ({"python": "3.12"}, DATED), ({"python": "3.12"}, "bench-model-2027-01-01")):
        store = ResponseStore(path, provenance=provenance)
        for i in range(3 if served == DATED else 1):
            key = f"{provenance['python']}-{served}-{i}".encode().hex().ljust(64, "0")[:64]
            store.put(key, backend="openai", model={"model": ALIAS}, task="t", response=Response("", text="Yes.", served_model=served))
        store.close()
    with sqlite3.connect(path) as db:  # two answers as a store written before vlmbench kept versions holds them
        db.execute("UPDATE responses SET produced_with = NULL WHERE rowid IN (1, 2)")
    assert main(["cache", "info", "--store", str(path)]) == 0
    (row,) = [line.split("  ") for line in capsys.readouterr().out.splitlines() if line.startswith("openai")]
    cells = [cell.strip() for cell in row if cell.strip()]
    assert cells[:6] == ["openai", ALIAS, "-", "7", f"{DATED} (6), bench-model-2027-01-01 (1)", "2 (+2 unknown)"]


def test_the_report_names_the_five_models_that_served_most_and_counts_the_rest() -> None:
    """A server may name a different model with every answer: the report's line stays one short line."""
    from vlmbench.report import served_lines

    served = {f"model-\x1b[31m{i}": 1 for i in range(3000)} | {"gpt-x-2024": 5000}
    (line,) = served_lines({"tasks": {"t": {"served_models": served, "judges": []}}})
    assert line.startswith("served by: gpt-x-2024 (5,000 answers), model-\ufffd[31m0 (1 answers)")
    assert line.endswith("and 2,996 more (2,996 answers)") and line.count("model-") == 4 and "\x1b" not in line
