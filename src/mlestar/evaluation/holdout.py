"""The test split, read once: predictions and classification metrics of a trained model.

Stage 5 evaluates stage 4's model here; stage 7 evaluates a model that
refinement adopted (which stage 5 never saw) with the same function, so the
two numbers are computed the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def evaluate_on_test(model: Any, dataset: Any, prep: Any, *, tta: str = "none", channels_last: bool = False
                     ) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
    """Classification metrics on the test split.

    Returns ``(metrics, probabilities, tta_probabilities)``; the last is None
    without test-time augmentation, and is reported apart from the plain numbers.
    """
    import torch

    from mlestar.evaluation.metrics import classification_metrics
    from mlestar.training.loop import evaluate_logits, split_to_tensors
    from mlestar.training.tta import tta_logits

    x, _ = split_to_tensors(dataset.test, prep, torch.device("cpu"))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    logits = evaluate_logits(model, x, channels_last=channels_last)
    probs = torch.softmax(logits, 1).numpy()
    tta_probs = None
    if tta != "none":
        views = tta_logits(model, x, tta, channels_last=channels_last, plain_logits=logits)
        tta_probs = torch.softmax(views, 1).numpy()
    return classification_metrics(dataset.test.labels, probs, list(dataset.class_names)), probs, tta_probs
