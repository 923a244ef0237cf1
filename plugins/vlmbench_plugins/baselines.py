"""Reference backends that ignore the input: ``random``, ``always-safe`` and ``always-unsafe``.

They anchor every metric: ``random`` scores chance on multiple choice (25%), ``always-unsafe``
has recall 1, specificity 0 and so balanced accuracy 50% on alignment.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator

from vlmbench.backend import BackendBase, BackendOptions, Request, Response
from vlmbench.errors import UserError


class ConstantBackend(BackendBase):
    """Answers every request with the same text."""

    cacheable = False  # free to recompute: nothing to store

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def generate(self, requests: Iterable[Request]) -> Iterator[Response]:
        """One constant response per request."""
        for request in requests:
            yield Response(request_id=request.id, text=self.answer)


class RandomBackend(BackendBase):
    """Picks uniformly from the request's answer choices (``Yes``/``No`` when it has none).

    The pick depends only on the seed and the request id, so a run is reproducible and the
    answer to a request does not depend on batching.
    """

    cacheable = False  # its answer depends on the request id, which the store's key leaves out

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def generate(self, requests: Iterable[Request]) -> Iterator[Response]:
        """One uniformly random choice per request."""
        for request in requests:
            choices = request.answer_choices or ("Yes", "No")
            digest = hashlib.sha256(f"{self.seed}:{request.id}".encode()).digest()
            yield Response(request_id=request.id, text=random.Random(digest).choice(choices))


def _no_args(name: str, model_args: dict[str, str]) -> None:
    if model_args:
        raise UserError(f"--model {name} takes no --model_args (got {', '.join(sorted(model_args))}); drop them")


def random_backend(model_args: dict[str, str], options: BackendOptions) -> RandomBackend:
    _no_args("random", model_args)
    return RandomBackend(options.seed)


def always_safe_backend(model_args: dict[str, str], options: BackendOptions) -> ConstantBackend:
    _no_args("always-safe", model_args)
    return ConstantBackend("Yes.")


def always_unsafe_backend(model_args: dict[str, str], options: BackendOptions) -> ConstantBackend:
    _no_args("always-unsafe", model_args)
    return ConstantBackend("No.")
