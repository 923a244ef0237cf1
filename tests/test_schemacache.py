"""Compiled schema validators kept in the cache folder judge as fastjsonschema.compile does."""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import fastjsonschema
import pytest

from vlmbench.results import results_schema
from vlmbench.schemacache import compiled_validator

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2019-09/schema",
    "type": "object",
    "required": ["name", "stat"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z]+$"},
        "stat": {"$ref": "#/$defs/stat"},
        "when": {"type": "string", "format": "date-time"},
    },
    "$defs": {"stat": {"type": "object", "required": ["value"], "properties": {"value": {"type": "number", "minimum": 0, "maximum": 1}}}},
}

DOCUMENTS = [
    {"name": "abc", "stat": {"value": 0.5}},
    {"name": "abc", "stat": {"value": 1.5}},
    {"name": "ABC", "stat": {"value": 0.5}},
    {"name": "abc"},
    {"name": "abc", "stat": {"value": 0.5}, "when": "yesterday"},
    {"name": "abc", "stat": {"value": 0.5}, "when": "2026-11-27T02:00:00+00:00"},
    [],
]


def _verdict(validate, document) -> str:  # type: ignore[no-untyped-def]
    try:
        validate(copy.deepcopy(document))
    except fastjsonschema.JsonSchemaValueException as exc:
        return f"invalid: {exc.message}"
    return "valid"


def _cached_files(cache: Path) -> list[Path]:
    return sorted((cache / "validators").glob("*.py"))


def test_a_cached_validator_judges_as_a_fresh_compile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMBENCH_CACHE_DIR", str(tmp_path))
    fresh = fastjsonschema.compile(copy.deepcopy(SCHEMA))
    first = compiled_validator(SCHEMA)  # compiles and keeps the code
    assert len(_cached_files(tmp_path)) == 1
    again = compiled_validator(SCHEMA)  # imports the kept module
    expected = [_verdict(fresh, d) for d in DOCUMENTS]
    assert expected[0] == "valid" and expected[1].startswith("invalid") and expected[4].startswith("invalid") and expected[5] == "valid"
    assert [_verdict(first, d) for d in DOCUMENTS] == expected
    assert [_verdict(again, d) for d in DOCUMENTS] == expected
    # Formats off: as fastjsonschema's own option; a second module, named by the options.
    loose = compiled_validator(SCHEMA, use_formats=False)
    assert _verdict(loose, DOCUMENTS[4]) == "valid" and len(_cached_files(tmp_path)) == 2
    assert SCHEMA["properties"]["stat"] == {"$ref": "#/$defs/stat"}  # the caller's schema is never edited


def test_a_damaged_cached_module_is_written_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLMBENCH_CACHE_DIR", str(tmp_path))
    compiled_validator(SCHEMA)
    [kept] = _cached_files(tmp_path)
    kept.write_text("this is not python (\n")
    validate = compiled_validator(SCHEMA)
    assert _verdict(validate, DOCUMENTS[1]).startswith("invalid") and _verdict(validate, DOCUMENTS[0]) == "valid"
    assert "def " in kept.read_text()


def test_an_unwritable_cache_folder_compiles_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("VLMBENCH_CACHE_DIR", str(blocker))  # validators/ cannot be made under a file
    validate = compiled_validator(SCHEMA)
    assert [_verdict(validate, d) for d in DOCUMENTS[:3]] == [
        "valid",
        "invalid: data.stat.value must be smaller than or equal to 1",
        "invalid: data.name must match pattern ^[a-z]+$",
    ]


def test_the_results_schema_from_the_cache_in_a_new_process(tmp_path: Path) -> None:
    """The results of a run are checked by the cached module in a later process, with the same verdicts."""
    results = {"schema_version": 1, "tasks": {}}
    expected = _verdict(fastjsonschema.compile(copy.deepcopy(results_schema())), results)
    script = (
        "import json, sys; from vlmbench.results import validate_results; from vlmbench.errors import UserError\n"
        "try:\n    validate_results(json.loads(sys.argv[1])); print('valid')\n"
        "except UserError as exc:\n    print('invalid', exc)\n"
    )
    env = {**os.environ, "VLMBENCH_CACHE_DIR": str(tmp_path)}
    outputs = [
        subprocess.run([sys.executable, "-c", script, json.dumps(results)], env=env, capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert len(_cached_files(tmp_path)) == 1
    assert outputs[0] == outputs[1] and outputs[0].startswith("invalid") and expected.split(": ", 1)[1] in outputs[0]


# -- the quick check of task files --


def _jsonschema_errors(schema: dict, document: object) -> list[str]:
    from vlmbench.taskconfig import task_validator

    return [e.message for e in task_validator()(schema).iter_errors(document)]


def _alike(value: object, rng: random.Random) -> object:
    """Another value of the same kind (most keep the document valid)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice([0, 1, 2, 3, 64, 10**6])
    if isinstance(value, float):
        return rng.choice([0.0, 0.5, 1.0])
    if isinstance(value, str):
        return rng.choice(["ok-name", "other.name_2", "A sentence, with words.", "{{ concept }}", "x"])
    if isinstance(value, list):
        return rng.sample(value, len(value))
    return value


def _mutants(document: dict, rng: random.Random, count: int) -> list[object]:
    """Documents near a valid one: a field's value replaced, a field added or dropped, deep values changed."""
    odd = [None, True, False, 0, 1, 1.0, -1, 2.5, "", " ", "x\n", "Name", "a$b", "ok-name", "all\n", [], {}, ["a"], [""], [1], {"a": 1}, {"": ""}]
    found: list[object] = []
    for _ in range(count):
        mutant = copy.deepcopy(document)
        for _ in range(rng.choice([1, 1, 2, 3])):
            target: object = mutant
            while isinstance(target, (dict, list)) and target and rng.random() < 0.6:
                keys = list(target) if isinstance(target, dict) else list(range(len(target)))
                child = target[rng.choice(keys)]  # type: ignore[index]
                if not isinstance(child, (dict, list)) or not child:
                    break
                target = child
            if isinstance(target, dict) and target:
                action = rng.random()
                key = rng.choice(list(target))
                if action < 0.35:
                    target[key] = _alike(target[key], rng)
                elif action < 0.7:
                    target[key] = rng.choice(odd)
                elif action < 0.85:
                    del target[key]
                else:
                    target[rng.choice(["extra", "tasks", "scorer", "modality", "metric", "max_new_tokens"])] = rng.choice(odd)
            elif isinstance(target, list) and target:
                at = rng.randrange(len(target))
                target[at] = _alike(target[at], rng) if rng.random() < 0.5 else rng.choice(odd)
        found.append(mutant)
    return found


def test_the_quick_check_never_passes_what_jsonschema_refuses() -> None:
    """Thousands of task documents near the built-in ones: whatever the quick check passes, jsonschema
    passes too (the other way round it may ask jsonschema, whose verdict is then the one given)."""
    import yaml

    from vlmbench.schemacache import quick_validator
    from vlmbench.taskconfig import task_schema

    schema = task_schema()
    documents = [yaml.safe_load(p.read_text()) for p in sorted((Path(__file__).parent.parent / "tasks").glob("*.yaml"))]
    rng = random.Random(7)
    checked = passed = refused = 0
    for definition, partial in (("task", False), ("task", True), ("group", False)):
        target = {"$defs": schema["$defs"], **{k: v for k, v in schema["$defs"][definition].items() if not (partial and k == "required")}}
        quick = quick_validator(target)
        assert quick is not None
        for document in [d for d in documents if ("group" in d and "task" not in d) == (definition == "group")]:
            for mutant in [document, *_mutants(document, rng, 300)]:
                verdict = quick(mutant)
                errors = _jsonschema_errors(target, mutant)
                assert not (verdict and errors), (mutant, errors)
                checked += 1
                passed += verdict
                refused += bool(errors)
    assert checked > 5000 and passed > 1000 and refused > 1500, (checked, passed, refused)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string", "format": "date-time"}}},
        {"type": "object", "unevaluatedProperties": False},
        {"type": "array", "prefixItems": [{"type": "string"}]},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/x", "minLength": 2}}, "$defs": {"x": {"type": "string"}}},
        {"type": "object", "properties": {"a": {"$ref": "https://example.com/schema.json"}}},
        {"type": "object", "properties": {"a": {"enum": [1, "one"]}}},
        {"type": "object", "properties": {"a": {"const": 1}}},
        {"type": "string", "pattern": "^a$|^b$"},
        {"type": "string", "pattern": "[$]"},
        {"type": "array", "items": [{"type": "string"}]},
        {"type": "object", "properties": {"a": True}},
    ],
)
def test_schemas_read_differently_by_the_two_libraries_get_no_quick_check(schema: dict) -> None:
    from vlmbench.schemacache import quick_validator

    assert quick_validator(schema) is None


def test_a_trailing_newline_in_a_name_fails_both_checks() -> None:
    from vlmbench.schemacache import quick_validator

    schema = {"type": "object", "properties": {"task": {"type": "string", "pattern": "^[a-z]+$"}, "n": {"type": "integer"}}}
    quick = quick_validator(schema)
    assert quick is not None
    assert quick({"task": "abc", "n": 2}) is True
    assert quick({"task": "abc\n"}) is False and _jsonschema_errors(schema, {"task": "abc\n"})
    assert quick({"n": True}) is False and _jsonschema_errors(schema, {"n": True})
    # 1.0 is an integer to both.
    assert quick({"n": 1.0}) is True and not _jsonschema_errors(schema, {"n": 1.0})
    # A tuple (a library caller's document; YAML gives lists) is an array to fastjsonschema, not to jsonschema: asked.
    listed = {"type": "object", "properties": {"names": {"type": "array", "items": {"type": "string"}}}}
    checked = quick_validator(listed)
    assert checked is not None and checked({"names": ["a"]}) is True
    assert checked({"names": ("a",)}) is False and _jsonschema_errors(listed, {"names": ("a",)})


def test_loading_the_built_in_tasks_never_imports_jsonschema() -> None:
    script = "import sys; from vlmbench.registry import discover; discover(); print('jsonschema' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.stdout.strip() == "False"
