"""Stage 5, results evaluation: the test split, read once, and the model's cost.

Per-class precision/recall/F1, confusion matrices, the most confident
mistakes, calibration, and efficiency (parameters, size, FLOPs, latency,
throughput, memory). Each number is set against the config's targets and gates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlestar.config.catalog import METRICS
from mlestar.config.schema import MlestarConfig
from mlestar.config.units import format_quantity
from mlestar.stages.common import DATASET_REF, checked_dataset, markdown_table
from mlestar.utils.io import atomic_write_json, atomic_write_text
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

MODEL_REF = "implementation/model.pt"


def evaluate_on_test(model: Any, dataset: Any, prep: Any) -> tuple[dict[str, Any], np.ndarray]:
    """Classification metrics on the test split; returns ``(metrics, probabilities)``."""
    import torch

    from mlestar.evaluation.metrics import classification_metrics
    from mlestar.training.loop import predict_proba, split_to_tensors

    x, _ = split_to_tensors(dataset.test, prep, torch.device("cpu"))
    probs = predict_proba(model, x)
    return classification_metrics(dataset.test.labels, probs, list(dataset.class_names)), probs


def write_visuals(out_dir: Any, metrics: dict[str, Any], probs: np.ndarray, dataset: Any) -> None:
    """Confusion matrices, reliability diagram and misclassified gallery."""
    from mlestar.evaluation.metrics import expected_calibration_error
    from mlestar.evaluation.plots import plot_confusion_matrix, plot_misclassified, plot_reliability_diagram

    names = list(dataset.class_names)
    cm = np.array(metrics["confusion_matrix"])
    plot_confusion_matrix(cm, names, out_dir / "confusion_matrix.png", normalize=False)
    plot_confusion_matrix(cm, names, out_dir / "confusion_matrix_normalized.png", normalize=True)
    _, bins = expected_calibration_error(probs, dataset.test.labels)
    plot_reliability_diagram(bins, out_dir / "reliability_diagram.png")
    pred = probs.argmax(1)
    plot_misclassified(dataset.test.images, dataset.test.labels, pred, probs.max(1), names,
                       out_dir / "misclassified.png")


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
    config_paths = ("task", "gates", "seed")
    inputs = (DATASET_REF, MODEL_REF)
    outputs = ("metrics.json", "report.md", "confusion_matrix.png", "confusion_matrix_normalized.png",
               "reliability_diagram.png", "misclassified.png", "per_class.csv", "efficiency.json")
    code_modules = ("mlestar.evaluation", "mlestar.training.loop", "mlestar.stages.common")

    def run(self, ctx: StageContext) -> StageResult:
        from mlestar.evaluation.efficiency import efficiency_report
        from mlestar.training import load_model_file

        dataset, prep = checked_dataset(ctx)
        model, _ = load_model_file(ctx.input(MODEL_REF))
        metrics, probs = evaluate_on_test(model, dataset, prep)
        height, _, channels = dataset.image_shape
        eff = efficiency_report(model, (channels, height, height), latency_seconds=2.0, throughput_seconds=1.0)
        write_visuals(ctx.out_dir, metrics, probs, dataset)
        values = {"test_accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                  "macro_precision": metrics["macro_precision"], "macro_recall": metrics["macro_recall"],
                  "model_size": float(eff["model_size_bytes"]), "num_params": float(eff["num_params"]),
                  "latency_p50": eff["latency_p50"], "latency_p95": eff["latency_p95"],
                  "throughput": eff["throughput"], "peak_memory": float(eff["peak_memory"])}
        atomic_write_json(ctx.out_dir / "metrics.json", {**metrics, "summary": values})
        atomic_write_json(ctx.out_dir / "efficiency.json", eff)
        atomic_write_text(ctx.out_dir / "per_class.csv", per_class_csv(metrics["per_class"]))
        atomic_write_text(ctx.out_dir / "report.md", render_report(ctx.config, metrics, values, eff))
        return StageResult(metrics=values,
                           summary=f"test accuracy {metrics['accuracy']:.2%}, macro F1 {metrics['macro_f1']:.3f}, "
                                   f"{eff['num_params']:,} params, p95 latency {eff['latency_p95'] * 1000:.2f} ms")


def per_class_csv(rows: list[dict[str, Any]]) -> str:
    """CSV of per-class precision/recall/F1/support (class names quoted)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["class", "precision", "recall", "f1", "support"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def render_report(config: MlestarConfig, metrics: dict[str, Any], values: dict[str, float],
                  eff: dict[str, Any]) -> str:
    """``report.md`` of stage 5."""
    per_class = markdown_table(["class", "precision", "recall", "F1", "support"],
                               [[r["class"], r["precision"], r["recall"], r["f1"], r["support"]]
                                for r in metrics["per_class"]])
    confused = "".join(f"- {p['true']} -> {p['predicted']}: {p['count']}\n" for p in metrics["most_confused"])
    confused = confused or "- none\n"
    targets = against_targets(config, values)
    target_table = markdown_table(["metric", "value", "target", "verdict"], targets) if targets else "none set"
    return (f"# Results evaluation (test split, {metrics['n']} images)\n\n"
            f"- accuracy {metrics['accuracy']:.4f}, balanced accuracy {metrics['balanced_accuracy']:.4f}\n"
            f"- macro precision/recall/F1 {metrics['macro_precision']:.4f} / {metrics['macro_recall']:.4f} / "
            f"{metrics['macro_f1']:.4f}; weighted F1 {metrics['weighted_f1']:.4f}\n"
            f"- expected calibration error {metrics['ece']:.4f}\n\n"
            f"## Against targets and gates\n\n{target_table}\n\n## Per class\n\n{per_class}\n\n"
            f"## Most confused pairs\n\n{confused}\n"
            f"![confusion matrix](confusion_matrix.png)\n\n![reliability](reliability_diagram.png)\n\n"
            f"![mistakes](misclassified.png)\n\n## Efficiency\n\n"
            f"- parameters {eff['num_params']:,}; size {eff['model_size_bytes'] / 1e6:.3f} MB; "
            f"FLOPs/image {eff['flops']:,}\n"
            f"- latency batch 1: p50 {eff['latency_p50'] * 1000:.2f} ms, p95 {eff['latency_p95'] * 1000:.2f} ms\n"
            f"- throughput {eff['throughput']:.0f} images/s; peak memory {eff['peak_memory'] / 1e6:.0f} MB\n")
