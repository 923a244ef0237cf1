"""Judges on the leaderboard: bundles keep them, `verify` checks them, the site shows them.

Real runs (the `random` baseline on every task), real tar bundles through `vlmbench submit`, the
CLI in-process, and an LLM judge scripted behind a real HTTP server (FaultServer).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import bundle_members as members
from conftest import run_dir
from vlmbench.cli import main
from vlmbench.scoring.llm_judge import VERSION as LLM_JUDGE_VERSION
from vlmbench.scoring.llm_judge import load_prompts
from vlmbench.testing.fault_server import Faults, FaultServer
from vlmbench_leaderboard.build import build_site
from vlmbench_leaderboard.config import default_config_path

# The scripted judge: option A for every multiple-choice answer, "unsafe" for every alignment answer, no choice otherwise.
SCRIPT = (("Which single option", "A"), ("What verdict did the assistant give", "unsafe"), ("Which of these answers", "none"))
JUDGE_MODEL = "judge-model"
HOSTILE = "<img src=x onerror=alert(1)>\u202e"


def judge_args(server: FaultServer, model: str = JUDGE_MODEL) -> str:
    return f"backend=openai,model={model},base_url={server.base_url}"


def scripted(*replies: tuple[str, str]) -> FaultServer:
    return FaultServer(Faults(replies=replies or SCRIPT, reply="unclear"))


@pytest.fixture(scope="module")
def bundles(random_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A rules-judged (the session's complete run of the random baseline) and an llm-judge-judged run of every task,
    each packed by `vlmbench submit`."""
    root = tmp_path_factory.mktemp("judged")
    with scripted() as server:
        code = main(
            ["run", "--model", "random", "--tasks", "all", "--no_store", "--output_path", str(root / "llm"),
             "--judge", "llm-judge", "--judge_args", judge_args(server)]
        )  # fmt: skip
        assert code == 0
    out = {}
    for name, run in (("rules", random_run), ("llm", run_dir(root / "llm"))):
        assert main(["submit", str(run), "--out", str(root / f"{name}.tar.gz"), "--name", f"{name} model", "--org", "org"]) == 0
        out[name] = root / f"{name}.tar.gz"
    return out


def config_file(folder: Path, name: str, *pins: dict[str, Any]) -> Path:
    """The shipped leaderboard.yaml with these judges pinned."""
    config = yaml.safe_load(default_config_path().read_text(encoding="utf-8"))
    config["judges"] = list(pins)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def llm_pin(**changes: Any) -> dict[str, Any]:
    """The pin of the scripted judge: version, judge model and the built-in prompt's hash."""
    pin = {"judge": "llm-judge", "version": LLM_JUDGE_VERSION, "model": {"model": JUDGE_MODEL}, "prompt_sha256": load_prompts(None).sha256}
    pin.update(changes)
    return {k: v for k, v in pin.items() if v is not None}


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return config_file(tmp_path_factory.mktemp("config"), "pinned", {"judge": "rules"}, llm_pin())


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], list[str]]:
    """`vlmbench leaderboard verify ...`: (exit code, stdout lines, stderr lines)."""
    capsys.readouterr()
    code = main(["leaderboard", "verify", *args])
    captured = capsys.readouterr()
    return code, captured.out.strip().splitlines(), captured.err.strip().splitlines()


def repack(files: dict[str, bytes], path: Path) -> Path:
    """A bundle of these members, the manifest's hashes recomputed (as a careful forger would)."""
    manifest = json.loads(files["manifest.json"])
    manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in files.items() if n != "manifest.json"}
    files = {**files, "manifest.json": json.dumps(manifest).encode()}
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def run_tasks(bundle: Path) -> dict[str, dict[str, Any]]:
    """The tasks of a bundle's run (``run.json``), in its order: the task set is whatever ``--tasks all`` ran."""
    tasks: dict[str, dict[str, Any]] = json.loads(members(bundle)["run.json"])["tasks"]
    return tasks


def n_samples(bundle: Path, keep: Callable[[str, dict[str, Any]], bool] = lambda name, entry: True) -> int:
    """How many samples (so verdicts) the bundle's tasks hold, over the tasks ``keep`` selects."""
    return sum(int(entry["n_samples"]) for name, entry in run_tasks(bundle).items() if keep(name, entry))


def edit_results(files: dict[str, bytes], change: Callable[[dict[str, Any]], None]) -> dict[str, bytes]:
    results = json.loads(files["results.json"])
    change(results)
    return {**files, "results.json": json.dumps(results).encode()}


def edit_samples(files: dict[str, bytes], task: str, change: Callable[[list[dict[str, Any]]], None]) -> dict[str, bytes]:
    name = f"samples/{task}.jsonl"
    records = [json.loads(line) for line in files[name].decode().splitlines()]
    change(records)
    return {**files, name: "".join(json.dumps(r) + "\n" for r in records).encode()}


# --- bundles keep their judges ----------------------------------------------------------------------


def test_submit_keeps_each_tasks_headline_judge_in_the_manifest(bundles: dict[str, Path]) -> None:
    for name, judge in (("rules", "rules"), ("llm", "llm-judge")):
        files = members(bundles[name])
        manifest, results = json.loads(files["manifest.json"]), json.loads(files["results.json"])
        assert set(manifest["judges"]) == set(results["tasks"])
        for task, identity in manifest["judges"].items():
            headline = next(j for j in results["tasks"][task]["judges"] if j["headline"])
            assert identity == {k: v for k, v in headline.items() if k not in ("headline", "requests", "served_models")}
            assert identity["judge"] == judge
            # what the judge's server said it was is reported, not pinned: one count per verdict
            answered = sum(1 for line in files[f"samples/{task}.jsonl"].splitlines() if json.loads(line)["error"] is None)
            assert headline.get("served_models") == ({JUDGE_MODEL: answered} if judge == "llm-judge" else None)
    identity = json.loads(members(bundles["llm"])["manifest.json"])["judges"]["alignment-image"]
    assert identity["model"]["model"] == JUDGE_MODEL and identity["prompt_sha256"] == load_prompts(None).sha256


def test_a_rules_bundle_still_verifies(bundles: dict[str, Path], pinned: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for config in ((), ("--config", str(pinned))):
        code, out, err = verify(capsys, str(bundles["rules"]), *config)
        assert code == 0 and err == [] and len(out) == 1 and out[0].startswith(f"accepted: {bundles['rules']}: rules model (main)")
        assert "judged by" not in out[0]  # rules: the default, not named


def test_an_llm_judge_bundle_verifies_only_where_its_judge_is_pinned(
    bundles: dict[str, Path], pinned: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = verify(capsys, str(bundles["llm"]))  # the shipped config accepts rules only
    assert code == 1 and out == [] and len(err) == 1
    assert 'headline judge "llm-judge" is not allowed on this leaderboard (allowed: rules' in err[0]
    code, out, err = verify(capsys, str(bundles["llm"]), "--config", str(pinned))
    assert (
        code == 0
        and err == []
        and out
        == [
            f"accepted: {bundles['llm']}: llm model (main), submitted with vlmbench {json.loads(members(bundles['llm'])['manifest.json'])['vlmbench_version']}, "
            f"judged by llm-judge {LLM_JUDGE_VERSION} ({JUDGE_MODEL})"
        ]
    )


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        (llm_pin(model={"model": "other-model"}), 'model.model = "judge-model", but the leaderboard pins "other-model"'),
        (llm_pin(prompt_sha256="0" * 64), 'prompt_sha256 = "' + load_prompts(None).sha256[:20]),
        (llm_pin(version="1"), f'version = "{LLM_JUDGE_VERSION}", but the leaderboard pins "1"'),
        (llm_pin(model={"pretrained": JUDGE_MODEL}), "model.pretrained is not recorded"),
        (llm_pin(prompt_sha256=None), "llm-judge records prompt_sha256 but the leaderboard pins none"),
    ],
)
def test_another_judge_model_or_prompt_is_rejected_in_one_line(
    pin: dict[str, Any], message: str, bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path, "strict", {"judge": "rules"}, pin)
    code, out, err = verify(capsys, str(bundles["llm"]), "--config", str(config))
    assert code == 1 and out == [] and len(err) == 1, err
    first = next(iter(run_tasks(bundles["llm"])))  # verify names the first task whose judge is refused
    assert err[0].startswith(f'rejected: {bundles["llm"]}: results.json: tasks.{first}: headline judge "llm-judge": ') and message in err[0]


def test_forged_numbers_with_honest_verdicts_are_rejected(
    bundles: dict[str, Path], pinned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def inflate(results: dict[str, Any]) -> None:
        results["tasks"]["perception-image"]["metrics"]["accuracy"]["value"] = 0.93

    forged = repack(edit_results(members(bundles["llm"]), inflate), tmp_path / "numbers.tar.gz")
    code, _, err = verify(capsys, str(forged), "--config", str(pinned))
    assert code == 1 and len(err) == 1
    assert "results.json: tasks.perception-image.metrics.accuracy.value = 0.93 but the verdicts of llm-judge give 0.2" in err[0]


def test_a_verdict_marked_correct_against_its_target_is_rejected(
    bundles: dict[str, Path], pinned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def claim(records: list[dict[str, Any]]) -> None:
        wrong = next(r for r in records if r["verdicts"]["llm-judge"]["correct"] is False)
        wrong["verdicts"]["llm-judge"]["correct"] = True

    forged = repack(edit_samples(members(bundles["llm"]), "perception-text", claim), tmp_path / "correct.tar.gz")
    code, _, err = verify(capsys, str(forged), "--config", str(pinned))
    assert code == 1 and len(err) == 1
    assert "samples/perception-text.jsonl: sample" in err[0] and "says correct=True, but its answer 'A' against the target gives False" in err[0]


def test_missing_verdicts_and_a_manifest_that_disagrees_are_rejected(
    bundles: dict[str, Path], pinned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def drop(records: list[dict[str, Any]]) -> None:
        del records[3]["verdicts"]["llm-judge"]

    files = members(bundles["llm"])
    code, _, err = verify(capsys, str(repack(edit_samples(files, "alignment-text", drop), tmp_path / "drop.tar.gz")), "--config", str(pinned))
    assert (
        code == 1
        and len(err) == 1
        and "samples/alignment-text.jsonl: sample" in err[0]
        and "has no verdict of its headline judge llm-judge" in err[0]
    )
    manifest = json.loads(files["manifest.json"])
    manifest["judges"]["alignment-text"]["model"]["model"] = "other-model"
    code, _, err = verify(
        capsys, str(repack({**files, "manifest.json": json.dumps(manifest).encode()}, tmp_path / "m.tar.gz")), "--config", str(pinned)
    )
    assert code == 1 and len(err) == 1 and "manifest.json: judges differ from results.json's headline judges" in err[0]
    manifest["judges"]["alignment-text"]["prompt_sha256"] = "<b>"
    code, _, err = verify(
        capsys, str(repack({**files, "manifest.json": json.dumps(manifest).encode()}, tmp_path / "s.tar.gz")), "--config", str(pinned)
    )
    assert code == 1 and len(err) == 1 and "manifest.judges.alignment-text.prompt_sha256" in err[0]


# --- --rejudge ----------------------------------------------------------------------------------------


def test_rejudge_recomputes_the_verdicts_with_the_maintainers_judge(
    bundles: dict[str, Path], pinned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flipped: dict[str, str] = {}

    def forge(task: str) -> Callable[[list[dict[str, Any]]], None]:
        def change(records: list[dict[str, Any]]) -> None:
            # a wrong answer read as another wrong letter: every number stays the same, only --rejudge can tell
            record = next(r for r in records if r["target"] not in ("A", "B"))
            record["verdicts"]["llm-judge"]["parsed"] = record["parsed"] = "B"
            flipped[task] = record["id"]

        return change

    files = members(bundles["llm"])
    forged = repack(edit_samples(files, "perception-image", forge("perception-image")), tmp_path / "forged.tar.gz")
    # The same forgery in two tasks: the rejection counts the verdicts that differ in each.
    two = ("perception-image", "perception-text")
    forged_twice = repack(edit_samples(edit_samples(files, two[0], forge(two[0])), two[1], forge(two[1])), tmp_path / "twice.tar.gz")
    total = n_samples(bundles["llm"])
    code, out, _ = verify(capsys, str(forged), "--config", str(pinned))
    assert code == 0 and len(out) == 1  # the numbers hold: without --rejudge the forged verdict passes
    with scripted() as server:
        # The maintainer's own store: the forged bundles hold the same answers, so judging them again costs no call.
        rejudge = ("--config", str(pinned), "--rejudge", "--judge_args", judge_args(server), "--store", str(tmp_path / "judge.sqlite"))
        code, out, err = verify(capsys, str(bundles["llm"]), *rejudge)
        assert code == 0 and err == [] and out[0].startswith("accepted: ")
        assert out[1] == f"note: {bundles['llm']}: rejudged with llm-judge: all {total} verdicts agree with the submitted ones"
        sent = len(server.events())
        assert sent > 0  # judged again (identical judge prompts are sent once)
        code, out, err = verify(capsys, str(forged), *rejudge)
        assert (
            code == 1
            and out == []
            and err
            == [
                f"rejected: {forged}: rejudged with llm-judge: 1 of {total} verdicts differ from the submitted ones (perception-image 1); "
                f"e.g. {flipped['perception-image']}: submitted 'B', rejudged 'A' (at most 0.0% may differ)"
            ]
        )
        code, out, err = verify(capsys, str(forged), *rejudge, "--max_disagreement", "0.01")
        assert code == 0 and len(out) == 2 and f"rejudged with llm-judge: 1 of {total} verdicts differ" in out[1]
        code, out, err = verify(capsys, str(forged_twice), *rejudge)
        assert code == 1 and out == [] and len(err) == 1
        assert f": rejudged with llm-judge: 2 of {total} verdicts differ from the submitted ones (perception-image 1, perception-text 1); " in err[0]
        assert len(server.events()) == sent  # all from the store
        code, out, err = verify(capsys, str(bundles["llm"]), "--config", str(pinned), "--rejudge", "--judge_args", judge_args(server, "other-model"))
        assert code == 1 and len(err) == 1 and "--rejudge: your judge is not the one this leaderboard pins" in err[0] and "fix --judge_args" in err[0]
    code, _, err = verify(capsys, str(bundles["llm"]), "--judge_args", "backend=openai")
    assert code == 2 and len(err) == 1 and "add --rejudge" in err[0]


def test_bad_judges_config_is_one_line(bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for pin, message in (
        ({"judge": "llm-judge", "version": 1}, "judges[0]: version: 1 is a whole number, not text"),
        ({"judge": "llm-judge", "model": {"model": "m"}}, "judges[0]: 'version' is required"),
        ({"judge": "rules", "modle": {}}, "judges[0]: unknown key 'modle'"),
    ):
        config = config_file(tmp_path, "bad", pin)
        code, _, err = verify(capsys, str(bundles["rules"]), "--config", str(config))
        assert code == 2 and len(err) == 1 and message in err[0], err


def test_the_papers_classifiers_verify_with_one_pin_per_classifier(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    from vlmbench.testing.tiny_models import build_tiny_paper_classifier

    alignment = build_tiny_paper_classifier(tmp_path / "alignment", 3)
    perception = build_tiny_paper_classifier(tmp_path / "perception", 5, module_prefix=True)
    args = f"alignment={alignment},perception={perception}"
    out = tmp_path / "out"
    # general capability's answers are no classifier's: rules judge them (the second judge named)
    command = ["run", "--model", "random", "--tasks", "all", "--no_store", "--judge", "paper-classifier,rules", "--judge_args", args]
    assert main([*command, "--output_path", str(out)]) == 0
    assert main(["submit", str(run_dir(out)), "--out", str(tmp_path / "pc.tar.gz"), "--name", "pc"]) == 0

    def pin(kind: str, folder: Path) -> dict[str, Any]:
        return {
            "judge": "paper-classifier",
            "version": "1",
            "model": {kind: {"sha256": hashlib.sha256((folder / "epoch_10.pt").read_bytes()).hexdigest()}},
        }

    both = config_file(tmp_path, "both", {"judge": "rules"}, pin("safety", alignment), pin("multiple_choice", perception))
    code, lines, err = verify(capsys, str(tmp_path / "pc.tar.gz"), "--config", str(both), "--rejudge", "--judge_args", args)
    assert code == 0 and err == [], err
    short = {kind: pin(kind, folder)["model"][kind]["sha256"][:12] for kind, folder in (("safety", alignment), ("multiple_choice", perception))}
    tasks = run_tasks(tmp_path / "pc.tar.gz")
    # each classifier judges the tasks of its answer format; rules the rest (general capability, over-refusal's refusals);
    # the judge of the most tasks first, a tie in task order
    groups = [
        (f"paper-classifier 1 (sha256:{short[kind]})", sorted(t for t, e in tasks.items() if e["scorer"] == kind))
        for kind in ("safety", "multiple_choice")
    ]
    groups.append(("rules", sorted(t for t, e in tasks.items() if e["scorer"] not in ("safety", "multiple_choice"))))
    groups.sort(key=lambda group: (-len(group[1]), group[1][0]))
    assert lines[0].endswith("judged by " + "; ".join(f"{label}: {', '.join(names)}" for label, names in groups))  # a hash, never a path
    classified = n_samples(tmp_path / "pc.tar.gz", lambda name, entry: entry["scorer"] in ("safety", "multiple_choice"))
    assert lines[1].endswith(f"rejudged with paper-classifier: all {classified} verdicts agree with the submitted ones")
    one = config_file(tmp_path, "one", {"judge": "rules"}, pin("safety", alignment))
    code, _, err = verify(capsys, str(tmp_path / "pc.tar.gz"), "--config", str(one))
    assert code == 1 and len(err) == 1
    assert 'results.json: tasks.perception-image: headline judge "paper-classifier": model.safety is not recorded' in err[0]


# --- the site shows the judge ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(bundles: dict[str, Path], pinned: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both bundles added through the CLI, plus a copy of the llm entry whose judge model has a hostile name."""
    root = tmp_path_factory.mktemp("site")
    data = root / "data"
    assert main(["leaderboard", "add", str(bundles["rules"]), str(bundles["llm"]), "--data", str(data), "--config", str(pinned)]) == 0
    llm = next(p for p in data.iterdir() if json.loads((p / "metadata.json").read_text())["name"] == "llm model")
    hostile = data / "hostile__entry"
    shutil.copytree(llm, hostile)
    metadata = json.loads((hostile / "metadata.json").read_text())
    results = json.loads((hostile / "results.json").read_text())
    metadata["name"] = "hostile judge"
    for entry in results["tasks"].values():
        entry["judges"][0]["model"]["model"] = HOSTILE
    # the answers' replies named models (an API's dated versions behind an alias), one of them hostile text
    results["tasks"]["perception-image"]["served_models"] = {"api-model-2024-08-06": 1200, HOSTILE: 3}
    results["tasks"]["alignment-text"]["served_models"] = {"api-model-2024-08-06": 300}
    results["tasks"]["general-capability"]["judges"] = [{"judge": "rules", "name": "choice", "version": "1", "headline": True}]
    (hostile / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    (hostile / "results.json").write_text(json.dumps(results), encoding="utf-8")
    config = yaml.safe_load(default_config_path().read_text(encoding="utf-8"))
    del config["plots"]  # the judges are in the tables, the details and the page, not in the plots
    (root / "board.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    build_site(data, root / "out", root / "board.yaml")
    return root / "out"


def test_tables_name_the_judge_of_every_entry(site: Path) -> None:
    import csv

    rows = {r["model"]: r for r in csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text(encoding="utf-8")))}
    assert rows["rules model"]["judge"] == "rules" and rows["llm model"]["judge"] == f"llm-judge {LLM_JUDGE_VERSION} ({JUDGE_MODEL})"
    shown = "<img src=x onerror=alert(1)>?"  # one plain line: the bidi override is a '?'
    board = {r["metadata"]["name"]: r for r in json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))["rows"]}
    tasks = sorted(t for use in board["llm model"]["judges"] for t in use["tasks"])
    assert {"alignment-image", "alignment-text", "alignment-text-noimage", "general-capability", "perception-image", "perception-text"} <= set(tasks)
    model_judged = ", ".join(t for t in tasks if t != "general-capability")
    assert rows["hostile judge"]["judge"] == f"llm-judge {LLM_JUDGE_VERSION} ({shown}): {model_judged}; rules: general-capability"
    assert board["llm model"]["judges"] == [
        {"judge": "llm-judge", "version": LLM_JUDGE_VERSION, "model": JUDGE_MODEL, "prompt_sha256": load_prompts(None).sha256, "tasks": tasks}
    ]
    assert board["rules model"]["judges"] == [{"judge": "rules", "version": None, "model": None, "prompt_sha256": None, "tasks": tasks}]
    md = (site / "leaderboard.md").read_text(encoding="utf-8")
    assert (
        f"| _llm model_ (reference) (judge: llm-judge {LLM_JUDGE_VERSION} ({JUDGE_MODEL})) " in md and "| _rules model_ (reference) " in md
    )  # runs of a baseline
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;?" in md and "names its judge" in md
    html = (site / "index.html").read_text(encoding="utf-8")
    assert "<img src=x" not in html and "\u202e" not in html and "&lt;img src=x onerror=alert(1)&gt;?" in html


def test_tables_name_the_models_that_served_the_answers(site: Path) -> None:
    import csv

    served = "api-model-2024-08-06 (1,500 answers), <img src=x onerror=alert(1)>? (3 answers)"  # one plain line, most first
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text(encoding="utf-8")))}
    assert rows["hostile judge"]["served_by"] == served and rows["llm model"]["served_by"] == rows["rules model"]["served_by"] == ""
    board = {r["metadata"]["name"]: r for r in json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))["rows"]}
    assert board["hostile judge"]["served_models"] == {"api-model-2024-08-06": 1500, HOSTILE: 3}  # data, as the samples say
    assert board["llm model"]["served_models"] == {}  # a local model names none
    md = (site / "leaderboard.md").read_text(encoding="utf-8")
    assert "(served by: api-model-2024-08-06 (1,500 answers), &lt;img src=x onerror=alert(1)&gt;? (3 answers))" in md
    assert md.count("served by") == 1
    html = (site / "index.html").read_text(encoding="utf-8")
    assert html.count('<span class="tag served">served by: api-model-2024-08-06 (1,500 answers), &lt;img src=x') == 1
    assert "<dt>Served by</dt><dd>api-model-2024-08-06 (1,500 answers), &lt;img" in html and "<img src=x" not in html


def test_page_shows_the_judge_as_inert_text(browser: Any, site: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    browser.get((site / "index.html").resolve().as_uri())
    tags = {
        row.find_element(By.CSS_SELECTOR, "th.model a").text: [t.text for t in row.find_elements(By.CSS_SELECTOR, "th.model .tag.judge")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")
    }
    assert tags["rules model"] == [] and tags["llm model"] == [f"judge: llm-judge {LLM_JUDGE_VERSION} ({JUDGE_MODEL})"]
    assert tags["hostile judge"][0].startswith(f"judge: llm-judge {LLM_JUDGE_VERSION} (<img src=x onerror=alert(1)>?): alignment-")
    assert tags["hostile judge"][0].endswith("; rules: general-capability")
    assert browser.find_elements(By.CSS_SELECTOR, "#leaderboard img") == []  # the name stayed text
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018
    browser.find_element(By.LINK_TEXT, "llm model").click()
    detail = next(d for d in browser.find_elements(By.CSS_SELECTOR, "section.detail") if d.is_displayed())
    fields = {
        d.find_element(By.TAG_NAME, "dt").text: d.find_element(By.TAG_NAME, "dd").text for d in detail.find_elements(By.CSS_SELECTOR, ".meta > div")
    }
    assert fields["Judge"] == f"llm-judge {LLM_JUDGE_VERSION} ({JUDGE_MODEL})"
    overflow = browser.execute_script("var t = document.getElementById('leaderboard'); return t.parentNode.scrollWidth - t.parentNode.clientWidth;")
    assert overflow <= 0  # the judge note wraps inside the model column: the table still fits 1400 px


def test_a_line_of_served_models_names_the_five_that_served_most() -> None:
    from vlmbench_leaderboard.served import entry_served_models, served_text

    results = {"tasks": {"a": {"served_models": {f"m{i}": 10 + i for i in range(8)}}, "b": {"served_models": {"m0": 100}}}}
    counts = entry_served_models(results)
    assert list(counts)[:2] == ["m0", "m7"] and counts["m0"] == 110
    assert served_text(counts) == "m0 (110 answers), m7 (17 answers), m6 (16 answers), m5 (15 answers), m4 (14 answers), and 3 more (36 answers)"
