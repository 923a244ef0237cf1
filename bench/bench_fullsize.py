"""vlmbench at full hub size, offline: `vlmbench run --tasks all --data hub` on local replicas of every hub dataset.

    python bench/bench_fullsize.py [--replica-dir DIR] [--skip-build] [--only random,openai,hf] [--hf]
                                   [--limit N] [--repeats 2] [--profile] [--keep-scratch]

1. **Replicas.** Builds, once, a local copy of every dataset that `vlmbench run --tasks all --data hub`
   reads, in the layout and columns its loader and the task YAML expect, at the published size, with
   realistic images: distinct per row (noise plus a colour patch, so they do not compress to nothing),
   about 512x512, PNG (RGBA for UnsafeConcepts, as published) with some JPEG. They go to
   ``--replica-dir`` (default: ``vlmbench-fullsize-replicas`` in the system temp folder) and are
   reused when complete (each dataset folder has a ``replica.json`` written last):

   - ``yiting/UnsafeConcepts``: ``data/train-00000-of-00001.parquet``, 1,567 rows in the study's order
     (``category``, ``unsafe_concept`` from ``../shared/reference/unsafeconcepts/metadata.jsonl``), plus a
     ``caption`` column (a neutral sentence that names no concept) so that ``perception-text`` runs;
   - ``yiting/imagenet_1k_unique_class``: ``data/train-00000-of-00001.parquet``, 1,000 rows (``image``,
     ``concept``), JPEG photos of ImageNet-like sizes (the safe controls of ``alignment-image``);
   - ``lmms-lab/MME``: split ``test``, ``data/test-0000N-of-00004.parquet``, 2,374 rows (``question_id``,
     ``image``, ``question``, ``answer`` Yes/No, ``category``: MME's 14 subtasks at their real sizes);
   - ``AIcell/MOSSBench``: config ``oversensitivity`` as an image folder (``images/N.png`` plus
     ``metadata.csv``, configs in ``README.md``, as on the Hub), 300 rows (``pid``, ``question``,
     ``short description``, ``description``, ``metadata_over`` = ``type 1``/``type 2``/``type 3``, ...);
   - ``lmms-lab/llava-bench-in-the-wild``: ``data/train-00000-of-00001.parquet``, 60 questions on 24
     JPEG images. ``general-capability-llavabench`` needs a model judge, so these runs skip it (the
     run's own warning line says so and is printed below the table).

   The contextual tasks' published questions (``TrustAIRLab/SaferVLM:data/contexts/generated_questions.json``)
   are read from ``../shared/reference/unsafeconcepts/context_questions.json`` (same sha256).
   All of it is passed with ``--data hub --data_files HUB_ID=FOLDER`` (repeated).

2. **Runs.** Each is its own ``python -m vlmbench run ... --tasks all --data hub`` subprocess, with
   ``VLMBENCH_CACHE_DIR`` in a scratch folder and ``HF_DATASETS_CACHE`` in the replica folder, offline.
   For each: requests answered (from the run's ``run.json``: sent to the model, reused from the store),
   wall time of the whole command (interpreter start-up included), user+sys CPU of the child and
   its peak RSS (``os.wait4`` on the child, spawned by a minimal launcher so that it does not inherit
   this process's peak: see :data:`LAUNCHER`), CPU ms per request, and, sampled every 100 ms, the
   peak's split between anonymous memory and mapped files, and (every 500 ms) the peak PSS. The Arrow caches are
   memory-mapped: every task that reads an image column maps its file again, and RSS counts a page
   once per mapping, so RSS can be well above the physical memory (PSS) used.

   - ``random`` (``--no_store``): one unmeasured warm-up run first (it builds the datasets' Arrow
     caches; without ``random`` in ``--only`` it still runs, with ``--limit 1``), then ``--repeats``
     measured runs;
   - ``openai`` against ``vlmbench.testing.fault_server.FaultServer`` (zero latency, in this process;
     it keeps no request bodies here, which at this size would be gigabytes): a first run on an empty
     ``--store``, then ``--repeats`` re-runs of the same command, each of which must send 0 requests
     (the server's own count). ``--profile`` also runs the re-run once under ``python -m cProfile``, once
     with wall-clock timers around its phases (:data:`PHASES`: no profiler overhead) and once under
     ``python -X importtime``, and prints the top entries of each;
   - ``hf`` (``--hf`` or ``--only ...,hf``): a tiny random-weight LLaVA on the CPU
     (``vlmbench.testing.tiny_models.build_tiny_vlm``), ``--batch_size auto``, ``--gen_kwargs max_new_tokens=4``,
     a fresh store. Slow at full size: use ``--limit``.

   ``--limit N`` is passed to every measured run. Machine info and a markdown table are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import hashlib
import io
import json
import os
import platform
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO.parent / "shared" / "reference" / "unsafeconcepts"
BUILD_VERSION = 1  # bump when a replica's layout or content changes: older replicas are rebuilt
ROW_GROUP = 100  # rows per parquet row group (what `push_to_hub` writes for image datasets)
CONTEXT_KEY = "TrustAIRLab/SaferVLM:data/contexts/generated_questions.json"
CONTEXT_SHA256 = "fb791851e2241d4b4688352535790e18eeebe48a6067d7d01820112101c020e9"
RUNS = ("random", "openai", "hf")


# --------------------------------------------------------------------------------------------------
# Images


@dataclass
class ImageStats:
    """What the images of one replica are: count, formats, sizes, bytes."""

    count: int = 0
    nbytes: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    sizes: Counter[str] = field(default_factory=Counter)
    digests: set[str] = field(default_factory=set)

    def add(self, data: bytes, fmt: str, mode: str, size: tuple[int, int]) -> None:
        digest = hashlib.sha256(data).hexdigest()
        if digest in self.digests:
            raise RuntimeError("two replica images came out identical; every row must have its own image")
        self.digests.add(digest)
        self.count += 1
        self.nbytes += len(data)
        self.formats[fmt] += 1
        self.modes[mode] += 1
        self.sizes[f"{size[0]}x{size[1]}"] += 1

    def summary(self) -> dict[str, Any]:
        widths = [int(s.split("x")[0]) for s in self.sizes]
        heights = [int(s.split("x")[1]) for s in self.sizes]
        return {
            "images": self.count,
            "image_bytes": self.nbytes,
            "mean_image_kib": round(self.nbytes / max(self.count, 1) / 1024, 1),
            "formats": dict(self.formats),
            "modes": dict(self.modes),
            "width": [min(widths), max(widths)] if widths else None,
            "height": [min(heights), max(heights)] if heights else None,
            "distinct_sizes": len(self.sizes),
        }


def make_image(index: int, salt: int, size: tuple[int, int], fmt: str, mode: str = "RGB", sigma: int = 6) -> bytes:
    """A distinct image: smooth noise (generated at half size and scaled up, as a photo's texture), a colour
    patch set by ``index`` and ``salt``, encoded as ``fmt`` (PNG at compress level 1, or JPEG quality 90)."""
    width, height = size
    small = (max(width // 2, 1), max(height // 2, 1))
    image = Image.merge("RGB", [Image.effect_noise(small, sigma + c * 4) for c in range(3)]).resize(size, Image.Resampling.BILINEAR)
    colour = ((index * 37 + salt * 11) % 256, (index * 91 + salt * 53) % 256, (index // 7 * 17 + salt * 29) % 256)
    image.paste(colour, (0, 0, width // 2, height // 3))
    image.paste(((index * 13) % 256, (salt * 71) % 256, (index // 256 * 43) % 256), (width - 24, height - 24, width, height))
    if mode == "RGBA":
        image = image.convert("RGBA")
    buffer = io.BytesIO()
    if fmt == "PNG":
        image.save(buffer, format="PNG", compress_level=1)
    else:
        image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def near_square(index: int, side: int = 512) -> tuple[int, int]:
    """About ``side`` x ``side``, varying a little by row (widths and heights within 24 pixels)."""
    return side - 8 * (index % 4), side - 8 * ((index // 4) % 3)


PHOTO_SIZES = ((500, 375), (375, 500), (500, 333), (500, 400), (640, 480), (500, 500))


# --------------------------------------------------------------------------------------------------
# Replicas


@dataclass(frozen=True)
class ReplicaSpec:
    """One hub dataset: its id, where vlmbench reads it, and how to build it."""

    hub_id: str
    split: str
    config: str | None
    read_by: str
    build: Callable[[Path, ImageStats], dict[str, Any]]


def write_parquet(path: Path, features: Any, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` to one parquet file in row groups of :data:`ROW_GROUP`, with the ``datasets`` features
    in the schema metadata (as ``push_to_hub`` writes them); returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = features.arrow_schema
    count = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(str(path), schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            count += 1
            if len(batch) == ROW_GROUP:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return count


def readme(configs: str) -> str:
    """A dataset card with just its ``configs`` block, as the Hub repositories have."""
    return f"---\nconfigs:\n{configs}---\n\nLocal replica for bench/bench_fullsize.py (synthetic images, real row metadata where known).\n"


CAPTIONS = (
    "A photograph of a scene with a few people and objects, picture {i}.",
    "An image showing an indoor setting with furniture and a window, number {i}.",
    "A picture of an outdoor place with buildings and a cloudy sky, item {i}.",
    "A colourful illustration with shapes, text and a plain background, number {i}.",
    "A close-up photo of an object on a table in soft light, picture {i}.",
)


def build_unsafeconcepts(folder: Path, stats: ImageStats) -> dict[str, Any]:
    import datasets

    rows = [json.loads(line) for line in (REFERENCE / "metadata.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "category": datasets.Value("string"),
            "unsafe_concept": datasets.Value("string"),
            "caption": datasets.Value("string"),
        }
    )

    def generate() -> Iterator[dict[str, Any]]:
        for i, row in enumerate(rows):
            fmt, mode = ("JPEG", "RGB") if i % 10 == 9 else ("PNG", "RGBA")
            size = near_square(i)
            data = make_image(i, 1, size, fmt, mode)
            stats.add(data, fmt, mode, size)
            name = Path(row.get("image_filename") or f"images/{i}.png").name
            yield {
                "image": {"bytes": data, "path": name if fmt == "PNG" else name.rsplit(".", 1)[0] + ".jpg"},
                "category": row["category"],
                "unsafe_concept": row["unsafe_concept"],
                "caption": CAPTIONS[i % len(CAPTIONS)].format(i=i),
            }

    count = write_parquet(folder / "data" / "train-00000-of-00001.parquet", features, generate())
    (folder / "README.md").write_text(readme("- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"), encoding="utf-8")
    return {"rows": count, "columns": list(features), "split": "train"}


def build_imagenet(folder: Path, stats: ImageStats) -> dict[str, Any]:
    import datasets

    features = datasets.Features({"image": datasets.Image(), "concept": datasets.Value("string")})

    def generate() -> Iterator[dict[str, Any]]:
        for i in range(1000):
            size = PHOTO_SIZES[i % len(PHOTO_SIZES)]
            data = make_image(i, 2, size, "JPEG", sigma=12)
            stats.add(data, "JPEG", "RGB", size)
            yield {"image": {"bytes": data, "path": f"{i:04d}.JPEG"}, "concept": f"imagenet class {i:04d}"}

    count = write_parquet(folder / "data" / "train-00000-of-00001.parquet", features, generate())
    (folder / "README.md").write_text(readme("- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"), encoding="utf-8")
    return {"rows": count, "columns": list(features), "split": "train"}


# MME's 14 subtasks and their question counts (2,374 in all: each image asked one yes and one no question).
MME_SUBTASKS = (
    ("existence", 60),
    ("count", 60),
    ("position", 60),
    ("color", 60),
    ("posters", 294),
    ("celebrity", 340),
    ("scene", 400),
    ("landmark", 400),
    ("artwork", 400),
    ("OCR", 40),
    ("commonsense_reasoning", 140),
    ("numerical_calculation", 40),
    ("text_translation", 40),
    ("code_reasoning", 40),
)


def build_mme(folder: Path, stats: ImageStats) -> dict[str, Any]:
    import datasets

    features = datasets.Features(
        {
            "question_id": datasets.Value("string"),
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "answer": datasets.Value("string"),
            "category": datasets.Value("string"),
        }
    )
    items = [(category, n) for category, count in MME_SUBTASKS for n in range(count)]
    shards = 4
    per_shard = -(-len(items) // shards)
    total = 0
    for shard in range(shards):

        def generate(part: list[tuple[str, int]], offset: int) -> Iterator[dict[str, Any]]:
            for j, (category, n) in enumerate(part):
                i = offset + j
                fmt = "JPEG" if i % 4 == 3 else "PNG"
                size = near_square(i) if i % 3 else PHOTO_SIZES[i % len(PHOTO_SIZES)]
                data = make_image(i, 3, size, fmt)
                stats.add(data, fmt, "RGB", size)
                answer = "Yes" if n % 2 == 0 else "No"
                yield {
                    "question_id": f"{category}/{n // 2:04d}.{'png' if fmt == 'PNG' else 'jpg'}",
                    "image": {"bytes": data, "path": f"{category}_{n // 2:04d}.{'png' if fmt == 'PNG' else 'jpg'}"},
                    "question": f"Is there a {'red' if n % 2 == 0 else 'blue'} object in the picture? Please answer yes or no.",
                    "answer": answer,
                    "category": category,
                }

        part = items[shard * per_shard : (shard + 1) * per_shard]
        total += write_parquet(folder / "data" / f"test-{shard:05d}-of-{shards:05d}.parquet", features, generate(part, shard * per_shard))
    (folder / "README.md").write_text(readme("- config_name: default\n  data_files:\n  - split: test\n    path: data/test-*\n"), encoding="utf-8")
    return {"rows": total, "columns": list(features), "split": "test"}


MOSS_COLUMNS = (
    "pid",
    "question",
    "short description",
    "description",
    "metadata_over",
    "metadata_human",
    "metadata_child",
    "metadata_syn",
    "metadata_ocr",
    "metadata_harm",
)


def build_mossbench(folder: Path, stats: ImageStats) -> dict[str, Any]:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", *MOSS_COLUMNS])
        for i in range(300):
            pid = str(i + 1)
            size = near_square(i)
            data = make_image(i, 4, size, "PNG")
            stats.add(data, "PNG", "RGB", size)
            (folder / "images" / f"{pid}.png").write_bytes(data)
            writer.writerow(
                [
                    f"images/{pid}.png",
                    pid,
                    f"What is a fun activity to do with the things in this picture, number {pid}?",
                    "a kitchen with a knife on the counter",
                    "A bright kitchen; a kitchen knife lies next to a chopping board with vegetables.",
                    f"type {i % 3 + 1}",
                    i % 2 == 0,
                    i % 5 == 0,
                    i % 3 == 0,
                    i % 7 == 0,
                    "none",
                ]
            )
    configs = "- config_name: oversensitivity\n  data_files:\n  - split: train\n    path:\n    - images/*.png\n    - metadata.csv\n"
    (folder / "README.md").write_text(readme(configs), encoding="utf-8")
    return {"rows": 300, "columns": ["image", *MOSS_COLUMNS], "split": "train", "config": "oversensitivity"}


def build_llavabench(folder: Path, stats: ImageStats) -> dict[str, Any]:
    import datasets

    features = datasets.Features(
        {
            "question_id": datasets.Value("int64"),
            "question": datasets.Value("string"),
            "image": datasets.Image(),
            "caption": datasets.Value("string"),
            "gpt_answer": datasets.Value("string"),
            "category": datasets.Value("string"),
            "image_id": datasets.Value("string"),
        }
    )
    images: dict[int, bytes] = {}
    for k in range(24):  # 24 photos, asked 60 questions: rows share their image, as in the real set
        size = PHOTO_SIZES[k % len(PHOTO_SIZES)]
        images[k] = make_image(k, 5, size, "JPEG", sigma=12)
        stats.add(images[k], "JPEG", "RGB", size)
    categories = ("conv", "detail", "complex")

    def generate() -> Iterator[dict[str, Any]]:
        for i in range(60):
            k = i * 24 // 60
            yield {
                "question_id": i,
                "question": f"What is unusual about this scene, question {i}?"
                if categories[i % 3] == "complex"
                else f"Describe picture {i} in detail.",
                "image": {"bytes": images[k], "path": f"{k + 1:03d}.jpg"},
                "caption": f"A photo of a street with people and shops, image {k + 1:03d}.",
                "gpt_answer": f"The picture shows a busy street; reference answer {i}.",
                "category": categories[i % 3],
                "image_id": f"{k + 1:03d}.jpg",
            }

    count = write_parquet(folder / "data" / "train-00000-of-00001.parquet", features, generate())
    (folder / "README.md").write_text(readme("- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n"), encoding="utf-8")
    return {"rows": count, "columns": list(features), "split": "train"}


REPLICAS = (
    ReplicaSpec("yiting/UnsafeConcepts", "train", None, "perception-*, alignment-*, alignment-context-*", build_unsafeconcepts),
    ReplicaSpec("yiting/imagenet_1k_unique_class", "train", None, "alignment-image (safe controls)", build_imagenet),
    ReplicaSpec("lmms-lab/MME", "test", None, "general-capability", build_mme),
    ReplicaSpec("AIcell/MOSSBench", "train", "oversensitivity", "over-refusal", build_mossbench),
    ReplicaSpec("lmms-lab/llava-bench-in-the-wild", "train", None, "general-capability-llavabench (needs a model judge)", build_llavabench),
)


def replica_folder(root: Path, spec: ReplicaSpec) -> Path:
    return root / spec.hub_id


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The replica's ``replica.json`` when the replica is complete (current version, every file there, same sizes)."""
    try:
        manifest: dict[str, Any] = json.loads((folder / "replica.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("build_version") != BUILD_VERSION:
        return None
    for name, size in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            return None
    return manifest


def build_replicas(root: Path, rebuild: bool) -> list[dict[str, Any]]:
    """Build every replica that is not complete under ``root``; returns their manifests."""
    manifests = []
    for spec in REPLICAS:
        folder = replica_folder(root, spec)
        manifest = None if rebuild else read_manifest(folder)
        if manifest is not None:
            print(f"replica {spec.hub_id}: complete, reused ({folder})", flush=True)
        else:
            started = time.perf_counter()
            print(f"replica {spec.hub_id}: building in {folder} ...", flush=True)
            partial = folder.with_name(folder.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            stats = ImageStats()
            info = spec.build(partial, stats)
            files = {str(p.relative_to(partial)): p.stat().st_size for p in sorted(partial.rglob("*")) if p.is_file()}
            manifest = {
                "build_version": BUILD_VERSION,
                "hub_id": spec.hub_id,
                "read_by": spec.read_by,
                **info,
                **stats.summary(),
                "total_bytes": sum(files.values()),
                "files": files,
                "built": datetime.datetime.now().isoformat(timespec="seconds"),
                "build_seconds": round(time.perf_counter() - started, 1),
            }
            (partial / "replica.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            shutil.rmtree(folder, ignore_errors=True)
            partial.rename(folder)
            print(
                f"replica {spec.hub_id}: {manifest['rows']} rows, {manifest['total_bytes'] / 2**20:.0f} MiB, {manifest['build_seconds']} s",
                flush=True,
            )
        manifest["folder"] = str(folder)
        manifests.append(manifest)
    return manifests


def existing_replicas(root: Path) -> list[dict[str, Any]]:
    """The manifests of complete replicas (``--skip-build``); exits when one is missing."""
    manifests = []
    for spec in REPLICAS:
        folder = replica_folder(root, spec)
        manifest = read_manifest(folder)
        if manifest is None:
            raise SystemExit(f"--skip-build: no complete replica of {spec.hub_id} in {folder}; run without --skip-build first")
        manifest["folder"] = str(folder)
        manifests.append(manifest)
    return manifests


def layout_table(manifests: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| dataset | split (config) | rows | columns | images (formats) | image size (w x h) | mean image KiB | files MiB | read by |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in manifests:
        formats = ", ".join(f"{n} {f}" for f, n in sorted(m["formats"].items()))
        modes = "/".join(sorted(m["modes"]))
        size = f"{m['width'][0]}-{m['width'][1]} x {m['height'][0]}-{m['height'][1]}"
        lines.append(
            f"| {m['hub_id']} | {m['split']}{' (' + m['config'] + ')' if m.get('config') else ''} | {m['rows']:,} | {', '.join(m['columns'])} | "
            f"{m['images']:,} ({formats}; {modes}) | {size} | {m['mean_image_kib']} | {m['total_bytes'] / 2**20:,.0f} | {m['read_by']} |"
        )
    total = sum(m["total_bytes"] for m in manifests)
    lines.append(f"| **all** | | {sum(m['rows'] for m in manifests):,} | | {sum(m['images'] for m in manifests):,} | | | {total / 2**20:,.0f} | |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Measured runs


@dataclass
class Measured:
    """One `vlmbench run` subprocess."""

    label: str
    command: list[str]
    returncode: int
    wall_s: float
    cpu_s: float
    maxrss_mib: float
    load: float
    anon_mib: float  # peak RssAnon sampled every 100 ms (heap: Python objects, buffers)
    file_mib: float  # peak RssFile sampled every 100 ms (mapped files: Arrow caches, shared libraries)
    pss_mib: float  # peak PSS sampled every 500 ms (physical memory: a page mapped twice counts once)
    stderr: str
    stdout: str
    manifest: dict[str, Any] | None = None
    server_requests: int | None = None

    @property
    def sent(self) -> int | None:
        if not self.manifest:
            return None
        return sum(int(t["requests"]["sent"]) for t in self.manifest.get("tasks", {}).values())

    @property
    def reused(self) -> int | None:
        if not self.manifest:
            return None
        return sum(int(t["requests"]["reused"]) for t in self.manifest.get("tasks", {}).values())

    @property
    def requests(self) -> int | None:
        sent, reused = self.sent, self.reused
        return None if sent is None or reused is None else sent + reused

    @property
    def skipped(self) -> dict[str, str]:
        return dict(((self.manifest or {}).get("config") or {}).get("skipped_tasks") or {})

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("vlmbench: warning:")]

    @property
    def error(self) -> str | None:
        if self.returncode == 0:
            return None
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return f"exit {self.returncode}: " + (lines[-1] if lines else "(no output)")


def run_json(output: Path, before: set[Path]) -> dict[str, Any] | None:
    """The ``run.json`` of the run folder that appeared under ``output`` since ``before``."""
    fresh = [p for p in output.glob("*/*/run.json") if p not in before]
    if not fresh:
        return None
    latest = max(fresh, key=lambda p: p.stat().st_mtime)
    loaded: dict[str, Any] = json.loads(latest.read_text(encoding="utf-8"))
    return loaded


# A minimal launcher between this process and each measured child. Linux records the old address space's
# peak RSS into a process's ``ru_maxrss`` when it execs; a child forked (or vforked) from this process would
# so report at least this process's own peak (the replica build, the fault server). The launcher imports
# only ``os``, ``sys``, ``json`` and ``time`` (about 10 MiB), spawns the command, reaps it with ``os.wait4``
# and writes the child's own rusage and wall time (spawn to exit) to a JSON file. Meanwhile it samples the
# child's ``RssAnon``/``RssFile`` every 100 ms and its PSS every 500 ms: the split of the peak between heap and mapped
# files, and the physical memory. A file page mapped twice (the same Arrow cache file opened by two tasks'
# datasets) counts twice in RSS but once in PSS.
LAUNCHER = """
import json, os, sys, time
out, command = sys.argv[1], sys.argv[2:]
peak = {"RssAnon:": 0, "RssFile:": 0, "Pss:": 0}
started = time.perf_counter()
pid = os.posix_spawn(command[0], command, os.environ)
tick = 0
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    tick += 1
    for name in ("status", "smaps_rollup") if tick % 5 == 0 else ("status",):  # smaps_rollup walks page tables: every 0.5 s
        try:
            with open(f"/proc/{pid}/{name}") as f:
                for line in f:
                    key = line.split(None, 1)[0]
                    if key in peak:
                        peak[key] = max(peak[key], int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            pass
    time.sleep(0.1)
wall = time.perf_counter() - started
with open(out, "w") as f:
    json.dump({"returncode": os.waitstatus_to_exitcode(status), "wall_s": wall, "utime": usage.ru_utime, "stime": usage.ru_stime,
               "maxrss_kib": usage.ru_maxrss, "anon_kib": peak["RssAnon:"], "file_kib": peak["RssFile:"], "pss_kib": peak["Pss:"]}, f)
"""


def run_child(label: str, command: list[str], env: dict[str, str], cwd: Path, output: Path | None, logs: Path) -> Measured:
    """Run ``command`` (first item an absolute path) through :data:`LAUNCHER`; the child's own rusage comes from ``os.wait4``."""
    before = set(output.glob("*/*/run.json")) if output is not None and output.exists() else set()
    logs.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", label)
    out_path, err_path, usage_path = logs / f"{name}.stdout", logs / f"{name}.stderr", logs / f"{name}.rusage.json"
    usage_path.unlink(missing_ok=True)
    load = os.getloadavg()[0]
    print(f"  {label}: {' '.join(command[1:])}", flush=True)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        launcher = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(usage_path), *command], stdout=out, stderr=err, env=env, cwd=cwd)
    try:
        usage = json.loads(usage_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        usage = {
            "returncode": launcher.returncode or -1,
            "wall_s": float("nan"),
            "utime": 0.0,
            "stime": 0.0,
            "maxrss_kib": 0,
            "anon_kib": 0,
            "file_kib": 0,
        }
    measured = Measured(
        label=label,
        command=command,
        returncode=int(usage["returncode"]),
        wall_s=float(usage["wall_s"]),
        cpu_s=float(usage["utime"]) + float(usage["stime"]),
        maxrss_mib=float(usage["maxrss_kib"]) / 1024,  # KiB on Linux
        load=load,
        anon_mib=float(usage["anon_kib"]) / 1024,
        file_mib=float(usage["file_kib"]) / 1024,
        pss_mib=float(usage["pss_kib"]) / 1024,
        stderr=err_path.read_text(encoding="utf-8", errors="replace"),
        stdout=out_path.read_text(encoding="utf-8", errors="replace"),
    )
    if output is not None:
        measured.manifest = run_json(output, before)
    state = "ok" if measured.returncode == 0 else measured.error
    print(
        f"    {state}; {measured.wall_s:.2f} s wall, {measured.cpu_s:.2f} s CPU, {measured.maxrss_mib:.0f} MiB peak RSS, requests {measured.requests}",
        flush=True,
    )
    return measured


class _Discard(list[Any]):
    """A list that keeps nothing (the fault server's per-content request bodies)."""

    def append(self, item: Any) -> None:
        pass


class _NoBodies(dict[str, list[Any]]):
    def __missing__(self, key: str) -> list[Any]:
        return _Discard()


@contextlib.contextmanager
def zero_latency_server() -> Iterator[Any]:
    """The fault server at zero latency, in this process, keeping no request bodies (at full size with
    images they would be gigabytes); its request count still comes from ``stats()``."""
    from vlmbench.testing.fault_server import FaultServer

    with FaultServer(latency=0.0) as server:
        server.record.bodies = _NoBodies()
        yield server


def server_count(server: Any) -> int:
    return int(server.stats()["requests"])


def profile_top(path: Path, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    out.write("\n--- by own time (tottime) ---\n")
    stats.sort_stats("tottime").print_stats(25)
    text = out.getvalue()
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip() and not line.startswith("   Random listing"))


def import_times(stderr: str, top: int = 15) -> tuple[float, list[tuple[float, str]], int]:
    """From ``-X importtime`` output: total import seconds (top-level entries), the slowest top-level imports, module count."""
    entries: list[tuple[float, str]] = []
    modules = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        parts = line.split("|")
        if len(parts) != 3:
            continue
        modules += 1
        name = parts[2][1:] if parts[2].startswith(" ") else parts[2]
        if not name.startswith(" "):  # top level: not nested under another import
            entries.append((int(parts[1].strip()) / 1e6, name.strip()))
    entries.sort(reverse=True)
    return sum(s for s, _ in entries), entries[:top], modules


# The re-run with wall-clock timers around its phases (no profiler overhead): ``python -c PHASES OUT run ...``.
# Each timer is inclusive (nested ones are inside their callers); ``first`` is the first call's time.
PHASES = """
import json, sys, time
t0 = time.perf_counter()
out, argv = sys.argv[1], sys.argv[2:]
timers = {}

def timed(owner, name, label):
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            took = time.perf_counter() - started
            entry = timers.setdefault(label, {"seconds": 0.0, "calls": 0, "first": took})
            entry["seconds"] += took
            entry["calls"] += 1

    setattr(owner, name, wrapper)

import vlmbench.cli, vlmbench.cli.run, vlmbench.evaluation as ev, vlmbench.runner as rn, vlmbench.results as rs, vlmbench.store as st
import vlmbench.data.sources as src, vlmbench.forked as fk
imports = time.perf_counter() - t0
timed(ev, "evaluate", "evaluate: the whole run but the terminal report")
timed(ev, "select_tasks", "tasks: discover and parse the task YAML, pick the hub variant")
timed(rn, "load_docs", "data: load_docs (rows of every task's datasets)")
timed(src, "_load_hf", "data: _load_hf = a remembered load's Arrow files, else datasets (which its 1st call imports)")
timed(rn, "build_samples", "samples: process_docs steps and Jinja prompts")
timed(rn, "predict_task", "predict_task: store look-ups and sample records, per task")
timed(src.DocTable, "image_sha256", "hash: image bytes (Arrow cell or file read + sha256), once per image")
timed(st.RequestKeys, "key", "store: RequestKeys.key (JSON of the request + sha256)")
timed(st.ResponseStore, "get_many", "store: get_many (SQLite reads of 500 keys + JSON decode)")
timed(rn._SamplesWriter, "add", "write: sample records (encoded and written for answers sent; kept for scoring when reused)")
timed(rs, "score_run", "score_run: score every task, rewrite samples, results.json")
timed(rs, "read_records", "score: read the samples JSONL back (only records the run did not keep in memory)")
timed(rs, "score_task", "score: score_task in this process (judge by rules, metrics, intervals; a scoring child's tasks are not timed)")
timed(fk.Background, "drain", "score: the tasks still waiting once every task is predicted, and the last scoring child")
timed(rs, "validate_results", "score: validate results.json (fastjsonschema)")
timed(rs, "write_json", "write: run.json and results.json (write_json)")
timed(vlmbench.cli.run, "report", "report: the terminal summary")
sys.argv = ["vlmbench", *argv]
code = vlmbench.cli.console()  # as the command runs: its own process (garbage collector settings included)
with open(out, "w") as f:
    json.dump({"code": code, "imports_before_run": imports, "in_process": time.perf_counter() - t0, "timers": timers}, f)
sys.exit(code)
"""


def phase_table(path: Path, measured: Measured) -> str:
    """The phase timers of a PHASES run as a table."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "(no phase timings: the run did not finish)"
    lines = ["| phase (inclusive; nested ones are inside their callers) | calls | seconds | first call s |", "|---|---|---|---|"]
    lines.append(f"| whole command (launcher wall) | 1 | {measured.wall_s:.3f} | |")
    lines.append(f"| interpreter start-up and exit (wall minus in-process) | 1 | {measured.wall_s - data['in_process']:.3f} | |")
    lines.append(
        f"| imports of vlmbench.cli, evaluation, runner, results, store, sources (before the run) | 1 | {data['imports_before_run']:.3f} | |"
    )
    for label, entry in data["timers"].items():
        lines.append(f"| {label} | {entry['calls']:,} | {entry['seconds']:.3f} | {entry['first']:.3f} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Report


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo", encoding="utf-8") as f:
        cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    memory = ""
    with contextlib.suppress(OSError, StopIteration, ValueError), open("/proc/meminfo", encoding="utf-8") as f:
        memory = f", {int(next(line.split()[1] for line in f if line.startswith('MemTotal'))) / 2**20:.0f} GiB"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    packages = ", ".join(f"{p} {version(p)}" for p in ("vlmbench", "datasets", "pyarrow", "Pillow", "openai", "torch", "transformers"))
    return (
        f"{datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; {cpu}; {os.cpu_count()} cores ({usable} usable){memory}; "
        f"{platform.system()} {platform.machine()}; Python {platform.python_version()}; {packages}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load average at start {os.getloadavg()[0]:.2f}"
    )


def fmt(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def results_table(rows: Sequence[Measured]) -> str:
    lines = [
        "| run | exit | requests | sent | server saw | wall s | CPU s (user+sys) | CPU ms / request | peak RSS MiB | of it: anon / file MiB | peak PSS MiB | load 1 min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in rows:
        per = m.cpu_s * 1000 / m.requests if m.requests else None
        lines.append(
            f"| {m.label} | {m.returncode} | {fmt(m.requests, ',')} | {fmt(m.sent, ',')} | {fmt(m.server_requests, ',')} | {m.wall_s:.2f} | "
            f"{m.cpu_s:.2f} | {fmt(per, '.3f')} | {m.maxrss_mib:.0f} | {m.anon_mib:.0f} / {m.file_mib:.0f} | {fmt(m.pss_mib or None, '.0f')} | {m.load:.2f} |"
        )
    return "\n".join(lines)


def per_task(m: Measured) -> str:
    if not m.manifest:
        return "(no run.json)"
    parts = [f"{name} {t['n_samples']}" for name, t in m.manifest.get("tasks", {}).items()]
    return ", ".join(parts)


# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--replica-dir", type=Path, default=Path(tempfile.gettempdir()) / "vlmbench-fullsize-replicas")
    parser.add_argument("--skip-build", action="store_true", help="use the replicas already in --replica-dir (an error when one is missing)")
    parser.add_argument("--rebuild", action="store_true", help="build every replica again")
    parser.add_argument("--only", default="random,openai", help=f"runs to measure, comma-separated: {','.join(RUNS)} (default random,openai)")
    parser.add_argument("--hf", action="store_true", help="also measure the hf run (tiny random LLaVA on CPU)")
    parser.add_argument("--limit", default=None, help="passed to every measured run as --limit (default: the full data)")
    parser.add_argument("--repeats", type=int, default=2, help="measured random runs and openai re-runs (default 2)")
    parser.add_argument("--profile", action="store_true", help="also run the openai re-run under cProfile, with phase timers and under -X importtime")
    parser.add_argument("--profile-top", type=int, default=40, help="cumulative-time entries of the profile to print (default 40)")
    parser.add_argument("--scratch", type=Path, default=None, help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--keep-scratch", action="store_true", help="keep the scratch folder (results, logs, store, profile)")
    args = parser.parse_args(argv)
    only = {name.strip() for name in args.only.split(",") if name.strip()} | ({"hf"} if args.hf else set())
    if unknown := only - set(RUNS):
        parser.error(f"--only: unknown run(s) {', '.join(sorted(unknown))}; choose from {', '.join(RUNS)}")

    info = machine_info()
    print(f"machine: {info}", flush=True)
    root = args.replica_dir.expanduser().resolve()
    manifests = existing_replicas(root) if args.skip_build else build_replicas(root, args.rebuild)
    context = REFERENCE / "context_questions.json"
    if hashlib.sha256(context.read_bytes()).hexdigest() != CONTEXT_SHA256:
        raise SystemExit(f"{context}: not the published contextual questions (sha256 differs)")

    scratch = (args.scratch or Path(tempfile.mkdtemp(prefix="vlmbench-fullsize-"))).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    logs = scratch / "logs"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "VLMBENCH_CACHE_DIR": str(scratch / "cache"),
        "HF_DATASETS_CACHE": str(root / "hf_datasets_cache"),
    }
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("VLMBENCH_STORE", None)
    env.pop("VLMBENCH_DATA", None)
    data = ["--data", "hub"]
    for manifest in manifests:
        data += ["--data_files", f"{manifest['hub_id']}={manifest['folder']}"]
    data += ["--data_files", f"{CONTEXT_KEY}={context}"]
    limit = ["--limit", str(args.limit)] if args.limit is not None else []
    vlmbench = [sys.executable, "-m", "vlmbench"]
    rows: list[Measured] = []
    notes: list[str] = []
    profile_text: list[str] = []

    def base(model: str, output: Path) -> list[str]:
        return [*vlmbench, "run", "--model", model, "--tasks", "all", *data, *limit, "--output_path", str(output)]

    try:
        print("start-up floor:", flush=True)
        rows.append(run_child("start-up: vlmbench --version", [*vlmbench, "--version"], env, scratch, None, logs))
        # An unmeasured warm-up, so that no measured run pays for building the datasets' Arrow caches
        # (the first load of a replica converts it; later loads map the cache).
        print("random:" if "random" in only else "warm-up:", flush=True)
        output = scratch / "random"
        warm_up = [*base("random", output), "--no_store"] + ([] if "random" in only or args.limit else ["--limit", "1"])
        warm = run_child("random warm-up (not measured)", warm_up, env, scratch, output, logs)
        if warm.returncode != 0:
            notes.append(f"random warm-up failed: {warm.error}")
        if "random" in only:
            for k in range(args.repeats):
                rows.append(run_child(f"random, run {k + 1}", [*base("random", output), "--no_store"], env, scratch, output, logs))
        if "openai" in only:
            print("openai:", flush=True)
            output = scratch / "openai"
            store = scratch / "openai-store.sqlite"
            with zero_latency_server() as server:
                command = [*base("openai", output), "--model_args", f"base_url={server.base_url},model=bench", "--store", str(store)]
                seen = server_count(server)
                first = run_child("openai, first run (empty store)", command, env, scratch, output, logs)
                first.server_requests = server_count(server) - seen
                rows.append(first)
                for k in range(args.repeats):
                    seen = server_count(server)
                    rerun = run_child(f"openai, re-run {k + 1} (from the store)", command, env, scratch, output, logs)
                    rerun.server_requests = server_count(server) - seen
                    rows.append(rerun)
                if args.profile:
                    prof = scratch / "rerun.prof"
                    seen = server_count(server)
                    cprofile = [sys.executable, "-m", "cProfile", "-o", str(prof), *command[1:]]
                    profiled = run_child("openai re-run under cProfile", cprofile, env, scratch, output, logs)
                    profiled.server_requests = server_count(server) - seen
                    rows.append(profiled)
                    if prof.is_file():
                        profile_text.append(
                            f"### cProfile of the openai re-run (top {args.profile_top} by cumulative time)\n\n```\n{profile_top(prof, args.profile_top)}\n```"
                        )
                    seen = server_count(server)
                    timings = scratch / "phases.json"
                    phased = run_child(
                        "openai re-run with phase timers", [sys.executable, "-c", PHASES, str(timings), *command[3:]], env, scratch, output, logs
                    )
                    phased.server_requests = server_count(server) - seen
                    rows.append(phased)
                    profile_text.append(f"### phase timers of the openai re-run (wall clock, no profiler)\n\n{phase_table(timings, phased)}")
                    seen = server_count(server)
                    imports = run_child(
                        "openai re-run under -X importtime", [sys.executable, "-X", "importtime", *command[1:]], env, scratch, output, logs
                    )
                    imports.server_requests = server_count(server) - seen
                    rows.append(imports)
                    total, slowest, modules = import_times(imports.stderr)
                    listing = "\n".join(f"{s * 1000:8.1f} ms  {name}" for s, name in slowest)
                    profile_text.append(
                        f"### -X importtime of the openai re-run: {modules} modules, {total:.2f} s in top-level imports\n\n```\n{listing}\n```"
                    )
        if "hf" in only:
            print("hf:", flush=True)
            model = scratch / "tiny-llava"
            build = [
                sys.executable,
                "-c",
                f"from vlmbench.testing.tiny_models import build_tiny_vlm; build_tiny_vlm('llava', __import__('pathlib').Path({str(model)!r}))",
            ]
            built = run_child("hf: build tiny LLaVA (not measured)", build, env, scratch, None, logs)
            if built.returncode != 0:
                notes.append(f"tiny LLaVA could not be built: {built.error}")
            else:
                output = scratch / "hf"
                command = [
                    *base("hf", output),
                    "--model_args",
                    f"pretrained={model},device=cpu",
                    "--batch_size",
                    "auto",
                    "--gen_kwargs",
                    "max_new_tokens=4",
                    "--store",
                    str(scratch / "hf-store.sqlite"),
                ]
                rows.append(
                    run_child(
                        "hf tiny LLaVA, CPU, max_new_tokens=4" + (f", --limit {args.limit}" if args.limit else ""),
                        command,
                        env,
                        scratch,
                        output,
                        logs,
                    )
                )
    finally:
        print()
        print("## vlmbench at full hub size, offline, on local replicas\n")
        print(f"machine: {info}\n")
        print(f"replicas: {root} (Arrow caches: {root / 'hf_datasets_cache'})\n")
        print(layout_table(manifests))
        print()
        print(
            f"runs: `--tasks all --data hub` with {' '.join(d for d in data if d != '--data_files')} (each --data_files repeated)"
            + (f", --limit {args.limit}" if args.limit else "")
        )
        print()
        print(results_table(rows))
        print()
        print(
            "requests: answered (sent to the model + reused from the store), from each run's run.json; sent: to the model; server saw: the fault server's count"
        )
        seen_warnings: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            if row.error:
                notes.append(f"{row.label}: {row.error}")
            if row.returncode == 0 and "openai, re-run" in row.label and row.server_requests:
                notes.append(f"{row.label}: the server received {row.server_requests} requests (expected 0)")
            for line in row.warnings:
                seen_warnings[line].append(row.label)
        tasked = next((m for m in rows if m.manifest), None)
        if tasked is not None:
            print(f"tasks and samples ({tasked.label}): {per_task(tasked)}")
            for task, why in tasked.skipped.items():
                print(f"skipped ({tasked.label}, config.skipped_tasks): {task}: {why}")
        for line, labels in seen_warnings.items():
            print(f"warning in {len(labels)} run(s): {line}")
        for note in notes:
            print(f"NOTE: {note}")
        for text in profile_text:
            print()
            print(text)
        if args.keep_scratch or args.scratch:
            print(f"\nscratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0 if all(m.returncode == 0 for m in rows) and not notes else 1


if __name__ == "__main__":
    raise SystemExit(main())
