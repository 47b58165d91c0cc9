"""Post-hoc calibration by temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks").

One scalar ``T > 0`` divides every logit: ``softmax(logits / T)``. ``T > 1``
softens an overconfident model, ``T < 1`` sharpens an underconfident one, and
since dividing a row by the same positive number keeps its order, the
predicted class (and so accuracy, F1 and the confusion matrix) never changes.

``T`` is fitted on the **validation** split's logits by minimising the
negative log-likelihood; the test split is only ever scored with it. Stage 5
fits it for stage 4's model, stage 7 keeps it for the same model or refits it
for a model refinement adopted, and the exported model divides its logits by
it (:class:`TemperatureScaled`), so every runtime serves calibrated probabilities.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

# Bounds of the search. Past 20 a softmax over 10 classes is nearly uniform; below 0.05 it is
# nearly one-hot: a fit pushed to either bound says the validation split cannot tell T apart
# (all correct, or all wrong), and the bound stops it at a finite, still honest value.
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0
_XATOL = 1e-7  # on log T: T is exact to about 7 digits, far below what ECE or NLL can resolve


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(logits as float64 (N, C), labels as int64 (N,))``; raise ValueError on bad shapes."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64).ravel()
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"logits must be a non-empty (N, C) array, got shape {z.shape}")
    if len(y) != len(z):
        raise ValueError(f"{len(y)} labels but {len(z)} logit rows")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must lie in 0..{z.shape[1] - 1}, got {y.min()}..{y.max()}")
    if not np.isfinite(z).all():
        raise ValueError("logits hold NaN or infinite values; temperature scaling needs finite logits")
    return z, y


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)`` (natural log)."""
    from scipy.special import logsumexp

    z, y = _check(logits, labels)
    scaled = z / temperature
    return float(np.mean(logsumexp(scaled, axis=1) - scaled[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in ``[MIN_TEMPERATURE, MAX_TEMPERATURE]`` that minimises :func:`nll` on these rows.

    Pass the **validation** split's logits and labels, never test's. The
    search is over ``log T`` with scipy's bounded Brent minimiser: NLL is
    convex in ``1 / T``, so it has one minimum along ``log T`` and Brent finds
    it. Deterministic: the same rows give the same float.

    Raises:
        ValueError: logits not a finite, non-empty ``(N, C)`` array, or labels that do not fit.
    """
    from scipy.optimize import minimize_scalar

    z, y = _check(logits, labels)
    result = minimize_scalar(lambda log_t: nll(z, y, math.exp(log_t)), method="bounded",
                             bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
                             options={"xatol": _XATOL})
    return float(math.exp(result.x))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities ``softmax(logits / temperature)`` as float64 ``(N, C)``.

    Raises:
        ValueError: a temperature that is not a positive finite number.
    """
    from scipy.special import softmax

    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")
    return softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def calibration_summary(val_logits: np.ndarray, val_labels: np.ndarray, temperature: float,
                        test_ece: tuple[float, float] | None = None) -> dict[str, Any]:
    """The ``calibration`` record stage 5 writes to ``metrics.json`` (all plain floats).

    ``temperature``: fitted on the validation split; ``val_nll_before``/``val_nll_after``:
    NLL on validation at ``T = 1`` and at ``T`` (the fit's own objective, so after <= before);
    ``ece_before``/``ece_after``: test ECE uncalibrated and as served, when ``test_ece`` is given.
    """
    record: dict[str, Any] = {"method": "temperature scaling", "fitted_on": "validation split",
                              "temperature": float(temperature),
                              "val_nll_before": nll(val_logits, val_labels),
                              "val_nll_after": nll(val_logits, val_labels, temperature)}
    if test_ece is not None:
        record["ece_before"], record["ece_after"] = float(test_ece[0]), float(test_ece[1])
    return record


def fit_on_validation(model: nn.Module, val_x: torch.Tensor, val_labels: np.ndarray, *,
                      channels_last: bool = False) -> dict[str, Any]:
    """Fit ``T`` for ``model`` on the validation split: one forward pass, then :func:`fit_temperature`.

    ``val_x``: the normalized validation images (:func:`mlestar.training.loop.split_to_tensors`);
    ``val_labels``: their labels. Returns :func:`calibration_summary`'s record (without test ECE).
    """
    from mlestar.training.loop import evaluate_logits

    logits = evaluate_logits(model, val_x, channels_last=channels_last).numpy()
    labels = np.asarray(val_labels)
    return calibration_summary(logits, labels, fit_temperature(logits, labels))


class TemperatureScaled(nn.Module):
    """A classifier whose logits are divided by a fixed temperature: what stage 7 exports and serves.

    The temperature is a buffer (saved, scripted and exported as a constant),
    so the TorchScript and ONNX copies divide exactly like PyTorch does and the
    parity check compares calibrated logits with calibrated logits. The
    argmax, and so every prediction, is the wrapped model's.
    """

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a positive finite number, got {temperature}")
        self.model = model
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature
