"""Population stability index (PSI) of each input column against the training data.

Bins come from the training split: for a number (dates as days), the
interior edges of its 10 quantiles (deduplicated, so a column with few values
gets fewer bins) plus a bin for missing values; for a category, one bin per
value seen in training plus ``other``. Each bin's share is floored at
:data:`EPSILON` before the PSI sum, so an empty bin counts as rare, not as an
infinite change. Common reading: below 0.1 stable, 0.1-0.25 a moderate shift,
above 0.25 a large one.

:func:`reference` makes a column's bins and training shares (stored in the
bundle's ``schema.json``); :func:`column_psi` scores new values against it;
:class:`RollingDrift` keeps the last rows the server answered.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

EPSILON = 1e-4
QUANTILE_BINS = 10
OTHER = "__other__"
DEFAULT_WINDOW = 1000


def psi(expected_shares: Any, actual_shares: Any, epsilon: float = EPSILON) -> float:
    """``sum((a - e) * ln(a / e))`` over bins, each share floored at ``epsilon``; 0 for identical shares.

    Raises:
        ValueError: the two have different numbers of bins.
    """
    expected = np.maximum(np.asarray(expected_shares, dtype=np.float64), epsilon)
    actual = np.maximum(np.asarray(actual_shares, dtype=np.float64), epsilon)
    if expected.shape != actual.shape:
        raise ValueError(f"PSI needs the same bins on both sides, got {expected.shape} and {actual.shape}")
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def quantile_edges(values: Any, bins: int = QUANTILE_BINS) -> list[float]:
    """Interior edges of ``bins`` training quantiles (missing values ignored), deduplicated and sorted."""
    present = np.asarray(values, dtype=np.float64)
    present = present[np.isfinite(present)]
    if present.size == 0:
        return []
    edges = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({float(e) for e in edges})


def numeric_shares(values: Any, edges: list[float]) -> list[float]:
    """Shares of ``values`` in ``(-inf, e1], (e1, e2], ..., (ek, inf)`` and, last, missing."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return [0.0] * (len(edges) + 2)
    missing = ~np.isfinite(array)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), array[~missing], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype(np.float64)
    return [*(counts / array.size).tolist(), float(missing.sum() / array.size)]


def category_shares(values: Any, categories: list[str]) -> list[float]:
    """Shares of each training category in ``values`` (text; missing as ``__missing__``), then ``other``."""
    items = list(values)
    if not items:
        return [0.0] * (len(categories) + 1)
    position = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + 1)
    for value in items:
        counts[position.get(value, len(categories))] += 1
    return (counts / len(items)).tolist()


def reference(values: Any, kind: str, categories: list[str] | None = None) -> dict[str, Any]:
    """A column's PSI bins and training shares: ``{"type": "numeric", "edges", "shares"}`` or
    ``{"type": "categorical", "categories", "shares"}`` (``values`` numbers, or text as fed to the model)."""
    if kind == "categorical":
        cats = list(categories or [])
        return {"type": "categorical", "categories": cats, "shares": category_shares(values, cats)}
    edges = quantile_edges(values)
    return {"type": "numeric", "edges": edges, "shares": numeric_shares(values, edges)}


def column_psi(ref: dict[str, Any], values: Any) -> float:
    """PSI of ``values`` against the column reference ``ref`` (NaN when there are no values)."""
    values = list(values) if ref["type"] == "categorical" else np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan")
    if ref["type"] == "categorical":
        return psi(ref["shares"], category_shares(values, ref["categories"]))
    return psi(ref["shares"], numeric_shares(values, ref["edges"]))


class RollingDrift:
    """The last ``window`` served values of each column and their PSI against the references.

    Thread-safe: requests add rows while ``/metrics`` reads.
    """

    def __init__(self, references: dict[str, dict[str, Any]], window: int = DEFAULT_WINDOW) -> None:
        self.references = references
        self._values: dict[str, deque[Any]] = {c: deque(maxlen=window) for c in references}
        self._lock = threading.Lock()

    def add(self, columns: dict[str, list[Any]]) -> None:
        """Append served values: column -> values as :func:`column_psi` reads them."""
        with self._lock:
            for column, values in columns.items():
                if column in self._values:
                    self._values[column].extend(values)

    def psi(self, column: str) -> float:
        """PSI of the window of ``column`` (NaN before any row)."""
        with self._lock:
            values = list(self._values[column])
        return column_psi(self.references[column], values)

    def rows(self) -> int:
        """Values held for the fullest column."""
        with self._lock:
            return max((len(v) for v in self._values.values()), default=0)
