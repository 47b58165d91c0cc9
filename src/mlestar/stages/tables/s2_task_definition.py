"""Stage 2 for tables: metrics by task, targets, constraints and gates, and feasibility measured here.

The task comes from stage 1 (declared or inferred); the primary metric from
the config or the task's default. Every metric the config names must exist
for that task. One LightGBM probe fit gives the time of a full fit on this
machine, which is compared with the training-time budget.
"""

from __future__ import annotations

from typing import Any

from mlestar.config.catalog import DEFAULT_PRIMARY, METRICS
from mlestar.config.schema import MlestarConfig, check_metric_domain
from mlestar.errors import ConfigError
from mlestar.stages.tables.common import DATASET_REF, checked_dataset, n_jobs
from mlestar.utils.io import atomic_write_json
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

PROBE_LABEL = "task definition: LightGBM fit-time probe"


def task_metrics(config: MlestarConfig, task: str) -> dict[str, Any]:
    """The primary and secondary metrics for ``task``, checked against the catalog.

    Raises:
        ConfigError: a metric the config names does not exist for ``task``.
    """
    try:
        check_metric_domain(config, task)
    except ValueError as exc:
        raise ConfigError(f"{exc} (stage 1 found a {task} task)",
                          hint="name a metric of this task, or set data.task") from None
    primary = config.task.primary_metric or DEFAULT_PRIMARY[task]
    return {"primary": primary, "secondary": list(config.task.secondary_metrics or []),
            "available": [m for m, spec in METRICS.items() if spec.applies("tables", task)]}


def feasibility(budget: float | None, fit_seconds: float, cv_folds: int) -> dict[str, Any]:
    """Whether the planned fits (one, plus one per fold) fit ``budget`` seconds."""
    fits = 1 + cv_folds
    if budget is None:
        return {"verdict": "feasible", "reason": "no training-time limit set", "fits": fits}
    need = fit_seconds * fits
    verdict = "feasible" if need <= budget else "tight"
    return {"verdict": verdict, "fits": fits,
            "reason": f"{fits} LightGBM fit(s) of about {fit_seconds:.1f}s = {need:.1f}s against a {budget:.0f}s "
                      "budget" + ("" if verdict == "feasible" else "; stage 3 falls back to the linear baseline")}


@register_stage
class TableTaskDefinition(Stage):
    """Stage 2 (tables): the task specification and its feasibility on this machine."""

    name = "task_definition"
    domain = "tables"
    title = "Task definition"
    config_paths = ("task", "constraints", "gates", "remedies", "tables.cv_folds", "tables.n_jobs", "seed")
    inputs = (DATASET_REF,)
    outputs = ("task_spec.json",)
    uses_torch = False

    def run(self, ctx: StageContext) -> StageResult:
        from mlestar.domains.tables.probe import probe_fit_time

        dataset = checked_dataset(ctx)
        config = ctx.config
        metrics = task_metrics(config, dataset.task)
        ctx.progress(PROBE_LABEL, 0, 1)
        probe = probe_fit_time(dataset, n_jobs=n_jobs(config), seed=config.seed)
        ctx.progress(PROBE_LABEL, 1, 1)
        verdict = feasibility(config.constraints.max_training_time, probe["estimated_fit_seconds"],
                              config.tables.cv_folds)
        gates = [{"name": g.name, "metric": g.metric, "op": g.op, "threshold": g.threshold, "stage": g.stage,
                  "unit": METRICS[g.metric].unit} for g in config.gates]
        spec = {"task": dataset.task, "target": dataset.target, "metrics": metrics, "gates": gates,
                "constraints": config.constraints.model_dump(mode="json"), "remedies": list(config.remedies),
                "probe": probe, "feasibility": verdict}
        atomic_write_json(ctx.out_dir / "task_spec.json", spec)
        ctx.decide("primary_metric", metrics["primary"], "task.primary_metric" if config.task.primary_metric
                   else f"the default for a {dataset.task} task")
        ctx.decide("feasibility", verdict["verdict"], verdict["reason"], probe=probe)
        return StageResult(metrics={"estimated_fit_time": probe["estimated_fit_seconds"]},
                           summary=f"{dataset.task} on {dataset.target!r}, primary {metrics['primary']}, "
                                   f"{len(gates)} gate(s); one fit ~{probe['estimated_fit_seconds']:.1f}s; "
                                   f"{verdict['verdict']}")
