"""What each column of a table is, and what the task is, inferred from the values and overridable.

Kinds: ``numeric``, ``categorical``, ``boolean``, ``datetime``, ``text`` (free
text: long, many words, nearly all distinct) and ``id`` (a label per row that
carries no signal by itself: every value distinct). The task follows from
the target: two classes are ``binary``, a few classes ``multiclass``,
numbers with many values ``regression``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from mlestar.errors import DataError

ColumnKind = Literal["numeric", "categorical", "boolean", "datetime", "text", "id"]
TaskKind = Literal["binary", "multiclass", "regression"]
KINDS: tuple[str, ...] = ("numeric", "categorical", "boolean", "datetime", "text", "id")

TEXT_MEAN_WORDS = 4.0  # a string column averaging more words than this is prose, not categories
MAX_CLASSES = 50  # an integer target with more distinct values than this is a quantity (regression)
CLASS_SHARE = 0.05  # ... or with distinct values above this share of the rows


@dataclass(frozen=True)
class ColumnInfo:
    """One column: its kind, how it was decided, and the counts that decided it."""

    name: str
    kind: ColumnKind
    declared: bool
    missing: int
    distinct: int


def column_kinds(table: Any, overrides: Mapping[str, str] | None = None) -> dict[str, ColumnInfo]:
    """Every column's :class:`ColumnInfo`; ``overrides`` (column -> kind) win over inference.

    Raises:
        DataError: an override names a column the table lacks, or a kind that does not exist.
    """
    overrides = dict(overrides or {})
    for name, kind in overrides.items():
        if name not in table.column_names:
            raise DataError(f"data.columns names {name!r}, which the table does not have{_suggest(name, table)}")
        if kind not in KINDS:
            raise DataError(f"data.columns.{name}: unknown kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")
    return {name: _info(name, table.column(name), overrides.get(name)) for name in table.column_names}


def _info(name: str, column: Any, declared: str | None) -> ColumnInfo:
    import pyarrow.compute as pc

    missing = column.null_count
    distinct = len(pc.unique(column.drop_null()))
    kind = declared or infer_kind(column, distinct)
    return ColumnInfo(name, kind, declared is not None, missing, distinct)  # type: ignore[arg-type]


def infer_kind(column: Any, distinct: int) -> ColumnKind:
    """The kind of one ``pyarrow.ChunkedArray`` with ``distinct`` non-null values."""
    import pyarrow.types as t

    kind = column.type
    present = len(column) - column.null_count
    if t.is_boolean(kind):
        return "boolean"
    if t.is_temporal(kind):
        return "datetime"
    if t.is_integer(kind) and present > 1 and distinct == present and _consecutive(column):
        return "id"  # 1, 2, 3, ... one per row: a row number or a key
    if t.is_integer(kind) or t.is_floating(kind):
        return "numeric"
    if _mean_words(column) > TEXT_MEAN_WORDS:
        return "text"
    if present > 1 and distinct == present:
        return "id"
    return "categorical"


def _consecutive(column: Any) -> bool:
    import pyarrow.compute as pc

    values = column.drop_null()
    low, high = pc.min(values).as_py(), pc.max(values).as_py()
    return high - low + 1 == len(values)


def _mean_words(column: Any) -> float:
    import pyarrow.compute as pc

    values = column.drop_null()
    if len(values) == 0:
        return 0.0
    words = pc.list_value_length(pc.utf8_split_whitespace(values))
    return float(pc.mean(words).as_py() or 0.0)


def check_target(table: Any, target: str) -> None:
    """The target exists, has values, and varies.

    Raises:
        DataError: the column is missing (with the closest name), all null, or one value only.
    """
    import pyarrow.compute as pc

    if target not in table.column_names:
        raise DataError(f"target column {target!r} is not in the table{_suggest(target, table)}",
                        hint=f"set data.target to one of: {', '.join(table.column_names[:20])}")
    column = table.column(target)
    if column.null_count == len(column):
        raise DataError(f"target column {target!r} is empty: every value is missing",
                        hint="choose another target, or fill in its values")
    values = pc.unique(column.drop_null())
    if len(values) < 2:
        raise DataError(f"target column {target!r} has one value only ({values[0].as_py()!r}): nothing to learn",
                        hint="choose another target, or add rows of the other classes")


def infer_task(table: Any, target: str, kind: ColumnKind) -> TaskKind:
    """``binary``, ``multiclass`` or ``regression`` for the target column of ``kind``."""
    import pyarrow.compute as pc
    import pyarrow.types as t

    column = table.column(target).drop_null()
    distinct = len(pc.unique(column))
    if distinct == 2:
        return "binary"
    if t.is_floating(column.type) or (kind == "numeric" and not t.is_integer(column.type)):
        return "regression"
    if t.is_integer(column.type):  # counts and codes alike: few distinct values are classes
        few = distinct <= MAX_CLASSES and distinct <= CLASS_SHARE * len(column)
        return "multiclass" if few else "regression"
    return "multiclass"  # text labels, categories


def _suggest(name: str, table: Any) -> str:
    import difflib

    close = difflib.get_close_matches(name, table.column_names, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
