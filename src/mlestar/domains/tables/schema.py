"""The input schema of a served table model, and the check every request's rows go through.

:func:`build_schema` describes each input column from the training split:
its kind, ONNX name and element type, whether it may be missing (it was
missing in training), the categories seen, the numeric range seen, and the
PSI bins and training shares (:mod:`.drift`). Stage 7 writes it into the
bundle as ``schema.json`` (with ``"domain": "tables"``, which ``mlestar serve``
dispatches on); the server answers ``GET /schema`` with it.

:func:`rows_to_frame` turns JSON rows into the frame the model reads, or
raises :class:`RowError` naming the column: a category never seen in training
(unless unknown categories are allowed), NaN or infinity in a number, a
missing or null value where training had none, an extra column, text where a
number belongs, or a date that does not parse.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlestar.domains.tables import drift
from mlestar.domains.tables.export import OnnxInput, onnx_feeds
from mlestar.domains.tables.model import TableModel
from mlestar.domains.tables.plan import MISSING
from mlestar.errors import DataError

SCHEMA_FILE = "schema.json"
SCHEMA_VERSION = 1
FLOAT32_MAX = float(np.finfo(np.float32).max)
_LISTED_CATEGORIES = 20  # categories named in an error message; the schema lists them all


class RowError(DataError):
    """A request row the model cannot take; ``column`` names the column at fault (None: the row itself)."""

    def __init__(self, message: str, column: str | None = None, row: int | None = None) -> None:
        super().__init__(message, hint="GET /schema lists the columns, their kinds, categories and ranges")
        self.column, self.row = column, row


def build_schema(model: TableModel, train: Any, inputs: list[OnnxInput], *, target: str) -> dict[str, Any]:
    """The schema of ``model``'s inputs, from the ``train`` frame (raw columns, as in ``TableDataset``)."""
    feeds = onnx_feeds(train, inputs)
    columns = [_column(item, train[item.column], feeds[item.name].ravel()) for item in inputs]
    return {"domain": "tables", "version": SCHEMA_VERSION, "task": model.task, "target": target,
            "class_names": list(model.class_names), "threshold": model.threshold,
            "target_transform": model.plan.target_transform, "columns": columns}


def _column(item: OnnxInput, raw: Any, fed: np.ndarray) -> dict[str, Any]:
    nullable = bool(raw.isna().any())
    entry: dict[str, Any] = {"name": item.column, "onnx_name": item.name, "kind": item.kind,
                             "dtype": item.dtype, "nullable": nullable, "categories": None, "range": None}
    if item.dtype == "string":
        entry["categories"] = sorted({str(v) for v in fed.tolist()} - {MISSING})
        entry["psi"] = drift.reference(fed.tolist(), "categorical", [*entry["categories"], MISSING])
        return entry
    present = fed[np.isfinite(fed)].astype(np.float64)
    if present.size:
        low, high = float(present.min()), float(present.max())
        entry["range"] = [_iso_day(low), _iso_day(high)] if item.datetime else [low, high]
    entry["psi"] = drift.reference(fed, "numeric")
    return entry


def _iso_day(days: float) -> str:
    import pandas as pd

    return (pd.Timestamp(0, tz="UTC") + pd.to_timedelta(days, unit="D")).isoformat()


def schema_inputs(schema: dict[str, Any]) -> list[OnnxInput]:
    """The graph inputs a schema describes, in order."""
    return [OnnxInput(c["name"], c["onnx_name"], c["dtype"], c["kind"], c["kind"] == "datetime")
            for c in schema["columns"]]


def rows_to_frame(rows: list[Any], schema: dict[str, Any], *, allow_unknown_categories: bool = False) -> Any:
    """A frame of the schema's columns from JSON rows (objects), every value checked.

    Numbers become float64 (NaN where null), dates UTC timestamps (NaT), categories text (None).

    Raises:
        RowError: the first bad value, naming its column and row.
    """
    import pandas as pd

    columns = schema["columns"]
    known = {c["name"] for c in columns}
    values: dict[str, list[Any]] = {c["name"]: [] for c in columns}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RowError(f"row {index} is a {type(row).__name__}, not an object of column -> value", row=index)
        extra = [name for name in row if name not in known]
        if extra:
            raise RowError(f"column {extra[0]!r} is not an input of this model (row {index}); inputs: "
                           f"{', '.join(sorted(known))}", column=str(extra[0]), row=index)
        for column in columns:
            values[column["name"]].append(_value(column, row, index, allow_unknown_categories))
    frame = pd.DataFrame({name: pd.Series(v, dtype=object) for name, v in values.items()})
    return _typed(frame, columns)


def _value(column: dict[str, Any], row: dict[str, Any], index: int, allow_unknown: bool) -> Any:
    name = column["name"]
    value = row.get(name)
    if value is None:
        if column["nullable"]:
            return None
        what = "is missing" if name not in row else "is null"
        raise RowError(f"column {name!r} {what} in row {index}, and had no missing values in training",
                       column=name, row=index)
    if column["kind"] == "datetime":
        return _date(name, value, index)
    if column["dtype"] == "float":
        return _number(name, value, index, column["kind"])
    return _category(column, value, index, allow_unknown)


def _number(name: str, value: Any, index: int, kind: str) -> float:
    if isinstance(value, bool):
        if kind == "boolean":
            return float(value)
        raise RowError(f"column {name!r}: {value!r} in row {index} is a boolean where a number belongs",
                       column=name, row=index)
    if not isinstance(value, (int, float)):
        raise RowError(f"column {name!r}: {value!r} in row {index} is a {type(value).__name__} where a number "
                       "belongs", column=name, row=index)
    number = float(value)
    if not math.isfinite(number) or abs(number) > FLOAT32_MAX:
        raise RowError(f"column {name!r}: {value!r} in row {index} is not a finite number (the model reads "
                       "float32)", column=name, row=index)
    return number


def _date(name: str, value: Any, index: int) -> Any:
    import pandas as pd

    if not isinstance(value, str):
        raise RowError(f"column {name!r}: {value!r} in row {index} is not a date; send ISO 8601 text "
                       "such as '2024-05-01'", column=name, row=index)
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise RowError(f"column {name!r}: {value!r} in row {index} is not a date; send ISO 8601 text "
                       "such as '2024-05-01'", column=name, row=index)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _category(column: dict[str, Any], value: Any, index: int, allow_unknown: bool) -> str:
    name = column["name"]
    if isinstance(value, (dict, list)):
        raise RowError(f"column {name!r}: row {index} holds a {type(value).__name__}, not a category",
                       column=name, row=index)
    text = category_text(value)
    if text not in column["categories"] and not allow_unknown:
        allowed = column["categories"][:_LISTED_CATEGORIES]
        more = f", ... ({len(column['categories'])} in all)" if len(column["categories"]) > len(allowed) else ""
        raise RowError(f"column {name!r}: value {text!r} was never seen in training; allowed: "
                       f"{', '.join(repr(a) for a in allowed)}{more}", column=name, row=index)
    return text


def category_text(value: Any) -> str:
    """A category as training stored it: whole numbers without ``.0`` (``3.0`` -> ``'3'``), else ``str``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _typed(frame: Any, columns: list[dict[str, Any]]) -> Any:
    import pandas as pd

    for column in columns:
        name = column["name"]
        if column["kind"] == "datetime":
            frame[name] = pd.to_datetime(frame[name], utc=True)
        elif column["dtype"] == "float":
            frame[name] = pd.to_numeric(frame[name]).astype(np.float64)
    return frame


def frame_psi(schema: dict[str, Any], frame: Any) -> dict[str, float]:
    """PSI of each schema column of ``frame`` (raw features) against the training bins in ``schema``."""
    inputs = schema_inputs(schema)
    feeds = onnx_feeds(frame, inputs)
    refs = {c["name"]: c["psi"] for c in schema["columns"]}
    return {i.column: drift.column_psi(refs[i.column], feeds[i.name].ravel().tolist()) for i in inputs}
