"""Stage 7 for tables: ONNX parity, the input schema, PSI, the bundle, and the stage itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tables_deploy_helpers import builtin, fit, mixed_table

from mlestar.domains.tables.bundle import is_table_bundle, load_table_bundle, write_table_bundle
from mlestar.domains.tables.drift import category_shares, column_psi, numeric_shares, psi, quantile_edges, reference
from mlestar.domains.tables.export import (ExportFailed, OnnxRunner, check_parity, convert, floor_float32,
                                           parity_tolerance, require_parity)
from mlestar.domains.tables.schema import build_schema, frame_psi
from mlestar.errors import BundleError, StageError


def _parity(model, frame):  # type: ignore[no-untyped-def]
    data, inputs = convert(model)
    runner = OnnxRunner(data, inputs, model.task, model.plan.target_transform)
    return check_parity(model, runner, frame, tolerance=parity_tolerance(model.task, 1e-4), min_top1_agreement=0.98)


@pytest.mark.parametrize("name,changes", [("breast_cancer", {}), ("wine", {}), ("diabetes", {}),
                                          ("diabetes", {"target_transform": "log1p"})],
                         ids=["binary", "multiclass", "regression", "regression-log1p"])
def test_onnx_reproduces_the_model(name: str, changes: dict) -> None:
    ds = builtin(name)
    model = fit(ds, **changes)
    frame = pd.concat([ds.val, ds.test], ignore_index=True)
    report = _parity(model, frame)
    assert report.passed and report.rows == len(frame)
    if model.task == "regression":
        assert report.top1_agreement is None and report.relative and report.max_abs_diff <= 1e-5
    else:
        assert report.top1_agreement == 1.0 and report.max_abs_diff <= 1e-6  # float32 graph, float64 model


def test_onnx_reproduces_xgboost() -> None:
    ds = builtin("breast_cancer")
    report = _parity(fit(ds, learner="xgboost"), ds.test)
    assert report.passed and report.max_abs_diff <= 1e-6


def test_lightgbm_thresholds_are_rounded_down_to_float32() -> None:
    value = 0.06345271983825303  # a diabetes threshold that rounded up to the nearest float32 flipped a test row
    low = floor_float32(value)
    assert low <= value and float(np.float32(low)) == low
    assert float(np.nextafter(np.float32(low), np.float32(np.inf))) > value
    assert floor_float32(0.5) == 0.5


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ds = mixed_table(tmp_path_factory.mktemp("mixed"))
    return ds, fit(ds)


def test_onnx_reproduces_categories_missing_values_and_dates(mixed: Any) -> None:
    ds, model = mixed
    assert [(s.column, s.action) for s in model.plan.columns] == [
        ("color", "onehot"), ("city", "ordinal"), ("size", "numeric"), ("when", "numeric")]
    frame = pd.concat([ds.val, ds.test], ignore_index=True)
    frame.loc[0, "color"] = "purple"  # never seen: one-hot all zero in both
    frame.loc[1, "city"] = "atlantis"  # never seen: ordinal -1 in both
    assert frame["color"].isna().sum() > 5 and frame["size"].isna().sum() > 0
    report = _parity(model, frame)
    assert report.passed and report.top1_agreement == 1.0 and report.max_abs_diff <= 1e-6


def test_a_failing_parity_names_the_worst_row(mixed: Any) -> None:
    ds, model = mixed
    data, inputs = convert(model)
    runner = OnnxRunner(data, inputs, model.task)
    runner.scores = lambda frame: np.tile([[0.9, 0.1]], (len(frame), 1))  # type: ignore[method-assign]
    report = check_parity(model, runner, ds.test, tolerance=1e-4, min_top1_agreement=0.98)
    assert not report.passed and report.max_abs_diff > 0.1
    with pytest.raises(StageError, match=rf"at row {report.worst_row} .*top-1 agreement"):
        require_parity(report, ds.test)


def test_an_unconvertible_learner_says_which() -> None:
    ds = builtin("breast_cancer")
    with pytest.raises(ExportFailed, match="hist_gradient_boosting"):
        convert(fit(ds, learner="hist_gradient_boosting"))


def test_schema_lists_categories_ranges_and_nullability(mixed: Any) -> None:
    ds, model = mixed
    _, inputs = convert(model)
    schema = build_schema(model, ds.train, inputs, target="y")
    columns = {c["name"]: c for c in schema["columns"]}
    assert schema["domain"] == "tables" and schema["task"] == "binary" and schema["class_names"] == ["no", "yes"]
    assert columns["color"]["categories"] == ["blue", "green", "red"] and columns["color"]["nullable"]
    assert columns["city"]["categories"] == sorted(f"city{i}" for i in range(20))
    assert not columns["city"]["nullable"] and columns["city"]["dtype"] == "string"
    size = ds.train["size"]
    assert columns["size"]["nullable"] and columns["size"]["dtype"] == "float"
    assert columns["size"]["range"] == pytest.approx([size.min(), size.max()], rel=1e-6)
    assert columns["when"]["range"][0].startswith(ds.train["when"].min().date().isoformat())
    edges = columns["size"]["psi"]["edges"]
    assert len(edges) == 9 and edges == sorted(edges)
    assert sum(columns["size"]["psi"]["shares"]) == pytest.approx(1.0)
    assert columns["color"]["psi"]["categories"][-1] == "__missing__"


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    train, same, shifted = rng.normal(size=5000), rng.normal(size=5000), rng.normal(loc=1.0, size=5000)
    ref = reference(train, "numeric")
    assert column_psi(ref, same) < 0.02
    assert column_psi(ref, shifted) > 0.5
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.5, 0.5, 0.0], [0.5, 0.0, 0.5]) == pytest.approx(2 * 0.5 * np.log(0.5 / 1e-4) - 0.0, rel=1e-3)
    cats = reference(["a"] * 50 + ["b"] * 50, "categorical", ["a", "b"])
    assert column_psi(cats, ["a", "b"] * 20) == pytest.approx(0.0)
    assert column_psi(cats, ["c"] * 40) > 5  # everything in "other"
    assert category_shares(["a", "z"], ["a", "b"]) == [0.5, 0.0, 0.5]


def test_psi_bins_are_deduplicated_and_missing_has_its_own_bin() -> None:
    edges = quantile_edges([0] * 50 + [1] * 50 + [np.nan])
    assert edges == [0.0, 0.5, 1.0]  # nine quantiles, three distinct
    assert numeric_shares([0, 1, 2, np.nan], edges) == [0.25, 0.0, 0.25, 0.25, 0.25]


def test_drift_between_training_and_test(mixed: Any) -> None:
    ds, model = mixed
    _, inputs = convert(model)
    schema = build_schema(model, ds.train, inputs, target="y")
    same = frame_psi(schema, ds.test)  # a random split: only sampling noise (80 rows, up to 21 bins)
    assert set(same) == {"color", "city", "size", "when"} and same["size"] < 0.25 and same["color"] < 0.1
    shifted = frame_psi(schema, ds.test.assign(size=ds.test["size"] + 3.0))
    assert shifted["size"] > 2.0 and shifted["color"] == same["color"]


def _write(tmp_path: Path, ds, model) -> Path:  # type: ignore[no-untyped-def]
    data, inputs = convert(model)
    model.save(tmp_path / "model.joblib")
    schema = build_schema(model, ds.train, inputs, target=ds.target)
    return write_table_bundle(tmp_path / "bundle", joblib_file=tmp_path / "model.joblib", onnx_bytes=data,
                              schema=schema, metadata={"run_id": "r1", "runtime": "onnx"}, model_card="# card\n")


def test_bundle_round_trip_and_tampering(mixed: Any, tmp_path: Path) -> None:
    ds, model = mixed
    folder = _write(tmp_path, ds, model)
    assert is_table_bundle(folder) and not is_table_bundle(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest) == ["metadata.json", "model.joblib", "model.onnx", "model_card.md", "schema.json"]
    assert not list(tmp_path.glob(".bundle.*"))  # the staging folder is gone
    for runtime in ("onnx", "sklearn"):
        bundle = load_table_bundle(folder, runtime=runtime)
        np.testing.assert_allclose(bundle.scores(ds.test), model.scores(ds.test), atol=1e-6)
    _write(tmp_path, ds, model)  # rewriting replaces the folder whole
    (folder / "schema.json").write_text((folder / "schema.json").read_text().replace("city1", "city01"))
    with pytest.raises(BundleError, match="schema.json does not match its checksum"):
        load_table_bundle(folder)


class _Audit:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def append(self, kind: str, **data: object) -> None:
        self.records.append({"kind": kind, **data})


def _run_stage(tmp_path: Path, ds, model, learner_note: str = ""):  # type: ignore[no-untyped-def]
    from mlestar.config.schema import MlestarConfig
    from mlestar.stages.tables.s7_deployment import TableDeployment
    from mlestar.workflow.stage import StageContext

    from mlestar.domains.tables.dataset import dataset_record

    for folder in ("01_situation_analysis", "05_evaluation", "06_refinement"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / "01_situation_analysis" / "dataset.json").write_text(json.dumps(dataset_record(ds), default=str))
    (tmp_path / "05_evaluation" / "evaluation.json").write_text(json.dumps({"metrics": {"test_accuracy": 0.9}}))
    (tmp_path / "06_refinement" / "refinement.json").write_text(json.dumps({"adopted": "baseline (stage 4 plan)"}))
    model.save(tmp_path / "06_refinement" / "model.joblib")
    config = MlestarConfig(data={"source": "table", "dataset": "breast_cancer"},
                           task={"targets": {"test_accuracy": 0.95}})
    audit = _Audit()
    ctx = StageContext(config=config, run_id="r1", run_dir=tmp_path, out_dir=tmp_path / "07_deployment",
                       stage="deployment", attempt=1, resume=False, adjustments=[], audit=audit,  # type: ignore[arg-type]
                       load_dataset=lambda: ds, declared=TableDeployment.inputs)
    result = TableDeployment().run(ctx)
    return TableDeployment, ctx, result, audit


def test_the_stage_writes_its_outputs_and_reports_its_metrics(mixed: Any, tmp_path: Path) -> None:
    ds, model = mixed
    cls, ctx, result, audit = _run_stage(tmp_path, ds, model)
    for name in cls.outputs:
        assert (ctx.out_dir / name).is_file(), name
    assert (ctx.out_dir / "bundle" / "model.onnx").is_file()
    assert set(result.metrics) == set(cls.metrics()) == {"onnx_max_abs_diff", "parity_top1_agreement",
                                                         "deploy_latency_p95", "deploy_throughput", "bundle_size"}
    assert result.metrics["onnx_max_abs_diff"] <= 1e-6 and result.metrics["parity_top1_agreement"] == 1.0
    assert 0 < result.metrics["deploy_latency_p95"] < 1.0 and result.metrics["deploy_throughput"] > 100
    card = (ctx.out_dir / "bundle" / "model_card.md").read_text()
    assert "| test_accuracy | 0.9 | 0.95 | missed |" in card and "curl -s -X POST" in card
    example = json.loads(card.split("-d '")[1].split("'\n")[0])["row"]
    assert set(example) <= {"color", "city", "size", "when"} and "city" in example
    drift = json.loads((ctx.out_dir / "drift.json").read_text())["psi"]
    assert set(drift) == {"color", "city", "size", "when"}
    assert json.loads((ctx.out_dir / "bundle" / "metadata.json").read_text())["runtime"] == "onnx"
    assert audit.records[-1]["choice"] == "onnx"


def test_the_stage_serves_an_unconvertible_learner_from_joblib(tmp_path: Path) -> None:
    ds = builtin("breast_cancer")
    cls, ctx, result, audit = _run_stage(tmp_path, ds, fit(ds, learner="hist_gradient_boosting"))
    assert not (ctx.out_dir / "bundle" / "model.onnx").exists()
    assert json.loads((ctx.out_dir / "bundle" / "metadata.json").read_text())["runtime"] == "sklearn"
    assert result.metrics["onnx_max_abs_diff"] is None and result.metrics["parity_top1_agreement"] is None
    assert result.metrics["deploy_latency_p95"] > 0
    assert audit.records[-1]["choice"] == "sklearn" and "hist_gradient_boosting" in audit.records[-1]["reason"]
    assert load_table_bundle(ctx.out_dir / "bundle").runtime == "sklearn"


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "diabetes"])
def test_stage_6_ensembles_export_with_parity(name: str) -> None:
    from mlestar.domains.tables import refine
    from mlestar.domains.tables.export import OnnxRunner, check_parity, convert

    ds = builtin(name)
    plan = fit(ds).plan
    trials = [{"params": {"num_leaves": n}, "best_iteration": 30} for n in (8, 16)]
    model = refine.ensemble_model(plan, trials, ds, seed=0, n_jobs=1)
    data, inputs = convert(model)
    report = check_parity(model, OnnxRunner(data, inputs, model.task, plan.target_transform), ds.val,
                          tolerance=1e-4, min_top1_agreement=0.98)
    assert report.passed and report.max_abs_diff < 1e-5
