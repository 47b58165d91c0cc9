"""ONNX export of a whole table pipeline (preprocessing and learner), and the parity check that trusts it.

:func:`export_onnx` converts the fitted scikit-learn ``Pipeline`` of a
:class:`~mlestar.domains.tables.model.TableModel` with skl2onnx, the LightGBM
and XGBoost learners through onnxmltools' converters (registered once by
:func:`register_converters`). The graph has one input per column, named as the
column (skl2onnx replaces characters ONNX names cannot hold; :class:`OnnxInput`
keeps the mapping): ``float`` ``[None, 1]`` for numbers and dates (days since
1970), ``string`` ``[None, 1]`` for categories. Classifiers output a probability
tensor (``zipmap`` off). Regressors output the learner's scale: a ``log1p``
target is turned back by :func:`~mlestar.domains.tables.model.inverse_target`
after onnxruntime, the same function ``TableModel`` uses.

Two adjustments make the float32 graph reproduce the Python model exactly
rather than approximately: the model itself reads numbers at float32
precision (``TableModel.prepare``), and LightGBM split thresholds, which
LightGBM keeps in float64, are rounded *down* to float32 (a float32 input
``x`` then satisfies ``x <= t32`` exactly when ``x <= t``; rounding to the
nearest float32 flips rows that sit on a threshold). Missing categories are
fed as the ``__missing__`` text the training imputer fills in, so the graph's
string imputers never see a missing value (skl2onnx cannot convert a string
imputer that looks for NaN).

:func:`check_parity` runs the graph next to ``TableModel.scores`` on real rows.
A learner skl2onnx cannot convert (HistGradientBoosting here, CatBoost) gives
:class:`ExportFailed` to the caller, which keeps the joblib model as the
served runtime.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mlestar.domains.tables.model import TableModel, inverse_target
from mlestar.domains.tables.plan import MISSING, model_frame
from mlestar.errors import ExportError, StageError
from mlestar.utils.io import atomic_write_bytes

ONNX_FILE = "model.onnx"
OPSETS = {"": 17, "ai.onnx.ml": 3}
PARITY_ROWS = 500  # rows compared; more adds time, not confidence
MIN_PROBA_TOLERANCE = 1e-4  # float32 probabilities after hundreds of trees differ from float64 by ~1e-7
# Values are compared relative to max(1, |value|). The graph sums hundreds of trees in float32 (about
# 1e-7 of rounding each), and a log1p target's expm1 turns that absolute error on the log into a
# relative one: diamonds' 800-tree price model differs by 1.8e-5 relative. 1e-4 is 50 cents on $5,000.
REGRESSION_RELATIVE_TOLERANCE = 1e-4
_CATEGORY_ACTIONS = ("onehot", "ordinal")


class ExportFailed(ExportError):
    """The learner (or a step before it) has no ONNX converter, or its conversion fails."""


@dataclass(frozen=True)
class OnnxInput:
    """One graph input: the column it carries, its ONNX name, its element type and column kind."""

    column: str
    name: str
    dtype: Literal["float", "string"]
    kind: str
    datetime: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OnnxInput:
        return cls(**data)


def model_inputs(model: TableModel) -> list[OnnxInput]:
    """The graph inputs of ``model``, in pipeline order, named as the columns (before skl2onnx renames)."""
    out = []
    for step in model.plan.columns:
        if step.action == "drop":
            continue
        dtype: Literal["float", "string"] = "string" if step.action in _CATEGORY_ACTIONS else "float"
        out.append(OnnxInput(step.column, step.column, dtype, step.kind, step.kind == "datetime"))
    return out


@functools.lru_cache(maxsize=1)
def register_converters() -> None:
    """Teach skl2onnx the LightGBM and XGBoost estimators (onnxmltools' converters); idempotent."""
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (calculate_linear_classifier_output_shapes,
                                                  calculate_linear_regressor_output_shapes)
    from xgboost import XGBClassifier, XGBRegressor

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    update_registered_converter(LGBMClassifier, "LightGbmLGBMClassifier", calculate_linear_classifier_output_shapes,
                                _convert_lightgbm, options=options)
    update_registered_converter(LGBMRegressor, "LightGbmLGBMRegressor", calculate_linear_regressor_output_shapes,
                                _convert_lightgbm, options={"split": None})
    update_registered_converter(XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes,
                                convert_xgboost, options=options)
    update_registered_converter(XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes,
                                convert_xgboost)


def _convert_lightgbm(scope: Any, operator: Any, container: Any) -> None:
    """onnxmltools' ``convert_lightgbm`` on a copy whose thresholds are rounded down to float32."""
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    estimator = copy.copy(operator.raw_operator)
    estimator._Booster = _FloorBooster(operator.raw_operator.booster_.dump_model())
    operator.raw_operator = estimator
    convert_lightgbm(scope, operator, container)


class _FloorBooster:
    """Stands in for a LightGBM ``Booster`` in onnxmltools: its dump, thresholds rounded down to float32.

    ``is_mock`` makes onnxmltools read :meth:`dump_model` instead of calling LightGBM's C API.
    """

    is_mock = True

    def __init__(self, dump: dict[str, Any]) -> None:
        self._dump = dump
        for tree in dump["tree_info"]:
            _floor_thresholds(tree["tree_structure"])

    def dump_model(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._dump


def _floor_thresholds(node: dict[str, Any]) -> None:
    if "split_index" not in node:
        return
    if node.get("decision_type") == "<=":  # numeric split (categorical ones hold category lists)
        node["threshold"] = floor_float32(float(node["threshold"]))
    _floor_thresholds(node["left_child"])
    _floor_thresholds(node["right_child"])


def floor_float32(value: float) -> float:
    """The largest float32 value not above ``value`` (as a Python float)."""
    low = np.float32(value)
    if float(low) > value:
        low = np.nextafter(low, np.float32(-np.inf))
    return float(low)


def convert(model: TableModel) -> tuple[bytes, list[OnnxInput]]:
    """The ONNX graph of ``model``'s pipeline and its inputs (with the names skl2onnx gave them).

    Raises:
        ExportFailed: a step has no converter or converting it fails (the message names the learner).
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    register_converters()
    pipeline = _convertible_copy(model.pipeline)
    inputs = model_inputs(model)
    types = [(i.column, StringTensorType([None, 1]) if i.dtype == "string" else FloatTensorType([None, 1]))
             for i in inputs]
    final = pipeline if hasattr(pipeline, "estimators_") else pipeline.steps[-1][1]  # an ensemble, or the learner
    options = None if model.task == "regression" else {id(final): {"zipmap": False}}
    try:
        onx = convert_sklearn(pipeline, initial_types=types, options=options, target_opset=OPSETS)
    except Exception as exc:  # skl2onnx raises many types (RuntimeError, ValueError, NotImplementedError, ...)
        raise ExportFailed(f"the {model.plan.learner} pipeline cannot be converted to ONNX: "
                           f"{type(exc).__name__}: {str(exc)[:300]}",
                           hint="the joblib model is served instead (runtime 'sklearn')") from None
    names = [graph_input.name for graph_input in onx.graph.input]
    if len(names) != len(inputs):
        raise ExportFailed(f"the ONNX graph has {len(names)} inputs for {len(inputs)} columns")
    return onx.SerializeToString(), [OnnxInput(i.column, n, i.dtype, i.kind, i.datetime) for i, n in zip(inputs, names)]


def _convertible_copy(pipeline: Any) -> Any:
    """A copy whose category imputers look for ``__missing__`` (what feeds carry) instead of NaN.

    ``pipeline`` is one fitted pipeline, or stage 6's soft-voting ensemble of them.
    """
    pipeline = copy.deepcopy(pipeline)
    for member in getattr(pipeline, "estimators_", None) or [pipeline]:
        for name, transformer, _ in member.named_steps["preprocess"].transformers_:
            if name in _CATEGORY_ACTIONS:
                transformer.named_steps["impute"].missing_values = MISSING  # now a no-op; skl2onnx accepts it
    return pipeline


def export_onnx(model: TableModel, path: Path) -> list[OnnxInput]:
    """Convert ``model`` and write the graph to ``path`` atomically; returns the graph's inputs.

    Raises:
        ExportFailed: as :func:`convert`.
    """
    data, inputs = convert(model)
    atomic_write_bytes(path, data)
    return inputs


def onnx_feeds(frame: Any, inputs: list[OnnxInput]) -> dict[str, np.ndarray]:
    """The graph's feeds for a raw feature frame (numbers, dates, category text; missing as NaN/None).

    Dates become days since 1970 with :func:`~mlestar.domains.tables.plan.model_frame`, the function
    training used; missing categories become ``__missing__``, which the training imputer filled in.
    """
    import pandas as pd

    columns = [i.column for i in inputs]
    days = model_frame(frame, columns, [i.column for i in inputs if i.datetime])
    feeds: dict[str, np.ndarray] = {}
    for item in inputs:
        values = days[item.column]
        if item.dtype == "float":
            feeds[item.name] = pd.to_numeric(values).to_numpy(dtype=np.float32).reshape(-1, 1)
        else:
            text = [MISSING if _is_missing(v) else str(v) for v in values.tolist()]
            feeds[item.name] = np.asarray(text, dtype=object).reshape(-1, 1)
    return feeds


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


class OnnxRunner:
    """An onnxruntime session over an exported table graph, answering like ``TableModel.scores``.

    Args:
        source: the ``.onnx`` file or its bytes.
        inputs: the graph inputs (:func:`convert`, or the bundle's schema).
        task: ``binary``, ``multiclass`` or ``regression``.
        target_transform: applied back (``inverse_target``) to regression outputs.
    """

    def __init__(self, source: Path | bytes, inputs: list[OnnxInput], task: str, target_transform: str = "none",
                 threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: skl2onnx's voting graphs carry an unused initializer
        options.intra_op_num_threads = threads  # one request at a time per worker; more threads only contend
        options.inter_op_num_threads = 1
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.inputs, self.task, self.target_transform = inputs, task, target_transform
        outputs = [o.name for o in self.session.get_outputs()]
        # classifiers: (label, probabilities); regressors: (variable,)
        self._output = outputs[1] if task != "regression" and len(outputs) > 1 else outputs[0]

    def scores(self, frame: Any) -> np.ndarray:
        """Probabilities ``(rows, classes)`` (rows sum to 1) or values ``(rows,)`` in the target's scale."""
        raw = np.asarray(self.session.run([self._output], onnx_feeds(frame, self.inputs))[0], dtype=np.float64)
        if self.task == "regression":
            return inverse_target(raw.reshape(-1), self.target_transform)
        return raw / raw.sum(axis=1, keepdims=True)  # as TableModel.predict_proba normalises


@dataclass(frozen=True)
class ParityReport:
    """How closely the ONNX graph reproduces ``TableModel.scores``.

    Attributes:
        max_abs_diff: largest ``|onnx - python|`` over probabilities, or over ``|a - b| / max(1, |b|)``
            for regression values (relative); ``inf`` when any output is not finite.
        top1_agreement: share of rows with the same predicted class (None for regression).
        worst_row: index (into the compared rows) of the largest difference.
        rows: rows compared.
        tolerance, min_top1_agreement: the bounds held to.
        relative: True for regression (the difference is relative).
    """

    max_abs_diff: float
    top1_agreement: float | None
    worst_row: int
    rows: int
    tolerance: float
    min_top1_agreement: float
    relative: bool

    @property
    def passed(self) -> bool:
        agree = self.top1_agreement is None or self.top1_agreement >= self.min_top1_agreement
        return self.max_abs_diff <= self.tolerance and agree

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def parity_tolerance(task: str, configured: float) -> float:
    """The bound for ``task``: ``max(configured, 1e-4)`` on probabilities and on values relative to
    max(1, |value|); ``deployment.parity_tolerance`` above that loosens both."""
    return max(configured, REGRESSION_RELATIVE_TOLERANCE if task == "regression" else MIN_PROBA_TOLERANCE)


def check_parity(model: TableModel, runner: OnnxRunner, frame: Any, *, tolerance: float,
                 min_top1_agreement: float, max_rows: int = PARITY_ROWS) -> ParityReport:
    """Compare ``runner`` with ``model.scores`` on the first ``max_rows`` rows of ``frame`` (never raises)."""
    rows = frame.iloc[:max_rows]
    expected, got = model.scores(rows), runner.scores(rows)
    regression = model.task == "regression"
    diff = np.abs(got - expected)
    if regression:
        diff = diff / np.maximum(1.0, np.abs(expected))
    per_row = diff.reshape(len(rows), -1).max(axis=1) if len(rows) else np.zeros(0)
    per_row = np.where(np.isfinite(per_row), per_row, np.inf)
    worst = int(np.argmax(per_row)) if len(rows) else 0
    top1 = None if regression else float(np.mean(np.argmax(got, axis=1) == np.argmax(expected, axis=1)))
    return ParityReport(float(per_row.max()) if len(rows) else 0.0, top1, worst, len(rows), tolerance,
                        min_top1_agreement, regression)


def require_parity(report: ParityReport, frame: Any) -> None:
    """Raise unless ``report`` passed, naming the worst row of ``frame`` and its difference.

    Raises:
        StageError: the difference or the top-1 agreement is out of bounds.
    """
    if report.passed:
        return
    label = frame.index[report.worst_row] if len(frame) > report.worst_row else report.worst_row
    kind = "relative difference" if report.relative else "difference"
    agreement = "" if report.top1_agreement is None else (
        f"; top-1 agreement {report.top1_agreement:.4f} (need >= {report.min_top1_agreement:.4f})")
    raise StageError(f"the ONNX export disagrees with the model: largest {kind} {report.max_abs_diff:.3g} "
                     f"(allowed {report.tolerance:.3g}) at row {label} of the compared rows{agreement}",
                     hint="raise deployment.parity_tolerance if the difference is acceptable, or report the "
                          "learner's conversion as a bug")
