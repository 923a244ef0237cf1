"""Loads a task's dataset: built-in generated sets, local copies, or the Hugging Face Hub.

Images are never decoded up front: :class:`DocTable` keeps the non-image columns in memory and
decodes an image only when a batch asks for it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from vlmbench.data.builtin import SYNTHETIC_NOTE, builtin_dataset
from vlmbench.data.concepts import ConceptCatalog
from vlmbench.errors import UserError

# ``--data_files HUB_ID=LOCAL_PATH`` fills this: hub ids served from a local copy.
LOCAL_COPIES: dict[str, str] = {}


@dataclass
class DatasetInfo:
    """What a results file records about a dataset."""

    path: str
    name: str | None
    split: str
    revision: str | None
    fingerprint: str
    num_rows: int
    synthetic: bool
    note: str = ""
    loaded_from: str | None = None


@dataclass
class DocTable:
    """Rows of a task's data without their images, plus lazy access to each row's image.

    Every row has ``concept``, ``category`` and ``label`` (``unsafe``/``safe``) when the data has
    concepts, and ``_source``/``_row`` pointing back to where its image lives.
    """

    rows: list[dict[str, Any]]
    sources: list[Any]
    infos: list[DatasetInfo] = field(default_factory=list)
    _encoded: dict[tuple[int, str], Any] = field(default_factory=dict)
    _hashes: dict[tuple[int, int, str], str] = field(default_factory=dict)

    def image_sha256(self, row: dict[str, Any], column: str = "image") -> str:
        """sha256 of the image's encoded bytes as stored, without decoding it."""
        import datasets

        source, index = row["_source"], row["_row"]
        if (source, index, column) not in self._hashes:
            if (source, column) not in self._encoded:
                self._encoded[source, column] = self.sources[source].cast_column(column, datasets.Image(decode=False))
            value = self._encoded[source, column][index][column]
            data = value.get("bytes") if isinstance(value, dict) else None
            if data is None and isinstance(value, dict) and value.get("path"):
                data = Path(value["path"]).read_bytes()
            if data is None:
                raise UserError(f"dataset column '{column}' of {self.infos[source].path} holds no image; set doc_to_image to an image column")
            self._hashes[source, index, column] = hashlib.sha256(data).hexdigest()
        return self._hashes[source, index, column]

    def image(self, row: dict[str, Any], column: str = "image") -> Image.Image:
        """Decode the image of ``row`` (the only place images are read)."""
        image = self.sources[row["_source"]][row["_row"]][column]
        if not isinstance(image, Image.Image):
            raise UserError(f"dataset column '{column}' of {self.infos[row['_source']].path} holds no image; set doc_to_image to an image column")
        return image


def _load_hf(path: str, name: str | None, split: str, revision: str | None) -> tuple[Any, str]:
    """Load one split with the ``datasets`` library; returns the dataset and where it came from."""
    import datasets

    local = LOCAL_COPIES.get(path, path)
    local_path = Path(local).expanduser()
    try:
        if local_path.exists():
            if (local_path / "dataset_info.json").is_file() or (local_path / "dataset_dict.json").is_file():
                loaded = datasets.load_from_disk(str(local_path))
                dataset = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
            elif local_path.is_file():
                kind = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}.get(local_path.suffix)
                if kind is None:
                    raise UserError(f"dataset file {local_path}: unsupported type '{local_path.suffix}'; use parquet, jsonl or csv")
                dataset = datasets.load_dataset(kind, data_files=str(local_path), split="train")
            else:
                dataset = datasets.load_dataset(str(local_path), name, split=split)
            return dataset, str(local_path)
        token = os.environ.get("HF_TOKEN") or None
        return datasets.load_dataset(path, name, split=split, revision=revision, token=token), "hub"
    except UserError:
        raise
    except Exception as exc:  # datasets raises many library-specific types (DatasetNotFoundError, OSError, ...)
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise UserError(
            f"cannot load dataset '{path}' split '{split}': {reason}. Check the id and split; if it is gated, request "
            f"access on the Hub and set HF_TOKEN; or point to a local copy with --data_files {path}=DIR"
        ) from None


def _normalise(row: dict[str, Any], label: str) -> dict[str, Any]:
    """Give every row ``concept``/``category``/``label`` regardless of the source's column names."""
    if "concept" not in row and "unsafe_concept" in row:
        row["concept"] = row.pop("unsafe_concept")
    if "concept" in row:
        row.setdefault("label", label)
    return row


def load_docs(config: Any, catalog: ConceptCatalog | None) -> DocTable:
    """Load the task's dataset (and its safe controls, when configured) into a :class:`DocTable`."""
    specs: list[tuple[dict[str, Any], str]] = [
        (
            {
                "dataset_path": config.get("dataset_path"),
                "dataset_name": config.get("dataset_name"),
                "test_split": config.get("test_split", "train"),
                "dataset_revision": config.get("dataset_revision"),
            },
            "unsafe",
        )
    ]
    if config.get("safe_controls"):
        specs.append((dict(config.get("safe_controls")), "safe"))
    table = DocTable(rows=[], sources=[])
    for source_index, (spec, default_label) in enumerate(specs):
        path, split = spec["dataset_path"], spec.get("test_split", "train")
        beside_yaml = config.resolve_path(path) if not path.startswith("builtin:") else None
        if beside_yaml is not None and not Path(path).expanduser().exists() and beside_yaml.exists():
            path = str(beside_yaml)  # a task's own data, shipped next to its YAML
        if path.startswith("builtin:"):
            dataset = _load_builtin(path, catalog)
            loaded_from, synthetic = "generated", True
        else:
            dataset, loaded_from = _load_hf(path, spec.get("dataset_name"), split, spec.get("dataset_revision"))
            synthetic = False
        columns = [c for c in dataset.column_names if not _is_image_column(dataset, c)]
        for index, values in enumerate(dataset.select_columns(columns).to_list() if columns else [{}] * len(dataset)):
            row = _normalise(dict(values), default_label)
            row["_source"], row["_row"] = source_index, index
            table.rows.append(row)
        table.sources.append(dataset)
        table.infos.append(
            DatasetInfo(
                path=path,
                name=spec.get("dataset_name"),
                split=split,
                revision=spec.get("dataset_revision"),
                fingerprint=getattr(dataset, "_fingerprint", ""),
                num_rows=len(dataset),
                synthetic=synthetic,
                note=config.get("dataset_note", SYNTHETIC_NOTE if synthetic else ""),
                loaded_from=loaded_from,
            )
        )
    return table


def _load_builtin(path: str, catalog: ConceptCatalog | None) -> Any:
    import datasets

    return datasets.load_from_disk(str(builtin_dataset(path.removeprefix("builtin:"), catalog)))


def _is_image_column(dataset: Any, column: str) -> bool:
    import datasets

    return isinstance(dataset.features.get(column), datasets.Image)
