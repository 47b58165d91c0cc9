"""The test split, read once: predictions and classification metrics of a trained model.

Stage 5 evaluates stage 4's model here; stage 7 evaluates a model that
refinement adopted (which stage 5 never saw) with the same function, so the
two numbers are computed the same way.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def evaluate_on_test(model: Any, dataset: Any, prep: Any, *, tta: str = "none", channels_last: bool = False,
                     progress: Callable[[int, int], None] | None = None, temperature: float = 1.0
                     ) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
    """Classification metrics on the test split.

    Returns ``(metrics, probabilities, tta_probabilities)``; the last is None
    without test-time augmentation, and is reported apart from the plain numbers.
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
    from mlestar.training.tta import EXTRA_VIEWS, tta_logits

    x, _ = split_to_tensors(dataset.test, prep, torch.device("cpu"))
    on_batch = _counter(progress, len(x) * (1 + EXTRA_VIEWS.get(tta, 0)))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    logits = evaluate_logits(model, x, channels_last=channels_last, on_batch=on_batch)
    probs = apply_temperature(logits.numpy(), temperature).astype(np.float32)
    tta_probs = None
    if tta != "none":
        views = tta_logits(model, x, tta, channels_last=channels_last, plain_logits=logits, on_batch=on_batch)
        tta_probs = apply_temperature(views.numpy(), temperature).astype(np.float32)
    metrics = classification_metrics(dataset.test.labels, probs, list(dataset.class_names))
    uncalibrated = apply_temperature(logits.numpy(), 1.0).astype(np.float32)
    metrics["ece_uncalibrated"] = expected_calibration_error(uncalibrated, dataset.test.labels)[0]
    metrics["temperature"] = float(temperature)
    return metrics, probs, tta_probs


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
