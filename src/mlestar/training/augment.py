"""Augmentation on batched tensors, on the training device (no per-image Python).

Random translation pads by reflection and crops back at a random offset per
image; flips mirror a random half of the batch. Both draw from the caller's
generator so a resumed run repeats the exact same augmentations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_translate(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``pad`` pixels in x and y (reflect padding)."""
    if pad <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    # Gather rows then columns with per-image offsets: one advanced-index op, no loop.
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)
    cols = (dx[:, None] + torch.arange(w)[None, :]).to(x.device)
    index_n = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[index_n, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images left-right."""
    mask = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def augment(x: torch.Tensor, kind: str, generator: torch.Generator, pad: int) -> torch.Tensor:
    """Apply the named augmentation: none, flip, translate or flip_translate."""
    if kind in ("translate", "flip_translate"):
        x = random_translate(x, pad, generator)
    if kind in ("flip", "flip_translate"):
        x = random_flip(x, generator)
    return x
