"""Stage 7 for tables, deployment preparation: ONNX export with parity, the bundle, drift reference, speed.

Exports the model stage 6 adopted (stage 5's, with its decision threshold, when
refinement kept the baseline) to ONNX and
checks the graph against the Python model on up to 500 validation and test
rows (``parity.json``; a failure stops the stage naming the worst row). A
learner that cannot be converted is served from its joblib file instead
(runtime ``sklearn``), recorded as a decision. It then writes ``bundle/``
(``mlestar serve`` loads it): model files, the input schema with training
ranges, categories and PSI bins, metadata, model card, a serving recipe that
needs no mlestar source tree (``requirements.txt`` with mlestar as a wheel in
``wheels/``, a ``Dockerfile`` running ``mlestar serve``) and manifest; the PSI
of the test split against training (``drift.json``), so served PSI has a
reference; and single-row latency and throughput of the served runtime.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from mlestar.domains.tables.bundle import (benchmark, bundle_size, json_row, load_table_bundle,
                                           render_table_card, serving_pins, write_table_bundle)
from mlestar.domains.tables.export import (ExportFailed, OnnxRunner, ParityReport, check_parity, convert,
                                           model_inputs, parity_tolerance, require_parity)
from mlestar.domains.tables.learners import learner_spec
from mlestar.domains.tables.model import TableModel, load_model
from mlestar.domains.tables.schema import build_schema, frame_psi
from mlestar.domains.tables.scoring import score_all, to_json
from mlestar.stages.common import Steps
from mlestar.stages.tables.common import DATASET_REF, checked_dataset
from mlestar.tracking.container import serving_recipe
from mlestar.utils.io import atomic_write_json
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

MODEL_REF = "refinement/model.joblib"
REFINEMENT_REF = "refinement/refinement.json"
EVAL_REF = "evaluation/evaluation.json"
BUNDLE = "bundle"
STEPS_LABEL = "deployment: ONNX export and parity, schema and drift, bundle, benchmark"


@register_stage
class TableDeployment(Stage):
    """Stage 7 (tables): ONNX export and parity, the bundle, drift reference, latency and throughput."""

    name = "deployment"
    domain = "tables"
    title = "Deployment preparation"
    config_paths = ("project.name", "project.description", "deployment", "task")
    inputs = (DATASET_REF, MODEL_REF, REFINEMENT_REF, EVAL_REF)
    ships_package = True  # the bundle's wheel is all of mlestar: an edit anywhere rebuilds it
    # bundle/model.onnx is written too when the learner converts (not declared: a CatBoost or
    # HistGradientBoosting model is served from model.joblib without it).
    outputs = (f"{BUNDLE}/model.joblib", f"{BUNDLE}/schema.json", f"{BUNDLE}/metadata.json",
               f"{BUNDLE}/model_card.md", f"{BUNDLE}/manifest.json", f"{BUNDLE}/requirements.txt",
               f"{BUNDLE}/Dockerfile", "deployment.json", "drift.json", "parity.json")
    reads_test = True
    uses_torch = False

    def run(self, ctx: StageContext) -> StageResult:
        import pandas as pd

        dataset = checked_dataset(ctx)
        record = ctx.read_json(DATASET_REF)
        model = load_model(ctx.input(MODEL_REF))
        evaluation = ctx.read_json(EVAL_REF)
        stage5 = shipped_metrics(model, dataset, evaluation.get("metrics", {}), ctx.read_json(REFINEMENT_REF))
        probe = pd.concat([dataset.val, dataset.test], ignore_index=True).iloc[:500]
        steps = Steps(ctx, STEPS_LABEL, 4)
        onnx_bytes, inputs, parity = _export(ctx, model, probe)
        steps.advance()
        schema = build_schema(model, dataset.train, inputs, target=dataset.target)
        drift = {"reference": "training split", "compared": f"test split ({len(dataset.test)} rows)",
                 "psi": frame_psi(schema, dataset.test)}
        atomic_write_json(ctx.out_dir / "drift.json", drift)
        steps.advance()
        runtime = "onnx" if onnx_bytes is not None else "sklearn"
        metadata = _metadata(ctx, model, stage5, runtime, parity)
        recipe = serving_recipe(serving_pins(learner_spec(model.plan.learner).package, runtime),
                                port=ctx.config.deployment.serve.port, project=ctx.config.project.name,
                                run_id=ctx.run_id)
        card = render_table_card(project=ctx.config.project.name, run_id=ctx.run_id,
                                 dataset=str(record.get("name", dataset.name)), schema=schema, metrics=stage5,
                                 targets=dict(ctx.config.task.targets), runtime=runtime,
                                 notes=_notes(model, runtime, parity), example=json_row(dataset.test, 0, schema),
                                 container=recipe.card)
        folder = write_table_bundle(ctx.out_dir / BUNDLE, joblib_file=ctx.input(MODEL_REF), onnx_bytes=onnx_bytes,
                                    schema=schema, metadata=metadata, model_card=card, recipe=recipe)
        steps.advance()
        speed = benchmark(load_table_bundle(folder).scores, dataset.test if len(dataset.test) else dataset.val)
        steps.finish()
        size = float(bundle_size(folder))
        atomic_write_json(ctx.out_dir / "deployment.json", _record(runtime, parity, speed, size, inputs, drift))
        metrics = _metrics(parity, speed, size)
        return StageResult(metrics=metrics, summary=_summary(runtime, parity, metrics, drift["psi"]))


def shipped_metrics(model: TableModel, dataset: Any, stage5: dict[str, Any], refinement: dict[str, Any]
                    ) -> dict[str, Any]:
    """Stage 5's metrics, with the test scores re-measured when refinement adopted another model.

    Stage 5 scored stage 4's model; the card must describe the model it ships. Stage 6 never saw
    the test split, so scoring its choice here, after every choice is made, leaks nothing.
    """
    if str(refinement.get("adopted", "")).startswith("baseline") or not len(dataset.test):
        return dict(stage5)
    y = dataset.test[dataset.target].to_numpy()
    scores = to_json(score_all(model.task, y, model.scores(dataset.test), model.threshold))
    return {**stage5, **{f"test_{k}": v for k, v in scores.items() if f"test_{k}" in stage5},
            "macro_f1": scores.get("macro_f1", stage5.get("macro_f1")), "adopted": refinement.get("adopted")}


def _export(ctx: StageContext, model: TableModel, probe: Any) -> tuple[bytes | None, list[Any], ParityReport | None]:
    """The ONNX graph, its inputs and its parity report; ``(None, inputs, None)`` when it cannot convert."""
    cfg = ctx.config.deployment
    try:
        data, inputs = convert(model)
    except ExportFailed as exc:
        ctx.decide("served runtime", "sklearn", f"{exc.message}; the joblib model is served instead")
        atomic_write_json(ctx.out_dir / "parity.json", {"exported": False, "reason": exc.message})
        return None, model_inputs(model), None
    runner = OnnxRunner(data, inputs, model.task, model.plan.target_transform)
    report = check_parity(model, runner, probe, tolerance=parity_tolerance(model.task, cfg.parity_tolerance),
                          min_top1_agreement=cfg.min_top1_agreement)
    atomic_write_json(ctx.out_dir / "parity.json", {"exported": True, "rows": "validation, then test",
                                                    **report.to_dict()})
    require_parity(report, probe)
    ctx.decide("served runtime", "onnx", f"the ONNX graph matches the model on {report.rows} rows "
               f"(largest difference {report.max_abs_diff:.2g}, allowed {report.tolerance:.2g})")
    return data, inputs, report


def _metadata(ctx: StageContext, model: TableModel, stage5: dict[str, Any], runtime: str,
              parity: ParityReport | None) -> dict[str, Any]:
    return {"project": ctx.config.project.name, "run_id": ctx.run_id, "version": ctx.run_id, "task": model.task,
            "target": model.plan.target, "learner": model.plan.learner, "class_names": list(model.class_names),
            "threshold": model.threshold, "metrics": stage5, "runtime": runtime,
            "parity": parity.to_dict() if parity else None,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _notes(model: TableModel, runtime: str, parity: ParityReport | None) -> list[str]:
    notes = [f"learner: {model.plan.learner}; metrics are stage 5's, on the test split"]
    if parity is None:
        notes.append(f"{model.plan.learner} has no ONNX conversion: served from model.joblib (runtime sklearn)")
    else:
        notes.append(f"ONNX parity on {parity.rows} rows: largest difference {parity.max_abs_diff:.2g}"
                     + ("" if parity.top1_agreement is None else f", top-1 agreement {parity.top1_agreement:.4f}"))
    if model.plan.target_transform == "log1p":
        notes.append("fitted on log1p(target); the served value is expm1 of the model's output (inverse_target)")
    if model.task == "binary":
        notes.append(f"the positive class is predicted at probability >= {model.threshold:.4g} (chosen on validation)")
    notes.append("numbers are read at float32 precision (dates as days since 1970, to about 3 minutes)")
    notes.append("categories never seen in training are refused (422) unless served with --allow-unknown-categories")
    return notes


def _record(runtime: str, parity: ParityReport | None, speed: dict[str, Any], size: float, inputs: list[Any],
            drift: dict[str, Any]) -> dict[str, Any]:
    return {"runtime": runtime, "parity": parity.to_dict() if parity else None,
            "benchmark": {"measured": "in-process through the served runtime (feeds built per call, no HTTP): "
                                      "single-row latency; throughput best of batches of 32 and 64 rows",
                          **speed},
            "bundle": BUNDLE, "bundle_size_bytes": size,
            "onnx_inputs": {i.column: i.name for i in inputs},
            "max_test_psi": max((v for v in drift["psi"].values() if v == v), default=None),
            "serve": f"mlestar serve {BUNDLE}"}


def _metrics(parity: ParityReport | None, speed: dict[str, Any], size: float) -> dict[str, float | None]:
    return {"onnx_max_abs_diff": parity.max_abs_diff if parity else None,
            "parity_top1_agreement": parity.top1_agreement if parity else None,
            "deploy_latency_p95": speed["latency_s"]["p95"],
            "deploy_throughput": max(speed["throughput"].values()),
            "bundle_size": size}


def _summary(runtime: str, parity: ParityReport | None, metrics: dict[str, Any], psi: dict[str, float]) -> str:
    diff = f"ONNX parity {parity.max_abs_diff:.1e}" if parity else "no ONNX conversion"
    worst = max(psi.items(), key=lambda kv: kv[1] if kv[1] == kv[1] else -1.0, default=("-", float("nan")))
    return (f"{diff}; serving {runtime}: p95 {metrics['deploy_latency_p95'] * 1000:.2f} ms per row, "
            f"{metrics['deploy_throughput']:,.0f} rows/s; bundle {metrics['bundle_size'] / 1e6:.2f} MB; "
            f"largest test PSI {worst[1]:.3f} ({worst[0]})")
