"""Run-wide overrides of task settings: ``--protocol``, ``--gen_kwargs``, ``--system_instruction``,
``--options_file`` and ``--limit``.

An override becomes part of the task's resolved fields, so it enters the task's config hash (the
results say the task ran with other settings, and the leaderboard calls it stale) and the key of
every stored response (a response to other settings or another system prompt is never reused).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from vlmbench.errors import UserError
from vlmbench.taskconfig import TaskConfig, task_schema

EXAMPLE = "e.g. --gen_kwargs max_new_tokens=64,temperature=0.7,do_sample=true"

# Named generation protocols (``--protocol``): settings laid over every task's ``generation_kwargs``
# (``--gen_kwargs`` goes over them). ``paper``: the UnsafeConcepts study's sampling, seeded by ``--seed``.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper": {"do_sample": True, "temperature": 1.0, "top_p": 0.9, "max_new_tokens": 512},
}


def protocol_generation(protocol: str) -> dict[str, Any]:
    """The generation settings of a named protocol; an unknown name is a one-line UserError."""
    if protocol not in PROTOCOLS:
        from vlmbench.pluginmanager import did_you_mean

        raise UserError(f"--protocol: unknown protocol '{protocol}'{did_you_mean(protocol, PROTOCOLS)}; valid: {', '.join(PROTOCOLS)}")
    return dict(PROTOCOLS[protocol])


def is_default_protocol(protocol: str, gen_kwargs: Mapping[str, Any], system_instruction: str | None) -> bool:
    """Whether a run decodes as the tasks say: the default protocol, no ``--gen_kwargs``, no system prompt
    (recorded as ``config.default_protocol`` in run.json and results.json)."""
    return protocol == "default" and not gen_kwargs and not system_instruction


def _generation_schema() -> dict[str, Any]:
    schema: dict[str, Any] = task_schema()["$defs"]["fields"]["generation_kwargs"]
    return schema


def _coerce(text: str) -> Any:
    """``true``/``false``, an integer, a number, else the text itself."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def parse_gen_kwargs(value: str | Mapping[str, Any] | None, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``k=v,k2=v2`` (or a mapping) as checked generation settings; a mistake is a one-line UserError.

    The keys are the task file's ``generation_kwargs`` keys; ``stop`` is accepted for ``until``, and
    one stop string may be given as text. ``base``: the protocol's settings they go over (its
    ``do_sample`` counts when checking a temperature)."""
    if isinstance(value, Mapping):
        items = {str(k): v for k, v in value.items()}
    else:
        items = {}
        for item in filter(None, (part.strip() for part in (value or "").split(","))):
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise UserError(f"--gen_kwargs: '{item}' is not key=value; {EXAMPLE}")
            if key.strip() in items:
                raise UserError(f"--gen_kwargs: '{key.strip()}' is given twice; give each setting once")
            items[key.strip()] = _coerce(text.strip())
    if "stop" in items:
        if "until" in items:
            raise UserError("--gen_kwargs: stop and until are the same setting, given twice; give one of them")
        items["until"] = items.pop("stop")
    if isinstance(items.get("until"), str):
        items["until"] = [items["until"]]
    schema = _generation_schema()
    allowed = list(schema["properties"])
    for key, item in items.items():
        if key not in allowed:
            from vlmbench.pluginmanager import did_you_mean

            raise UserError(f"--gen_kwargs: unknown setting '{key}'{did_you_mean(key, allowed)}; valid: {', '.join(allowed)}")
        import jsonschema

        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator({"type": "object", **schema}).iter_errors({key: item}))
        if error is not None:
            raise UserError(f"--gen_kwargs: {key}={item!r} is invalid ({error.message}); {EXAMPLE}")
    if items.get("temperature", 0) > 0 and {**(base or {}), **items}.get("do_sample") is not True:
        raise UserError(f"--gen_kwargs: temperature={items['temperature']} needs do_sample=true (without it decoding is greedy); add do_sample=true")
    return items


def apply_overrides(
    tasks: Sequence[TaskConfig],
    gen_kwargs: Mapping[str, Any],
    system_instruction: str | None,
    protocol: str = "default",
    options_file: str | None = None,
) -> list[TaskConfig]:
    """The tasks with the protocol's settings, then ``gen_kwargs``, merged over their ``generation_kwargs``,
    the system instruction set, and ``options_file`` given to their ``multiple_choice_options`` step;
    each task is returned unchanged when there is nothing to override.

    Every override is a task field, so it enters the config hash (``protocol`` as a field of its own)."""
    generation = {**protocol_generation(protocol), **gen_kwargs}
    if not generation and not system_instruction and protocol == "default" and not options_file:
        return list(tasks)
    out = []
    for task in tasks:
        fields = dict(task.fields)
        if generation:
            fields["generation_kwargs"] = {**fields.get("generation_kwargs", {}), **generation}
        if protocol != "default":
            fields["protocol"] = protocol
        if system_instruction:
            fields["system_instruction"] = system_instruction
        if options_file:
            fields["process_docs"] = [_with_options_file(step, options_file) for step in fields.get("process_docs", [])]
        out.append(TaskConfig(task.name, task.path, fields, task.variant))
    return out


def _with_options_file(step: Any, options_file: str) -> Any:
    """A ``process_docs`` entry with ``options_file`` set when it is the ``multiple_choice_options`` step."""
    name, args = (step, {}) if isinstance(step, str) else next(iter(step.items()))
    if name != "multiple_choice_options":
        return step
    return {name: {**(args or {}), "options_file": options_file}}


def documents_kept(limit: int | float | None, available: int) -> int:
    """How many of ``available`` documents ``--limit`` keeps: N, or a fraction (rounded up, at least one)."""
    if limit is None:
        return available
    if isinstance(limit, float):
        return min(available, max(1, math.ceil(available * limit)))
    return min(available, limit)
