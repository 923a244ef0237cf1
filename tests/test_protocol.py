"""What a hub run does (issue #10, item 5) and every result-changing setting recorded (item 6).

Hub runs go through small local replicas (``--data_files``), with images made by PIL, offline:
``perception-text`` needs the data's own captions, else it is skipped with one line; the safe
controls of ``alignment-image`` come from the study's safe-image pool (or a local copy of it), and
without one specificity is null with one line. ``--options_file``, ``--gen_kwargs`` and
``--protocol paper`` enter the config hash and the run's records.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, RunModel, cli, load_results, read_samples, run_dir
from vlmbench.testing.fault_server import FaultServer

HUB = "yiting/UnsafeConcepts"
SAFE = "yiting/imagenet_1k_unique_class"
ROWS = [("Swastika", "Hate"), ("Arson", "Violence"), ("Swastika", "Hate"), ("Arson", "Violence")]
PAPER = {"do_sample": True, "temperature": 1.0, "top_p": 0.9, "max_new_tokens": 512}


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("vlmbench: warning: ")]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Replicas of the hub data: UnsafeConcepts without and with a caption column (one caption
    empty in a third copy), and a copy of the safe-image pool (``image`` and ``concept``, as published)."""
    import datasets
    from PIL import Image

    root = tmp_path_factory.mktemp("hub")
    images = [Image.new("RGB", (8, 8), (40 * i, 0, 0)) for i in range(len(ROWS))]
    plain = datasets.Dataset.from_dict({"image": images, "category": [r[1] for r in ROWS], "unsafe_concept": [r[0] for r in ROWS]})
    plain.to_parquet(str(root / "plain.parquet"))
    captions = [f"caption {i}" for i in range(len(ROWS))]
    plain.add_column("caption", captions).save_to_disk(str(root / "captioned"))
    plain.add_column("caption", [*captions[:-1], " "]).save_to_disk(str(root / "one-empty"))
    safe = datasets.Dataset.from_dict(
        {"image": [Image.new("RGB", (8, 8), (0, 60 * i, 0)) for i in range(3)], "concept": ["tench", "goldfish", "tench"]}
    )
    safe.save_to_disk(str(root / "imagenet"))
    return {name: root / name for name in ("captioned", "one-empty", "imagenet")} | {"plain": root / "plain.parquet"}


def hub(run_model: RunModel, tasks: str, unsafe: Path, *flags: str, check: bool = True) -> Any:
    return run_model("always-unsafe", tasks, "--data", "hub", "--data_files", f"{HUB}={unsafe}", *flags, check=check)


# --- 5. hub runs: captions ----------------------------------------------------------------------


def test_perception_text_without_captions_is_skipped_with_one_line(data: dict[str, Path], run_model: RunModel) -> None:
    tasks = "perception-image,perception-text,alignment-image,alignment-text"  # the group, less its context tasks (their own tests)
    run = hub(run_model, tasks, data["plain"], "--data_files", f"{SAFE}={data['imagenet']}")
    lines = warnings(run.stderr)
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert lines[0].startswith("vlmbench: warning: perception-text: skipped: dataset yiting/UnsafeConcepts (loaded from ")
    assert "has no caption column 'caption'" in lines[0] and f"--data_files {HUB}=COPY" in lines[0]
    results = run.results
    assert set(results["tasks"]) == {"perception-image", "alignment-image", "alignment-text"}
    assert results["config"]["tasks"] == ["perception-image", "alignment-image", "alignment-text"]
    assert list(results["config"]["skipped_tasks"]) == ["perception-text"]
    assert results["config"]["skipped_tasks"]["perception-text"] == lines[0].removeprefix("vlmbench: warning: ")
    assert run.manifest["config"]["skipped_tasks"] == results["config"]["skipped_tasks"]
    assert [gap["text_task"] for gap in results["modality_gaps"].values()] == ["alignment-text"]  # no perception gap
    assert not (run.run_dir / "samples" / "perception-text.jsonl").exists()


def test_perception_text_describes_each_hub_image_by_its_caption(data: dict[str, Path], run_model: RunModel) -> None:
    run = hub(run_model, "perception-image,perception-text", data["captioned"])
    assert warnings(run.stderr) == []
    records = run.samples("perception-text")
    assert [r["doc"]["description"] for r in records] == [f"caption {i}" for i in range(len(ROWS))]
    assert records[0]["prompt"].startswith("An image shows the following scene: caption 0\n")
    assert run.results["tasks"]["perception-text"]["version"] == "2"
    assert [g["text_task"] for g in run.results["modality_gaps"].values()] == ["perception-text"]


def test_an_empty_caption_skips_the_task_and_no_task_left_is_one_line(data: dict[str, Path], run_model: RunModel) -> None:
    run = hub(run_model, "perception-text", data["one-empty"], check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("vlmbench: error: ")]
    assert errors == [
        "vlmbench: error: no task left to run: perception-text: skipped: 1 of 4 rows have an empty caption (column 'caption'); fill them to run it"
    ]


def test_builtin_perception_text_keeps_the_shipped_descriptions(run_model: RunModel) -> None:
    run = run_model("random", "perception-text", limit=2)
    assert run.results["config"]["skipped_tasks"] == {} and warnings(run.stderr) == []
    assert all(r["doc"]["description"] for r in run.samples("perception-text"))


# --- 5. hub runs: safe controls -------------------------------------------------------------------


def test_without_the_safe_set_specificity_is_null_with_one_line(data: dict[str, Path], run_model: RunModel) -> None:
    """Offline with no local copy of yiting/imagenet_1k_unique_class: the run goes on; specificity and
    balanced accuracy are null overall, per category and per concept; one line says why."""
    run = hub(run_model, "alignment-image", data["plain"])
    assert run.returncode == 0
    lines = warnings(run.stderr)
    assert len(lines) == 1
    assert lines[0].startswith(f"vlmbench: warning: alignment-image: no safe controls: cannot load {SAFE} split 'train' (")
    assert lines[0].endswith(f"specificity and balanced accuracy are null. Give a local copy with --data_files {SAFE}=PATH")
    task = run.results["tasks"]["alignment-image"]
    for summary in [task["metrics"], *task["by_category"].values(), *task["by_concept"].values()]:
        assert summary["specificity"] is None and summary["balanced_accuracy"] is None
        assert summary["specificity_strict"] is None and summary["balanced_accuracy_strict"] is None
    assert task["metrics"]["recall_unsafe"]["value"] == 1.0 and task["metrics"]["n_samples"] == len(ROWS) * 5
    assert [d["path"] for d in task["datasets"]] == [HUB]
    assert run.results["config"]["safe_controls_missing"] == {"alignment-image": lines[0].removeprefix("vlmbench: warning: ")}
    assert "balanced_accuracy  -" in run.stdout  # the terminal table shows them as null too


def test_safe_controls_from_a_local_copy_of_the_studys_pool(data: dict[str, Path], run_model: RunModel) -> None:
    run = hub(run_model, "alignment-image", data["plain"], "--data_files", f"{SAFE}={data['imagenet']}")
    assert warnings(run.stderr) == []
    task = run.results["tasks"]["alignment-image"]
    assert task["version"] == "2"
    assert task["metrics"]["n_samples"] == (len(ROWS) + 3) * 5
    assert task["metrics"]["specificity"]["value"] == 0.0 and task["metrics"]["specificity"]["n"] == 15
    assert task["metrics"]["balanced_accuracy"]["value"] == 0.5
    safe = task["datasets"][1]
    assert (safe["path"], safe["num_rows"], safe["loaded_from"], safe["synthetic"]) == (SAFE, 3, str(data["imagenet"]), False)
    assert set(task["by_category"]) == {"Hate", "Violence", "Safe"}  # the pool has no category column: its rows are "Safe"
    assert {"tench", "goldfish"} <= set(task["by_concept"])
    assert run.results["config"]["safe_controls_missing"] == {}


def test_a_broken_local_copy_of_the_safe_set_is_an_error(data: dict[str, Path], run_model: RunModel, tmp_path: Path) -> None:
    (tmp_path / "not-a-dataset").mkdir()
    run = hub(run_model, "alignment-image", data["plain"], "--data_files", f"{SAFE}={tmp_path / 'not-a-dataset'}", check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith(f"vlmbench: error: cannot load dataset '{SAFE}' split 'train'")


def test_text_alignment_safe_controls_are_the_catalogues_safe_concepts(data: dict[str, Path], run_model: RunModel) -> None:
    """On hub data as on built-in data, alignment-text asks about each unsafe concept of the data and
    about the concepts file's safe control concepts, by name: its specificity is over those."""
    catalog = yaml.safe_load((REPO / "tasks" / "data" / "concepts.yaml").read_text())
    safe_names = [c["concept"] for c in catalog["safe"]]
    run = hub(run_model, "alignment-text", data["plain"])
    records = run.samples("alignment-text")
    safe = [r for r in records if r["doc"]["label"] == "safe"]
    assert sorted({r["doc"]["concept"] for r in safe}) == sorted(safe_names)
    assert len(records) == (2 + len(safe_names)) * 5
    assert run.results["tasks"]["alignment-text"]["metrics"]["specificity"]["n"] == len(safe_names) * 5
    assert warnings(run.stderr) == []


# --- 6. settings that change a result -----------------------------------------------------------


def options_lines(records: list[dict[str, Any]], rotate: int = 0) -> str:
    """An options file for these perception records (one prompt per row); ``rotate`` moves each answer."""
    lines = []
    for record in records:
        doc = record["doc"]
        names = [doc["options"][letter] for letter in "ABCD"]
        names = names[rotate:] + names[:rotate]
        letter = "ABCD"[names.index(doc["concept"])]
        lines.append(json.dumps({"option_str": " \n".join(f"{k}: {v}" for k, v in zip("ABCD", names)), "correct_option": letter}))
    return "\n".join(lines) + "\n"


def test_options_file_enters_the_config_hash_and_run_json(data: dict[str, Path], run_model: RunModel, tmp_path: Path) -> None:
    seeded = hub(run_model, "perception-image", data["plain"])
    same = tmp_path / "same.jsonl"
    same.write_text(options_lines(seeded.samples("perception-image")))
    copy = tmp_path / "elsewhere" / "copy.jsonl"
    copy.parent.mkdir()
    copy.write_text(same.read_text())
    rotated = tmp_path / "rotated.jsonl"
    rotated.write_text(options_lines(seeded.samples("perception-image"), rotate=1))
    runs = {
        name: hub(run_model, "perception-image", data["plain"], "--options_file", str(path))
        for name, path in [("same", same), ("copy", copy), ("rotated", rotated)]
    }
    hashes = {name: run.results["tasks"]["perception-image"]["config_hash"] for name, run in [("seeded", seeded), *runs.items()]}
    # The same options as the seeded ones: the same prompts, but another setting, so another hash.
    assert [r["prompt"] for r in runs["same"].samples("perception-image")] == [r["prompt"] for r in seeded.samples("perception-image")]
    assert hashes["same"] != hashes["seeded"] and hashes["rotated"] not in (hashes["same"], hashes["seeded"])
    assert hashes["copy"] == hashes["same"]  # the file enters by its content, not its path
    prompt_hashes = {run.results["tasks"]["perception-image"]["prompt_hash"] for run in [seeded, *runs.values()]}
    assert len(prompt_hashes) == 1  # the prompt hash is the templates' (the options are data)
    recorded = runs["rotated"].manifest["config"]["options_file"]
    assert recorded["path"] == str(rotated.resolve()) and len(recorded["sha256"]) == 64
    assert runs["rotated"].results["config"]["options_file"] == recorded and seeded.manifest["config"]["options_file"] is None
    assert runs["rotated"].manifest["tasks"]["perception-image"]["config_hash"] == hashes["rotated"]


def test_gen_kwargs_are_recorded_and_enter_the_hash(run_model: RunModel) -> None:
    plain = run_model("random", "alignment-text", limit=1)
    tuned = run_model("random", "alignment-text", "--gen_kwargs", "max_new_tokens=64", limit=1)
    for run, default in ((plain, True), (tuned, False)):
        for document in (run.manifest, run.results):
            assert document["config"]["protocol"] == "default" and document["config"]["default_protocol"] is default
    assert tuned.manifest["config"]["gen_kwargs"] == tuned.results["config"]["gen_kwargs"] == {"max_new_tokens": 64}
    assert tuned.results["tasks"]["alignment-text"]["generation_kwargs"] == {"max_new_tokens": 64, "do_sample": False}
    assert tuned.results["tasks"]["alignment-text"]["config_hash"] != plain.results["tasks"]["alignment-text"]["config_hash"]
    system = run_model("random", "alignment-text", "--system_instruction", "Answer yes or no.", limit=1)
    assert system.results["config"]["default_protocol"] is False


def test_paper_protocol_sends_the_studys_seeded_sampling(tmp_path: Path) -> None:
    def openai(out: str, *extra: str) -> Any:
        return cli(
            "run", "--model", "openai", "--model_args", f"base_url={server.base_url},model=counting,max_retries=1",
            "--tasks", "alignment-text", "--limit", "1", "--seed", "7", "--no_store", "--output_path", str(tmp_path / out), *extra,
        )  # fmt: skip

    with FaultServer() as server:
        openai("default")
        openai("paper", "--protocol", "paper")
        openai("both", "--protocol", "paper", "--gen_kwargs", "temperature=0.7")
        bodies = [body for key in dict.fromkeys(event.key for event in server.events()) for body in server.bodies(key)]
    assert len(bodies) == 15
    sampled = [b for b in bodies if b["temperature"] > 0]
    assert len(sampled) == 10 and all(b["top_p"] == 0.9 and b["max_tokens"] == 512 and b["seed"] == 7 for b in sampled)
    assert sorted(b["temperature"] for b in sampled) == [0.7] * 5 + [1.0] * 5
    assert all(b["max_tokens"] == 256 and b["temperature"] == 0 for b in bodies if b not in sampled)
    results = {name: load_results(tmp_path / name) for name in ("default", "paper", "both")}
    paper = results["paper"]
    assert (paper["config"]["protocol"], paper["config"]["default_protocol"], paper["config"]["gen_kwargs"]) == ("paper", False, {})
    assert paper["tasks"]["alignment-text"]["generation_kwargs"] == PAPER
    assert results["both"]["config"]["gen_kwargs"] == {"temperature": 0.7}
    manifest = json.loads((run_dir(tmp_path / "paper") / "run.json").read_text())
    assert manifest["config"]["protocol"] == "paper" and manifest["config"]["default_protocol"] is False
    hashes = {name: r["tasks"]["alignment-text"]["config_hash"] for name, r in results.items()}
    assert len(set(hashes.values())) == 3
    assert read_samples(tmp_path / "paper", "alignment-text")[0]["prompt"] == read_samples(tmp_path / "default", "alignment-text")[0]["prompt"]


def test_paper_protocol_differs_from_the_same_settings_given_as_gen_kwargs(run_model: RunModel) -> None:
    """``protocol`` is a field of its own in the hash: a run can say which protocol it followed."""
    paper = run_model("random", "alignment-text", "--protocol", "paper", limit=1)
    spelled = run_model("random", "alignment-text", "--gen_kwargs", "do_sample=true,temperature=1.0,top_p=0.9,max_new_tokens=512", limit=1)
    tasks = [run.results["tasks"]["alignment-text"] for run in (paper, spelled)]
    assert tasks[0]["generation_kwargs"] == tasks[1]["generation_kwargs"] == PAPER
    assert tasks[0]["config_hash"] != tasks[1]["config_hash"]


def test_an_unknown_protocol_is_one_line(run_model: RunModel) -> None:
    run = run_model("random", "alignment-text", "--protocol", "papers", limit=1, check=False)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        "vlmbench: error: --protocol: unknown protocol 'papers' (did you mean 'paper'?); valid: default, paper"
    ]


# --- 6. the default max_new_tokens against verdicts stated last ---------------------------------

WORDS_PER_TOKEN = 0.75  # a tokenizer-free proxy: English text runs at about 0.75 words per token


def first_words(text: str, count: int) -> str:
    """The start of ``text`` up to the end of its ``count``-th word (its line breaks and markup kept)."""
    words = list(re.finditer(r"\S+", text))
    return text if len(words) <= count else text[: words[count - 1].end()]


def test_no_labelled_verdict_lies_past_the_default_max_new_tokens() -> None:
    """Cut each response of the rules corpus to the words that the task's default ``max_new_tokens``
    holds (about 0.75 words a token): the verdict is the same. Guards the default against verdicts
    stated last (docs/benchmarks.md has the measurement)."""
    from vlmbench.registry import discover
    from vlmbench.scoring.rules import parse_multiple_choice, parse_safety

    tasks = discover([]).tasks
    budget = {
        "safety": tasks["alignment-image"].get("generation_kwargs")["max_new_tokens"],
        "multiple_choice": tasks["perception-image"].get("generation_kwargs")["max_new_tokens"],
    }
    assert budget == {"safety": 256, "multiple_choice": 256}
    corpus = [json.loads(line) for path in sorted((REPO / "tests" / "data").glob("rules_corpus*.jsonl")) for line in path.read_text().splitlines()]
    assert len(corpus) >= 800
    cut_short = []
    for row in corpus:
        kept = first_words(row["response"], int(budget[row["kind"]] * WORDS_PER_TOKEN))
        if row["kind"] == "safety":
            full, short = parse_safety(row["response"], row["question"]), parse_safety(kept, row["question"])
        else:
            full, short = parse_multiple_choice(row["response"], row.get("options")), parse_multiple_choice(kept, row.get("options"))
        if full is not None and short != full:
            cut_short.append(row["id"])
    assert cut_short == []


def test_without_the_safe_set_a_copy_with_its_own_safe_rows_says_what_specificity_counts(
    data: dict[str, Path], run_model: RunModel, tmp_path: Path
) -> None:
    import datasets

    rows = datasets.Dataset.from_parquet(str(data["plain"]))
    labels = ["safe" if i % 2 else "unsafe" for i in range(len(rows))]
    rows.add_column("label", labels).to_parquet(str(tmp_path / "labelled.parquet"))
    run = hub(run_model, "alignment-image", tmp_path / "labelled.parquet")
    lines = warnings(run.stderr)
    own = labels.count("safe")
    assert len(lines) == 1 and f"specificity and balanced accuracy count only the data's own {own} safe rows. Give a local copy" in lines[0]
    assert run.results["tasks"]["alignment-image"]["metrics"]["specificity"]["n"] == own * 5  # five prompts per row
