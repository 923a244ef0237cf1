"""The model card of an ``align`` output folder: ``model_card.json`` (for tools) and ``README.md`` (for people).

It records what a result depends on: the method, the base model, the data split (the split file and
its sha256), the judge that rewarded responses (its identity: name, version, model, checkpoint hash),
every hyper-parameter, the seed, the library versions, the training steps and time and, after the
evaluation, the before/after comparison.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CARD_JSON = "model_card.json"
CARD_MD = "README.md"
FORMAT = 1

METHOD_TEXT = {
    "grpo": "GRPO (online RL): several responses sampled per prompt, each rewarded by a judge of the response; "
    "advantages relative to the group; KL penalty to the starting model",
    "rloo": "RLOO (online RL): as GRPO, with a leave-one-out baseline; KL penalty to the starting model",
    "sft": "supervised fine-tuning on the study's answer templates",
    "dpo": "direct preference optimisation: chosen = the right template, rejected = the other one",
}


def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_card(out_dir: Path, card: dict[str, Any]) -> None:
    """Write both files (the JSON first: the markdown is made from it)."""
    card = {"format": FORMAT, **card}
    (out_dir / CARD_JSON).write_text(json.dumps(card, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    (out_dir / CARD_MD).write_text(markdown(card), encoding="utf-8")


def read_card(out_dir: Path) -> dict[str, Any] | None:
    """The folder's card, or None."""
    path = out_dir / CARD_JSON
    if not path.is_file():
        return None
    card: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return card


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def markdown(card: dict[str, Any]) -> str:
    """The README.md of the folder."""
    base = card.get("base_model", {})
    method = card.get("method", "?")
    data = card.get("data", {})
    training = card.get("training", {})
    lines = [
        "---",
        f"base_model: {_json(base.get('pretrained'))}",
        "library_name: peft" if card.get("adapter") else "library_name: transformers",
        f"tags: [vlmbench, unsafeconcepts, safety-alignment, {method}]",
        "---",
        "",
        f"# {method.upper()} safety alignment of {base.get('pretrained')}",
        "",
        f"Trained by `vlmbench align` (vlmbench {card.get('versions', {}).get('vlmbench')}) on {card.get('created')}.",
        "",
        f"- **Method**: {METHOD_TEXT.get(method, method)}.",
        f"- **Output**: {'a LoRA adapter on the language model (load it over the base model)' if card.get('adapter') else 'the full fine-tuned model'}"
        ", with the processor next to it.",
        f"- **Data**: `{data.get('variant')}` data, the study's split (`{data.get('split_file')}`, sha256 `{data.get('split_sha256')}`): "
        f"{_json(data.get('counts'))}. Test images are never trained on.",
    ]
    if card.get("judge"):
        lines.append(f"- **Reward**: {_json(card['judge'])}")
    if card.get("templates"):
        lines.append(f"- **Answer templates**: {_json(card['templates'])}")
    lines += [
        f"- **Hyper-parameters**: {_json(card.get('hyperparameters'))}",
        f"- **Seed**: {card.get('seed')}",
        f"- **Versions**: {_json(card.get('versions'))}",
        f"- **Training**: {training.get('steps')} steps in {training.get('seconds')} s ({training.get('seconds_per_step')} s/step)"
        + (f", resumed from {training['resumed_from']}" if training.get("resumed_from") else ""),
        "",
        "## Evaluate it",
        "",
        "```bash",
        str(card.get("evaluate_with", "")),
        "```",
        "",
        "The `hf` backend loads the adapter over the base model; its identity includes the adapter's sha256, so the",
        "response store never mixes the base model's answers with the tuned model's.",
    ]
    comparison = card.get("evaluation")
    if comparison:
        lines += ["", "## Before and after", "", comparison.get("markdown", "")]
    lines += ["", "## Command", "", "```bash", str(card.get("command", "")), "```", ""]
    return "\n".join(lines)
