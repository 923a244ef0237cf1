"""Deterministic drawing helpers shared by the generated built-in datasets."""

from __future__ import annotations

import random
import textwrap

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Only Pillow's embedded font is used, so the images are identical on every machine with the
# same Pillow version (system fonts differ between machines).
FONT_SIZES = (26, 30, 34, 38, 44)
PALETTE = (
    ((250, 250, 245), (20, 20, 20)),
    ((20, 24, 38), (240, 240, 240)),
    ((255, 244, 214), (90, 40, 10)),
    ((222, 236, 250), (10, 40, 110)),
    ((236, 250, 232), (20, 80, 30)),
    ((60, 60, 60), (255, 220, 90)),
)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's embedded scalable font at ``size`` pixels."""
    return ImageFont.load_default(size=size)


def blank_image(size: int = 1000) -> Image.Image:
    """A white square RGB image (the paper's stand-in image for text-only prompts)."""
    return Image.new("RGB", (size, size), (255, 255, 255))


def render_text_image(text: str, rng: random.Random, size: int = 512) -> Image.Image:
    """``text`` drawn as a poster: random wrap width, font size, colours, offset and mild noise."""
    background, ink = rng.choice(PALETTE)
    font_size = rng.choice(FONT_SIZES)
    face = font(font_size)
    width_chars = max(8, int((size - 60) / (font_size * 0.55)))
    lines = textwrap.wrap(text, width=rng.randint(max(8, width_chars - 6), width_chars))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    line_height = int(font_size * 1.25)
    top = max(10, (size - line_height * len(lines)) // 2 + rng.randint(-30, 30))
    for i, line in enumerate(lines):
        left, _, right, _ = draw.textbbox((0, 0), line, font=face)
        x = max(10, (size - (right - left)) // 2 + rng.randint(-15, 15))
        draw.text((x, top + i * line_height), line, fill=ink, font=face)
    return add_speckle(image, rng)


def add_speckle(image: Image.Image, rng: random.Random, fraction: float = 0.004) -> Image.Image:
    """Sprinkle a small fraction of pixels with random grey values (mild, PNG-friendly noise)."""
    pixels = np.asarray(image).copy()
    noise = np.random.default_rng(rng.getrandbits(32))
    count = int(fraction * pixels.shape[0] * pixels.shape[1])
    ys = noise.integers(0, pixels.shape[0], count)
    xs = noise.integers(0, pixels.shape[1], count)
    pixels[ys, xs] = noise.integers(0, 256, (count, 1), dtype=np.uint8)
    return Image.fromarray(pixels)
