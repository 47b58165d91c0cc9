"""Stage 7, deployment preparation: exports with parity checks, an inference bundle, a benchmark.

Exports the adopted model (stage 6) to TorchScript and ONNX, checks each
against PyTorch on real validation images, measures the exported model's
batch-1 latency, and writes a self-contained ``bundle/`` that
``mlestar serve`` loads (checksums verified). When refinement adopted a new
model, its test metrics are computed here, once, for the model card.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mlestar.stages.common import DATASET_REF, checked_dataset
from mlestar.utils.io import atomic_write_json, read_json
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

MODEL_REF = "refinement/model.pt"
REFINEMENT_REF = "refinement/refinement.json"
EVAL_REF = "evaluation/metrics.json"
PROBE_IMAGES = 64  # validation images used for parity and tracing
LATENCY_REPEATS = 50


def runner_latency(run: Any, sample: np.ndarray, repeats: int = LATENCY_REPEATS) -> dict[str, float]:
    """p50/p95 seconds of an exported runner at batch 1."""
    run(sample)  # warm-up: first call allocates
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(sample)
        times.append(time.perf_counter() - start)
    return {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95))}


def deployed_test_metrics(ctx: StageContext, model: Any, adopted: bool) -> tuple[dict[str, Any], str]:
    """Test metrics of the model being deployed, and where they come from."""
    evaluated = ctx.read_json(EVAL_REF)
    if not adopted:
        return evaluated["summary"], "stage 5 (same model)"
    from mlestar.stages.s5_evaluation import evaluate_on_test

    dataset, prep = checked_dataset(ctx)
    metrics, _, _ = evaluate_on_test(model, dataset, prep)
    return ({"test_accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]},
            "refined model, evaluated once on test at deployment")


@register_stage
class Deployment(Stage):
    """Stage 7: export, parity, bundle, benchmark."""

    name = "deployment"
    title = "Deployment preparation"
    config_paths = ("deployment", "task", "project.name", "project.description")
    inputs = (DATASET_REF, MODEL_REF, REFINEMENT_REF, EVAL_REF)
    outputs = ("deployment.json", "bundle/manifest.json", "bundle/model_card.md")
    code_modules = ("mlestar.deploy", "mlestar.stages.common", "mlestar.stages.s5_evaluation")
    reads_test = True

    def run(self, ctx: StageContext) -> StageResult:
        import torch

        from mlestar.deploy.export import export_all, load_torchscript_runner
        from mlestar.training import load_model_file, split_to_tensors

        dataset, prep = checked_dataset(ctx)
        model, payload = load_model_file(ctx.input(MODEL_REF))
        probe, _ = split_to_tensors(dataset.val, prep, torch.device("cpu"))
        probe = probe[:PROBE_IMAGES]
        exports_dir = ctx.out_dir / "exports"
        reports = export_all(model, probe, exports_dir, list(ctx.config.deployment.formats),
                             ctx.config.deployment.parity_tolerance)
        files = {fmt: exports_dir / name for fmt, name in _export_names().items() if fmt in reports}
        bench_runner = load_torchscript_runner(files["torchscript"]) if "torchscript" in files else None
        latency = runner_latency(bench_runner, probe[:1].numpy()) if bench_runner else {"p50": None, "p95": None}
        adopted = bool(ctx.read_json(REFINEMENT_REF)["adopted"])
        test_metrics, test_source = deployed_test_metrics(ctx, model, adopted)
        bundle_dir = self._bundle(ctx, files, payload, prep, test_metrics, test_source, latency)
        size = float(sum(p.stat().st_size for p in bundle_dir.rglob("*") if p.is_file()))
        record = {"parity": {fmt: r.__dict__ for fmt, r in reports.items()}, "latency_s": latency,
                  "bundle": "bundle", "bundle_size_bytes": size, "test_metrics": test_metrics,
                  "test_metrics_source": test_source, "serve": f"mlestar serve {bundle_dir}"}
        atomic_write_json(ctx.out_dir / "deployment.json", record)
        diffs = {fmt: reports[fmt].max_abs_diff if fmt in reports else None for fmt in ("onnx", "torchscript")}
        return StageResult(
            metrics={"onnx_max_abs_diff": diffs["onnx"], "torchscript_max_abs_diff": diffs["torchscript"],
                     "deploy_latency_p95": latency["p95"], "bundle_size": size},
            summary=f"exported {', '.join(reports)}; parity "
                    + ", ".join(f"{f} {r.max_abs_diff:.1e}" for f, r in reports.items())
                    + f"; bundle {size / 1e6:.2f} MB at {bundle_dir}")

    @staticmethod
    def _bundle(ctx: StageContext, files: dict[str, Path], payload: dict[str, Any], prep: Any,
                test_metrics: dict[str, Any], test_source: str, latency: dict[str, Any]) -> Path:
        from mlestar.deploy.bundle import render_model_card, write_bundle

        arch = payload["architecture"]
        env = read_json(ctx.run_dir / "environment.json")
        card = render_model_card(
            project=ctx.config.project.name, run_id=ctx.run_id, model_name=arch["name"],
            dataset=ctx.read_json(DATASET_REF)["name"], metrics={**test_metrics, "latency_p95_s": latency["p95"]},
            targets=dict(ctx.config.task.targets), preprocessing=prep, environment=_env_summary(env),
            limits=[f"test metrics: {test_source}",
                    f"trained on {arch['image_size']}px images with {arch['in_channels']} channel(s); "
                    "other inputs are resized and converted",
                    "not evaluated for distribution shift; monitor inputs in production"])
        metadata = {"run_id": ctx.run_id, "model_name": arch["name"], "version": f"{ctx.run_id}",
                    "metrics": test_metrics, "architecture": arch}
        return write_bundle(ctx.out_dir / "bundle", model_files=files, class_names=payload["class_names"],
                            preprocessing=prep, metadata=metadata, model_card=card)


def _export_names() -> dict[str, str]:
    from mlestar.deploy.export import EXPORT_FILES

    return EXPORT_FILES


def _env_summary(env: dict[str, Any]) -> dict[str, Any]:
    return {"python": env.get("python"), "torch": env.get("packages", {}).get("torch"),
            "cpu": env.get("cpu", {}).get("model"), "gpu": (env.get("gpu") or {}).get("name"),
            "git_commit": env.get("git_commit")}
