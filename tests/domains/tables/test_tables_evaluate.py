"""Stage 5 for tables: calibration, the validation-chosen threshold, error breakdowns, SHAP, and the
whole stage writing every declared output with exactly the catalog's metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlestar.config.schema import MlestarConfig
from mlestar.domains.tables import evaluate
from mlestar.domains.tables.dataset import TableDataset, load_table_dataset
from mlestar.domains.tables.evaluate import (
    bucket_errors,
    choose_threshold,
    error_by_category,
    expected_calibration_error,
    explain,
    f1_at,
    row_errors,
    threshold_choice,
)
from mlestar.domains.tables.fit import fit_plan
from mlestar.domains.tables.model import TableModel, load_model
from mlestar.domains.tables.planning import make_plan


def fitted(data: dict[str, Any], learner: str | None = None) -> tuple[TableDataset, TableModel]:
    """A dataset and a small model fitted on it (100 rounds, one thread)."""
    cfg = MlestarConfig(data={"source": "table", **data})
    ds = load_table_dataset(cfg.data, 0)
    record = {"task": ds.task, "target": ds.target, "features": list(ds.features),
              "columns": {n: {"kind": i.kind, "distinct": i.distinct, "missing": i.missing}
                          for n, i in ds.columns.items()}}
    plan = make_plan(record, {}, learner=learner, seed=0, cv_folds=0, budget_s=None, fit_time_s=None)
    if plan.learner != "linear":
        plan = plan.with_changes(params={"n_estimators": 100})
    return ds, fit_plan(plan, ds.train, ds.val, ds.class_names).model


def planted_table(folder: Path, rows: int = 1500) -> Path:
    """Binary table: ``x`` decides ``y`` (its sign flipped by city), except in city ``bad`` where ``y`` is a
    coin flip; three noise categorical columns, a numeric column with gaps and a date column."""
    rng = np.random.default_rng(0)
    city = rng.choice(["north", "south", "east", "west", "bad"], size=rows)
    x = rng.normal(size=rows)
    y = np.where(np.isin(city, ["north", "south"]), x > 0, x <= 0).astype(int)
    y = np.where(city == "bad", rng.integers(0, 2, size=rows), y)
    gaps = rng.normal(size=rows)
    gaps[rng.random(rows) < 0.1] = np.nan
    frame = pd.DataFrame({"city": city, "x": x, "gaps": gaps,
                          "day": pd.date_range("2020-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
                          **{f"noise{i}": rng.choice(list("abcd"), size=rows) for i in range(3)}, "y": y})
    path = folder / "planted.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def cancer() -> tuple[TableDataset, TableModel]:
    return fitted({"dataset": "breast_cancer"})


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[TableDataset, TableModel]:
    return fitted({"path": str(planted_table(tmp_path_factory.mktemp("planted"))), "target": "y"})


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fewer timed calls: the efficiency numbers are checked for shape, not for precision."""
    monkeypatch.setattr(evaluate, "LATENCY_REPEATS", (10, 10))
    monkeypatch.setattr(evaluate, "THROUGHPUT_ROWS", 1000)


# --- calibration -------------------------------------------------------------------------------------


def test_ece_is_near_zero_for_calibrated_and_large_for_overconfident_probabilities() -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    confidence = rng.uniform(0.5, 1.0, size=n)
    y = np.where(rng.random(n) < confidence, 1, 0)  # class 1 is right exactly as often as it claims
    calibrated = np.column_stack([1 - confidence, confidence])
    ece, bins = expected_calibration_error(calibrated, y)
    assert ece < 0.01
    assert sum(bins["counts"]) == n and len(bins["edges"]) == 16
    overconfident = np.tile([0.01, 0.99], (n, 1))
    y_over = (rng.random(n) < 0.6).astype(int)  # right 60% of the time while claiming 99%
    ece_over, _ = expected_calibration_error(overconfident, y_over)
    assert ece_over == pytest.approx(0.39, abs=0.01)


# --- threshold ---------------------------------------------------------------------------------------


def test_threshold_maximises_validation_f1() -> None:
    rng = np.random.default_rng(1)
    # Positives score in [0.3, 0.5), negatives below 0.3: the 0.5 rule finds no positive at all.
    y = np.repeat([0, 1], 200)
    scores = np.concatenate([rng.uniform(0.0, 0.29, 200), rng.uniform(0.3, 0.49, 200)])
    threshold, f1 = choose_threshold(y, scores)
    assert 0.29 < threshold < 0.31 and f1 == pytest.approx(1.0)
    assert f1_at(y, scores, threshold) == pytest.approx(1.0) and f1_at(y, scores, 0.5) == 0.0


def test_threshold_is_chosen_on_validation_never_on_test(cancer: tuple[TableDataset, TableModel]) -> None:
    ds, model = cancer
    y_test = ds.test[ds.target].to_numpy()
    proba = model.predict_proba(ds.test)
    first = threshold_choice(model, ds, y_test, proba)
    second = threshold_choice(model, ds, 1 - y_test, proba)  # every test label flipped
    assert first["chosen"] == second["chosen"]
    assert first["test_at_chosen"] != second["test_at_chosen"]  # the test scores did read the labels
    assert first["val_f1_at_chosen"] >= first["val_f1_at_0.5"]
    y_val = ds.val[ds.target].to_numpy()
    assert f1_at(y_val, model.predict_proba(ds.val)[:, 1], first["chosen"]) == pytest.approx(
        first["val_f1_at_chosen"])


# --- error breakdowns --------------------------------------------------------------------------------


def test_bucket_errors_cover_every_row_and_match_the_overall_error() -> None:
    rng = np.random.default_rng(2)
    y = rng.gamma(2.0, 10.0, size=503)
    predicted = y + rng.normal(scale=3.0, size=503) + (y > np.quantile(y, 0.9)) * 20  # worst at the top
    rows = bucket_errors(y, predicted)
    assert len(rows) == 10 and sum(r["count"] for r in rows) == 503
    mae = sum(r["mae"] * r["count"] for r in rows) / 503
    assert mae == pytest.approx(np.mean(np.abs(predicted - y)))
    mse = sum(r["rmse"] ** 2 * r["count"] for r in rows) / 503
    assert mse == pytest.approx(np.mean((predicted - y) ** 2))
    assert max(rows, key=lambda r: r["mae"])["bucket"] == 9
    assert all(a["high"] == b["low"] for a, b in zip(rows, rows[1:]))


def test_error_by_category_finds_the_planted_bad_category() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"shop": rng.choice(["a", "b", "c", "bad"], size=800),
                          "size": rng.choice(["s", "m", None], size=800)})
    y = rng.integers(0, 2, size=800)
    proba = np.column_stack([1 - y, y]).astype(float)  # right everywhere ...
    bad = (frame["shop"] == "bad").to_numpy()
    proba[bad] = proba[bad][:, ::-1]  # ... except in shop "bad"
    errors = row_errors("binary", y, proba)
    out = error_by_category(frame, errors, ["shop", "size"])
    worst = max(out["shop"], key=lambda r: r["error"])
    assert worst["value"] == "bad" and worst["error"] == 1.0 and worst["count"] == int(bad.sum())
    assert sum(r["count"] for r in out["shop"]) == 800
    assert "(missing)" in {r["value"] for r in out["size"]}
    counts = [r["count"] for r in out["shop"]]
    assert counts == sorted(counts, reverse=True)


def test_error_by_category_keeps_the_twenty_most_frequent_values() -> None:
    frame = pd.DataFrame({"code": [f"v{i}" for i in range(30) for _ in range(i + 1)]})
    out = error_by_category(frame, np.zeros(len(frame)), ["code"])
    assert [r["value"] for r in out["code"]] == [f"v{i}" for i in range(29, 9, -1)]


# --- SHAP --------------------------------------------------------------------------------------------


def test_shap_ranks_the_planted_feature_first_and_writes_the_summary(tmp_path: Path) -> None:
    from mlestar.domains.tables.evalplots import plot_shap

    rng = np.random.default_rng(4)
    frame = pd.DataFrame({f"f{i}": rng.normal(size=600) for i in range(5)})
    frame["y"] = 10 * frame["f3"] + rng.normal(scale=0.5, size=600)
    path = tmp_path / "planted_regression.csv"
    frame.to_csv(path, index=False)
    ds, model = fitted({"path": str(path), "target": "y", "task": "regression"})
    explanation = explain(model, ds.test, max_rows=100)
    assert explanation is not None and explanation.explainer == "tree"
    assert len(explanation.data) == min(100, len(ds.test))
    ranking = explanation.mean_abs()
    assert list(ranking)[0] == "f3" and ranking["f3"] > 5 * list(ranking.values())[1]
    plot_shap(explanation, list(ranking)[:3], [], tmp_path)
    assert (tmp_path / "shap_summary.png").stat().st_size > 1000
    assert (tmp_path / "shap_dependence.png").stat().st_size > 1000


@pytest.mark.parametrize("classes", [0, 3], ids=["one_output", "three_classes"])
def test_shap_plots_leave_numpys_global_generator_as_they_found_it(tmp_path: Path, classes: int) -> None:
    """shap's summary and dependence plots draw from (and warn about) NumPy's seeded global generator: code that
    runs after a plot must draw what it would have drawn without one."""
    import warnings

    from mlestar.domains.tables.evalplots import plot_shap
    from mlestar.domains.tables.evaluate import Explanation

    rng = np.random.default_rng(0)
    shape = (80, 4, classes) if classes else (80, 4)
    explanation = Explanation("tree", rng.normal(size=shape), rng.normal(size=(80, 4)), ["a", "b", "c", "d"])
    np.random.seed(7)
    expected = np.random.rand(3)
    np.random.seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        plot_shap(explanation, ["a", "b"], [f"k{i}" for i in range(classes)], tmp_path)
    assert np.array_equal(np.random.rand(3), expected)
    assert (tmp_path / "shap_summary.png").stat().st_size > 1000


def test_shap_of_a_multiclass_model_is_summarised_over_classes() -> None:
    ds, model = fitted({"dataset": "wine"})
    explanation = explain(model, ds.test)
    assert explanation is not None and explanation.values.shape == (len(ds.test), len(ds.features), 3)
    ranking = explanation.mean_abs()
    top = list(ranking)[0]
    index = explanation.names.index(top)
    assert ranking[top] == pytest.approx(np.abs(explanation.values[:, index, :]).mean())


def test_learner_shap_cannot_explain_falls_back_to_permutation_importance(tmp_path: Path, quick: None) -> None:
    from dataclasses import replace

    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import Pipeline

    ds, model = fitted({"dataset": "diabetes"})
    preprocess = model.pipeline.named_steps["preprocess"]
    knn = KNeighborsRegressor(5).fit(preprocess.transform(model.prepare(ds.train)), ds.train[ds.target])
    other = replace(model, pipeline=Pipeline([("preprocess", preprocess), ("model", knn)]))
    assert explain(other, ds.test) is None
    record = evaluate.evaluate_table_model(other, ds, tmp_path)
    assert record["shap"]["explainer"] == "none" and "permutation importance" in record["shap"]["note"]
    assert set(record["permutation_importance"]) == set(ds.features)
    assert any("SHAP cannot explain" in note for note in record["notes"])
    assert (tmp_path / "shap_summary.png").exists() and (tmp_path / "shap_dependence.png").exists()


# --- the whole stage ---------------------------------------------------------------------------------


def run_stage(ds: TableDataset, model: TableModel, run_dir: Path, targets: dict[str, Any]) -> tuple[Any, Path]:
    """Run the table evaluation stage on a run folder holding stage 1's record and stage 4's model."""
    from mlestar.config.catalog import stage_folder
    from mlestar.stages.tables.s5_evaluation import TableEvaluation
    from mlestar.tracking.audit import AuditTrail
    from mlestar.utils.io import atomic_write_json
    from mlestar.workflow.stage import StageContext

    (run_dir / stage_folder("implementation")).mkdir(parents=True)
    model.save(run_dir / stage_folder("implementation") / "model.joblib")
    from mlestar.domains.tables.dataset import dataset_record

    atomic_write_json(run_dir / stage_folder("situation_analysis") / "dataset.json", dataset_record(ds))
    out_dir = run_dir / stage_folder("evaluation")
    out_dir.mkdir()
    config = MlestarConfig(data={"source": "table", "dataset": "wine"}, task={"targets": targets})
    ctx = StageContext(config=config, run_id="r", run_dir=run_dir, out_dir=out_dir, stage="evaluation", attempt=1,
                       resume=False, adjustments=[], audit=AuditTrail(run_dir / "audit.jsonl"),
                       load_dataset=lambda: ds, declared=TableEvaluation.inputs)
    return TableEvaluation().run(ctx), out_dir


def check_outputs(result: Any, out_dir: Path) -> dict[str, Any]:
    """Every declared output is there, and the metrics are exactly the catalog's."""
    from mlestar.config.catalog import METRICS
    from mlestar.stages.tables.s5_evaluation import TableEvaluation

    for name in TableEvaluation.outputs:
        assert (out_dir / name).stat().st_size > 0, name
    expected = [m for m, s in METRICS.items() if s.stage == "evaluation" and "tables" in s.domains]
    assert list(result.metrics) == expected == list(TableEvaluation.metrics())
    record = json.loads((out_dir / "evaluation.json").read_text())
    assert record["metrics"] == pytest.approx(result.metrics)
    assert result.metrics["model_size"] == (out_dir / "model.joblib").stat().st_size
    assert result.metrics["latency_p95"] >= result.metrics["latency_p50"] > 0
    assert result.metrics["throughput"] > 0 and result.metrics["peak_memory"] > 1e6
    return record


def test_binary_stage_writes_everything_and_stores_the_threshold(
        planted: tuple[TableDataset, TableModel], tmp_path: Path, quick: None) -> None:
    ds, model = planted
    result, out_dir = run_stage(ds, model, tmp_path, {"test_roc_auc": 0.5, "test_accuracy": 0.999,
                                                      "test_rmse": 1.0})
    record = check_outputs(result, out_dir)
    regression_only = ("test_rmse", "test_mae", "test_r2", "test_mape")
    assert all(result.metrics[m] is None for m in regression_only)
    assert all(result.metrics[m] is not None for m in result.metrics if m not in regression_only)
    chosen = record["threshold"]["chosen"]
    assert load_model(out_dir / "model.joblib").threshold == chosen
    assert result.metrics["test_f1"] == pytest.approx(record["threshold"]["test_at_chosen"]["f1"])
    decisions = [json.loads(line)["data"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert any(d.get("what") == "decision_threshold" and d.get("choice") == chosen for d in decisions)
    # The four categorical columns are ranked by importance; the planted one is broken down and its
    # bad value has the largest error rate.
    assert "city" in record["error_by_category"] and len(record["error_by_category"]) == 3
    assert max(record["error_by_category"]["city"], key=lambda r: r["error"])["value"] == "bad"
    verdicts = {row[0]: row[3] for row in record["against_targets"]}
    assert verdicts == {"test_roc_auc": "met", "test_accuracy": "MISSED", "test_rmse": "not applicable"}
    report = (out_dir / "report.md").read_text()
    assert "MISSED" in report and "Decision threshold" in report and "city" in report


def test_multiclass_stage_writes_everything(tmp_path: Path, quick: None) -> None:
    ds, model = fitted({"dataset": "wine"})
    result, out_dir = run_stage(ds, model, tmp_path, {})
    record = check_outputs(result, out_dir)
    assert record["threshold"] is None and result.metrics["test_rmse"] is None
    assert result.metrics["ece"] is not None and 0 <= result.metrics["ece"] <= 1
    assert np.sum(record["confusion_matrix"]["matrix"]) == len(ds.test)
    assert set(record["classification_report"]) >= set(ds.class_names)
    assert list(json.loads((out_dir / "shap_importance.json").read_text())["mean_abs"]) == \
        list(record["shap"]["mean_abs"])


def test_regression_stage_writes_everything(tmp_path: Path, quick: None) -> None:
    ds, model = fitted({"dataset": "diabetes"})
    result, out_dir = run_stage(ds, model, tmp_path, {"test_r2": 0.1})
    record = check_outputs(result, out_dir)
    classification_only = ("test_accuracy", "macro_f1", "test_balanced_accuracy", "test_f1", "test_roc_auc",
                           "test_pr_auc", "test_log_loss", "ece")
    assert all(result.metrics[m] is None for m in classification_only)
    assert result.metrics["test_rmse"] > 0 and result.metrics["test_mae"] <= result.metrics["test_rmse"]
    assert sum(b["count"] for b in record["target_buckets"]) == len(ds.test)
    assert record["confusion_matrix"] is None and record["threshold"] is None
    assert "no error by category" in " ".join(record["notes"])


def test_threshold_stays_at_half_unless_validation_f1_clearly_gains() -> None:
    from mlestar.domains.tables.evaluate import pick_threshold

    y = np.array([0, 0, 0, 1, 1, 1] * 20)
    separable = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9] * 20)
    assert pick_threshold(y, separable)[0] == 0.5  # 0.5 already gives F1 1.0
    shifted = separable * 0.5  # positives at 0.35-0.45: 0.5 calls none positive, a lower cut gets them all
    threshold, reason = pick_threshold(y, shifted)
    assert 0.15 < threshold <= 0.35 and "maximises" in reason
