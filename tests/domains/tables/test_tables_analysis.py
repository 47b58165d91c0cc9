"""Stage 1 for tables: leaks, informative ids, constant and duplicate columns, duplicate rows, drift, target advice."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlestar.config.schema import MlestarConfig
from mlestar.domains.tables import probes
from mlestar.domains.tables.analysis import (
    OUTPUTS, analyze_table, column_hashes, duplicate_rows, row_hashes, target_summary, training_rows,
)
from mlestar.domains.tables.dataset import TableDataset, load_table_dataset, split_hash
from mlestar.domains.tables.findings import recommend
from mlestar.errors import DataError, StageError

RECOMMENDATION_KEYS = {"drop_columns", "class_weighting", "target_transform", "high_cardinality", "drift_columns",
                       "constant_columns"}


def table(tmp_path: Path, frame: pd.DataFrame, test: pd.DataFrame | None = None, fmt: str = "csv",
          **data: Any) -> TableDataset:
    """A TableDataset loaded the way a run loads one: from CSV (or Parquet), target column ``y``."""
    folder = tmp_path / "data"
    folder.mkdir(parents=True, exist_ok=True)
    write = (lambda f, p: f.to_csv(p, index=False)) if fmt == "csv" else (lambda f, p: f.to_parquet(p, index=False))
    write(frame, folder / f"train.{fmt}")
    if test is not None:
        write(test, folder / f"test.{fmt}")
    path = folder if test is not None else folder / f"train.{fmt}"
    config = MlestarConfig(data={"source": "table", "path": str(path), "target": "y", **data})
    return load_table_dataset(config.data, 0)


def builtin(name: str) -> TableDataset:
    return load_table_dataset(MlestarConfig(data={"source": "table", "dataset": name}).data, 0)


def noisy_binary(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Three numeric features; ``y`` follows ``a`` loosely (no single column is near-perfect)."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.normal(size=(3, rows))
    y = (a + 1.5 * rng.normal(size=rows) > 0).astype(int)
    return pd.DataFrame({"a": a, "b": b, "c": c, "y": y})


def by_check(result: Any, check: str) -> dict[str, Any]:
    matches = [f for f in result.findings if f["check"] == check]
    assert len(matches) == 1, [f["check"] for f in result.findings]
    return matches[0]


def test_a_planted_leaking_column_is_blocking_with_its_score(tmp_path: Path) -> None:
    frame = noisy_binary()
    frame["leak"] = frame["y"] * 10.0 + np.random.default_rng(1).normal(scale=0.1, size=len(frame))
    result = analyze_table(table(tmp_path, frame), tmp_path)
    leak = by_check(result, "leakage")
    score = result.analysis["leakage"]["scores"]["leak"]["score"]
    assert leak["grade"] == "blocking" and leak["items"] == ["leak"] and score >= 0.99
    assert f"leak (ROC AUC {score:.3f})" in leak["message"]
    assert result.metrics["blocking_findings"] == 1.0 and result.metrics["leakage_suspects"] == 1.0
    assert all(s["score"] < 0.99 for n, s in result.analysis["leakage"]["scores"].items() if n != "leak")
    assert "leak" in [d["column"] for d in result.recommendations["drop_columns"]]


def test_a_leaking_column_the_config_drops_is_not_blocking(tmp_path: Path) -> None:
    frame = noisy_binary(300)
    frame["leak"] = frame["y"].astype(float)
    result = analyze_table(table(tmp_path, frame, drop_columns=["leak"]), tmp_path)
    assert not result.blocking
    assert by_check(result, "leakage_excluded")["items"] == ["leak"]


def test_regression_leak_is_flagged_by_r2(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"a": rng.normal(size=500), "y": rng.normal(size=500)})
    frame["twice"] = 2 * frame["y"] + 1
    ds = table(tmp_path, frame, task="regression")
    scores = probes.single_column_scores(training_rows(ds), training_rows(ds)["y"].to_numpy(),
                                         {"a": "numeric", "twice": "numeric"}, "regression", seed=0)
    assert scores["twice"]["metric"] == "r2" and scores["twice"]["score"] > 0.99
    assert scores["a"]["score"] < 0.1


def test_an_id_that_follows_the_target_is_a_warning_not_a_block(tmp_path: Path) -> None:
    frame = noisy_binary(400).sort_values("y", kind="stable").reset_index(drop=True)
    frame.insert(0, "row", np.arange(1, len(frame) + 1))  # rows numbered after sorting by the target
    ds = table(tmp_path, frame)
    assert ds.columns["row"].kind == "id" and "row" not in ds.features
    result = analyze_table(ds, tmp_path)
    found = by_check(result, "id_information")
    entry = result.analysis["leakage"]["scores"]["row"]
    assert found["grade"] == "warning" and found["items"] == ["row"]
    assert entry["spearman"] > 0.8 and f"Spearman {entry['spearman']:.2f}" in found["message"]
    assert not result.blocking
    assert {"column": "row", "reason": "id-like (a label per row)"} in result.recommendations["drop_columns"]


def test_an_id_without_information_is_not_flagged(tmp_path: Path) -> None:
    frame = noisy_binary(400)
    frame.insert(0, "row", np.arange(1, len(frame) + 1))  # the rows are in random order
    result = analyze_table(table(tmp_path, frame), tmp_path)
    assert result.analysis["leakage"]["informative_ids"] == []
    assert abs(result.analysis["leakage"]["scores"]["row"]["spearman"]) < 0.15


def test_constant_near_constant_and_duplicate_columns_are_dropped(tmp_path: Path) -> None:
    frame = noisy_binary(500)
    frame["const"] = 7.0
    frame["rare"] = np.where(np.arange(500) < 2, "x", "o")  # 99.6% one value
    frame["copy_of_b"] = frame["b"]
    result = analyze_table(table(tmp_path, frame), tmp_path)
    columns = result.analysis["columns"]
    assert columns["const"]["constant"] and not columns["rare"]["constant"]
    assert columns["rare"]["near_constant"] and not columns["b"]["near_constant"]
    assert result.analysis["duplicates"]["columns"] == [["copy_of_b", "b"]]
    drops = {d["column"]: d["reason"] for d in result.recommendations["drop_columns"]}
    assert drops["const"] == "constant" and drops["copy_of_b"] == "duplicate of b"
    assert drops["rare"].startswith("near-constant") and "b" not in drops
    assert result.recommendations["constant_columns"] == ["const", "rare"]
    assert by_check(result, "constant")["items"] == ["const", "rare"]


def test_duplicate_rows_are_counted_exactly() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, np.nan, 1.0, 3.0, np.nan, 1.0, 2.0],
                          "c": ["a", "b", "c", "a", "a", "c", "a", "z"]})
    found = duplicate_rows(row_hashes(column_hashes(frame, ["x", "c"]), len(frame)))
    assert found["rows"] == [3, 5, 6] and found["count"] == 3 and found["share"] == 3 / 8


def test_duplicate_fraction_covers_train_and_validation(tmp_path: Path) -> None:
    frame = noisy_binary(200)
    frame = pd.concat([frame, frame.iloc[:30]], ignore_index=True)  # 30 repeats, wherever the split puts them
    ds = table(tmp_path, frame)
    rows = training_rows(ds)
    expected = int(rows.duplicated().sum())
    result = analyze_table(ds, tmp_path)
    assert result.analysis["duplicates"]["rows"]["count"] == expected > 0
    assert result.metrics["duplicate_fraction"] == pytest.approx(expected / len(rows))
    assert result.analysis["duplicates"]["test_in_train"]["count"] == int(
        ds.test.merge(rows.drop_duplicates(), how="inner").shape[0])


def test_adversarial_auc_is_near_half_on_a_random_split() -> None:
    rows = noisy_binary(2000, seed=3)
    kinds = {"a": "numeric", "b": "numeric", "c": "numeric"}
    result = probes.adversarial_validation(rows.iloc[:1000], rows.iloc[1000:], kinds, seed=0)
    assert 0.4 < result["auc"] < 0.6


def test_a_planted_shift_gives_high_auc_and_names_the_column(tmp_path: Path) -> None:
    train, test = noisy_binary(600, seed=4), noisy_binary(300, seed=5)
    test["b"] = test["b"] + 3.0
    result = analyze_table(table(tmp_path, train, test), tmp_path)
    adversarial = result.analysis["adversarial"]
    drift = by_check(result, "drift")
    assert adversarial["auc"] > 0.9 and adversarial["top_columns"] == ["b"]
    assert drift["grade"] == "warning" and "STRONG" in drift["message"] and drift["items"] == ["b"]
    assert result.recommendations["drift_columns"] == ["b"]
    assert result.metrics["adversarial_auc"] == adversarial["auc"]


def test_imbalance_ratio_and_class_weighting(tmp_path: Path) -> None:
    frame = noisy_binary(500)
    frame["y"] = (np.arange(500) % 10 == 0).astype(int)  # 450 : 50
    ds = table(tmp_path, frame)
    target = target_summary(ds)
    counts = np.bincount(training_rows(ds)["y"].to_numpy())
    assert target["imbalance_ratio"] == counts.max() / counts.min() == pytest.approx(9.0, abs=0.3)
    recs = recommend(fake_analysis(target))
    assert recs["class_weighting"]["choice"] == "balanced"
    balanced = recommend(fake_analysis(target_summary(table(tmp_path / "b", noisy_binary(300)))))
    assert balanced["class_weighting"]["choice"] == "none" and balanced["target_transform"]["choice"] == "none"


def fake_analysis(target: dict[str, Any]) -> dict[str, Any]:
    """The parts of an analysis ``recommend`` reads, empty except the target."""
    return {"columns": {}, "target": target, "duplicates": {"columns": []}, "leakage": {"leaks": []},
            "adversarial": {"auc": 0.5, "top_columns": []}}


@pytest.mark.parametrize(("shift", "choice"), [(0.0, "log1p"), (-100.0, "none")])
def test_a_skewed_non_negative_regression_target_gets_log1p(tmp_path: Path, shift: float, choice: str) -> None:
    rng = np.random.default_rng(6)
    frame = pd.DataFrame({"a": rng.normal(size=400), "y": np.exp(rng.normal(scale=1.0, size=400)) * 50 + shift})
    target = target_summary(table(tmp_path, frame, task="regression"))
    assert target["skew"] > 1.0 and target["non_negative"] == (shift == 0.0)
    recs = recommend(fake_analysis(target))
    assert recs["target_transform"]["choice"] == choice and recs["class_weighting"]["choice"] == "none"


def test_analyze_table_writes_every_output(tmp_path: Path) -> None:
    ds = builtin("diabetes")
    result = analyze_table(ds, tmp_path, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUTS)
    recs = json.loads((tmp_path / "recommendations.json").read_text())
    assert set(recs) == RECOMMENDATION_KEYS and recs["target_transform"]["choice"] == "none"
    record = json.loads((tmp_path / "dataset.json").read_text())
    assert set(record) == {"name", "task", "target", "class_names", "features", "columns", "roles", "splits",
                           "fingerprint", "notes"}
    assert record["splits"]["train"] == {"size": len(ds.train), "hash": split_hash(ds.train)}
    assert record["columns"]["age"] == {"kind": "numeric", "missing": 0, "distinct": ds.columns["age"].distinct}
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    assert {"columns", "duplicates", "target", "correlation", "adversarial", "leakage", "findings",
            "seconds"} <= set(analysis)
    assert analysis["correlation"]["method"] == "mutual_information"
    assert max(analysis["correlation"]["scores"], key=analysis["correlation"]["scores"].get) in ("bmi", "s5")
    from mlestar.stages.tables.s1_situation_analysis import TableSituationAnalysis

    assert set(result.metrics) == set(TableSituationAnalysis.metrics())
    assert result.metrics["num_classes"] is None and result.metrics["target_skew"] == pytest.approx(
        training_rows(ds)["target"].skew())
    assert result.metrics["num_train_rows"] == len(ds.train) + len(ds.val) and result.metrics["num_features"] == 10
    assert "Mutual information" in (tmp_path / "report.md").read_text()
    assert all(set(f) == {"grade", "check", "message", "count", "items"} for f in result.findings)


class FakeContext(SimpleNamespace):
    """What the stage and ``checked_dataset`` touch of a StageContext."""

    def dataset(self) -> TableDataset:
        return self.data

    def decide(self, what: str, choice: Any, reason: str, **data: Any) -> None:
        self.decisions[what] = choice

    def read_json(self, ref: str) -> Any:
        return json.loads((self.out_dir / ref.split("/")[1]).read_text())

    def progress(self, label: str, done: int, total: int) -> None:
        """Stage 1 reports its checks; this test does not look at them."""


def test_the_stage_writes_everything_then_raises_on_a_leak(tmp_path: Path) -> None:
    from mlestar.stages.tables.s1_situation_analysis import TableSituationAnalysis

    frame = noisy_binary(300)
    frame["leak"] = frame["y"].astype(float)
    ctx = FakeContext(data=table(tmp_path, frame), out_dir=tmp_path / "out", config=SimpleNamespace(seed=0),
                      decisions={})
    ctx.out_dir.mkdir()
    with pytest.raises(DataError, match="leak"):
        TableSituationAnalysis().run(ctx)
    assert all((ctx.out_dir / name).exists() for name in TableSituationAnalysis.outputs)
    assert ctx.decisions["recommend_drop_columns"] == ["leak"]


def test_checked_dataset_refuses_changed_rows(tmp_path: Path) -> None:
    from mlestar.stages.tables.common import DATASET_REF, checked_dataset

    ds = builtin("iris")
    analyze_table(ds, tmp_path)
    assert DATASET_REF == "situation_analysis/dataset.json"
    assert checked_dataset(FakeContext(data=ds, out_dir=tmp_path)) is ds
    changed = ds.train.copy()
    changed.iloc[0, 0] += 1.0
    assert split_hash(changed) != split_hash(ds.train)
    with pytest.raises(StageError, match="train split differs"):
        checked_dataset(FakeContext(data=TableDataset(**{**ds.__dict__, "train": changed}), out_dir=tmp_path))


def test_every_column_kind_is_profiled_and_probed(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = 300
    frame = pd.DataFrame({
        "when": pd.date_range("2020-01-01", periods=rows, freq="D"),
        "flag": rng.integers(0, 2, rows).astype(bool),
        "plan": np.where(rng.random(rows) < 0.1, None, rng.choice(["basic", "pro", "team"], rows)),
        "note": [f"free text number {i} with several more words" for i in range(rows)],
        "gone": np.where(np.arange(rows) < 297, None, "x"),  # 99% missing: near-constant and mostly missing
        "y": rng.normal(size=rows)})
    ds = table(tmp_path, frame, fmt="parquet", task="regression")  # Parquet keeps missing strings missing
    assert {n: c.kind for n, c in ds.columns.items()} == {"when": "datetime", "flag": "boolean", "plan": "categorical",
                                                          "note": "text", "gone": "categorical"}
    result = analyze_table(ds, tmp_path)
    columns = result.analysis["columns"]
    assert columns["plan"]["missing"] == pytest.approx(training_rows(ds)["plan"].isna().mean())
    assert columns["gone"]["near_constant"] and columns["note"]["role"] == "unused"
    assert set(result.analysis["leakage"]["scores"]) == {"when", "flag", "plan", "gone"}  # free text is not probed
    assert set(result.analysis["correlation"]["scores"]) == {"when", "flag", "plan", "gone"}
    assert columns["plan"]["missing"] > 0.05 and by_check(result, "missing_values")["items"] == ["plan"]
    assert by_check(result, "missing")["items"] == ["gone"] and not result.blocking
