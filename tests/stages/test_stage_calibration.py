"""Temperature scaling in a real tiny run: fitted on validation at stage 5, served by stage 7's bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_workflow import run_tiny

from mlestar.config.schema import MlestarConfig
from mlestar.data.dataset import Preprocessing
from mlestar.deploy import load_bundle
from mlestar.evaluation import calibration
from mlestar.evaluation.calibration import apply_temperature, fit_temperature
from mlestar.evaluation.metrics import expected_calibration_error
from mlestar.stages.s7_deployment import served_calibration
from mlestar.training import load_model_file
from mlestar.training.loop import evaluate_logits, split_to_tensors
from mlestar.utils.io import read_json
from mlestar.workflow.state import RunState


def _run_data(run_dir: Path) -> tuple[Any, Preprocessing]:
    """The run's dataset, read the way the run read it, and its preprocessing."""
    from mlestar.domains import load_dataset
    from mlestar.workflow.runner import load_run_config

    config = load_run_config(run_dir).config
    record = read_json(run_dir / "01_situation_analysis" / "dataset.json")
    return load_dataset(config.data, config.seed), Preprocessing.from_dict(record["preprocessing"])


def _logits(model: Any, split: Any, prep: Preprocessing) -> np.ndarray:
    x, _ = split_to_tensors(split, prep, torch.device("cpu"))
    return evaluate_logits(model, x).numpy()


@pytest.fixture(scope="module")
def run_data(finished_run: tuple[Path, str]) -> tuple[Path, Any, Preprocessing]:
    runs_dir, run_id = finished_run
    return (runs_dir / run_id, *_run_data(runs_dir / run_id))


def test_stage5_fits_t_on_validation_and_reports_test_ece_before_and_after(
        run_data: tuple[Path, Any, Preprocessing]) -> None:
    run_dir, dataset, prep = run_data
    report = read_json(run_dir / "05_evaluation" / "metrics.json")
    cal = report["calibration"]
    model, _ = load_model_file(run_dir / "04_implementation" / "model.pt")
    expected_t = fit_temperature(_logits(model, dataset.val, prep), dataset.val.labels)
    assert cal["temperature"] == pytest.approx(expected_t, rel=1e-5) and cal["fitted_on"] == "validation split"
    assert cal["val_nll_after"] <= cal["val_nll_before"]
    test_logits = _logits(model, dataset.test, prep)
    before = expected_calibration_error(apply_temperature(test_logits, 1.0), dataset.test.labels)[0]
    after = expected_calibration_error(apply_temperature(test_logits, cal["temperature"]), dataset.test.labels)[0]
    assert (report["ece_uncalibrated"], report["ece"]) == pytest.approx((before, after), abs=1e-6)
    assert (cal["ece_before"], cal["ece_after"]) == (report["ece_uncalibrated"], report["ece"])
    assert report["accuracy"] == pytest.approx(float((test_logits.argmax(1) == dataset.test.labels).mean()))
    gateable = RunState.load(run_dir).stage("evaluation")["metrics"]
    assert gateable["ece"] == report["ece"] == report["summary"]["ece"]
    text = (run_dir / "05_evaluation" / "report.md").read_text()
    calibration_section = text.split("## Calibration")[1].split("## ")[0]
    for number in (f"T = {cal['temperature']:.4f}", f"before scaling {before:.4f}", f"after scaling {after:.4f}"):
        assert number in calibration_section


def test_the_bundle_serves_softmax_of_logits_over_t(run_data: tuple[Path, Any, Preprocessing]) -> None:
    from PIL import Image

    run_dir, dataset, prep = run_data
    bundle = load_bundle(run_dir / "07_deployment" / "bundle")
    t = bundle.metadata["calibration"]["temperature"]
    model, _ = load_model_file(run_dir / "06_refinement" / "model.pt")
    val_t = fit_temperature(_logits(model, dataset.val, prep), dataset.val.labels)
    assert t == pytest.approx(val_t, rel=1e-5)  # the served model's own T, whichever model that is
    if not read_json(run_dir / "06_refinement" / "refinement.json")["adopted"]:
        assert t == read_json(run_dir / "05_evaluation" / "metrics.json")["calibration"]["temperature"]
    assert abs(t - 1.0) > 1e-3  # otherwise the comparison below could not tell scaled from raw
    images = [Image.fromarray(dataset.test.images[i][..., 0]) for i in range(8)]
    served = np.array([[row["probabilities"][name] for name in bundle.class_names]
                       for row in bundle.predict(images, top_k=3)])
    expected = apply_temperature(_logits(model, dataset.test.subset(np.arange(8)), prep), t)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert not np.allclose(served, apply_temperature(_logits(model, dataset.test.subset(np.arange(8)), prep), 1.0), atol=1e-4)
    assert f"T = {t:.4f}" in (run_dir / "07_deployment" / "bundle" / "model_card.md").read_text()


def test_an_adopted_model_gets_its_own_t_never_a_stale_one(run_data: tuple[Path, Any, Preprocessing]) -> None:
    run_dir, dataset, prep = run_data
    model, _ = load_model_file(run_dir / "06_refinement" / "model.pt")
    val_x, _ = split_to_tensors(dataset.val, prep, torch.device("cpu"))
    stale = {"calibration": {"temperature": 9.0, "fitted_on": "validation split"}}
    kept = served_calibration(stale, model, False, val_x, dataset.val.labels)
    refit = served_calibration(stale, model, True, val_x, dataset.val.labels)
    assert kept["temperature"] == 9.0 and "stage 5" in kept["source"]
    assert refit["temperature"] == fit_temperature(_logits(model, dataset.val, prep), dataset.val.labels) != 9.0
    assert "refitted" in refit["source"] and refit["fitted_on"] == "validation split"


def test_an_ece_gate_validates_for_images_and_t_never_sees_test(run_copy: tuple[Path, str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    gate = {"stage": "evaluation", "metric": "ece", "op": "<=", "threshold": "100%"}
    config = MlestarConfig(gates=[gate])
    assert config.domain == "images" and config.gates[0].threshold == 1.0
    seen: list[np.ndarray] = []
    real_fit = calibration.fit_temperature

    def spy(logits: np.ndarray, labels: np.ndarray) -> float:
        seen.append(np.asarray(labels).copy())
        return real_fit(logits, labels)

    monkeypatch.setattr(calibration, "fit_temperature", spy)
    runs_dir, _ = run_copy
    state = run_tiny(runs_dir, gates=[gate])  # the gates are in stage 5's key (and stage 2's): stage 5 runs again
    assert state.status == "passed" and state.stage("evaluation")["status"] == "passed"
    [checked] = [g for g in state.data["gates"] if g["metric"] == "ece"]
    assert checked["passed"] and checked["value"] == state.stage("evaluation")["metrics"]["ece"]
    dataset, _ = _run_data(runs_dir / state.run_id)
    assert seen and all(np.array_equal(labels, dataset.val.labels) for labels in seen)
    assert len(dataset.val.labels) != len(dataset.test.labels) or \
        not np.array_equal(dataset.val.labels, dataset.test.labels)  # the check above can tell them apart
