"""Stage 6, refinement: an Optuna search around the plan, ablations, and a seeded before/after decision.

1. Search (:mod:`mlestar.tuning.search`): trials train the plan with drawn
   settings on the training split (or a share of it, for fewer epochs) and
   report validation accuracy every epoch to the pruner; architectures that
   break ``max_model_size`` or ``max_inference_latency`` are infeasible. The
   study lives in ``study.db`` here, a journal file, or a database that
   workers on other machines join (``tune_job.json`` describes the work).
2. Ablation: the best configuration with one component off at a time, ranked
   by the accuracy lost; the most important component gets a focused search.
3. Before/after: the best configuration and stage 4's are retrained on the
   whole training split with their own epochs over several seeds; the refined
   one is adopted only when its mean gain beats the seed noise and
   ``min_improvement``. The decision and its numbers go to the audit trail.

The test split is never read here. ``model.pt`` and ``plan.json`` hold the
adopted model and plan whichever side wins, so stage 7 has one input.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlestar.stages.common import DATASET_REF, checked_dataset, markdown_table
from mlestar.utils.io import atomic_write_json, atomic_write_text
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

if TYPE_CHECKING:
    from mlestar.training.plan import PlanChange, PlanDocument, TrainingPlan

PLAN_REF = "action_planning/plan.json"
BASE_METRICS_REF = "implementation/metrics.json"
BASE_MODEL_REF = "implementation/model.pt"


@dataclass
class Outcome:
    """What the stage found and decided; every output is rendered from it."""

    baseline_val: float
    adopted: bool = False
    reason: str = "refinement disabled"
    refined_plan: TrainingPlan | None = None
    refined_changes: list[PlanChange] = field(default_factory=list)  # what turns the plan into refined_plan
    search: Any = None          # mlestar.tuning.search.SearchResult
    comparison: Any = None      # mlestar.tuning.compare.Comparison
    job: Any = None             # mlestar.tuning.job.TuneJob of the main study
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.search.rows if self.search else []

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.search.best["params"]) if self.search and self.search.best else {}

    @property
    def refined_val(self) -> float:
        """Validation accuracy of the model written as ``model.pt``."""
        return self.comparison.refined[0] if self.adopted else self.baseline_val

    def metrics(self) -> dict[str, float | None]:
        """Exactly the catalogued refinement metrics."""
        gain = self.comparison.gain if self.comparison else 0.0
        return {"refined_val_accuracy": self.refined_val,
                "refinement_improvement": gain if self.adopted else 0.0,
                "refinement_regression": max(0.0, -gain),
                "refinement_noise": self.comparison.noise if self.comparison else 0.0,
                "trials_completed": float(sum(r["state"] == "COMPLETE" for r in self.rows)),
                "trials_pruned": float(sum(r["state"] == "PRUNED" for r in self.rows))}


@register_stage
class Refinement(Stage):
    """Stage 6: Optuna search, ablation, focused search, seeded before/after, adoption decision."""

    name = "refinement"
    title = "Refinement"
    config_paths = ("refinement", "data", "seed", "deterministic", "constraints.max_model_size",
                    "constraints.max_inference_latency", "constraints.max_training_time")
    inputs = (DATASET_REF, PLAN_REF, BASE_METRICS_REF, BASE_MODEL_REF)
    outputs = ("refinement.json", "before_after.md", "trials.csv", "trials.json", "optimization_history.png",
               "param_importance.png", "ablation.md", "ablation.png", "model.pt", "plan.json")

    def run(self, ctx: StageContext) -> StageResult:
        from mlestar.training.plan import PlanDocument

        plan_doc = PlanDocument.from_json(ctx.read_json(PLAN_REF), source=PLAN_REF)
        outcome = Outcome(baseline_val=float(ctx.read_json(BASE_METRICS_REF)["val_accuracy"]))
        if ctx.config.refinement.enabled:
            outcome = refine(ctx, plan_doc.training, outcome)
        write_adopted(ctx, plan_doc, outcome)
        write_reports(ctx, plan_doc.training, outcome)
        m = outcome.metrics()
        return StageResult(metrics=m, summary=f"{m['trials_completed']:.0f} trial(s) completed, "
                                              f"{m['trials_pruned']:.0f} pruned; "
                                              f"{'adopted' if outcome.adopted else 'kept baseline'}: val "
                                              f"{outcome.refined_val:.2%} (stage 4 {outcome.baseline_val:.2%})")


def refine(ctx: StageContext, plan: TrainingPlan, outcome: Outcome) -> Outcome:
    """Search, then compare the best configuration with the baseline over seeds and decide."""
    from mlestar.tuning.job import build_job, trial_data, write_job
    from mlestar.tuning.search import search
    from mlestar.tuning.space import param_changes
    from mlestar.tuning.storage import resolve_storage
    from mlestar.training.runtime import configure_torch

    config = ctx.config.refinement
    dataset, _ = checked_dataset(ctx)
    configure_torch(plan.num_threads, ctx.config.deterministic)
    job = build_job(ctx.config, plan, ctx.read_json(DATASET_REF), study=study_name(ctx),
                    storage=resolve_storage(config.storage, ctx.out_dir), target_trials=config.n_trials)
    write_job(job, ctx.out_dir)
    data = trial_data(job, dataset)
    outcome.job = job
    outcome.search = search(job, data, config, log_dir=ctx.out_dir / "workers", report=ctx.report,
                            progress=ctx.progress)
    _record_search(ctx, outcome.search)
    if outcome.search.best is None:
        outcome.reason = "kept the baseline: no feasible trial completed"
    elif all(plan.setting(k) == v for k, v in outcome.best_params.items()):
        outcome.reason = "kept the baseline: the best configuration is the plan itself"
    else:
        best = outcome.search.best
        outcome.refined_changes = param_changes(outcome.best_params, data.class_counts,
                                                f"refinement: best trial {best['number']} of study {best['study']}")
        outcome.refined_plan = plan.apply(outcome.refined_changes)
        _compare(ctx, plan, outcome, data, job)
    ctx.decide("adopt_refined_model", outcome.adopted, outcome.reason, params=outcome.best_params,
               comparison=outcome.comparison.to_dict() if outcome.comparison else None)
    return outcome


def study_name(ctx: StageContext) -> str:
    """The configured name, else ``<run id>-refinement`` (``-a2`` ... for later attempts: a new plan)."""
    base = ctx.config.refinement.study_name or f"{ctx.run_id}-refinement"
    return base if ctx.attempt == 1 else f"{base}-a{ctx.attempt}"


def _record_search(ctx: StageContext, result: Any) -> None:
    """Audit what the search chose: the best trial, and the component the focused search went to."""
    if result.best is not None:
        ctx.decide("best_trial", result.best["number"], f"highest feasible val accuracy "
                   f"{result.best['value']:.4f} in study {result.best['study']}", params=result.best["params"])
    if result.focus:
        top = result.ablation[0]
        ctx.decide("focus_component", result.focus["component"],
                   f"largest ablation impact {top['impact']:+.4f} ({top['change']})",
                   space=result.focus["space"])


def _compare(ctx: StageContext, plan: TrainingPlan, outcome: Outcome, data: Any, job: Any) -> None:
    """Seeded before/after on the whole training split, then the adoption rule."""
    from mlestar.tuning.compare import compare, decide

    config = ctx.config.refinement
    outcome.comparison = compare(plan, outcome.refined_plan or plan, outcome.baseline_val, data, job,
                                 seeds=config.seeds, budget=config.compare_timeout,
                                 max_seconds=ctx.config.constraints.max_training_time,
                                 work_dir=ctx.out_dir / "retrain", report=ctx.report,
                                 progress=lambda done, total: ctx.progress("before/after retraining", done, total))
    if outcome.comparison.note:
        ctx.decide("comparison_seeds", len(outcome.comparison.seeds), outcome.comparison.note)
    outcome.adopted, outcome.reason = decide(outcome.comparison, config.min_improvement)


def write_adopted(ctx: StageContext, plan_doc: PlanDocument, outcome: Outcome) -> None:
    """``model.pt`` and ``plan.json``: the refined ones when adopted, else stage 4's model and stage 3's plan."""
    from mlestar.training import save_model_file
    from mlestar.training.plan import architecture

    if not outcome.adopted or outcome.refined_plan is None:
        shutil.copyfile(ctx.input(BASE_MODEL_REF), ctx.out_dir / "model.pt")
        plan_doc.save(ctx.out_dir / "plan.json")
        return
    dataset, prep = checked_dataset(ctx)
    save_model_file(ctx.out_dir / "model.pt", outcome.comparison.refined_model,
                    architecture=architecture(outcome.refined_plan), preprocessing=prep.to_dict(),
                    class_names=list(dataset.class_names))
    adopted_plan(plan_doc, outcome).save(ctx.out_dir / "plan.json")


def adopted_plan(plan_doc: PlanDocument, outcome: Outcome) -> PlanDocument:
    """Stage 3's plan with the adopted trial's changes: each changed setting's reason names the trial."""
    return plan_doc.apply(outcome.refined_changes).model_copy(update={"refined_params": outcome.best_params})


def write_reports(ctx: StageContext, plan: TrainingPlan, outcome: Outcome) -> None:
    """Trials table and plots, ablation table and chart, before/after table, refinement.json."""
    from mlestar.tuning.plots import plot_ablation
    from mlestar.tuning.report import write_results

    search = outcome.search
    write_results(outcome.rows, ctx.out_dir, search.importance if search else ("refinement disabled", {}),
                  baseline=outcome.baseline_val)
    ablation = search.ablation if search else []
    atomic_write_text(ctx.out_dir / "ablation.md", render_ablation(ablation, search.focus if search else None))
    plot_ablation(ablation, ctx.out_dir / "ablation.png")
    atomic_write_text(ctx.out_dir / "before_after.md", render_before_after(plan, outcome))
    atomic_write_json(ctx.out_dir / "refinement.json", summary(outcome))


def summary(outcome: Outcome) -> dict[str, Any]:
    """``refinement.json``: the decision with its numbers, the search, ablation and focus."""
    from mlestar.tuning.search import worker_command
    from mlestar.tuning.storage import dashboard_command, redact

    search, job = outcome.search, outcome.job
    return {"adopted": outcome.adopted, "reason": outcome.reason, "baseline_val_accuracy": outcome.baseline_val,
            "refined_val_accuracy": outcome.refined_val, "best_params": outcome.best_params,
            "best_trial": search.best if search else None, "metrics": outcome.metrics(),
            "comparison": outcome.comparison.to_dict() if outcome.comparison else None,
            "ablation": search.ablation if search else [], "focus": search.focus if search else None,
            "importance": {"method": search.importance[0], "values": search.importance[1]} if search else None,
            "studies": search.studies if search else [], "search_seconds": search.seconds if search else 0.0,
            "storage": redact(job.storage) if job else None,
            "dashboard": dashboard_command(job.storage) if job else None,
            "worker_command": worker_command(job) if job else None}


def render_ablation(rows: list[dict[str, Any]], focus: dict[str, Any] | None) -> str:
    """``ablation.md``: components ranked by the validation accuracy lost without them."""
    if not rows:
        return "# Ablation\n\nNo ablation ran (refinement or ablation disabled, or no feasible trial).\n"
    table = markdown_table(["rank", "component", "change", "val accuracy", "impact", "seconds"],
                           [[r["rank"], r["component"], r["change"], r["val_accuracy"], f"{r['impact']:+.4f}",
                             f"{r['seconds']:.1f}"] for r in rows])
    focus_line = (f"Focused search: **{focus['component']}** ({', '.join(focus['space'])}), "
                  f"{focus['trials']} trial(s) in study `{focus['study']}`.") if focus else \
        "Focused search: none (no component with a positive impact and parameters to vary, or no trials kept)."
    return (f"# Ablation\n\nReference: the best trial's val accuracy {rows[0]['reference']:.4f}, same epochs, "
            f"training subset and seed. Impact = reference - ablated (positive: the component helps).\n\n"
            f"{table}\n\n{focus_line}\n")


def render_before_after(plan: TrainingPlan, outcome: Outcome) -> str:
    """``before_after.md``: settings, per-seed validation accuracy, the decision, how to look at the study."""
    params = outcome.best_params
    rows = [[key, plan.setting(key), value] for key, value in sorted(params.items())]
    parts = ["# Refinement: before / after (validation split)\n",
             markdown_table(["setting", "before (stage 3 plan)", "after (best trial)"], rows) if rows else
             "No refined configuration.", ""]
    if outcome.comparison:
        c = outcome.comparison.to_dict()
        seed_rows = [[seed, base, ref] for seed, base, ref in zip(c["seeds"], c["baseline"], c["refined"])]
        seed_rows.append(["mean ± std", f"{c['baseline_mean']:.4f} ± {c['baseline_std']:.4f}",
                          f"{c['refined_mean']:.4f} ± {c['refined_std']:.4f}"])
        parts += ["## Retrained on the whole training split, with each side's own epochs\n",
                  markdown_table(["seed", "before (val accuracy)", "after (val accuracy)"], seed_rows), ""]
    parts.append(f"Decision: {outcome.reason}.\n")
    if outcome.job is not None:
        from mlestar.tuning.storage import dashboard_command

        parts.append(f"Inspect the study live or afterwards:\n\n```bash\n{dashboard_command(outcome.job.storage)}"
                     f"\n```\n")
    return "\n".join(parts)
