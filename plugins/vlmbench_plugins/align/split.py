"""The UnsafeConcepts study's train/test split for alignment fine-tuning, as a document step.

The study split each unsafe concept's images 80/20: concepts in sorted order, each concept's images
in dataset order, shuffled by one Python ``random`` generator seeded 2024 (shared across concepts), the
first ``int(n * 0.8)`` for training. On the published data that is 1,222 training and 345 test
images. The safe images come from the safe pool (``yiting/imagenet_1k_unique_class`` on the hub
data; the built-in safe control concepts on ``builtin``): shuffled by a generator seeded 2024, cut
80/20, and each part cut to as many images as its unsafe part has. When the pool's 20% holds fewer
images than the unsafe test part, the test part still gets as many safe images as unsafe ones (at
most half the pool), taken from the end of the shuffled pool, and training keeps the rest: on the
hub data (1,000 safe images) that is 345 safe test and 655 safe training images.

Documents need ``label`` (``unsafe``/``safe``) and ``concept``; their order is the data's order, so
the split of a given dataset is always the same. Each kept document gets ``split`` (``train`` or
``test``); the step's ``part`` keeps one part (``test`` for evaluation, ``train`` for training) or
``all``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

STUDY_SEED = 2024
TRAIN_SHARE = 0.8
PARTS = ("train", "test", "all")
STEP = "study_split"


@dataclass(frozen=True)
class Split:
    """Indices (into the documents given) of each part, and how the safe part was drawn."""

    train: tuple[int, ...]
    test: tuple[int, ...]
    safe_rule: str
    counts: dict[str, int] = field(default_factory=dict)


def study_split(docs: Sequence[dict[str, Any]], seed: int = STUDY_SEED, train_share: float = TRAIN_SHARE) -> Split:
    """The study's split of ``docs`` (see the module docstring); ``train`` and ``test`` never share a document."""
    unsafe = [i for i, doc in enumerate(docs) if doc.get("label", "unsafe") == "unsafe"]
    safe = [i for i, doc in enumerate(docs) if doc.get("label") == "safe"]
    by_concept: dict[str, list[int]] = {}
    for index in unsafe:
        by_concept.setdefault(str(docs[index]["concept"]), []).append(index)
    rng = random.Random(seed)
    unsafe_train: list[int] = []
    unsafe_test: list[int] = []
    for concept in sorted(by_concept):  # the study's np.unique order (code points)
        items = list(by_concept[concept])
        keep = int(len(items) * train_share)
        rng.shuffle(items)
        unsafe_train += items[:keep]
        unsafe_test += items[keep:]
    pool = list(safe)
    random.Random(seed).shuffle(pool)
    cut = int(len(pool) * train_share)
    if len(pool) - cut >= len(unsafe_test):
        safe_test, safe_train = pool[cut:][: len(unsafe_test)], pool[:cut][: len(unsafe_train)]
        rule = f"study: safe pool shuffled (seed {seed}), cut {train_share:g}/{1 - train_share:g}, each part cut to its unsafe part's size"
    else:
        n_test = min(len(unsafe_test), len(pool) // 2)
        cut = len(pool) - n_test
        safe_test, safe_train = pool[cut:], pool[:cut][: len(unsafe_train)]
        rule = (
            f"balanced test: the pool's {1 - train_share:g} share ({len(pool) - int(len(pool) * train_share)}) is smaller than the unsafe test part "
            f"({len(unsafe_test)}), so the test part takes {n_test} safe images from the end of the shuffled pool (seed {seed}) and training the rest"
        )
    counts = {
        "train_unsafe": len(unsafe_train),
        "train_safe": len(safe_train),
        "test_unsafe": len(unsafe_test),
        "test_safe": len(safe_test),
        "safe_pool": len(pool),
    }
    return Split(tuple(unsafe_train + safe_train), tuple(unsafe_test + safe_test), rule, counts)


def split_step(
    docs: list[dict[str, Any]], part: str = "test", split_seed: int = STUDY_SEED, train_share: float = TRAIN_SHARE, **_: Any
) -> list[dict[str, Any]]:
    """The ``study_split`` document step: the documents of one part (in data order), each with ``split`` set.

    ``split_seed`` is the split's own seed (the study's 2024), never the run's ``--seed``."""
    split = study_split(docs, split_seed, train_share)
    where = {i: "train" for i in split.train} | {i: "test" for i in split.test}
    return [{**doc, "split": where[i]} for i, doc in enumerate(docs) if i in where and part in ("all", where[i])]


ARGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "part": {"enum": list(PARTS)},
        "split_seed": {"type": "integer"},
        "train_share": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    },
}
