"""Seed every random number generator a stage may touch."""

from __future__ import annotations

import os
import random


def seed_everything(seed: int, *, torch: bool = True) -> None:
    """Seed Python's ``random``, NumPy's global RNG and, with ``torch``, PyTorch (CPU and CUDA).

    Called by the runner before every stage, so a stage's randomness depends
    only on the seed, not on what ran before it in the process (a resumed or
    cached run then behaves like a fresh one).
    """
    import numpy as np  # here, not at the top: the runner imports this module on every command's path

    random.seed(seed)
    np.random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if torch:  # importing torch costs seconds; stages that never touch it skip this
        import torch as _torch

        _torch.manual_seed(seed)  # also seeds every CUDA device
