"""Typed shapes of what a run writes: sample records, the run manifest and the results file.

These TypedDicts are the single definition of the record shapes; the JSON Schemas in
``vlmbench/schemas/`` describe the same files for other tools, and a test checks that results
built from these types validate against the shipped schema. :func:`new_record` is the one
constructor of a sample record: the runner and ``leaderboard verify`` both use it.
"""

from __future__ import annotations

from typing import Any, TypedDict

from vlmbench.backend import Response
from vlmbench.jsontext import compact_encoder
from vlmbench.samples import Sample

BLANK_SHA256 = "blank-white-1000x1000"

record_json = compact_encoder()
"""The JSON text of a samples file's line: ``json.dumps(record, ensure_ascii=False)``, from one encoder built once."""


class ImageRef(TypedDict, total=False):
    """Where a sample's image came from (never its bytes)."""

    blank: bool
    column: str
    source: int
    row: int
    sha256: str | None


class _SampleFields(TypedDict):
    """The fields every sample record has (see :class:`SampleRecord`)."""

    task: str
    index: int
    id: str
    variant: int
    doc: dict[str, Any]
    prompt: str
    image: ImageRef | None
    choices: list[str] | None
    target: str
    response: str | None
    error: str | None
    reused: bool
    usage: dict[str, int] | None
    latency_s: float | None
    served_model: str | None
    produced_with: str | None
    model_prompt: str | None
    key: str | None
    parsed: str | None
    correct: bool | None


class SampleRecord(_SampleFields, total=False):
    """One line of ``samples/<task>.jsonl``: a sample, the model's response, and its verdict.

    ``parsed``/``correct`` are the headline judge's verdict; ``verdicts`` (set by scoring) holds
    every judge's, by judge name."""

    verdicts: dict[str, Any]


class RequestCounts(TypedDict):
    """Requests sent to the model and answers reused from the response store."""

    sent: int
    reused: int


class _TaskFields(TypedDict):
    """The fields every task manifest entry has (see :class:`TaskManifest`)."""

    version: str
    config_hash: str
    prompt_hash: str
    ability: str
    modality: str
    variant: str
    prompts: list[str]
    datasets: list[dict[str, Any]]
    generation_kwargs: dict[str, Any]
    scorer: str
    scorer_args: dict[str, str]
    metric_list: list[str]
    cluster_key: str
    samples_file: str
    n_samples: int
    requests: RequestCounts
    seconds: float
    usage: dict[str, int]


class TaskManifest(_TaskFields, total=False):
    """What ``run.json`` records of one task: identity, data, settings, judges, request counts."""

    judges: list[str]  # the judges that score it, headline first (absent in runs before judges existed)


class ModelInfo(TypedDict, total=False):
    """The model of a run: backend name, redacted args and the backend's identity."""

    backend: str
    args: dict[str, str]
    identity: dict[str, Any]


class RunManifest(TypedDict, total=False):
    """``run.json``: written as the run goes, ``complete`` once every task is answered."""

    schema_version: int
    vlmbench_version: str
    created: str
    model: ModelInfo
    config: dict[str, Any]
    provenance: dict[str, Any]
    tasks: dict[str, TaskManifest]
    complete: bool
    seconds: float
    errors: dict[str, dict[str, int]]  # the backend's failed requests and attempts by error class, when any failed
    reused_provenance: dict[str, dict[str, Any] | None]  # the versions that produced reused answers, by digest, when any were reused


class TaskResults(TypedDict, total=False):
    """One task's entry in ``results.json``: the manifest entry plus its metrics."""

    version: str
    config_hash: str
    prompt_hash: str
    ability: str
    modality: str
    variant: str
    prompts: list[str]
    datasets: list[dict[str, Any]]
    generation_kwargs: dict[str, Any]
    scorer: str
    samples_file: str
    requests: RequestCounts
    seconds: float
    usage: dict[str, int]
    metrics: dict[str, Any]
    by_category: dict[str, Any]
    by_concept: dict[str, Any]
    judges: list[dict[str, Any]]
    metrics_by_judge: dict[str, Any]
    agreement: dict[str, Any]
    served_models: dict[str, int]
    reused_from: dict[str, int]


class _ResultsFields(TypedDict):
    """The fields every ``results.json`` has (see :class:`Results`)."""

    schema_version: int
    vlmbench_version: str
    created: str
    scored: str
    scored_with: str
    model: ModelInfo
    config: dict[str, Any]
    provenance: dict[str, Any]
    tasks: dict[str, TaskResults]
    modality_gaps: dict[str, Any]
    seconds: float


class Results(_ResultsFields, total=False):
    """``results.json``: ``reused_provenance`` as in the run's manifest, when it reused answers."""

    reused_provenance: dict[str, dict[str, Any] | None]


def image_ref(sample: Sample, image_sha256: str | None) -> ImageRef | None:
    """The image reference of a sample's record."""
    if sample.image is None:
        return None
    if sample.image == "blank":
        return {"blank": True, "sha256": BLANK_SHA256}
    return {"column": sample.image, "source": sample.doc["_source"], "row": sample.doc["_row"], "sha256": image_sha256}


def new_record(
    task: str,
    index: int,
    sample: Sample,
    image_sha256: str | None,
    response: Response,
    reused: bool = False,
    key: str | None = None,
    produced_with: str | None = None,
) -> SampleRecord:
    """The sample record of ``sample`` answered by ``response``; its verdict is filled in by scoring.

    ``produced_with``: for a reused answer, the digest of the provenance of the run that produced it
    (see :class:`~vlmbench.store.StoredResponse`); None for an answer of this run, or one stored before
    vlmbench kept it."""
    return {
        "task": task,
        "index": index,
        "id": sample.id,
        "variant": sample.variant,
        "doc": {k: v for k, v in sample.doc.items() if not k.startswith("_")},
        "prompt": sample.prompt,
        "image": image_ref(sample, image_sha256),
        "choices": list(sample.choices) if sample.choices else None,
        "target": sample.target,
        "response": response.text,
        "error": response.error,
        "reused": reused,
        "usage": response.usage,
        "latency_s": response.latency_s,
        "served_model": response.served_model,
        "produced_with": produced_with if reused else None,
        "model_prompt": response.prompt,
        "key": key,
        "parsed": None,
        "correct": None,
    }
