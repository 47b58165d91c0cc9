"""Stage 5 for tables, results evaluation: the test split, read once, and what the model costs.

The work is :func:`mlestar.domains.tables.evaluate.evaluate_table_model`; this
stage loads the model stage 4 fitted, records the binary threshold decision,
sets the numbers against the config's targets and gates, and writes the report.
"""

from __future__ import annotations

from typing import Any

from mlestar.config.catalog import METRICS
from mlestar.config.schema import MlestarConfig
from mlestar.config.units import format_quantity
from mlestar.domains.tables.evaluate import FILES, evaluate_table_model
from mlestar.domains.tables.model import load_model
from mlestar.stages.common import markdown_table
from mlestar.stages.tables.common import DATASET_REF, checked_dataset
from mlestar.utils.io import atomic_write_json
from mlestar.utils.report import write_report
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

MODEL_REF = "implementation/model.joblib"


def against_targets(config: MlestarConfig, values: dict[str, float | None]) -> list[list[Any]]:
    """Rows of (metric, value, target or gate, verdict) for every metric of this stage with a target or gate
    and a value (a target on a metric the task lacks is listed as not applicable)."""
    wanted = {**{m: (">=" if METRICS[m].higher_is_better else "<=", t) for m, t in config.task.targets.items()
                 if METRICS[m].stage == "evaluation"},
              **{g.metric: (g.op, float(g.threshold)) for g in config.gates if g.stage == "evaluation"}}
    rows = []
    for metric, (op, threshold) in wanted.items():
        unit = METRICS[metric].unit
        value = values.get(metric)
        if value is None:
            rows.append([metric, "-", f"{op} {format_quantity(threshold, unit)}", "not applicable"])
            continue
        ok = {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold,
              "<": value < threshold, "==": value == threshold}[op]
        rows.append([metric, format_quantity(value, unit), f"{op} {format_quantity(threshold, unit)}",
                     "met" if ok else "MISSED"])
    return rows


@register_stage
class TableEvaluation(Stage):
    """Stage 5 (tables): test scores, error analysis, explanations, efficiency."""

    name = "evaluation"
    domain = "tables"
    title = "Results evaluation"
    config_paths = ("task", "gates", "seed", "evaluation")
    inputs = (DATASET_REF, MODEL_REF)
    outputs = ("report.md", "report.html", "report.json", *FILES)
    reads_test = True
    uses_torch = False

    def run(self, ctx: StageContext) -> StageResult:
        dataset = checked_dataset(ctx)  # every split, test included, is the one stage 1 hashed
        model = load_model(ctx.input(MODEL_REF))
        ctx.report(f"evaluating the {model.plan.learner} model on {len(dataset.test)} test rows")
        record = evaluate_table_model(model, dataset, ctx.out_dir, seed=ctx.config.seed, progress=ctx.progress)
        if record["threshold"] is not None:
            t = record["threshold"]
            ctx.decide("decision_threshold", t["chosen"], t["reason"], val_f1=t["val_f1_at_chosen"],
                       val_f1_at_half=t["val_f1_at_0.5"])
        record["against_targets"] = against_targets(ctx.config, record["metrics"])
        atomic_write_json(ctx.out_dir / "evaluation.json", record)
        write_report(ctx.out_dir, "report", self.title, render_report(record), record)
        return StageResult(metrics=record["metrics"], summary=summary_line(record))


def summary_line(record: dict[str, Any]) -> str:
    """One line: the headline scores and the latency."""
    m = record["metrics"]
    if record["task"] == "regression":
        head = f"test RMSE {m['test_rmse']:.4g}, MAE {m['test_mae']:.4g}, R² {_num(m['test_r2'])}"
    else:
        head = (f"test accuracy {m['test_accuracy']:.2%}, macro F1 {m['macro_f1']:.3f}, "
                f"ROC AUC {_num(m['test_roc_auc'])}")
    if record["threshold"] is not None:
        head += f" at threshold {record['threshold']['chosen']:.3f}"
    return f"{head}; p95 latency {m['latency_p95'] * 1000:.2f} ms"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_report(record: dict[str, Any]) -> str:
    """The Markdown of the report (also rendered to HTML)."""
    targets = record["against_targets"]
    parts = [f"# Results evaluation (test split, {record['n_test']} rows, {record['task']}, "
             f"{record['learner']} learner)\n",
             "The test split is read here only; the threshold and every choice before were made on validation.\n",
             "## Scores\n", markdown_table(["score", "value"], [[k, _num(v)] for k, v in record["scores"].items()]),
             "\n## Against targets and gates\n",
             markdown_table(["metric", "value", "target", "verdict"], targets) if targets else "none set", "\n",
             *_threshold_section(record), *_task_section(record), *_category_section(record),
             *_explanation_section(record), *_efficiency_section(record)]
    if record["notes"]:
        parts += ["\n## Notes\n", "".join(f"- {n}\n" for n in record["notes"])]
    return "\n".join(parts) + "\n"


def _threshold_section(record: dict[str, Any]) -> list[str]:
    t = record["threshold"]
    if t is None:
        return []
    names = [n for n in t["test_at_chosen"] if n in ("accuracy", "balanced_accuracy", "f1", "macro_f1")]
    rows = [[n, _num(t["test_at_0.5"][n]), _num(t["test_at_chosen"][n])] for n in names]
    return ["## Decision threshold\n",
            f"Chosen on validation ({t['val_rows']} rows): **{t['chosen']:.4f}**; it {t['reason']}. "
            f"Validation F1 {_num(t['val_f1_at_chosen'])} (at 0.5: {_num(t['val_f1_at_0.5'])}). "
            "The saved model (`model.joblib`) carries it.\n",
            markdown_table(["test score", "at 0.5", "at chosen"], rows), "\n"]


def _task_section(record: dict[str, Any]) -> list[str]:
    if record["task"] == "regression":
        rows = [[f"{b['low']:.4g} – {b['high']:.4g}", b["count"], _num(b["mae"]), _num(b["rmse"])]
                for b in record["target_buckets"]]
        return ["## Where the errors are\n", "![predicted against actual, residuals](curves.png)\n",
                "### By decile of the true target\n", markdown_table(["target range", "rows", "MAE", "RMSE"], rows),
                "\n![error by target bucket](errors.png)\n"]
    report = record["classification_report"]
    rows = [[name, report[name]["precision"], report[name]["recall"], report[name]["f1-score"],
             int(report[name]["support"])] for name in record["class_names"]]
    return ["## Curves\n", "![ROC and precision-recall](curves.png)\n", "## Per class\n",
            markdown_table(["class", "precision", "recall", "F1", "support"], rows),
            f"\n## Confusion and calibration\n\nExpected calibration error (15 bins, top-class confidence): "
            f"{record['calibration']['ece']:.4f}.\n", "![confusion matrix and reliability](errors.png)\n"]


def _category_section(record: dict[str, Any]) -> list[str]:
    label = "MAE" if record["task"] == "regression" else "error rate"
    parts = ["## Error by category\n"]
    if not record["error_by_category"]:
        return parts + ["No categorical input columns.\n"]
    parts.append("The three categorical inputs ranked highest by permutation importance on validation; "
                 "their most frequent values (top 10 shown, 20 in `error_by_category.json`).\n")
    for column, rows in record["error_by_category"].items():
        parts += [f"### {column}\n", markdown_table(["value", "rows", label],
                                                    [[r["value"], r["count"], r["error"]] for r in rows[:10]]), ""]
    return parts + ["\n![error by category](error_by_category.png)\n"]


def _explanation_section(record: dict[str, Any]) -> list[str]:
    shap = record["shap"]
    parts = ["## What drives the predictions\n"]
    if record["permutation_importance"]:
        importance = list(record["permutation_importance"].items())[:10]
        parts += ["### Permutation importance (validation)\n",
                  markdown_table(["column", "score drop"], [[k, v] for k, v in importance]), "\n"]
    if shap["explainer"] == "none":
        return parts + [f"{shap['note']}.\n", "![permutation importance](shap_summary.png)\n"]
    top = list(shap["mean_abs"].items())[:10]
    return parts + [f"### SHAP ({shap['explainer']} explainer, {shap['rows']} test rows)\n", f"{shap['note']}.\n",
                    markdown_table(["feature", "mean absolute SHAP"], [[k, v] for k, v in top]),
                    "\n![SHAP summary](shap_summary.png)\n", "![SHAP dependence, top features](shap_dependence.png)\n"]


def _efficiency_section(record: dict[str, Any]) -> list[str]:
    e = record["efficiency"]
    return ["## Efficiency\n",
            f"- model file {e['model_size'] / 1e6:.3f} MB\n"
            f"- one row through `model.predict`: p50 {e['latency_p50'] * 1000:.2f} ms, "
            f"p95 {e['latency_p95'] * 1000:.2f} ms ({e['latency_repeats']} calls)\n"
            f"- throughput {e['throughput']:,.0f} rows/s (batch of {e['throughput_rows']:,} rows, best of 3)\n"
            f"- peak resident memory {e['peak_memory'] / 1e6:.0f} MB\n"]
