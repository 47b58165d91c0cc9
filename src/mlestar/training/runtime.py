"""Process-wide PyTorch settings, made once before any model is built: threads and determinism.

Stage 4, the refinement stage, ``mlestar tune`` workers and DDP ranks all
start their training through :func:`configure_torch`, so a trial and the run
it tunes compute with the same settings.
"""

from __future__ import annotations


def configure_torch(num_threads: int | None, deterministic: bool) -> None:
    """Intra-op threads (None: PyTorch's choice) and deterministic kernels.

    ``deterministic`` asks for deterministic algorithms with ``warn_only``: a
    kernel that has no deterministic version warns instead of failing the run.
    cuDNN's autotuner is switched off too, as it picks kernels by timing.
    """
    import torch

    if num_threads:
        torch.set_num_threads(int(num_threads))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
