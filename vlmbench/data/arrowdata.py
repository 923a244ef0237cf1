"""A loaded dataset as vlmbench reads it: an Arrow table with its features, fingerprint and files.

Every dataset is loaded by the ``datasets`` library (``load_dataset``, ``load_from_disk``), which builds
or finds its Arrow files. :class:`ArrowData` is what the rest of vlmbench reads of the result: the rows
without their images, one image cell at a time (its stored bytes and/or path, never decoded here), the
features of each column and the files the table is mapped from. The same view can be opened from those
Arrow files alone (:meth:`ArrowData.from_files`), without importing ``datasets``: that is how a run
reads data whose load was remembered (:mod:`vlmbench.data.loadrecords`).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from typing import Any

PLAIN_TYPES = frozenset({"Value", "ClassLabel", "Image"})
"""Features whose Python values are those pyarrow gives: the rows of a dataset with only these (and lists
of them) read the same from the Arrow files as through ``datasets``, which decodes others (``Json``)."""
LIST_TYPES = frozenset({"List", "LargeList", "Sequence"})


@dataclass
class ArrowData:
    """One split of a dataset: ``table`` (a ``pyarrow.Table``), ``features`` (``datasets.Features.to_dict()``),
    ``fingerprint`` (``datasets``' own) and ``files`` (the Arrow files the table is mapped from; empty
    when it is held in memory). ``dataset``: the ``datasets.Dataset`` it was read from, if any."""

    table: Any
    features: dict[str, Any]
    fingerprint: str
    files: list[str]
    dataset: Any = None

    @classmethod
    def of_dataset(cls, dataset: Any) -> ArrowData:
        """The view of a ``datasets.Dataset``."""
        if getattr(dataset, "_indices", None) is not None:  # a selection of rows: the table as the rows are
            dataset = dataset.flatten_indices()
        files = [str(f["filename"]) for f in dataset.cache_files or [] if f.get("filename")]
        return cls(dataset.data.table, dataset.features.to_dict(), dataset._fingerprint, files, dataset)

    @classmethod
    def from_files(cls, files: list[str], features: dict[str, Any], fingerprint: str) -> ArrowData:
        """The view of a dataset's Arrow files (as ``datasets`` writes them: IPC streams), memory-mapped in
        order; ``ValueError`` unless each is a regular file whose own features (see :func:`file_features`)
        are ``features``, in the order of its columns."""
        import pyarrow as pa

        tables = []
        for name in files:
            if not stat.S_ISREG(os.stat(name).st_mode):  # a FIFO would block the map
                raise ValueError(f"{name} is not a regular file")
            table = pa.ipc.open_stream(pa.memory_map(name)).read_all()
            if _schema_features(table.schema) != features or list(table.column_names) != list(features):
                raise ValueError(f"{name} holds other features than {list(features)}")
            tables.append(table)
        return cls(pa.concat_tables(tables) if len(tables) > 1 else tables[0], features, fingerprint, list(files))

    @property
    def column_names(self) -> list[str]:
        """The dataset's columns, in order."""
        return list(self.table.column_names)

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def rows(self, columns: list[str]) -> list[dict[str, Any]]:
        """Every row's values of ``columns`` as Python values, in order (as ``Dataset.to_list()`` gives them)."""
        if not columns:
            return [{} for _ in range(len(self))]
        if self.dataset is not None:
            rows: list[dict[str, Any]] = self.dataset.select_columns(columns).to_list()
            return rows
        return list(self.table.select(columns).to_pylist())

    def cell(self, index: int, column: str) -> Any:
        """The stored value of one image cell: a dict of its encoded ``bytes`` and/or ``path``; nothing is decoded."""
        return self.table.column(column)[index].as_py()

    def column_table(self, column: str) -> Any:
        """A table of the one column (its buffers are the dataset's own: see :mod:`vlmbench.data.mapped`)."""
        return self.table.select([column])

    def is_image(self, column: str) -> bool:
        """Whether ``column`` is an image column (``datasets.Image``)."""
        feature = self.features.get(column)
        return isinstance(feature, dict) and feature.get("_type") == "Image"

    def image_mode(self, column: str) -> str | None:
        """The colour mode the dataset's feature asks its images to be decoded to (None: as stored)."""
        feature = self.features.get(column)
        mode = feature.get("mode") if isinstance(feature, dict) else None
        return mode if isinstance(mode, str) else None

    def describe(self, column: str) -> str:
        """The feature of ``column`` in words, for error messages (e.g. ``Value(string)``)."""
        feature = self.features.get(column)
        if not isinstance(feature, dict):
            return "nothing"
        kind = str(feature.get("_type", "?"))
        if "dtype" in feature:
            return f"{kind}({feature['dtype']})"
        inner = feature.get("feature")
        return f"{kind}({self._describe(inner)})" if isinstance(inner, dict) else kind

    @staticmethod
    def _describe(feature: dict[str, Any]) -> str:
        return f"{feature.get('_type', '?')}({feature['dtype']})" if "dtype" in feature else str(feature.get("_type", "?"))

    def plain(self) -> bool:
        """Whether every column reads the same from the Arrow files as through ``datasets`` (see :data:`PLAIN_TYPES`)."""
        return all(_plain(feature) for feature in self.features.values())


def file_features(name: str) -> Any:
    """The features ``datasets`` wrote into an Arrow file's schema (None when it holds none or cannot be read)."""
    import pyarrow as pa

    try:
        if not stat.S_ISREG(os.stat(name).st_mode):
            return None
        with pa.memory_map(name) as source:
            return _schema_features(pa.ipc.open_stream(source).schema)
    except (OSError, ValueError, pa.ArrowException):
        return None


def _schema_features(schema: Any) -> Any:
    """``datasets``' features as its Arrow files record them (``huggingface`` schema metadata), or None."""
    try:
        return json.loads((schema.metadata or {})[b"huggingface"])["info"]["features"]
    except (KeyError, TypeError, ValueError, RecursionError):
        return None


def _plain(feature: Any) -> bool:
    if not isinstance(feature, dict):
        return False
    kind = feature.get("_type")
    if kind in PLAIN_TYPES:
        return True
    return kind in LIST_TYPES and _plain(feature.get("feature"))
