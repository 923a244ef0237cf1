"""Joining the hf backend's slices of one batch: the processor's inputs for consecutive slices of a
batch, prepared by several worker processes, become exactly what the processor gives for the whole
batch, or :class:`CannotMerge` says they cannot (and the batch is prepared whole)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Inputs aligned with the token sequence: padded on the left (input_ids with the pad token, the rest with 0).
SEQUENCE_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")


class CannotMerge(Exception):
    """The slices' inputs do not join into those of the whole batch (a processor that pads other inputs per batch)."""


# Inputs whose rows are the patches of every image in turn (Qwen2-VL), with the key that counts each image's patches.
FLATTENED_KEYS = {"pixel_values": "image_grid_thw", "pixel_values_videos": "video_grid_thw"}


def merge_inputs(parts: Sequence[Any], pad_token_id: int | None, sizes: Sequence[tuple[int, int]]) -> Any:
    """The processor's inputs for a whole batch, from those of its consecutive slices (``sizes``: each
    slice's requests and images): what the processor gives for the batch at once. Sequences must be
    padded on the left (they are padded again to the longest); every other input must hold a row per
    request, per image, or per image patch (Qwen2-VL), with the same shape beyond its rows in every
    slice, and is joined along its rows. Anything else raises :class:`CannotMerge`."""
    import torch

    first = parts[0]
    keys = list(first.keys())
    if any(list(part.keys()) != keys for part in parts) or "input_ids" not in keys:
        raise CannotMerge("the slices give different inputs")
    for part in parts:
        mask = part.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.dim() == 2 and bool((mask[:, 1:] < mask[:, :-1]).any()):
            raise CannotMerge("the sequences are padded on the right")
    width = max(int(part["input_ids"].shape[1]) for part in parts)
    merged: dict[str, Any] = {}
    for key in keys:
        values = [part[key] for part in parts]
        if not all(isinstance(value, torch.Tensor) and value.dim() > 0 for value in values):
            raise CannotMerge(f"{key} is not a tensor with rows")
        if key in SEQUENCE_KEYS:
            if any(value.dim() != 2 or value.shape[0] != requests for value, (requests, _) in zip(values, sizes)):
                raise CannotMerge(f"{key} is not a batch of sequences")
            pad = (pad_token_id or 0) if key == "input_ids" else 0
            values = [torch.nn.functional.pad(value, (width - value.shape[1], 0), value=pad) for value in values]
        else:
            if any(value.shape[1:] != values[0].shape[1:] for value in values):
                raise CannotMerge(f"{key} is padded per slice")
            for part, value, (requests, images) in zip(parts, values, sizes):
                counts = part.get(FLATTENED_KEYS.get(key, ""))
                patches = int(counts.prod(dim=-1).sum()) if isinstance(counts, torch.Tensor) and counts.dim() == 2 else None
                if value.shape[0] not in (requests, images, patches):
                    raise CannotMerge(f"{key} does not hold a row per request, image or patch")
        merged[key] = torch.cat(values)
    return type(first)(merged)
