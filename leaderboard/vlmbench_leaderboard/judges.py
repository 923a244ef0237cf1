"""Which judge made an entry's numbers: the headline judge of each task, the judges a leaderboard allows.

A task's ``judges`` in ``results.json`` list every judge that read its responses, headline first;
the headline judge's verdicts make the task's numbers. ``rules`` is each task's own rule scorer (a
results file without ``judges``, from before judges existed, was scored by rules). The
``judges:`` section of ``leaderboard.yaml`` lists the headline judges a leaderboard accepts, each
with the identity fields it pins (``version``, ``name``, ``model``, ``prompt_sha256``); a pinned
``model`` mapping must be contained in the recorded one (other recorded keys, such as the
endpoint's ``base_url``, are free).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RULES = "rules"
PINNED = ("name", "version", "model", "prompt_sha256")
# Identity fields a model judge records that a pin must fix: an unpinned one would accept any judge model or prompt.
MUST_PIN = ("version", "model", "prompt_sha256")
MODEL_NAME_KEYS = ("model", "pretrained", "hub_id", "name", "source")
MAX_LABEL = 80


@dataclass(frozen=True)
class JudgePin:
    """One headline judge a leaderboard accepts: its ``--judge`` name and the identity fields it pins."""

    judge: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


DEFAULT_PINS = (JudgePin(RULES),)


def parse_pins(raw: Any) -> tuple[JudgePin, ...]:
    """The ``judges:`` section (already schema-checked) as pins; absent: ``rules`` only."""
    if raw is None:
        return DEFAULT_PINS
    return tuple(JudgePin(item["judge"], {k: item[k] for k in PINNED if k in item}, item.get("description", "")) for item in raw)


def is_rules(judge: str, scorer: str | None = None) -> bool:
    """Whether a judge name means the task's own rule scorer (``rules``, or the scorer's own name)."""
    return judge == RULES or (scorer is not None and judge == scorer)


def headline_identity(task_entry: Mapping[str, Any]) -> dict[str, Any]:
    """The identity of a task's headline judge, without its call counts and the models its server said
    answered (what a run reports, not what the judge is); ``rules`` when none is recorded."""
    judges = task_entry.get("judges")
    if not isinstance(judges, list) or not judges:
        return {"judge": RULES}
    headline = next((j for j in judges if isinstance(j, dict) and j.get("headline") is True), judges[0])
    if not isinstance(headline, dict):
        raise ValueError("a task's judges entry is not an object")
    return {k: v for k, v in headline.items() if k not in ("headline", "requests", "served_models")}


def headline_identities(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Task -> headline judge identity, for the tasks that record their judges (what a bundle manifest keeps)."""
    tasks = results.get("tasks")
    return (
        {name: headline_identity(entry) for name, entry in sorted(tasks.items()) if isinstance(entry, dict) and entry.get("judges")}
        if isinstance(tasks, dict)
        else {}
    )


def _mismatch(pinned: Any, recorded: Any, where: str) -> str | None:
    """The first place a recorded identity value differs from the pinned one (a pinned mapping must be contained)."""
    if isinstance(pinned, Mapping):
        if not isinstance(recorded, Mapping):
            return f"{where} is {_shown(recorded)}, but the leaderboard pins a mapping"
        for key, value in pinned.items():
            if key not in recorded:
                return f"{where}.{key} is not recorded, but the leaderboard pins {_shown(value)}"
            found = _mismatch(value, recorded[key], f"{where}.{key}")
            if found:
                return found
        return None
    if pinned != recorded:
        return f"{where} = {_shown(recorded)}, but the leaderboard pins {_shown(pinned)}"
    return None


def pin_problem(pins: Sequence[JudgePin], identity: Mapping[str, Any], scorer: str | None = None) -> str | None:
    """Why a headline judge identity is not accepted by ``pins`` (one line), or None when a pin matches it.

    For a model judge every identity field of :data:`MUST_PIN` it records must be pinned; ``rules``
    is re-scored by the leaderboard itself, so its pin needs no fields.
    """
    judge = str(identity.get("judge"))
    rules = is_rules(judge, scorer)
    candidates = [p for p in pins if p.judge == judge or (rules and p.judge == RULES)]
    if not candidates:
        allowed = ", ".join(dict.fromkeys(p.judge for p in pins)) or "none"
        return f"headline judge {_shown(judge)} is not allowed on this leaderboard (allowed: {allowed}; see judges: in its leaderboard.yaml)"
    problems = []
    for pin in candidates:
        unpinned = [] if rules else [k for k in MUST_PIN if k in identity and k not in pin.fields]
        problem = (
            f"{judge} records {', '.join(unpinned)} but the leaderboard pins none; the maintainer must pin them in judges:"
            if unpinned
            else next((m for k, v in pin.fields.items() if (m := _mismatch(v, identity.get(k), k))), None)
        )
        if problem is None:
            return None
        problems.append(problem)
    more = f" (and {len(candidates) - 1} other pinned {judge} identities differ)" if len(candidates) > 1 else ""
    return f"headline judge {_shown(judge)}: {problems[0]}{more}"


def _shown(value: Any) -> str:
    """A value from a hostile file, as JSON on one line, shortened (the caller makes it terminal-safe)."""
    text = json.dumps(value, ensure_ascii=True, sort_keys=True)
    return text if len(text) <= 70 else text[:67] + "..."


# --- display ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeUse:
    """A headline judge of an entry and the tasks whose numbers it made."""

    judge: str
    version: str | None
    model: str | None
    prompt_sha256: str | None
    tasks: tuple[str, ...]

    @property
    def label(self) -> str:
        """``rules``, or name, version and judge model: ``llm-judge 1 (gpt-4o-mini)``."""
        if self.judge == RULES:
            return RULES
        text = " ".join(p for p in (self.judge, self.version) if p)
        return display(f"{text} ({self.model})" if self.model else text)

    def as_json(self) -> dict[str, Any]:
        """The use as ``leaderboard.json`` lists it."""
        return {"judge": self.judge, "version": self.version, "model": self.model, "prompt_sha256": self.prompt_sha256, "tasks": list(self.tasks)}


def display(text: str, limit: int = MAX_LABEL) -> str:
    """Third-party text as one plain line: every non-printable character a '?', length bounded."""
    clean = "".join(c if c.isprintable() else "?" for c in " ".join(str(text).split()))
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def model_name(identity: Mapping[str, Any]) -> str | None:
    """The judge model's name in an identity, when it has one: ``model.model`` (or ``pretrained``...),
    or for per-format classifiers the names of each (``model.safety.source``...)."""
    model = identity.get("model")
    if isinstance(model, str):
        return model
    if not isinstance(model, Mapping):
        return None
    for key in MODEL_NAME_KEYS:
        if isinstance(model.get(key), str) and model[key]:
            return _public_name(str(model[key]), model.get("sha256"))
    nested = [model_name({"model": v}) for _, v in sorted(model.items()) if isinstance(v, Mapping)]
    names = list(dict.fromkeys(n for n in nested if n))
    return ", ".join(names) if names else None


def _public_name(name: str, sha256: Any) -> str:
    """A model name as the site shows it: a local path (the submitter's disk) becomes its checkpoint hash, else its last part."""
    if not name.startswith(("/", "./", "../", "~")) and "\\" not in name:
        return name
    if isinstance(sha256, str) and sha256:
        return f"sha256:{sha256[:12]}"
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or "local"


def entry_judges(results: Mapping[str, Any]) -> tuple[JudgeUse, ...]:
    """The headline judges of an entry's tasks, grouped by identity, in task order (the most used first)."""
    tasks = results.get("tasks")
    groups: dict[tuple[Any, ...], list[str]] = {}
    for task, entry in sorted(tasks.items()) if isinstance(tasks, Mapping) else ():
        identity = headline_identity(entry) if isinstance(entry, Mapping) else {"judge": RULES}
        judge = RULES if is_rules(str(identity.get("judge")), str(entry.get("scorer", ""))) else str(identity.get("judge"))
        key = (
            (judge, None, None, None)
            if judge == RULES
            else (judge, _text(identity.get("version")), model_name(identity), _text(identity.get("prompt_sha256")))
        )
        groups.setdefault(key, []).append(str(task))
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    return tuple(JudgeUse(key[0], key[1], key[2], key[3], tuple(names)) for key, names in ordered)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def judge_text(uses: Sequence[JudgeUse]) -> str:
    """One line naming the judge of every number: ``rules``, or each judge with its tasks when there are several."""
    if len(uses) == 1:
        return uses[0].label
    return "; ".join(f"{u.label}: {', '.join(display(t, 40) for t in u.tasks)}" for u in uses)


def rules_only(uses: Sequence[JudgeUse]) -> bool:
    """Whether every number of the entry comes from the tasks' rule scorers (the default, shown without a note)."""
    return all(u.judge == RULES for u in uses)
