"""A fitted table model: the scikit-learn pipeline plus what it needs around it to answer.

:class:`TableModel` holds the fitted ``Pipeline`` (``preprocess`` then
``model``), the input columns, the task, class names, the target transform
and, for binary tasks, the decision threshold stage 5 chooses. Training,
evaluation, refinement, export and serving all predict through it, so the
frame preparation (:func:`~mlestar.domains.tables.plan.model_frame`) and the
inverse target transform exist once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlestar.domains.tables.plan import TablePlan, as_float32_numbers, as_text_frame, model_frame
from mlestar.errors import StageError


@dataclass
class TableModel:
    """A fitted pipeline and its metadata. Pickled whole with joblib (:meth:`save`, :func:`load_model`)."""

    pipeline: Any
    plan: TablePlan
    class_names: tuple[str, ...]
    threshold: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """``binary``, ``multiclass`` or ``regression``."""
        return self.plan.task

    @property
    def inputs(self) -> list[str]:
        """Columns a request must carry, in the pipeline's order."""
        return self.plan.inputs

    def prepare(self, frame: Any) -> Any:
        """The frame the pipeline reads: its input columns, dates as days, numbers at float32 precision
        (what the ONNX export computes on), categories as text."""
        prepared = model_frame(frame, self.inputs, self.plan.datetime_columns)
        return as_text_frame(as_float32_numbers(prepared, self.plan), self.plan)

    def predict_proba(self, frame: Any) -> np.ndarray:
        """Class probabilities, shape ``(rows, classes)``, rows summing to 1 (classification only)."""
        proba = np.asarray(self.pipeline.predict_proba(self.prepare(frame)), dtype=np.float64)
        return proba / proba.sum(axis=1, keepdims=True)  # float32 learners sum to 1 only within 1e-7

    def predict_values(self, frame: Any) -> np.ndarray:
        """Predicted target values in the target's own scale (regression only)."""
        raw = np.asarray(self.pipeline.predict(self.prepare(frame)), dtype=np.float64)
        return inverse_target(raw, self.plan.target_transform)

    def predict(self, frame: Any) -> np.ndarray:
        """Class indices (the binary threshold applied) or values."""
        if self.task == "regression":
            return self.predict_values(frame)
        return decide(self.predict_proba(frame), self.threshold)

    def scores(self, frame: Any) -> np.ndarray:
        """What metrics consume: probabilities for classification, values for regression."""
        return self.predict_values(frame) if self.task == "regression" else self.predict_proba(frame)

    def save(self, path: Path) -> None:
        """Pickle atomically (temp file, then ``os.replace``)."""
        import joblib

        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        joblib.dump(self, tmp)
        os.replace(tmp, path)


def decide(proba: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Class indices: the positive class when its probability reaches ``threshold`` (binary), else argmax."""
    if proba.shape[1] == 2:
        return (proba[:, 1] >= threshold).astype(np.int64)
    return np.argmax(proba, axis=1).astype(np.int64)


def forward_target(values: np.ndarray, transform: str) -> np.ndarray:
    """The target as the learner is fitted on it."""
    return np.log1p(values) if transform == "log1p" else values


def inverse_target(values: np.ndarray, transform: str) -> np.ndarray:
    """Learner output back in the target's scale (the inverse of :func:`forward_target`)."""
    return np.expm1(values) if transform == "log1p" else values


def load_model(path: Path) -> TableModel:
    """Load a model saved by :meth:`TableModel.save`.

    Raises:
        StageError: the file is missing, damaged or holds something else.
    """
    import joblib

    try:
        model = joblib.load(path)
    except (OSError, EOFError, ValueError, ImportError, AttributeError) as exc:
        raise StageError(f"cannot load the table model {path}: {exc}",
                         hint="re-run from the stage that wrote it") from None
    if not isinstance(model, TableModel):
        raise StageError(f"{path} holds a {type(model).__name__}, not a table model",
                         hint="re-run from the stage that wrote it")
    return model
