"""Column kinds and the task are inferred from values, can be declared, and the target is checked."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from mlestar.domains.tables.columns import check_target, column_kinds, infer_task
from mlestar.errors import DataError

ROWS = 60


def sample() -> pa.Table:
    words = ["the quick brown fox jumps over", "a lazy dog sleeps in the sun", "rain again on a grey monday"]
    return pa.table({
        "row": list(range(1, ROWS + 1)),
        "customer": [f"C{i:04d}" for i in range(ROWS)],
        "age": [20 + i % 40 for i in range(ROWS)],
        "income": [1000.0 + 37.5 * i for i in range(ROWS)],
        "plan": ["basic", "pro", "team"] * (ROWS // 3),
        "active": [i % 2 == 0 for i in range(ROWS)],
        "joined": pa.array([19000 + i for i in range(ROWS)], pa.date32()),
        "review": [words[i % 3] + f" {i}" for i in range(ROWS)],
    })


def test_kinds_are_inferred_from_the_values() -> None:
    kinds = {name: info.kind for name, info in column_kinds(sample()).items()}
    assert kinds == {"row": "id", "customer": "id", "age": "numeric", "income": "numeric", "plan": "categorical",
                     "active": "boolean", "joined": "datetime", "review": "text"}


def test_declared_kinds_win_and_are_marked() -> None:
    info = column_kinds(sample(), {"age": "categorical"})["age"]
    assert info.kind == "categorical" and info.declared and info.distinct == 40


@pytest.mark.parametrize("overrides,message", [({"agee": "numeric"}, "did you mean 'age'"),
                                               ({"age": "number"}, "unknown kind 'number'")])
def test_bad_overrides_are_refused(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(DataError, match=message):
        column_kinds(sample(), overrides)


def test_missing_values_are_counted() -> None:
    table = pa.table({"x": [1.0, None, 3.0, None]})
    info = column_kinds(table)["x"]
    assert (info.missing, info.distinct, info.kind) == (2, 2, "numeric")


@pytest.mark.parametrize("values,task", [
    (["yes", "no"] * 30, "binary"),
    ([0, 1] * 30, "binary"),
    (["a", "b", "c"] * 20, "multiclass"),
    ([i % 3 for i in range(ROWS)], "multiclass"),
    ([float(i) * 1.1 for i in range(ROWS)], "regression"),
    (list(range(ROWS)), "regression"),
])
def test_the_task_follows_from_the_target(values: list[object], task: str) -> None:
    table = pa.table({"y": values})
    assert infer_task(table, "y", column_kinds(table)["y"].kind) == task


@pytest.mark.parametrize("table,message", [
    (pa.table({"churn": [0, 1]}), "target column 'churned' is not in the table; did you mean 'churn'"),
    (pa.table({"churned": pa.array([None, None], pa.int64())}), "every value is missing"),
    (pa.table({"churned": [1, 1, None]}), "has one value only \\(1\\)"),
])
def test_targets_that_cannot_be_learned_are_refused(table: pa.Table, message: str) -> None:
    with pytest.raises(DataError, match=message):
        check_target(table, "churned")


def test_the_shared_tables_are_typed_as_their_documentation_says() -> None:
    from mlestar.domains.tables.load import read_table

    folder = Path(__file__).resolve().parents[4] / "shared" / "datasets" / "tabular"
    if not folder.is_dir():
        pytest.skip(f"{folder} is not here (it sits beside the repository on the development machine and in CI)")
    diamonds = read_table(folder / "diamonds.csv")
    kinds = column_kinds(diamonds)
    assert kinds[""].kind == "id"  # R's row names
    assert {kinds[c].kind for c in ("cut", "color", "clarity")} == {"categorical"}
    assert infer_task(diamonds, "price", kinds["price"].kind) == "regression"
    hi = read_table(folder / "HI.csv")
    assert infer_task(hi, "whi", column_kinds(hi)["whi"].kind) == "binary"
