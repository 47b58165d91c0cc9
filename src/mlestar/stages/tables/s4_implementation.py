"""Stage 4 for tables: fit the plan with early stopping, cross-validate, record curves and importance.

With ``tables.cv_folds`` k >= 2, k fits on the training split give out-of-fold
scores first (each fold checkpointed; a resumed run skips finished folds);
then the final model is fitted on train, stopping early on validation.
Writes ``model.joblib`` (a :class:`TableModel`), ``training.json``,
``learning_curve.png`` and ``feature_importance.png``/``.json``.
"""

from __future__ import annotations

import time
from typing import Any

from mlestar.stages.common import Steps
from mlestar.stages.tables.common import DATASET_REF, checked_dataset, n_jobs
from mlestar.utils.io import atomic_write_json
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

PLAN_REF = "action_planning/plan.json"
STEPS_LABEL = "implementation: cross-validation, final fit, importance, plots"


def stage_metrics(task: str, val: dict[str, float], cv: dict[str, Any] | None, primary_value: float,
                  best_iteration: int | None, seconds: float) -> dict[str, float | None]:
    """The catalog's stage-4 table metrics; those of the other task are None."""
    cls = task != "regression"
    return {"val_accuracy": val["accuracy"] if cls else None, "val_roc_auc": val["roc_auc"] if cls else None,
            "val_log_loss": val["log_loss"] if cls else None, "val_rmse": None if cls else val["rmse"],
            "val_r2": None if cls else val["r2"], "cv_score": cv["mean"] if cv else primary_value,
            "cv_std": cv["std"] if cv else 0.0, "best_iteration": None if best_iteration is None
            else float(best_iteration), "training_time": seconds}


@register_stage
class TableImplementation(Stage):
    """Stage 4 (tables): the fit."""

    name = "implementation"
    domain = "tables"
    title = "Implementation (training)"
    config_paths = ("data", "seed", "task.primary_metric", "tables.n_jobs")
    inputs = (DATASET_REF, PLAN_REF)
    outputs = ("model.joblib", "training.json", "learning_curve.png", "feature_importance.png",
               "feature_importance.json")
    uses_torch = False

    def run(self, ctx: StageContext) -> StageResult:
        from mlestar.domains.tables.fit import cross_validate, fit_plan, permutation_importance
        from mlestar.domains.tables.plan import TablePlan
        from mlestar.domains.tables.trainplots import plot_importance, plot_learning_curve
        from mlestar.domains.tables.scoring import primary_score_name, to_json

        plan = TablePlan.model_validate(ctx.read_json(PLAN_REF))
        dataset = checked_dataset(ctx)
        steps = Steps(ctx, STEPS_LABEL, 4)
        started = time.perf_counter()
        cv = None
        if plan.cv_folds >= 2:
            cv = cross_validate(plan, dataset, ctx.out_dir / "folds", n_jobs=n_jobs(ctx.config),
                                primary=ctx.config.task.primary_metric, progress=ctx.progress)
            ctx.decide("cross_validation", f"{plan.cv_folds} folds",
                       f"out-of-fold {cv['score']} {cv['mean']:.4f} ± {cv['std']:.4f}")
        steps.advance()
        outcome = fit_plan(plan, dataset.train, dataset.val, dataset.class_names, n_jobs=n_jobs(ctx.config),
                           on_round=lambda done, total: ctx.progress("boosting rounds: final fit", done, total))
        seconds = time.perf_counter() - started
        outcome.model.save(ctx.out_dir / "model.joblib")
        steps.advance()
        importance = permutation_importance(outcome.model, dataset.val, seed=ctx.config.seed)
        atomic_write_json(ctx.out_dir / "feature_importance.json", importance)
        steps.advance()
        plot_importance(importance, ctx.out_dir / "feature_importance.png")
        plot_learning_curve(outcome.report.curve, ctx.out_dir / "learning_curve.png",
                            best_iteration=outcome.report.best_iteration)
        steps.finish()
        name = primary_score_name(ctx.config.task.primary_metric, plan.task)
        record = {"learner": plan.learner, "val_scores": to_json(outcome.val_scores), "primary_score": name,
                  "best_iteration": outcome.report.best_iteration, "fit_seconds": outcome.seconds,
                  "seconds": seconds, "cross_validation": {k: v for k, v in (cv or {}).items() if k != "oof"},
                  "curve": outcome.report.curve, "train_rows": len(dataset.train), "val_rows": len(dataset.val)}
        atomic_write_json(ctx.out_dir / "training.json", record)
        if outcome.report.best_iteration is not None:
            ctx.decide("early_stopping", outcome.report.best_iteration, f"best validation round of {plan.learner}")
        metrics = stage_metrics(plan.task, outcome.val_scores, cv, outcome.val_scores[name],
                                outcome.report.best_iteration, seconds)
        return StageResult(metrics=metrics, summary=f"{plan.learner}: validation {name} "
                                                    f"{outcome.val_scores[name]:.4f}"
                                                    + (f", CV {cv['mean']:.4f} ± {cv['std']:.4f}" if cv else "")
                                                    + f" in {seconds:.1f}s")
