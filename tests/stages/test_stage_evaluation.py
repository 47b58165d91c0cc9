"""Stage 5 (images): one pass over the test split per TTA view, and efficiency from a stated, fixed sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlestar.evaluation.efficiency import EfficiencySample

OUT = "05_evaluation"


def test_efficiency_json_states_the_sample_behind_its_numbers(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    folder = runs_dir / run_id / OUT
    eff = json.loads((folder / "efficiency.json").read_text())
    measured, default = eff["measured"], EfficiencySample()
    assert measured["throughput_batch"] == default.throughput_batch == 256
    assert measured["throughput_batches"] == default.throughput_batches == 3
    assert 1 <= measured["latency_probes"] <= default.latency_probes
    # whole probes of 20 within the 2 s allowed; a loaded test machine may cut one to the 5 a p95 needs
    assert 5 * measured["latency_probes"] <= measured["latency_calls"] <= measured["latency_probes"] * 20
    assert measured["input_shape"] == [1, 8, 8]  # digits: gray 8x8
    assert json.loads((folder / "metrics.json").read_text())["efficiency"] == eff
    assert (f"(batch 256, best of 3 passes; latency: {measured['latency_calls']} calls in "
            f"{measured['latency_probes']} probes)") in (folder / "report.md").read_text()


def test_stage_5_passes_the_test_split_once_per_tta_view(run_copy: tuple[Path, str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tiny_workflow import tiny_config

    import mlestar.evaluation.efficiency as efficiency
    import mlestar.training.loop as loop
    import mlestar.training.tta as tta
    from mlestar.workflow.runner import RunOptions, run_workflow

    passes: list[int] = []  # rows of every batched pass through the model (evaluate_logits)
    runtimes: set[str] = set()  # what computed them
    samples: list[EfficiencySample] = []
    original, report = loop.evaluate_logits, efficiency.efficiency_report

    def counted(model: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        passes.append(len(x))
        runtimes.add(type(model).__name__)
        return original(model, x, *args, **kwargs)

    def spied(model: Any, shape: Any, *, sample: EfficiencySample = EfficiencySample()) -> dict[str, Any]:
        samples.append(sample)
        return report(model, shape, sample=sample)

    monkeypatch.setattr(loop, "evaluate_logits", counted)
    monkeypatch.setattr(tta, "evaluate_logits", counted)
    monkeypatch.setattr(efficiency, "efficiency_report", spied)
    runs_dir, _ = run_copy
    state = run_workflow(tiny_config(runs_dir, evaluation={"tta": "flip_translate", "tta_precision": "fp32"}),
                         RunOptions(runs_dir=runs_dir, only_stage="evaluation"))
    metrics = json.loads((runs_dir / state.run_id / OUT / "metrics.json").read_text())
    splits = json.loads((runs_dir / state.run_id / "01_situation_analysis" / "dataset.json").read_text())["splits"]
    n_test = metrics["n"]
    assert n_test == splits["test"]["size"] != splits["val"]["size"]  # so a pass's size says which split it read
    assert metrics["tta"]["kind"] == "flip_translate"
    # the plain pass, its mirror, and two 1-pixel shifts with their mirrors: six, each over the whole split;
    # every metric, the gallery, the reliability diagram and the subsets reuse them (a validation pass,
    # e.g. for calibration, is not counted here)
    assert [rows for rows in passes if rows == n_test] == [n_test] * 6
    assert all(rows in (n_test, splits["val"]["size"]) for rows in passes)
    assert samples == [EfficiencySample()]
    # every pass, validation and test, ran the exported graph once it matched PyTorch
    assert runtimes == {"OnnxModule"} and metrics["forward"]["runtime"] == "onnxruntime"


def test_metrics_and_report_say_which_runtime_computed_the_logits(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    folder = runs_dir / run_id / OUT
    forward = json.loads((folder / "metrics.json").read_text())["forward"]
    assert forward["runtime"] == "onnxruntime"
    assert forward["parity"]["top1_agreement"] == 1.0 and forward["parity"]["max_abs_diff"] < 1e-3
    assert f"computed with {forward['reason']}" in (folder / "report.md").read_text()


def test_evaluation_runtime_torch_is_honoured(run_copy: tuple[Path, str]) -> None:
    from tiny_workflow import tiny_config

    from mlestar.workflow.runner import RunOptions, run_workflow

    runs_dir, _ = run_copy
    state = run_workflow(tiny_config(runs_dir, evaluation={"runtime": "torch"}),
                         RunOptions(runs_dir=runs_dir, only_stage="evaluation"))
    metrics = json.loads((runs_dir / state.run_id / OUT / "metrics.json").read_text())
    assert metrics["forward"] == {"runtime": "torch", "reason": "PyTorch (evaluation.runtime is torch)",
                                  "parity": None}


@pytest.mark.parametrize(("choice", "trained", "native", "expected"), [
    ("auto", "bf16", "amx", "bf16"),
    ("auto", "bf16", "avx512_bf16", "bf16"),
    ("auto", "bf16", None, "fp32"),  # emulated bf16 would be slower than fp32
    ("auto", "fp32", "amx", "fp32"),  # trained fp32: keep the views in the model's own precision
    ("fp32", "bf16", "amx", "fp32"),
    ("bf16", "fp32", None, "bf16"),
])
def test_tta_precision_follows_training_and_the_cpu(choice: str, trained: str, native: str | None, expected: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import mlestar.training.precision as precision
    from mlestar.stages.s5_evaluation import tta_precision

    monkeypatch.setattr(precision, "cpu_native_bf16", lambda: native)
    chosen, reason = tta_precision(choice, trained)
    assert chosen == expected
    assert (native is not None and native in reason) == (choice == "auto" and expected == "bf16")
    assert ("config" in reason or "tta_precision" in reason) == (choice != "auto")


def _evaluation_with_views(runs_dir: Path, tta_precision: str,
                           monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], list[tuple[str, str, int]], str]:
    """Stage 5 alone with ``tta_precision``: (metrics.json, every pass as (runtime, precision, rows), report.md)."""
    from tiny_workflow import tiny_config

    import mlestar.training.loop as loop
    import mlestar.training.tta as tta
    from mlestar.workflow.runner import RunOptions, run_workflow

    passes: list[tuple[str, str, int]] = []
    original = loop.evaluate_logits

    def counted(model: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        passes.append((type(model).__name__, kwargs.get("precision", "fp32"), len(x)))
        return original(model, x, *args, **kwargs)

    monkeypatch.setattr(loop, "evaluate_logits", counted)
    monkeypatch.setattr(tta, "evaluate_logits", counted)
    state = run_workflow(tiny_config(runs_dir, evaluation={"tta": "flip_translate", "tta_precision": tta_precision}),
                         RunOptions(runs_dir=runs_dir, only_stage="evaluation"))
    folder = runs_dir / state.run_id / OUT
    return json.loads((folder / "metrics.json").read_text()), passes, (folder / "report.md").read_text()


def test_bf16_tta_views_leave_every_served_number_as_fp32_computes_it(run_copy: tuple[Path, str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    runs_dir, _ = run_copy
    fp32, _, _ = _evaluation_with_views(runs_dir, "fp32", monkeypatch)
    bf16, passes, report = _evaluation_with_views(runs_dir, "bf16", monkeypatch)
    n_test = bf16["n"]
    assert n_test < 1000  # so the agreement check covers the whole split, and a pass's size says it read test
    test_passes = [p for p in passes if p[2] == n_test]
    # the plain view on the exported fp32 graph; the 5 extra views, then the agreement check, on PyTorch in bf16
    assert test_passes[0] == ("OnnxModule", "fp32", n_test)
    assert [p[:2] for p in test_passes[1:]] == [(p[0], "bf16") for p in test_passes[1:]]
    assert len(test_passes) == 7 and "OnnxModule" not in {p[0] for p in test_passes[1:]}
    for key in ("accuracy", "macro_f1", "ece", "ece_uncalibrated", "temperature", "confusion_matrix", "per_class"):
        assert bf16[key] == fp32[key], key
    views = bf16["tta"]["extra_views"]
    assert views["precision"] == "bf16" and views["images"] == n_test
    assert views["top1_agreement"] >= 0.95 and 0 < views["max_abs_diff"] < 1.0  # bf16 rounds, and only a little
    assert abs(bf16["tta"]["accuracy"] - fp32["tta"]["accuracy"]) <= 0.02
    assert fp32["tta"]["extra_views"] == {"precision": "fp32", "reason": "evaluation.tta_precision is fp32"}
    assert "Logits (validation and the plain test view) computed with ONNX Runtime" in report
    assert f"agreed with the scored top-1 on {views['top1_agreement']:.2%}" in report
