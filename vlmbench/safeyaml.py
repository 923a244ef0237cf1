"""A YAML reader for files from others (task files): plain data only, bounded, no surprises.

It refuses what makes YAML dangerous or ambiguous as a data format: aliases (``*name``, the
"billion laughs" expansion), duplicate keys (which would silently keep the last), files over a
size limit and nesting deeper than a limit. Tags beyond plain data are refused by ``SafeLoader``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1_000_000
MAX_DEPTH = 32


class YamlRefused(ValueError):
    """The text is valid YAML but not acceptable as a data file; the message says why and where."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects aliases, duplicate keys and deep nesting while composing."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise YamlRefused(f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed; write the value out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlRefused(f"line {mark.line + 1}: nested more than {MAX_DEPTH} levels deep; flatten the file")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                raise YamlRefused(f"line {key_node.start_mark.line + 1}: a mapping key must be plain text")
            if key in seen:
                raise YamlRefused(f"line {key_node.start_mark.line + 1}: duplicate key '{key}'; keep only one")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)


def load_yaml_text(text: str) -> Any:
    """Parse YAML text as plain data; raises :class:`YamlRefused` or ``yaml.YAMLError``."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlRefused(f"larger than {MAX_BYTES // 1000} kB; task files are small, keep data in a dataset file")
    return yaml.load(text, Loader=_StrictLoader)


def load_yaml_file(path: Path) -> Any:
    """Parse a YAML file as plain data (see :func:`load_yaml_text`); I/O errors propagate."""
    with open(path, "rb") as handle:
        raw = handle.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise YamlRefused(f"larger than {MAX_BYTES // 1000} kB; task files are small, keep data in a dataset file")
    return load_yaml_text(raw.decode("utf-8"))
