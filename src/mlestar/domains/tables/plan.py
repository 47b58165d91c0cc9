"""The typed plan of a table model: what happens to each column, which learner, and why.

Stage 3 writes it (``plan.json``), stages 4-7 read it. :func:`build_preprocessor`
turns its column steps into one scikit-learn ``ColumnTransformer``; that fitted
object is the preprocessing the model is evaluated, exported and served with.
Dates are the one thing done before it (:func:`model_frame`): a date becomes
days since 1970, the same function for training and serving.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Action = Literal["numeric", "onehot", "ordinal", "drop"]
MISSING = "__missing__"  # the category that stands for a missing value in a text column
ONEHOT_MAX = 15  # categorical columns with at most this many values are one-hot encoded, others ordinal


class ColumnStep(BaseModel):
    """One input column: its kind, what the pipeline does with it, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str
    kind: str
    action: Action
    impute: Literal["median", "constant", "none"] = "none"
    scale: bool = False
    reason: str


class TablePlan(BaseModel):
    """Everything stage 4 needs to fit the model, each choice with its reason.

    Attributes:
        learner, params: registry name and parameters (merged over the learner's defaults).
        early_stopping_rounds: rounds without validation improvement before boosting stops.
        class_weight: ``balanced`` reweights rows by inverse class frequency.
        target_transform: ``log1p`` fits a skewed non-negative target on its log.
        cv_folds: 0 or 1 for none; k >= 2 records out-of-fold scores first.
        columns: one step per input column, dropped ones included (with the reason).
        reasons: decision name -> why.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["binary", "multiclass", "regression"]
    target: str
    learner: str = "lightgbm"
    params: dict[str, Any] = Field(default_factory=dict)
    early_stopping_rounds: int = Field(50, ge=1)
    class_weight: Literal["balanced", "none"] = "none"
    target_transform: Literal["none", "log1p"] = "none"
    cv_folds: int = Field(0, ge=0, le=20)
    seed: int = 0
    columns: list[ColumnStep]
    reasons: dict[str, str] = Field(default_factory=dict)

    @property
    def inputs(self) -> list[str]:
        """Columns the model reads, in order (dropped ones excluded)."""
        return [step.column for step in self.columns if step.action != "drop"]

    @property
    def datetime_columns(self) -> list[str]:
        """Input columns that are dates (turned into days before the pipeline)."""
        return [step.column for step in self.columns if step.action != "drop" and step.kind == "datetime"]

    def with_changes(self, **changes: Any) -> TablePlan:
        """A copy with ``changes`` applied (validated again)."""
        return TablePlan.model_validate({**self.model_dump(), **changes})


def model_frame(frame: Any, inputs: list[str], datetime_columns: list[str]) -> Any:
    """The columns the pipeline reads, dates as float days since 1970 (NaN when missing).

    Raises:
        KeyError: a column in ``inputs`` is not in ``frame`` (serving checks its schema first).
    """
    import pandas as pd

    out = frame[inputs].copy()
    for column in datetime_columns:
        stamps = pd.to_datetime(out[column], errors="coerce", utc=True)
        out[column] = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds() / 86400.0
    return out


def build_preprocessor(plan: TablePlan) -> Any:
    """An unfitted ``ColumnTransformer`` with one branch per action, columns in plan order."""
    from sklearn.compose import ColumnTransformer

    branches = []
    for action in ("numeric", "onehot", "ordinal"):
        steps = [s for s in plan.columns if s.action == action]
        if steps:
            branches.append((action, _branch(action, steps), [s.column for s in steps]))
    return ColumnTransformer(branches, remainder="drop", verbose_feature_names_out=False)


def _branch(action: str, steps: list[ColumnStep]) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    if action == "numeric":
        parts: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
        if any(s.scale for s in steps):
            parts.append(("scale", StandardScaler()))
        return Pipeline(parts)
    fill = ("impute", SimpleImputer(strategy="constant", fill_value=MISSING))
    if action == "onehot":
        return Pipeline([fill, ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False))])
    return Pipeline([fill, ("encode", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                                     dtype=np.float64))])


def as_text_frame(frame: Any, plan: TablePlan) -> Any:
    """Category columns as object arrays of Python strings, missing as NaN: what the encoders and
    their ONNX conversion both accept."""
    out = frame.copy()
    for step in plan.columns:
        if step.action in ("onehot", "ordinal") and step.column in out:
            values = out[step.column]
            out[step.column] = values.astype(object).where(values.notna(), np.nan)
    return out


def as_float32_numbers(frame: Any, plan: TablePlan) -> Any:
    """Number columns (``numeric`` action: numbers, booleans, dates as days) rounded to float32 values.

    The exported ONNX graph reads float32, so the model is fitted, evaluated and served on the
    values that graph sees: a float64 value within half a float32 step of a split threshold would
    otherwise fall on one side in Python and the other in ONNX (seen on ``diabetes``, where a
    LightGBM threshold sat 2e-17 below a test value). The dtype stays float64 for scikit-learn.
    """
    out = frame.copy()
    for step in plan.columns:
        if step.action == "numeric" and step.column in out:
            out[step.column] = out[step.column].to_numpy(dtype=np.float64).astype(np.float32).astype(np.float64)
    return out
