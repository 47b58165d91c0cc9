"""Stage 5, results evaluation: the test split, read once, and the model's cost.

Per-class precision/recall/F1, confusion matrices, the most confident
mistakes, calibration, and efficiency (parameters, size, FLOPs, latency,
throughput, memory). Each number is set against the config's targets and gates.
Calibration is temperature scaling fitted on the validation split (one more
forward pass, never on test); test probabilities, ``ece`` and the reliability
diagram are the scaled ones the bundle serves, ``ece_uncalibrated`` the raw ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlestar.config.catalog import METRICS
from mlestar.config.schema import MlestarConfig
from mlestar.config.units import format_quantity
from mlestar.stages.common import DATASET_REF, Steps, checked_dataset, markdown_table
from mlestar.utils.io import atomic_write_json, atomic_write_text
from mlestar.utils.report import write_report
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

if TYPE_CHECKING:
    from mlestar.deploy.eval_runtime import Choice, EvalForward
    from mlestar.evaluation.holdout import ViewForward
    from mlestar.training.plan import TrainingPlan

MODEL_REF = "implementation/model.pt"
RECS_REF = "situation_analysis/recommendations.json"
PLAN_REF = "action_planning/plan.json"
TRAIN_METRICS_REF = "implementation/metrics.json"
ANALYSIS_REF = "situation_analysis/analysis.json"
TEST_PASS_LABEL = "evaluation: test pass (images, every TTA view)"


def brightness_subsets(dataset: Any, probs: np.ndarray, edges: list[float]) -> list[dict[str, Any]]:
    """Accuracy per brightness bucket, with bucket edges taken from stage 1 (train terciles)."""
    from mlestar.data.analysis import bucket, image_stats

    buckets = bucket(image_stats(dataset.test)["brightness"], tuple(edges))
    correct = probs.argmax(1) == dataset.test.labels
    names = (f"dark (< {edges[0]:.0f})", f"mid ({edges[0]:.0f}-{edges[1]:.0f})", f"bright (>= {edges[1]:.0f})")
    return [{"subset": names[b], "n": int((buckets == b).sum()),
             "accuracy": float(correct[buckets == b].mean()) if (buckets == b).any() else None} for b in range(3)]


def write_visuals(out_dir: Any, metrics: dict[str, Any], probs: np.ndarray, dataset: Any, gallery: int) -> None:
    """Confusion matrices, reliability diagram and misclassified gallery."""
    from mlestar.evaluation.metrics import expected_calibration_error
    from mlestar.evaluation.plots import plot_confusion_matrix, plot_misclassified, plot_reliability_diagram

    names = list(dataset.class_names)
    cm = np.array(metrics["confusion_matrix"])
    plot_confusion_matrix(cm, names, out_dir / "confusion_matrix.png", normalize=False)
    plot_confusion_matrix(cm, names, out_dir / "confusion_matrix_normalized.png", normalize=True)
    _, bins = expected_calibration_error(probs, dataset.test.labels)
    plot_reliability_diagram(bins, out_dir / "reliability_diagram.png",
                             note=f"temperature {metrics['temperature']:.3f}; "
                                  f"ECE before scaling {metrics['ece_uncalibrated']:.3f}")
    pred = probs.argmax(1)
    plot_misclassified(dataset.test.images, dataset.test.labels, pred, probs.max(1), names,
                       out_dir / "misclassified.png", max_images=gallery)


def fit_calibration(model: Any, dataset: Any, prep: Any, channels_last: bool,
                    runtime: Choice = "torch") -> tuple[dict[str, Any], EvalForward]:
    """Temperature scaling fitted on the validation split (never test), and the forward pass that did it.

    Returns ``(calibration record, forward)``: ``forward`` is the runtime chosen
    on the validation images (:func:`mlestar.deploy.eval_runtime.evaluation_forward`
    with ``runtime`` as the choice), for the test pass to use too.
    """
    import torch

    from mlestar.deploy.eval_runtime import evaluation_forward
    from mlestar.evaluation.calibration import fit_on_validation
    from mlestar.training.loop import split_to_tensors

    val_x, _ = split_to_tensors(dataset.val, prep, torch.device("cpu"))
    forward = evaluation_forward(model, val_x, channels_last=channels_last, choice=runtime)
    record = fit_on_validation(forward.module, val_x, dataset.val.labels, channels_last=forward.channels_last)
    return record, forward


def against_targets(config: MlestarConfig, values: dict[str, float | None]) -> list[list[Any]]:
    """Rows of (metric, value, target or gate, verdict) for every metric with a target or gate."""
    rows = []
    wanted = {**{m: (">=" if METRICS[m].higher_is_better else "<=", t) for m, t in config.task.targets.items()},
              **{g.metric: (g.op, float(g.threshold)) for g in config.gates if g.stage == "evaluation"}}
    for metric, (op, threshold) in wanted.items():
        value = values.get(metric)
        if value is None:
            continue
        unit = METRICS[metric].unit
        ok = value >= threshold if op in (">=", ">") else value <= threshold
        rows.append([metric, format_quantity(value, unit), f"{op} {format_quantity(threshold, unit)}",
                     "met" if ok else "MISSED"])
    return rows


@register_stage
class Evaluation(Stage):
    """Stage 5: test metrics, error analysis, calibration, efficiency."""

    name = "evaluation"
    title = "Results evaluation"
    config_paths = ("task", "gates", "seed", "evaluation")
    inputs = (DATASET_REF, MODEL_REF, RECS_REF, ANALYSIS_REF, PLAN_REF, TRAIN_METRICS_REF)
    outputs = ("metrics.json", "report.md", "report.html", "report.json", "confusion_matrix.png", "confusion_matrix_normalized.png",
               "reliability_diagram.png", "misclassified.png", "per_class.csv", "efficiency.json")
    reads_test = True

    def run(self, ctx: StageContext) -> StageResult:
        from mlestar.evaluation.holdout import evaluate_on_test
        from mlestar.training import load_model_file

        steps = Steps(ctx, "evaluation: test pass, latency and throughput, plots", 3)
        dataset, prep = checked_dataset(ctx)
        model, _ = load_model_file(ctx.input(MODEL_REF))
        tta, plan = use_tta(ctx), read_plan(ctx)
        channels_last = bool(plan.channels_last)
        calibration, forward = fit_calibration(model, dataset, prep, channels_last, ctx.config.evaluation.runtime)
        views, views_reason = tta_views(ctx.config.evaluation.tta_precision, plan.precision, model, channels_last)
        metrics, probs, tta_predictions = evaluate_on_test(forward.module, dataset, prep, tta=tta,
                                                     channels_last=forward.channels_last,
                                                     progress=lambda done, total: ctx.progress(TEST_PASS_LABEL,
                                                                                               done, total),
                                                     temperature=calibration["temperature"], views=views)
        calibration.update(ece_before=metrics["ece_uncalibrated"], ece_after=metrics["ece"])
        steps.advance()
        height, _, channels = dataset.image_shape
        eff = measure_efficiency(model, (channels, height, height))
        steps.advance()
        write_visuals(ctx.out_dir, metrics, probs, dataset, ctx.config.evaluation.gallery_size)
        steps.finish()
        edges = ctx.read_json(ANALYSIS_REF)["brightness_terciles"]
        extra = {"subsets": {"brightness": brightness_subsets(dataset, probs, edges)},
                 "tta": None if tta_predictions is None else
                 {"kind": tta, "accuracy": float((tta_predictions == dataset.test.labels).mean()),
                  "extra_views": {**metrics.pop("tta_views", {"precision": "fp32"}), "reason": views_reason}},
                 "mistakes": top_mistakes(dataset, probs, 20), "calibration": calibration,
                 "forward": forward.record()}
        values = summary_values(metrics, eff)
        extra["trained_on"] = ctx.read_json(TRAIN_METRICS_REF).get("trained_on", "train split")
        report = {**metrics, **extra, "summary": values, "efficiency": eff,
                  "against_targets": against_targets(ctx.config, values)}
        atomic_write_json(ctx.out_dir / "metrics.json", report)
        atomic_write_json(ctx.out_dir / "efficiency.json", eff)
        atomic_write_text(ctx.out_dir / "per_class.csv", per_class_csv(metrics["per_class"]))
        write_report(ctx.out_dir, "report", "Results evaluation", render_report(report), report)
        tta_note = f", {tta} TTA {extra['tta']['accuracy']:.2%}" if extra["tta"] else ""
        return StageResult(metrics=values,
                           summary=f"test accuracy {metrics['accuracy']:.2%}{tta_note}, macro F1 "
                                   f"{metrics['macro_f1']:.3f}, {eff['num_params']:,} params, "
                                   f"p95 latency {eff['latency_p95'] * 1000:.2f} ms")


def measure_efficiency(model: Any, input_shape: tuple[int, int, int]) -> dict[str, Any]:
    """The model's cost from a fixed sample of passes (stated under ``measured`` in efficiency.json).

    Bounded work, whatever the test split's size: on the 2-core dev CPU (airbench_s) the former
    time caps (2 s of latency, 1 s of throughput, each after a warm-up) took 1.3 s, this
    sample 0.4 s; ``benchmarks/stage5.py`` times this call.
    """
    from mlestar.evaluation.efficiency import EfficiencySample, efficiency_report

    return efficiency_report(model, input_shape, sample=EfficiencySample())


def tta_precision(choice: str, trained: str) -> tuple[str, str]:
    """``(precision, reason)`` of TTA's extra views: ``choice`` unless ``auto``.

    On ``auto``: bf16 when training ran bf16 and this CPU computes bf16 natively
    (AMX or AVX-512 BF16), where it is faster than the fp32 graph (stage 5
    took 0.81x on an AMX CPU, docs/benchmarks.md) and these
    views are most of stage 5's time (5 of airbench's 6 test passes); fp32
    elsewhere, where bf16 is emulated.
    The views are reported apart and never served, so no served number changes.
    """
    from mlestar.training.precision import cpu_native_bf16

    if choice != "auto":
        return choice, f"evaluation.tta_precision is {choice}"
    native = cpu_native_bf16()
    if trained == "bf16" and native:
        return "bf16", f"the training precision, native on this CPU ({native})"
    why = "training ran fp32" if trained != "bf16" else "this CPU has no native bf16"
    return "fp32", f"as the plain view ({why})"


def tta_views(choice: str, trained: str, model: Any, channels_last: bool) -> tuple[ViewForward | None, str]:
    """What computes TTA's extra views: None (the plain view's forward) for fp32, else ``model`` in bf16."""
    import torch

    from mlestar.evaluation.holdout import ViewForward

    precision, reason = tta_precision(choice, trained)
    if precision == "fp32":
        return None, reason
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return ViewForward(model.eval(), precision, channels_last), f"PyTorch, bf16 autocast: {reason}"


def use_tta(ctx: StageContext) -> str:
    """The configured TTA; on auto the recipe's, and none when flips would change labels."""
    from mlestar.training.recipes import AIRBENCH

    choice = ctx.config.evaluation.tta
    if choice != "auto":
        return choice
    if not ctx.read_json(RECS_REF)["augmentation"]["flip_safe"]:
        return "none"
    return AIRBENCH["tta"] if read_plan(ctx).recipe == "airbench" else "flip"


def read_plan(ctx: StageContext) -> TrainingPlan:
    """The plan stage 4 trained."""
    from mlestar.training.plan import PlanDocument

    return PlanDocument.from_json(ctx.read_json(PLAN_REF), source=PLAN_REF).training


def summary_values(metrics: dict[str, Any], eff: dict[str, Any]) -> dict[str, float]:
    """The catalogued stage 5 metrics, in base units."""
    return {"test_accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "macro_precision": metrics["macro_precision"], "macro_recall": metrics["macro_recall"],
            "model_size": float(eff["model_size_bytes"]), "num_params": float(eff["num_params"]),
            "latency_p50": eff["latency_p50"], "latency_p95": eff["latency_p95"],
            "throughput": eff["throughput"], "peak_memory": float(eff["peak_memory"]),
            "ece": metrics["ece"]}


def top_mistakes(dataset: Any, probs: np.ndarray, limit: int) -> list[dict[str, Any]]:
    """The most confident mistakes: reference, true and predicted class, confidence."""
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != dataset.test.labels)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]])][:limit]
    names = dataset.class_names
    return [{"image": dataset.test.paths[i] if dataset.test.paths else f"test[{i}]",
             "true": names[dataset.test.labels[i]], "predicted": names[pred[i]],
             "confidence": float(probs[i, pred[i]])} for i in order]


def per_class_csv(rows: list[dict[str, Any]]) -> str:
    """CSV of per-class precision/recall/F1/support (class names quoted)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["class", "precision", "recall", "f1", "support"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def calibration_text(cal: dict[str, Any]) -> str:
    """The report's calibration lines: where T comes from, and test ECE before and after it."""
    return (f"Temperature scaling, fitted on the validation split (never test): T = {cal['temperature']:.4f} "
            f"(validation NLL {cal['val_nll_before']:.4f} -> {cal['val_nll_after']:.4f}). Predictions are "
            "unchanged; the bundle serves softmax(logits / T).\n\n"
            f"- test ECE before scaling {cal['ece_before']:.4f}\n"
            f"- test ECE after scaling {cal['ece_after']:.4f} (the `ece` metric; the diagram shows these "
            "probabilities)\n\n")


def render_report(report: dict[str, Any]) -> str:
    """The Markdown of stage 5's report (also rendered to HTML)."""
    eff = report["efficiency"]
    per_class = markdown_table(["class", "precision", "recall", "F1", "support"],
                               [[r["class"], r["precision"], r["recall"], r["f1"], r["support"]]
                                for r in report["per_class"]])
    confused = "".join(f"- {p['true']} -> {p['predicted']}: {p['count']}\n" for p in report["most_confused"])
    targets = report["against_targets"]
    target_table = markdown_table(["metric", "value", "target", "verdict"], targets) if targets else "none set"
    subsets = markdown_table(["brightness bucket (stage 1 train terciles)", "images", "accuracy"],
                             [[b["subset"], b["n"], "-" if b["accuracy"] is None else b["accuracy"]]
                              for b in report["subsets"]["brightness"]])
    topk = next((k for k in report if k.startswith("top") and k.endswith("_accuracy")), None)
    tta = (f"- {report['tta']['kind']} test-time augmentation: accuracy {report['tta']['accuracy']:.4f} "
           f"(reported apart; the plain accuracy above is the headline){_views_note(report['tta'])}\n"
           if report["tta"] else "- test-time augmentation: off\n")
    return (f"# Results evaluation (test split, {report['n']} images)\n\n"
            f"Model trained on: {report['trained_on']}. Test is read here only; nothing was selected on it.\n\n"
            f"{_forward_line(report.get('forward'), _reduced_views(report.get('tta')))}"
            f"- accuracy {report['accuracy']:.4f}, balanced accuracy {report['balanced_accuracy']:.4f}"
            + (f", {topk.replace('_', ' ')} {report[topk]:.4f}" if topk else "") + "\n"
            f"- macro precision/recall/F1 {report['macro_precision']:.4f} / {report['macro_recall']:.4f} / "
            f"{report['macro_f1']:.4f}; weighted F1 {report['weighted_f1']:.4f}\n"
            f"- expected calibration error {report['ece']:.4f} (temperature-scaled, as served)\n{tta}\n"
            f"## Against targets and gates\n\n{target_table}\n\n## Per class\n\n{per_class}\n\n"
            f"## Most confused pairs\n\n{confused or '- none'}\n\n"
            f"![confusion matrix](confusion_matrix.png)\n\n![row-normalized](confusion_matrix_normalized.png)\n\n"
            f"## By subset\n\n{subsets}\n\n## Calibration\n\n{calibration_text(report['calibration'])}"
            "![reliability](reliability_diagram.png)\n\n"
            f"## Most confident mistakes\n\n![mistakes](misclassified.png)\n\n## Efficiency\n\n"
            f"- parameters {eff['num_params']:,}; size {eff['model_size_bytes'] / 1e6:.3f} MB; "
            f"FLOPs/image {eff['flops']:,}\n"
            f"- latency batch 1: p50 {eff['latency_p50'] * 1000:.2f} ms, p95 {eff['latency_p95'] * 1000:.2f} ms\n"
            f"- throughput {eff['throughput']:.0f} images/s{_throughput_batch(eff)}; "
            f"peak memory {eff['peak_memory'] / 1e6:.0f} MB\n")


def _forward_line(forward: dict[str, Any] | None, reduced_views: bool = False) -> str:
    """``Logits computed with ...`` and why, when metrics.json records the runtime."""
    which = "validation and the plain test view" if reduced_views else "every view, validation and test"
    return f"Logits ({which}) computed with {forward['reason']}.\n\n" if forward else ""


def _reduced_views(tta: dict[str, Any] | None) -> bool:
    """True when TTA's extra views ran in a precision other than fp32."""
    return bool(tta) and tta.get("extra_views", {}).get("precision", "fp32") != "fp32"


def _views_note(tta: dict[str, Any]) -> str:
    """``; its extra views in bf16 (...)`` with the agreement check, when they were not fp32."""
    if not _reduced_views(tta):
        return ""
    views = tta["extra_views"]
    return (f"; its extra views computed by {views['reason']}. On {views['images']:,} test images that "
            f"forward's plain view agreed with the scored top-1 on {views['top1_agreement']:.2%} "
            f"(logits within {views['max_abs_diff']:.1e})")


def _throughput_batch(eff: dict[str, Any]) -> str:
    """`` (batch N, best of K passes)`` when efficiency.json says how throughput was measured."""
    measured = eff.get("measured")
    if not measured:
        return ""
    return (f" (batch {measured['throughput_batch']}, best of {measured['throughput_batches']} passes; "
            f"latency: {measured['latency_calls']} calls in {measured['latency_probes']} probes)")
