"""Loads a task's dataset: built-in generated sets, local copies, or the Hugging Face Hub.

Images are never decoded up front: :class:`DocTable` keeps the non-image columns in memory and
decodes an image only when a batch asks for it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from vlmbench.backend import inert_line
from vlmbench.cache import cache_dir
from vlmbench.data import images
from vlmbench.data.arrowdata import ArrowData
from vlmbench.data.builtin import SYNTHETIC_NOTE, builtin_dataset
from vlmbench.data.concepts import ConceptCatalog
from vlmbench.data.hashcache import ImageHashes, file_identity, files_identity
from vlmbench.data.images import BadImage
from vlmbench.data.loadrecords import LoadRecords, copy_identity, load_key
from vlmbench.data.mapped import PageReleaser, release_table_pages
from vlmbench.errors import TaskSkipped, UserError
from vlmbench.forked import no_progress_monitor

# ``--data_files HUB_ID=LOCAL_PATH`` fills this: hub ids served from a local copy.
LOCAL_COPIES: dict[str, str] = {}
_SERIALS = itertools.count()


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
    sources: list[ArrowData]
    infos: list[DatasetInfo] = field(default_factory=list)
    _hashes: dict[tuple[int, int, str], str] = field(default_factory=dict)
    _kept: dict[tuple[int, str], ImageHashes | None] = field(default_factory=dict)
    _files: dict[int, str | None] = field(default_factory=dict)  # per source: the identity of its Arrow files
    _roots: dict[int, tuple[Path, ...]] = field(default_factory=dict)  # per source: where its image files may be (image_roots)
    _pages: PageReleaser = field(default_factory=PageReleaser)  # lets go of mapped pages already read (see data.mapped)
    serial: int = field(default_factory=lambda: next(_SERIALS))  # unique in this process (``id()`` is reused once freed)
    safe_controls_missing: str | None = None  # why the task's safe-control dataset could not be loaded (then none are scored)

    def _cell(self, row: dict[str, Any], column: str) -> Any:
        """The encoded image cell of ``row`` (bytes and/or path), read without decoding anything."""
        source, index = row["_source"], row["_row"]
        data = self.sources[source]
        if column not in data.column_names:
            raise UserError(f"dataset {self.infos[source].path} has no column '{column}'; set doc_to_image to an image column")
        if not data.is_image(column):
            raise UserError(f"dataset {self.infos[source].path}: column '{column}' holds {data.describe(column)}, not images")
        cell = data.cell(index, column)
        if data.files and isinstance(cell, dict) and isinstance(cell.get("bytes"), bytes) and self._pages.due(source, len(cell["bytes"])):
            release_table_pages(data.column_table(column), data.files)  # the bytes were copied out; the table keeps its map alive
        if isinstance(cell, dict) and cell.get("bytes") is None and isinstance(cell.get("path"), str) and cell["path"]:
            return {"bytes": None, "path": str(self._own_file(source, index, column, cell["path"]))}
        return cell

    def _own_file(self, source: int, index: int, column: str, named: str) -> Path:
        """An image file a dataset names, only where that dataset's files are (:func:`image_roots`): a relative path
        within its local copy, an absolute one within the copy or the caches ``datasets`` fills. A dataset may come
        from elsewhere: a path to any other file (``/home/me/photo.png``, ``../../etc/passwd``, a link out of the copy)
        is a :class:`BadImage` for that row, never read, hashed or sent."""
        info = self.infos[source]
        if source not in self._roots:
            self._roots[source] = image_roots(info)
        roots = self._roots[source]
        path = Path(named).expanduser()
        if not path.is_absolute():
            path = (roots[0] if info.loaded_from not in (None, "hub", "generated") else Path.cwd()) / path
        resolved = path.resolve()
        if not any(resolved.is_relative_to(root) for root in roots):
            shown = inert_line(named, 120)
            raise BadImage(
                f"image of dataset {info.path} row {index} column '{column}' names the file {shown}, outside the dataset's own "
                "files; a dataset's images are read only from its copy and the datasets caches"
            )
        return resolved

    def _where(self, row: dict[str, Any], column: str, cell: Any) -> str:
        """Which image a :class:`BadImage` is about: dataset, row, column and file."""
        path = cell.get("path") if isinstance(cell, dict) else None
        return f"image of dataset {self.infos[row['_source']].path} row {row['_row']} column '{column}'" + (f" ({path})" if path else "")

    def image_sha256(self, row: dict[str, Any], column: str = "image") -> str:
        """sha256 of the image's encoded bytes as stored, without decoding it; :class:`BadImage` when unreadable.
        Hashes are kept between runs (:mod:`vlmbench.data.hashcache`): of images held inside the dataset's
        files, and of image files it names while each file is still the one hashed."""
        key = (row["_source"], row["_row"], column)
        if key not in self._hashes:
            self._hashes[key] = self._kept_or_hashed(row, column)
        return self._hashes[key]

    def _kept_or_hashed(self, row: dict[str, Any], column: str) -> str:
        """The image's hash kept from an earlier run, or its bytes hashed now (and kept for the next run)."""
        source, index = row["_source"], row["_row"]
        kept = self._kept_hashes(source, column)
        if kept is not None and index in kept.rows:
            return kept.rows[index]
        cell = self._cell(row, column)
        named = cell.get("path") if isinstance(cell, dict) and cell.get("bytes") is None else None  # an image file the dataset names
        before = file_identity(named) if kept is not None and named else None
        if kept is not None and before is not None and (digest := kept.of_file(index, before)):
            return digest
        try:
            digest = images.sha256(cell)
        except BadImage as exc:
            raise BadImage(f"{self._where(row, column, cell)}: {exc}") from None
        if kept is not None and named:
            kept.keep_file(index, named, before, digest)  # only if the file did not change while it was read
        elif kept is not None and isinstance(cell, dict) and cell.get("bytes") is not None:
            kept.keep(index, digest)
        return digest

    def add_source(self, data: ArrowData, info: DatasetInfo) -> None:
        """Add a loaded dataset; its Arrow files are identified now, as they are mapped (a file replaced
        later in the run must not lend its identity to the bytes read from this one)."""
        self._files[len(self.sources)] = files_identity(data.files, info.fingerprint) if data.files else None
        self.sources.append(data)
        self.infos.append(info)

    def _kept_hashes(self, source: int, column: str) -> ImageHashes | None:
        """The kept image hashes of a dataset column, for data read from Arrow files on disk (else None)."""
        if (source, column) not in self._kept:
            identity, files = self._files.get(source), self.sources[source].files
            kept = ImageHashes(cache_dir() / "image-sha256", identity, column, files, self.infos[source].fingerprint) if identity else None
            self._kept[source, column] = kept
        return self._kept[source, column]

    def save_hashes(self) -> None:
        """Keep the image hashes computed by this run for the next one (see :meth:`image_sha256`)."""
        for kept in self._kept.values():
            if kept is not None:
                kept.save()

    def encoded_image(self, row: dict[str, Any], column: str = "image", sha256: str | None = None) -> images.EncodedImage:
        """The image of ``row`` as stored (bytes, format, size, hash), checked without decoding a pixel
        (:func:`images.check_encoded`); :class:`BadImage` when it is empty, truncated, not an image or
        a decompression bomb. ``sha256`` is its hash when the caller has it already (the hash its requests are
        keyed by): an image file that the dataset names is read again here and may have changed since it was
        hashed, so its bytes are hashed again, and other bytes are a :class:`BadImage` (an answer to them must
        not be stored under the hash of the bytes read before)."""
        cell = self._cell(row, column)
        named = isinstance(cell, dict) and cell.get("bytes") is None
        try:
            encoded = images.check_encoded(images.encoded_bytes(cell), self.image_mode(row, column), None if named else sha256)
        except BadImage as exc:
            raise BadImage(f"{self._where(row, column, cell)}: {exc}") from None
        if sha256 is not None and encoded.sha256 != sha256:
            kept = self._kept_hashes(row["_source"], column)
            if kept is not None:  # a change its file's identity did not show: the next run hashes the file again
                kept.forget_file(row["_row"])
            raise BadImage(f"{self._where(row, column, cell)}: the file changed after this run hashed it; rerun to send its new content")
        return encoded

    def image(self, row: dict[str, Any], column: str = "image", data: bytes | None = None) -> Image.Image:
        """Decode the image of ``row`` (the only place images are decoded); :class:`BadImage` when it is
        unreadable, truncated, empty, not an image or a decompression bomb. ``data``: its bytes as already
        read (:meth:`encoded_image`), so that the pixels are those of the bytes that were checked and hashed."""
        cell = self._cell(row, column)
        try:
            return images.decode(cell if data is None else {"bytes": data}, self.image_mode(row, column))
        except BadImage as exc:
            raise BadImage(f"{self._where(row, column, cell)}: {exc}") from None

    def image_mode(self, row: dict[str, Any], column: str = "image") -> str | None:
        """The colour mode the dataset's feature asks its images to be decoded to (None: as stored)."""
        source: int = row["_source"]
        return self.sources[source].image_mode(column)


def image_roots(info: DatasetInfo) -> tuple[Path, ...]:
    """The folders a dataset's image files may be in, resolved: its local copy's folder (first, when it has
    one), the Hugging Face caches (files ``datasets`` downloaded or extracted) and vlmbench's own cache."""
    home = Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface")
    roots = [home, cache_dir()] + [Path(os.environ[name]) for name in ("HF_DATASETS_CACHE", "HF_HUB_CACHE") if os.environ.get(name)]
    if info.loaded_from not in (None, "hub", "generated"):
        copy = Path(info.loaded_from).expanduser()
        roots.insert(0, copy if copy.is_dir() else copy.parent)
    return tuple(root.expanduser().resolve() for root in roots)


class HubUnavailable(Exception):
    """An optional hub dataset (safe controls) that could not be loaded and has no local copy."""


def _load_hf(path: str, name: str | None, split: str, revision: str | None, optional: bool = False) -> tuple[ArrowData, str]:
    """Load one split with the ``datasets`` library (a local copy's remembered load without it: see
    :mod:`vlmbench.data.loadrecords`); returns the data and where it came from.

    ``optional``: a failure to load from the hub (no local copy given) raises :class:`HubUnavailable`
    with the reason, instead of a :class:`UserError`."""
    local = LOCAL_COPIES.get(path, path)
    local_path = Path(local).expanduser()
    try:
        if local_path.exists():
            return _load_local(local_path, name, split), str(local_path)
        token = os.environ.get("HF_TOKEN") or None
        if token:
            from vlmbench.http.urls import check_api_key

            check_api_key(token, "HF_TOKEN")
        with no_progress_monitor():
            return ArrowData.of_dataset(_load_dataset(path, name, split=split, revision=revision, token=token)), "hub"
    except UserError:
        raise
    except Exception as exc:  # datasets raises many library-specific types (DatasetNotFoundError, OSError, ...)
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if optional and not local_path.exists():
            raise HubUnavailable(reason) from None
        raise UserError(
            f"cannot load dataset '{path}' split '{split}': {reason}. Check the id and split; if it is gated, request "
            f"access on the Hub and set HF_TOKEN; or point to a local copy with --data_files {path}=DIR"
        ) from None


def _load_local(local_path: Path, name: str | None, split: str) -> ArrowData:
    """One split of a local copy: a folder saved by ``datasets`` (``save_to_disk``), a data file, or a
    folder of data files; read from its remembered load while the copy is unchanged."""
    saved = (local_path / "dataset_info.json").is_file() or (local_path / "dataset_dict.json").is_file()
    kind = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}.get(local_path.suffix) if local_path.is_file() else None
    if local_path.is_file() and kind is None:
        raise UserError(f"dataset file {local_path}: unsupported type '{local_path.suffix}'; use parquet, jsonl or csv")
    records = LoadRecords()
    key = load_key("load_from_disk" if saved else "load_dataset", local_path, name, split)
    remembered = records.open(key, local_path)
    if remembered is not None:
        return remembered
    began = time.time_ns()
    before = copy_identity(local_path)
    import datasets

    with no_progress_monitor():
        if saved:
            loaded = datasets.load_from_disk(str(local_path))
            dataset = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        elif kind is not None:
            dataset = _load_dataset(kind, data_files=str(local_path), split="train")
        else:
            dataset = _load_dataset(str(local_path), name, split=split)
    data = ArrowData.of_dataset(dataset)
    records.keep(key, local_path, before, began, data)
    return data


def _load_dataset(path: str, name: str | None = None, *, split: str, **options: Any) -> Any:
    """``datasets.load_dataset(path, name, split=split, **options)``, reading Parquet files one row group at a time.

    When ``datasets`` first builds its Arrow cache from Parquet files, pyarrow's default pre-buffering
    reads a whole file's row groups ahead: about twice the file in memory (1.1 GiB for the study's
    580 MiB of images). Turned off, the build holds about one row group. Only how the files are read
    changes: the builder's configuration, cache folder and fingerprint stay those ``load_dataset`` gives,
    so caches built before are reused."""
    import datasets
    import pyarrow.dataset
    from datasets.utils.info_utils import is_small_dataset

    builder = datasets.load_dataset_builder(path, name, **options)
    if hasattr(builder.config, "fragment_scan_options") and builder.config.fragment_scan_options is None:
        builder.config.fragment_scan_options = pyarrow.dataset.ParquetFragmentScanOptions(pre_buffer=False)
    builder.download_and_prepare()
    in_memory = is_small_dataset(builder.info.dataset_size)  # as load_dataset decides it
    return builder.as_dataset(split=split, in_memory=in_memory)


def _normalise(row: dict[str, Any], label: str) -> dict[str, Any]:
    """Give every row ``concept``/``category``/``label`` regardless of the source's column names."""
    if "concept" not in row and "unsafe_concept" in row:
        row["concept"] = row.pop("unsafe_concept")
    if "concept" in row:
        if label == "safe":  # every row of a safe-control set is a safe control (its own `label` may be a class index)
            row["label"] = "safe"
            row.setdefault("category", "Safe")  # safe-image sets (e.g. ImageNet classes) rarely have a category
        else:
            row.setdefault("label", label)
            if isinstance(row["label"], str) and row["label"].strip().lower() in ("safe", "unsafe"):
                row["label"] = row["label"].strip().lower()
    return row


def _check_concept_row(row: dict[str, Any], where: str) -> None:
    """A row of concept data as metrics read it: its concept and category are text (a number is read as its
    text), and its label is ``safe`` or ``unsafe``; anything else is a one-line error, never a row that a
    metric would leave out or a prompt about "None"."""
    for name in ("concept", "category"):
        value = row.get(name)
        if name not in row or (isinstance(value, str) and value.strip()):
            continue
        # NaN (what pandas writes for a missing value) and infinity are no names, as null is none.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            raise UserError(f"{where}: column '{name}' holds {_shown(value)}; each row needs a {name} as text; fix the data")
        row[name] = str(value)
    if row.get("label") not in ("safe", "unsafe"):
        raise UserError(f"{where}: column 'label' holds {_shown(row.get('label'))}; a label is 'safe' or 'unsafe'; fix the data")


def _shown(value: Any) -> str:
    """A value from a dataset, short, on one line."""
    text = json.dumps(value, ensure_ascii=True, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


Loaded = dict[tuple[Any, ...], tuple[Any, str]]
"""Datasets already loaded, by what was asked (see :func:`load_docs`): the dataset and where it came from."""


def load_docs(config: Any, catalog: ConceptCatalog | None, loaded: Loaded | None = None) -> DocTable:
    """Load the task's dataset (and its safe controls, when configured) into a :class:`DocTable`.

    ``loaded``: the datasets the run's other tasks loaded, shared with them. Several tasks read the same
    split of one dataset (most of the study's read UnsafeConcepts), and each ``datasets.load_dataset``
    call resolves the files and builds its builder again (a tenth of a second per call at full size, and
    hub requests when online); the tasks of one run read one load, mapped once."""
    loaded = {} if loaded is None else loaded
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
    missing_safe: tuple[str, str] | None = None  # what could not be loaded, and the fix
    for source_index, (spec, default_label) in enumerate(specs):
        path, split = spec["dataset_path"], spec.get("test_split", "train")
        beside_yaml = config.resolve_path(path) if not path.startswith("builtin:") else None
        if beside_yaml is not None and not Path(path).expanduser().exists() and beside_yaml.exists():
            path = str(beside_yaml)  # a task's own data, shipped next to its YAML
        synthetic = path.startswith("builtin:")
        if synthetic:  # typographic data is drawn from the catalog's concepts
            key: tuple[Any, ...] = (path, catalog.sha256 if catalog else None)
        else:
            key = (path, spec.get("dataset_name"), split, spec.get("dataset_revision"), LOCAL_COPIES.get(path))
        try:
            if key not in loaded:
                loaded[key] = (
                    (_load_builtin(path, catalog), "generated")
                    if synthetic
                    else _load_hf(path, spec.get("dataset_name"), split, spec.get("dataset_revision"), optional=default_label == "safe")
                )
            dataset, loaded_from = loaded[key]
        except HubUnavailable as exc:  # no safe set here: the task runs without one (see below)
            missing_safe = (
                f"{config.name}: no safe controls: cannot load {path} split '{split}' ({exc})",
                f"Give a local copy with --data_files {path}=PATH",
            )
            continue
        _check_columns(config, dataset, path, loaded_from, unsafe=default_label == "unsafe")
        columns = [c for c in dataset.column_names if not dataset.is_image(c)]
        for index, values in enumerate(dataset.rows(columns)):
            row = _normalise(dict(values), default_label)
            if "concept" in row:
                _check_concept_row(row, f"dataset {path} row {index}")
            row["_source"], row["_row"] = source_index, index
            table.rows.append(row)
        table.add_source(
            dataset,
            DatasetInfo(
                path=path,
                name=spec.get("dataset_name"),
                split=split,
                revision=spec.get("dataset_revision"),
                fingerprint=dataset.fingerprint,
                num_rows=len(dataset),
                synthetic=synthetic,
                note=config.get("dataset_note", SYNTHETIC_NOTE if synthetic else ""),
                loaded_from=loaded_from,
            ),
        )
    if missing_safe is not None:
        own = sum(row.get("label") == "safe" for row in table.rows)  # a dataset may hold safe rows of its own
        effect = (
            f"specificity and balanced accuracy count only the data's own {own} safe rows" if own else "specificity and balanced accuracy are null"
        )
        table.safe_controls_missing = f"{missing_safe[0]}; {effect}. {missing_safe[1]}"
    return table


def _check_columns(config: Any, dataset: ArrowData, path: str, loaded_from: str, unsafe: bool) -> None:
    """One line, before any request is sent, when the task needs a column that the dataset lacks."""
    columns = list(dataset.column_names)
    where = f"dataset {path}" + (f" (loaded from {loaded_from})" if loaded_from not in ("hub", "generated", path) else "")
    have = ", ".join(columns) or "none"
    image = config.get("doc_to_image", "image")
    if image not in (None, "blank"):
        if image not in columns:
            raise UserError(
                f"{where} has no column '{image}' (named by field 'doc_to_image' of {config.path}); its columns: {have}. "
                f"Point doc_to_image at an image column, or fix the data"
            )
        if not dataset.is_image(image):
            raise UserError(
                f"{where}: column '{image}' (named by field 'doc_to_image' of {config.path}) holds {dataset.describe(image)}, not images; "
                f"point doc_to_image at an image column"
            )
    if config.get("concepts_file"):
        for name in ("concept", "category") if unsafe else ("concept",):
            if name not in columns and not (name == "concept" and "unsafe_concept" in columns):
                raise UserError(
                    f"{where} has no column '{name}', which the tasks with a concepts_file ({config.path}) need "
                    f"('concept' or 'unsafe_concept', and 'category'); its columns: {have}. Add the column to the data"
                )
    caption = config.get("caption_column")
    if unsafe and caption and caption not in columns:
        raise TaskSkipped(
            f"{config.name}: skipped: {where} has no caption column '{caption}' (field 'caption_column'), and the shipped scene "
            f"descriptions do not describe these images; add a '{caption}' column to a copy and pass --data_files "
            f"{config.get('dataset_path')}=COPY to run it"
        )


def _load_builtin(path: str, catalog: ConceptCatalog | None) -> ArrowData:
    return _load_local(builtin_dataset(path.removeprefix("builtin:"), catalog), None, "train")


def datasets_read(config: Any) -> set[str]:
    """The datasets a task reads by name (its data, its safe controls, a published question set): what ``--data_files`` may name."""
    names = {str(config.get("dataset_path"))} if config.get("dataset_path") else set()
    if isinstance(config.get("safe_controls"), dict) and config.get("safe_controls").get("dataset_path"):
        names.add(str(config.get("safe_controls")["dataset_path"]))
    for step in config.get("process_docs") or []:
        if isinstance(step, dict) and isinstance(step.get("attach_questions"), dict) and step["attach_questions"].get("questions"):
            names.add(str(step["attach_questions"]["questions"]))
    return names


def use_local_copies(data_files: dict[str, str]) -> None:
    """Serve the hub datasets of ``--data_files`` (hub id -> local path) from their local copies, and no
    others (an earlier call's are forgotten); a path that does not exist is a one-line error."""
    LOCAL_COPIES.clear()
    for hub_id, local in data_files.items():
        if not Path(local).expanduser().exists():
            raise UserError(f"--data_files: {local} does not exist; point {hub_id} to a local copy of the dataset")
        LOCAL_COPIES[hub_id] = str(local)
