"""A YAML reader for files from others (task files): plain data only, bounded, no surprises.

It refuses what makes YAML dangerous or ambiguous as a data format: aliases (``*name``, the
"billion laughs" expansion), duplicate keys (which would silently keep the last), files over a
size limit and nesting deeper than a limit. Tags beyond plain data are refused by ``SafeLoader``.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path
from typing import Any

import yaml

from vlmbench.safefiles import FileRefused, read_regular_file

MAX_BYTES = 1_000_000
MAX_DEPTH = 32


class YamlRefused(ValueError):
    """The text is valid YAML but not acceptable as a data file; the message says why and where."""


def _refuse_key(key_node: Any, key: Any, seen: set[Any]) -> None:
    """Raise :class:`YamlRefused` for a mapping key that is not plain text or repeats one in ``seen``."""
    if isinstance(key, (list, dict)):
        raise YamlRefused(f"line {key_node.start_mark.line + 1}: a mapping key must be plain text")
    if key in seen:
        raise YamlRefused(f"line {key_node.start_mark.line + 1}: duplicate key '{key}'; keep only one")
    seen.add(key)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects aliases, duplicate keys and deep nesting while composing (pure Python)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise YamlRefused(_alias_message(event))
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlRefused(_depth_message(self.peek_event()))  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            _refuse_key(key_node, self.construct_object(key_node, deep=True), seen)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)

_CLoader: Any = getattr(yaml, "CSafeLoader", None)  # libyaml's parser, when PyYAML was built with it


def _alias_message(event: Any) -> str:
    return f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed; write the value out"


def _depth_message(event: Any) -> str:
    return f"line {event.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep; flatten the file"


if _CLoader is not None:

    class _StrictCLoader(_CLoader):  # type: ignore[misc]
        """libyaml's SafeLoader with the duplicate-key check; aliases and depth are refused by
        :func:`_check_events` before anything is composed (libyaml composes in C)."""

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                _refuse_key(key_node, self.construct_object(key_node, deep=True), seen)
            return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]

    _StrictCLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictCLoader.construct_mapping)


def _check_events(text: str) -> None:
    """Refuse aliases and nesting deeper than :data:`MAX_DEPTH` from libyaml's event stream."""
    depth = 0
    for event in yaml.parse(text, Loader=_CLoader):
        if isinstance(event, yaml.AliasEvent):
            raise YamlRefused(_alias_message(event))
        if isinstance(event, (yaml.CollectionStartEvent, yaml.ScalarEvent)) and depth + 1 > MAX_DEPTH:
            raise YamlRefused(_depth_message(event))  # as deep as the composer counts: every node, scalars too
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


# The last texts parsed (task-file sized ones), for the task files every command reads again: at most 16 MB.
_PARSED: OrderedDict[str, Any] = OrderedDict()
_KEEP_PARSED, _KEEP_CHARS = 256, 64_000


def load_yaml_text(text: str) -> Any:
    """Parse YAML text as plain data; raises :class:`YamlRefused` or ``yaml.YAMLError``. The caller gets
    its own copy: the same text parsed again (the task files are read by every command) is not parsed twice."""
    parsed = _PARSED.get(text)
    if parsed is None:
        parsed = _parse(text)
        if len(text) > _KEEP_CHARS:
            return parsed
        _PARSED[text] = parsed
        if len(_PARSED) > _KEEP_PARSED:
            _PARSED.popitem(last=False)
    return copy.deepcopy(parsed)


def _parse(text: str) -> Any:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlRefused(f"larger than {MAX_BYTES // 1000} kB; task files are small, keep data in a dataset file")
    if _CLoader is None:
        return yaml.load(text, Loader=_StrictLoader)
    _check_events(text)
    return yaml.load(text, Loader=_StrictCLoader)


def load_yaml_file(path: Path) -> Any:
    """Parse a YAML file as plain data (see :func:`load_yaml_text`); anything but a regular file (a FIFO, a
    device) is refused without blocking (:func:`vlmbench.safefiles.read_regular_file`); I/O errors propagate."""
    try:
        raw = read_regular_file(path, MAX_BYTES, "YAML file")
    except FileRefused as exc:
        if exc.reason.startswith("larger than"):
            raise YamlRefused(f"larger than {MAX_BYTES // 1000} kB; task files are small, keep data in a dataset file") from None
        raise YamlRefused(exc.reason) from None
    return load_yaml_text(raw.decode("utf-8"))
