"""The JSON writers of records, request keys and run files give what json.dumps gives."""

from __future__ import annotations

import json
import math

import pytest

from vlmbench.jsontext import compact_encoder, outline

VALUES = [
    None,
    True,
    0,
    -7,
    10**30,
    1.5,
    -0.0,
    1e-300,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    "plain",
    'quote " backslash \\ tab \t newline \n',
    "\u2028\u2029\x00\x1f\x7f",
    "中文 हिन्दी العربية 😀",
    "\ud800 lone surrogate",
    [],
    {},
    [1, [2, [3, []]], {"a": {}}],
    {"b": 1, "a": [1.0, "x", None], "c": {"z": True, "y": {"deep": [{"x": 1}]}}},
    {"task": "alignment-image", "index": 3, "doc": {"concept": "Knife", "label": "unsafe"}, "choices": ["Yes", "No"], "parsed": None},
    {7: "int key", 2.5: "float key", True: "bool key", None: "none key"},
    (1, 2, ("nested", "tuple")),
]


@pytest.mark.parametrize("sort_keys", [False, True])
def test_compact_encoder_gives_what_json_dumps_gives(sort_keys: bool) -> None:
    dumps = compact_encoder(sort_keys=sort_keys)
    for value in VALUES:
        if sort_keys and isinstance(value, dict) and any(not isinstance(k, str) for k in value):
            continue  # keys of mixed types cannot be sorted, by json.dumps either
        assert dumps(value) == json.dumps(value, ensure_ascii=False, sort_keys=sort_keys), value


def test_compact_encoder_refuses_what_json_cannot_write() -> None:
    dumps = compact_encoder()
    with pytest.raises(TypeError, match="set"):
        dumps({"x": {1, 2}})
    # A failed value leaves nothing behind: the next one encodes as usual.
    assert dumps({"x": [1, 2]}) == '{"x": [1, 2]}'


def test_outline_parses_to_the_same_value() -> None:
    for value in VALUES:
        text = outline(value)
        expected = json.loads(json.dumps(value))
        got = json.loads(text)
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got)
            continue
        assert got == expected, value


def test_outline_indents_containers_and_keeps_innermost_ones_on_a_line() -> None:
    results = {
        "schema_version": 1,
        "tasks": {"alignment-image": {"metrics": {"accuracy": {"value": 0.5, "n": 10, "ci": None}}, "metric_list": ["accuracy"]}},
        "empty": {},
    }
    assert outline(results) == (
        "{\n"
        '  "schema_version": 1,\n'
        '  "tasks": {\n'
        '    "alignment-image": {\n'
        '      "metrics": {\n'
        '        "accuracy": {"value": 0.5, "n": 10, "ci": null}\n'
        "      },\n"
        '      "metric_list": ["accuracy"]\n'
        "    }\n"
        "  },\n"
        '  "empty": {}\n'
        "}"
    )
    # Non-ASCII text is written as it is, as the run files always were.
    assert outline({"concept": "卍", "names": ["Hakenkreuz", "卍"]}) == '{\n  "concept": "卍",\n  "names": ["Hakenkreuz", "卍"]\n}'
