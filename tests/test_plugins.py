"""A third-party plugin package, pip-installed, adds a backend and a task with no change to vlmbench."""

from __future__ import annotations

from pathlib import Path

from conftest import load_results, vlmbench


def test_plugin_backend_and_task_are_listed(installed_plugin: None) -> None:
    models = vlmbench("ls", "models").stdout
    assert "modality-probe" in models and "example plugin: safe if it sees an image" in models
    tasks = vlmbench("ls", "tasks").stdout
    assert "arithmetic" in tasks and "example plugin task - small sums asked in text" in tasks


def test_plugin_task_and_backend_run(installed_plugin: None, tmp_path: Path) -> None:
    vlmbench("run", "--model", "modality-probe", "--tasks", "arithmetic", "--output_path", str(tmp_path))
    task = load_results(tmp_path)["tasks"]["arithmetic"]
    # The probe answers the first choice, "2": right only for 1 + 1, one of 16 sums.
    assert task["metrics"]["accuracy"]["value"] == 1 / 16 and task["metrics"]["n_samples"] == 16
    assert task["usage"] == {"prompt_tokens": 16, "completion_tokens": 16}


def test_modality_gap_of_a_model_that_judges_by_modality(installed_plugin: None, tmp_path: Path) -> None:
    vlmbench("run", "--model", "modality-probe", "--tasks", "alignment-image,alignment-text", "--output_path", str(tmp_path))
    results = load_results(tmp_path)
    assert results["tasks"]["alignment-image"]["metrics"]["recall_unsafe"]["value"] == 0.0
    assert results["tasks"]["alignment-text"]["metrics"]["recall_unsafe"]["value"] == 1.0
    gap = results["modality_gaps"]["alignment-text"]
    assert gap["overall"]["gap"] == 1.0 and gap["overall"]["ci_low"] == 1.0 and gap["overall"]["n_concepts"] == 75
    assert set(gap["by_category"]) == {"Hate", "Harassment", "Violence", "Self-harm", "Sexual", "Shocking",
                                       "Illegal activity", "Deception", "Public and personal health"}
    assert gap["by_category"]["Self-harm"]["n_concepts"] == 7

