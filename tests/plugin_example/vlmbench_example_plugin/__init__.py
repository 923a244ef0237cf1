"""Example third-party vlmbench plugin: the ``modality-probe`` backend, the ``first-number``
scorer and the ``arithmetic`` task.

``modality-probe`` judges by modality alone: it calls anything it *sees* (a non-blank image) safe
and anything it only *reads about* unsafe, so its alignment modality gap is exactly +1. For
questions with answer choices it answers the first choice. ``first-number`` reads the first
integer in a response ("The sum is 12." -> "12"), for tasks with numeric answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from PIL import ImageStat

from vlmbench import BackendBase, BackendSpec, Request, Response, ScoreInput, ScorerSpec, Verdict, hookimpl


def _sees_content(request: Request) -> bool:
    for message in request.messages:
        for part in message.images:
            extrema = ImageStat.Stat(part.load()).extrema
            if any(low < 255 for low, _ in extrema):  # not pure white
                return True
    return False


class ModalityProbe(BackendBase):
    """Answers from the modality of the request, never from its content."""

    name = "modality-probe"

    def generate(self, requests: Sequence[Request]) -> Iterator[Response]:
        for request in requests:
            choices = request.answer_choices or ()
            if set(choices) == {"Yes", "No"}:
                text = "Yes." if _sees_content(request) else "No."
            else:
                text = choices[0] if choices else "Yes."
            yield Response(request_id=request.id, text=text, usage={"prompt_tokens": 1, "completion_tokens": 1})


@hookimpl
def vlmbench_backends() -> list[BackendSpec]:
    return [BackendSpec("modality-probe", "example plugin: safe if it sees an image, unsafe if it reads text", lambda args, options: ModalityProbe())]


class FirstNumber:
    """Reads the first integer of a response; right when it equals the target."""

    name = "first-number"
    version = "1"

    def score(self, items: Sequence[ScoreInput]) -> Iterator[Verdict]:
        for item in items:
            match = re.search(r"-?\d+", item.response[:1000])
            parsed = match.group(0) if match else None
            yield Verdict(item.id, parsed, None if parsed is None else parsed == item.target.strip(), self.name)


@hookimpl
def vlmbench_scorers() -> list[ScorerSpec]:
    return [ScorerSpec("first-number", "example plugin: the first integer in the response", FirstNumber.version, lambda args: FirstNumber())]


@hookimpl
def vlmbench_task_dirs() -> list[Path]:
    return [Path(__file__).parent / "tasks"]
