"""The test split, read once: predictions and classification metrics of a trained model.

Stage 5 evaluates stage 4's model here; stage 7 evaluates a model that
refinement adopted (which stage 5 never saw) with the same function, so the
two numbers are computed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

AGREEMENT_IMAGES = 1000
"""Test images whose plain view is also computed by a reduced-precision TTA forward, to state how far it is off."""


@dataclass(frozen=True)
class ViewForward:
    """What computes test-time augmentation's extra views, when not the plain view's forward.

    Why: those views are reported apart and never served, so on a CPU that
    computes bf16 natively they may run in the training precision (1.7-2.2x
    the fp32 ONNX graph's images/s on an AMX CPU, 1.35x inside stage 5 there),
    while every served number stays fp32.

    Attributes:
        module: the trained PyTorch module, called on normalized ``(N, C, H, W)`` batches.
        precision: autocast precision of its passes (``fp32`` or ``bf16``).
        channels_last: whether to hand it channels-last batches.
    """

    module: Any
    precision: str = "fp32"
    channels_last: bool = False


def evaluate_on_test(model: Any, dataset: Any, prep: Any, *, tta: str = "none", channels_last: bool = False,
                     progress: Callable[[int, int], None] | None = None, temperature: float = 1.0,
                     views: ViewForward | None = None) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
    """Classification metrics on the test split.

    Returns ``(metrics, probabilities, tta_predictions)``; the last (a class per
    test image) is None without test-time augmentation, and is reported apart
    from the plain numbers. TTA yields predictions only: the temperature is
    fitted on plain validation logits and would not calibrate averaged views,
    and nothing served uses TTA, so no TTA probabilities are made.
    ``views``: computes TTA's extra views instead of ``model`` (the plain view,
    every metric and the probabilities always come from ``model``); then
    ``metrics["tta_views"]`` states its precision and how it agreed with
    ``model`` on the plain view of the first :data:`AGREEMENT_IMAGES` test images.
    Probabilities are ``softmax(logits / temperature)``: pass the temperature
    fitted on validation (:mod:`mlestar.evaluation.calibration`) to score the
    probabilities the bundle serves. Predictions do not depend on it; ``ece``
    does, and ``metrics`` also holds ``ece_uncalibrated`` (at 1) and ``temperature``.
    ``progress(done, total)`` counts images through the model batch by batch, every
    test-time augmentation view included, from 0 to ``total``.
    """
    import torch

    from mlestar.evaluation.calibration import apply_temperature
    from mlestar.evaluation.metrics import classification_metrics, expected_calibration_error
    from mlestar.training.loop import evaluate_logits, split_to_tensors
    from mlestar.training.tta import EXTRA_VIEWS

    x, _ = split_to_tensors(dataset.test, prep, torch.device("cpu"))
    on_batch = _counter(progress, len(x) * (1 + EXTRA_VIEWS.get(tta, 0)))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    logits = evaluate_logits(model, x, channels_last=channels_last, on_batch=on_batch)
    probs = apply_temperature(logits.numpy(), temperature).astype(np.float32)
    tta_predictions, views_record = None, None
    if tta != "none":
        tta_predictions, views_record = _tta(views or ViewForward(model, "fp32", channels_last), x, tta, logits,
                                             on_batch, check=views is not None)
    metrics = classification_metrics(dataset.test.labels, probs, list(dataset.class_names))
    if views_record is not None:
        metrics["tta_views"] = views_record
    uncalibrated = apply_temperature(logits.numpy(), 1.0).astype(np.float32)
    metrics["ece_uncalibrated"] = expected_calibration_error(uncalibrated, dataset.test.labels)[0]
    metrics["temperature"] = float(temperature)
    return metrics, probs, tta_predictions


def _tta(views: ViewForward, x: Any, kind: str, plain_logits: Any, on_batch: Callable[[int], None] | None,
         *, check: bool) -> tuple[np.ndarray, dict[str, Any] | None]:
    """TTA's class per image of ``x``, ``views`` computing the extra views; with ``check``, its agreement too."""
    from mlestar.training.tta import tta_logits

    combined = tta_logits(views.module, x, kind, precision=views.precision, channels_last=views.channels_last,
                          plain_logits=plain_logits, on_batch=on_batch)
    predictions = combined.argmax(1).numpy()
    if not check:
        return predictions, None
    return predictions, agreement(views, x[:AGREEMENT_IMAGES], plain_logits[:AGREEMENT_IMAGES])


def agreement(views: ViewForward, x: Any, reference: Any) -> dict[str, Any]:
    """How ``views``'s plain view of ``x`` compares with the ``reference`` logits (the scored forward's)."""
    from mlestar.training.loop import evaluate_logits

    logits = evaluate_logits(views.module, x, precision=views.precision, channels_last=views.channels_last)
    return {"precision": views.precision, "images": len(x),
            "top1_agreement": float((logits.argmax(1) == reference.argmax(1)).float().mean()),
            "max_abs_diff": float((logits - reference).abs().max())}


def _counter(progress: Callable[[int, int], None] | None, total: int) -> Callable[[int], None] | None:
    """``on_batch(rows)`` that adds up rows and reports ``progress(done, total)``; reports ``(0, total)`` now."""
    if progress is None:
        return None
    progress(0, total)
    done = 0

    def on_batch(rows: int) -> None:
        nonlocal done
        done = min(total, done + rows)
        progress(done, total)

    return on_batch
