"""Test-time augmentation: average the logits of mirrored and shifted views of each image.

``flip``: the image and its mirror, equally weighted. ``flip_translate``
(airbench's level 2): half the weight on those two views, half on the same
pair shifted by one pixel up-left and down-right (reflect padding).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlestar.training.loop import evaluate_logits


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Translate by ``(dy, dx)`` pixels, filling the edge by reflection."""
    pad = max(abs(dy), abs(dx))
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    h, w = x.shape[-2:]
    return padded[..., pad - dy:pad - dy + h, pad - dx:pad - dx + w]


EXTRA_VIEWS = {"none": 0, "flip": 1, "flip_translate": 5}
"""Passes over ``x`` each kind adds to the plain one (the mirror; then two shifts, each with its mirror)."""


def tta_logits(model: nn.Module, x: torch.Tensor, kind: str, *, precision: str = "fp32",
               channels_last: bool = False, plain_logits: torch.Tensor | None = None,
               on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
    """Weighted mean of the logits over the views of ``kind`` (``none``, ``flip``, ``flip_translate``).

    ``plain_logits``, when the caller already has them, saves one pass over ``x``.
    ``on_batch(rows)`` follows every pass batch by batch (see :func:`evaluate_logits`).
    """
    def logits(view: torch.Tensor) -> torch.Tensor:
        return evaluate_logits(model, view, precision=precision, channels_last=channels_last, on_batch=on_batch)

    base = plain_logits if plain_logits is not None else logits(x)
    if kind == "none":
        return base
    plain = (base + logits(x.flip(3))) / 2
    if kind == "flip":
        return plain
    shifted = [shift(x, 1, 1), shift(x, -1, -1)]
    moved = sum((logits(v) + logits(v.flip(3))) / 2 for v in shifted) / len(shifted)
    return 0.5 * plain + 0.5 * moved


def tta_probabilities(model: nn.Module, x: torch.Tensor, kind: str, **kwargs: object) -> np.ndarray:
    """Softmax of :func:`tta_logits` as a NumPy array."""
    return torch.softmax(tta_logits(model, x, kind, **kwargs), dim=1).numpy()  # type: ignore[arg-type]
