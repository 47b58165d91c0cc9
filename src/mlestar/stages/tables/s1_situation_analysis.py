"""Stage 1 for tables, situation analysis: what the table holds, what is wrong with it, what to do about it.

The work is :func:`mlestar.domains.tables.analysis.analyze_table`: column
profiles, duplicates, the target, mutual information with it, train/test drift
by adversarial validation, and single-column leakage probes. It writes
``analysis.json``, ``dataset.json`` (the split record later stages verify,
see :func:`mlestar.stages.tables.common.checked_dataset`),
``recommendations.json`` (read by stage 3), ``report.md|html|json`` and four
plots. Blocking findings stop the run here, after every file is written, so
nothing trains on data known to be broken.
"""

from __future__ import annotations

from typing import Any

from mlestar.domains.tables.analysis import OUTPUTS, TableAnalysis, analyze_table
from mlestar.domains.tables.dataset import TableDataset
from mlestar.errors import DataError
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage


@register_stage
class TableSituationAnalysis(Stage):
    """Stage 1 (tables): profile, quality checks, drift, leakage, plots, report, recommendations."""

    name = "situation_analysis"
    domain = "tables"
    title = "Situation analysis"
    config_paths = ("data", "seed")
    outputs = OUTPUTS
    uses_data_fingerprint = True
    reads_test = True
    uses_torch = False

    def run(self, ctx: StageContext) -> StageResult:
        dataset: TableDataset = ctx.dataset()
        result = analyze_table(dataset, ctx.out_dir, seed=ctx.config.seed, progress=ctx.progress)
        record_decisions(ctx, result.recommendations)
        if result.blocking:
            raise DataError("stage 1 found blocking data problems: "
                            + "; ".join(f["message"] for f in result.blocking),
                            hint=f"see {ctx.out_dir / 'report.html'}; fix the data (or list the columns in "
                                 "data.drop_columns), then run again")
        return StageResult(metrics=result.metrics, summary=summary(dataset, result))


def record_decisions(ctx: StageContext, recs: dict[str, Any]) -> None:
    """One audit decision per recommendation, with its reason."""
    for key in ("class_weighting", "target_transform"):
        ctx.decide(f"recommend_{key}", recs[key]["choice"], recs[key]["reason"])
    ctx.decide("recommend_drop_columns", [d["column"] for d in recs["drop_columns"]],
               "; ".join(f"{d['column']}: {d['reason']}" for d in recs["drop_columns"]) or "nothing to drop")
    ctx.decide("recommend_high_cardinality", [h["column"] for h in recs["high_cardinality"]],
               "categorical columns with more than 50 distinct values")
    ctx.decide("recommend_drift_columns", recs["drift_columns"],
               "columns driving adversarial validation at ROC AUC >= 0.7" if recs["drift_columns"]
               else "no notable train/test drift")
    ctx.decide("recommend_constant_columns", recs["constant_columns"], "one value in at least 99% of rows")


def summary(dataset: TableDataset, result: TableAnalysis) -> str:
    """One line: rows, features, task, drift and findings."""
    m = result.metrics
    auc = "n/a" if m["adversarial_auc"] is None else f"{m['adversarial_auc']:.2f}"
    task = (f"{len(dataset.class_names)} classes, imbalance {m['imbalance_ratio']:.2f}" if dataset.is_classification
            else f"regression, target skew {m['target_skew']:.2f}")
    return (f"{len(dataset.train)}/{len(dataset.val)}/{len(dataset.test)} train/val/test rows, "
            f"{len(dataset.features)} features, {task}, adversarial AUC {auc}, "
            f"{len(result.findings)} finding(s) ({len(result.blocking)} blocking)")
