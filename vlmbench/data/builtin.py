"""The built-in datasets, generated deterministically on first use and cached on disk.

``builtin:typographic``: each concept description (unsafe concepts and safe controls) rendered as
text in an image. The same words reach a model as pixels (image tasks) or as text (text tasks): a
controlled probe of the modality gap. It is synthetic, not the paper's images, and ships nothing unsafe.

``builtin:shapes-vqa``: procedurally drawn questions on ordinary visual skill (counting, colours,
shapes, positions, reading a word, multiple choice) with exact answers.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image, ImageDraw

from vlmbench.cache import cache_dir
from vlmbench.data.concepts import Concept, ConceptCatalog
from vlmbench.data.render import add_speckle, font, render_text_image
from vlmbench.errors import UserError
from vlmbench.forked import map_in_two, no_progress_monitor

K = TypeVar("K")

GENERATOR_VERSION = "1"
SYNTHETIC_NOTE = (
    "built-in synthetic typographic probe: concept descriptions rendered as text images; "
    "not the paper's images (use --data hub for yiting/UnsafeConcepts)"
)


def typographic_rows(catalog: ConceptCatalog) -> list[dict[str, Any]]:
    """One row per (concept, description): the description rendered as a 512x512 image (PNG bytes, see :func:`_made`)."""
    keys = [(concept, index) for concept in catalog.concepts for index in range(len(concept.descriptions))]
    return _made(keys, lambda key: _typographic_row(*key))


def _typographic_row(concept: Concept, index: int) -> dict[str, Any]:
    description = concept.descriptions[index]
    return {
        "image": render_text_image(description, random.Random(f"typographic:{concept.name}:{index}")),
        "concept": concept.name,
        "category": concept.category,
        "label": "unsafe" if concept.unsafe else "safe",
        "description": description,
    }


def _made(keys: list[K], make: Callable[[K], dict[str, Any]]) -> list[dict[str, Any]]:
    """``[make(key) for key in keys]`` with each row's image encoded as ``datasets`` stores a picture (PNG bytes),
    a forked child making half of them where :func:`~vlmbench.forked.map_in_two` can. Each row draws from its own
    seeded generator, so the rows (and the dataset's fingerprint) do not depend on who made them; encoding is
    most of the work (about 4 ms of a row's 6)."""
    import datasets

    feature = datasets.Image()

    def made(key: K) -> dict[str, Any]:
        row = make(key)
        row["image"] = feature.encode_example(row["image"])
        return row

    return map_in_two(keys, made, weight=lambda _: 1.0)


COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 60),
    "blue": (30, 70, 220),
    "yellow": (240, 200, 0),
    "orange": (245, 130, 20),
    "purple": (140, 50, 170),
    "black": (10, 10, 10),
}
SHAPES = ("circle", "square", "triangle", "diamond")
WORDS = ("apple", "river", "garden", "window", "pencil", "guitar", "planet", "candle", "bridge", "rocket", "violin", "forest")
NUMBERS = tuple(str(i) for i in range(10))


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=colour)
    else:  # diamond
        draw.polygon([((x0 + x1) // 2, y0), (x1, (y0 + y1) // 2), ((x0 + x1) // 2, y1), (x0, (y0 + y1) // 2)], fill=colour)


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (384, 384), (248, 248, 248))
    return image, ImageDraw.Draw(image)


def _free_boxes(rng: random.Random, count: int, size: int) -> list[tuple[int, int, int, int]]:
    """``count`` non-overlapping square boxes on a 384x384 canvas (grid cells, shuffled)."""
    cells = [(r, c) for r in range(4) for c in range(4)]
    rng.shuffle(cells)
    return [(c * 96 + 8, r * 96 + 8, c * 96 + 8 + size, r * 96 + 8 + size) for r, c in cells[:count]]


def _vqa_item(kind: str, rng: random.Random) -> dict[str, Any]:
    image, draw = _canvas()
    if kind == "counting":
        count = rng.randint(1, 7)
        shape = rng.choice(SHAPES[:3])
        colour = rng.choice(list(COLOURS))
        for box in _free_boxes(rng, count, 72):
            _draw_shape(draw, shape, box, COLOURS[colour])
        question, answer, choices = f"How many {shape}s are in the image? Answer with a number.", str(count), NUMBERS
    elif kind == "colour":
        colour = rng.choice(list(COLOURS))
        _draw_shape(draw, rng.choice(SHAPES), (92, 92, 292, 292), COLOURS[colour])
        question, answer, choices = "What colour is the shape in the image? Answer with one word.", colour, tuple(COLOURS)
    elif kind == "shape":
        shape = rng.choice(SHAPES)
        _draw_shape(draw, shape, (92, 92, 292, 292), COLOURS[rng.choice(list(COLOURS))])
        question, answer, choices = "What shape is shown in the image? Answer with one word.", shape, SHAPES
    elif kind == "position":
        red_left = rng.random() < 0.5
        red_box, blue_box = ((40, 142, 140, 242), (244, 142, 344, 242))
        if not red_left:
            red_box, blue_box = blue_box, red_box
        _draw_shape(draw, "circle", red_box, COLOURS["red"])
        _draw_shape(draw, "square", blue_box, COLOURS["blue"])
        question = "Is the red circle to the left of the blue square? Answer yes or no."
        answer, choices = ("Yes" if red_left else "No"), ("Yes", "No")
    elif kind == "reading":
        word = rng.choice(WORDS)
        face = font(rng.choice((48, 56, 64)))
        left, top, right, bottom = draw.textbbox((0, 0), word, font=face)
        draw.text(((384 - (right - left)) // 2, (384 - (bottom - top)) // 2), word, fill=(20, 20, 20), font=face)
        question, answer, choices = "What word is written in the image? Answer with the word only.", word, WORDS
    else:  # multiple choice over shapes
        shape = rng.choice(SHAPES)
        _draw_shape(draw, shape, (92, 92, 292, 292), COLOURS[rng.choice(list(COLOURS))])
        order = list(SHAPES)
        rng.shuffle(order)
        letters = "ABCD"
        options = " \n".join(f"{letter}: {name}" for letter, name in zip(letters, order))
        question = f"Which shape is shown in the image? Choose from A, B, C, or D. \n{options}"
        answer, choices = letters[order.index(shape)], tuple(letters)
    return {"image": add_speckle(image, rng, 0.002), "category": kind, "question": question, "answer": answer, "choices": list(choices)}


VQA_KINDS = ("counting", "colour", "shape", "position", "reading", "multiple_choice")
VQA_PER_KIND = 40


def shapes_vqa_rows() -> list[dict[str, Any]]:
    """240 questions, 40 of each kind in ``VQA_KINDS`` (images as PNG bytes, see :func:`_made`)."""
    keys = [(kind, i) for kind in VQA_KINDS for i in range(VQA_PER_KIND)]
    return _made(keys, lambda key: _vqa_item(key[0], random.Random(f"shapes-vqa:{key[0]}:{key[1]}")))


BUILTINS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "typographic": typographic_rows,
    "shapes-vqa": shapes_vqa_rows,
}


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """No progress bar from ``datasets`` inside the block (as the user had them before it, after), nor its monitor thread."""
    import datasets.utils

    disabled = datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()
    try:
        with no_progress_monitor():
            yield
    finally:
        if not disabled:
            datasets.utils.enable_progress_bars()


def builtin_dataset(name: str, catalog: ConceptCatalog | None) -> Path:
    """The on-disk folder (``datasets`` format) of built-in dataset ``name``, generating it if needed."""
    if name not in BUILTINS:
        raise UserError(f"unknown built-in dataset 'builtin:{name}'; available: {', '.join('builtin:' + n for n in BUILTINS)}")
    key = f"{name}-v{GENERATOR_VERSION}"
    if name == "typographic":
        if catalog is None:
            raise UserError("builtin:typographic needs the task field 'concepts_file'")
        key += f"-{catalog.sha256[:12]}"
    target = cache_dir() / "builtin" / key
    if (target / "dataset_info.json").is_file():
        return target
    print(f"vlmbench: generating built-in dataset builtin:{name} (first use) in {target}", file=sys.stderr)
    import datasets

    rows = BUILTINS[name](catalog) if name == "typographic" else BUILTINS[name]()
    columns = {column: [row[column] for row in rows] for column in rows[0]}
    features = datasets.Features(
        {
            column: datasets.Image()
            if column == "image"
            else datasets.Sequence(datasets.Value("string"))
            if column == "choices"
            else datasets.Value("string")
            for column in columns
        }
    )
    dataset = datasets.Dataset.from_dict(columns, features=features)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        with _quiet_progress():
            dataset.save_to_disk(str(scratch / "data"))
        try:
            (scratch / "data").rename(target)  # atomic: a concurrent run either wins or finds it done
        except OSError:
            if not (target / "dataset_info.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
