"""The runtime that computes stage 5's logits: ONNX Runtime when the model exports and agrees, else PyTorch.

Why: stage 5's cost is forward passes (every TTA view over the test split,
plus the validation split for calibration), and ONNX Runtime's CPU graph
(batch norm folded into the convolutions, fused activations) is faster than
eager PyTorch. On the 2-core AVX2 development CPU, airbench_s in fp32 ran
2,520 images/s under ONNX Runtime against 1,844 in channels-last PyTorch
(``benchmarks/stage5.py`` times the stage either way).

The numbers stay honest: the graph is the one stage 7 exports, and it is used
only after it matches PyTorch on real images (every top-1 class the same, logits
within :data:`PARITY_TOLERANCE`); otherwise stage 5 runs PyTorch and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mlestar.errors import ExportError

Choice = Literal["auto", "torch", "onnxruntime"]

PARITY_TOLERANCE = 1e-3
"""Largest accepted logit difference from PyTorch (fp32 ONNX Runtime differs by about 1e-5 on airbench nets)."""
PARITY_IMAGES = 256
"""Images compared with PyTorch before ONNX Runtime is trusted (0.15 s of PyTorch on the dev CPU)."""


class OnnxModule(nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` call ``(N, C, H, W) float32 -> logits``.

    It has no parameters, so ``eval()`` and ``to(memory_format=...)`` are no-ops,
    and it always returns CPU tensors.
    """

    def __init__(self, runner: Any) -> None:
        super().__init__()
        self.runner = runner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.runner(x.detach().cpu().float().numpy())))


@dataclass(frozen=True)
class EvalForward:
    """What computes the logits, and the evidence for choosing it.

    Attributes:
        module: called on normalized ``(N, C, H, W)`` float32 batches, returns logits.
        runtime: ``"onnxruntime"`` or ``"torch"``.
        channels_last: whether to hand ``module`` channels-last batches (PyTorch only).
        reason: one sentence for the report: why this runtime, with the parity numbers.
        parity: ``{"max_abs_diff", "top1_agreement", "images"}`` against PyTorch, when compared.
    """

    module: nn.Module
    runtime: str
    channels_last: bool
    reason: str
    parity: dict[str, float] | None = None

    def record(self) -> dict[str, Any]:
        """The ``forward`` entry of ``metrics.json``."""
        return {"runtime": self.runtime, "reason": self.reason, "parity": self.parity}


def evaluation_forward(model: nn.Module, probe: torch.Tensor, *, channels_last: bool = False,
                       choice: Choice = "auto") -> EvalForward:
    """The forward pass stage 5 (and stage 7, for an adopted model) evaluates with.

    ``probe``: normalized real images (the validation split's first
    :data:`PARITY_IMAGES` are compared). ``choice``: ``torch`` always runs
    PyTorch; ``onnxruntime`` raises when the export fails or disagrees;
    ``auto`` falls back to PyTorch then, with the reason recorded.

    Raises:
        ExportError: ``choice="onnxruntime"`` and the model cannot be exported or disagrees with PyTorch.
    """
    if choice == "torch":
        return _torch(model, channels_last, "evaluation.runtime is torch")
    try:
        return _onnx(model, probe[:PARITY_IMAGES])
    except ExportError as exc:
        if choice == "onnxruntime":
            raise
        return _torch(model, channels_last, f"ONNX Runtime not used: {exc}")


def _torch(model: nn.Module, channels_last: bool, reason: str) -> EvalForward:
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return EvalForward(model.eval(), "torch", channels_last, f"PyTorch ({reason})")


def _onnx(model: nn.Module, probe: torch.Tensor) -> EvalForward:
    """Export in memory, run it with all of torch's threads, and hold it to parity on ``probe``."""
    from mlestar.deploy.export import check_parity, onnx_runner

    runner = onnx_runner(model, probe[:2], threads=torch.get_num_threads())
    report = check_parity(model, runner, probe, PARITY_TOLERANCE, "onnx", min_top1_agreement=1.0)
    parity = {"max_abs_diff": report.max_abs_diff, "top1_agreement": report.top1_agreement,
              "images": float(report.n_images)}
    if not report.passed:
        raise ExportError(f"the ONNX graph disagrees with PyTorch on {report.n_images} validation images "
                          f"(max |diff| {report.max_abs_diff:.2e}, top-1 agreement {report.top1_agreement:.2%})",
                          hint="set evaluation.runtime: torch")
    return EvalForward(OnnxModule(runner), "onnxruntime", False,
                       f"ONNX Runtime (the exported graph; on {report.n_images} validation images it matched "
                       f"PyTorch's top-1 every time, logits within {report.max_abs_diff:.1e})", parity)
