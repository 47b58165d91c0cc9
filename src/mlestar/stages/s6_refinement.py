"""Stage 6, refinement: an Optuna search around the plan, ablations, and a seeded before/after decision.

0. Budget (:mod:`mlestar.tuning.budget`): the whole stage gets
   ``refinement.budget_share`` x stage 4's measured training time. A retraining
   reserve (one full-length training, two when stage 4's model cannot be the
   "before") is set aside for the comparison and the search gets the rest; when
   the reserve does not fit, the search gets it all and its winner is only
   reported, and when not even two trials fit there is no search. Explicit
   ``timeout`` / ``compare_timeout`` replace the share's allotments. The budget
   and what was spent go to refinement.json and the audit trail.
   A recipe tuned at length by its author (airbench: ``training/recipes.py``)
   is searched only where it left settings open, unless
   ``refinement.search_tuned_recipe``; nothing left means no search.
1. Search (:mod:`mlestar.tuning.search`): the plan is the first trial (warm
   start); trials train the plan with drawn settings on the training split (or
   a share of it, for fewer epochs) and report validation accuracy every epoch
   to the pruner. ``pruner: auto`` is successive halving whose first rung is
   the first epoch stage 4's own curve shows informative
   (:mod:`mlestar.tuning.rungs`), or no pruning when no earlier epoch is.
   Architectures that break ``max_model_size`` or ``max_inference_latency`` are
   infeasible. The study lives in ``study.db`` here, a journal file, or a
   database that workers on other machines join (``tune_job.json``).
2. Ablation: the best configuration with one component off at a time, ranked
   by the accuracy lost; the most important component gets a focused search.
   A removal that *raised* accuracy beyond the validation sampling error is a
   finding: the best configuration without that component becomes the
   candidate when it measured higher than the best trial.
3. Before/after: the candidate and stage 4's configuration are retrained on
   the whole training split with their own epochs over several seeds (stage
   4's model is the first "before" seed when it is the same run: same seed,
   training split and data); the candidate is adopted only when its mean gain
   beats the seed noise and ``min_improvement``. The decision and its numbers
   go to the audit trail.

The test split is never read here. ``model.pt`` and ``plan.json`` hold the
adopted model and plan whichever side wins, so stage 7 has one input.
"""

from __future__ import annotations

import shutil
import time
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
HISTORY_REF = "implementation/history.json"


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
    budget: Any = None          # mlestar.tuning.budget.Budget
    rungs: Any = None           # mlestar.tuning.rungs.Rungs
    tuned: dict[str, Any] | None = None      # the tuned recipe and the settings dropped from the search
    reuse: dict[str, Any] | None = None      # whether stage 4's run is the first "before" seed, and why
    findings: list[dict[str, Any]] = field(default_factory=list)  # ablations that raised val beyond noise
    candidate: dict[str, Any] | None = None  # what the before/after compares: source, params, trial value
    spent: dict[str, float] = field(default_factory=dict)         # seconds: search, compare, total

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.search.rows if self.search else []

    @property
    def best_params(self) -> dict[str, Any]:
        return dict(self.search.best["params"]) if self.search and self.search.best else {}

    @property
    def refined_params(self) -> dict[str, Any]:
        """The candidate's settings: the best trial's, or those of an ablation that beat it."""
        return dict(self.candidate["params"]) if self.candidate else self.best_params

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
    inputs = (DATASET_REF, PLAN_REF, BASE_METRICS_REF, BASE_MODEL_REF, HISTORY_REF)
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
    """Budget, search, candidate, then compare it with the baseline over seeds and decide."""
    started = time.perf_counter()
    dataset, _ = checked_dataset(ctx)
    space = _prepare(ctx, plan, outcome, dataset)
    if space and outcome.budget.mode != "skip":
        data, job = _search(ctx, plan, outcome, space, dataset)
        _choose(ctx, plan, outcome, data, job, started)
    elif not space:
        outcome.reason = (f"kept the baseline: the tuned {plan.recipe} recipe fixes every setting of the search "
                          "space (refinement.search_tuned_recipe: true searches them)")
    else:
        outcome.reason = f"kept the baseline: no search fits the budget ({outcome.budget.reason})"
    outcome.spent["total"] = time.perf_counter() - started
    ctx.decide("refinement_time", round(outcome.spent["total"], 3), _spent_words(outcome), spent=outcome.spent,
               budget_seconds=outcome.budget.total)
    ctx.decide("adopt_refined_model", outcome.adopted, outcome.reason, params=outcome.refined_params,
               candidate=outcome.candidate,
               comparison=outcome.comparison.to_dict() if outcome.comparison else None)
    return outcome


def _prepare(ctx: StageContext, plan: TrainingPlan, outcome: Outcome, dataset: Any) -> dict[str, Any]:
    """Stage 4 reuse, the tuned recipe's space and the budget, each audited; returns the space to search."""
    from mlestar.tuning.budget import plan_budget
    from mlestar.tuning.compare import stage4_reuse

    config = ctx.config.refinement
    metrics = ctx.read_json(BASE_METRICS_REF)
    splits = ctx.read_json(DATASET_REF)["splits"]
    hashes = {name: splits[name]["hash"] for name in ("train", "val")}
    reused, why = stage4_reuse(metrics, seed=plan.seed, split_hashes=hashes, train_size=len(dataset.train))
    outcome.reuse = {"reused": reused, "reason": why}
    ctx.decide("stage4_is_before", reused, why)
    if reused:
        ctx.input(BASE_MODEL_REF)  # lineage: stage 4's model is the "before" side, whichever side wins
    space = _tuned_space(ctx, plan, outcome)
    outcome.budget = plan_budget(config, float(metrics.get("training_time", 0.0)), plan_epochs=plan.epochs,
                                 trial_epochs=config.epochs_per_trial or plan.epochs, reuse_before=reused)
    ctx.decide("refinement_budget", outcome.budget.mode, outcome.budget.reason, budget=outcome.budget.to_dict())
    return space


def _tuned_space(ctx: StageContext, plan: TrainingPlan, outcome: Outcome) -> dict[str, Any]:
    """The configured space, less what a tuned recipe fixed (unless the user opted out); audited either way."""
    from mlestar.training.recipes import tuned_settings
    from mlestar.tuning.space import untuned_space

    config = ctx.config.refinement
    if not tuned_settings(plan.recipe):
        return dict(config.search_space)
    kept, dropped = untuned_space(config.search_space, plan.recipe)
    if config.search_tuned_recipe:
        outcome.tuned = {"recipe": plan.recipe, "dropped": [], "kept": sorted(config.search_space)}
        ctx.decide("tuned_recipe", plan.recipe, f"searching the whole space ({', '.join(sorted(config.search_space))})"
                                                f" although the {plan.recipe} recipe fixed "
                                                f"{', '.join(dropped) or 'none of it'} "
                                                "(refinement.search_tuned_recipe: true)", dropped=[])
        return dict(config.search_space)
    outcome.tuned = {"recipe": plan.recipe, "dropped": dropped, "kept": sorted(kept)}
    left = f"searching only {', '.join(sorted(kept))}" if kept else "nothing is left to search"
    what = f"{', '.join(dropped)} left out of the search" if dropped else "the space holds none of what it fixed"
    ctx.decide("tuned_recipe", plan.recipe, f"the {plan.recipe} recipe was tuned at length by its author: "
                                            f"{what}; {left}", dropped=dropped)
    return kept


def _search(ctx: StageContext, plan: TrainingPlan, outcome: Outcome, space: dict[str, Any],
            dataset: Any) -> tuple[Any, Any]:
    """Choose the rungs, build the job with the budgeted timeout, and search; returns (trial data, job)."""
    from mlestar.tuning.job import build_job, trial_data, write_job
    from mlestar.tuning.rungs import choose_rungs
    from mlestar.tuning.search import search
    from mlestar.tuning.storage import resolve_storage
    from mlestar.training.runtime import configure_torch

    config = ctx.config.refinement
    trial_epochs = config.epochs_per_trial or plan.epochs
    outcome.rungs = choose_rungs(ctx.read_json(HISTORY_REF), pruner=config.pruner, num_classes=plan.num_classes,
                                 val_size=len(dataset.val), trial_epochs=trial_epochs,
                                 warmup_fraction=plan.setting("warmup_fraction") if plan.schedule == "triangular"
                                 else 0.0)
    ctx.decide("pruner", outcome.rungs.pruner, outcome.rungs.reason, rungs=outcome.rungs.to_dict())
    effective = config.model_copy(update={"search_space": space, "timeout": outcome.budget.search,
                                          "pruner": outcome.rungs.pruner})
    configure_torch(plan.num_threads, ctx.config.deterministic)
    job = build_job(ctx.config.model_copy(update={"refinement": effective}), plan, ctx.read_json(DATASET_REF),
                    study=study_name(ctx), storage=resolve_storage(config.storage, ctx.out_dir),
                    target_trials=config.n_trials, min_resource=outcome.rungs.min_resource or 1)
    write_job(job, ctx.out_dir)
    data = trial_data(job, dataset)
    outcome.job = job
    frozen = frozenset((outcome.tuned or {}).get("dropped", []))
    outcome.search = search(job, data, effective, log_dir=ctx.out_dir / "workers", report=ctx.report,
                            progress=ctx.progress, frozen=frozen)
    outcome.spent["search"] = outcome.search.seconds
    _record_search(ctx, outcome.search)
    return data, job


def _choose(ctx: StageContext, plan: TrainingPlan, outcome: Outcome, data: Any, job: Any, started: float) -> None:
    """The candidate (best trial, or an ablation finding that beat it), then the before/after when it fits."""
    from mlestar.tuning.ablation import ablation_findings
    from mlestar.tuning.space import param_changes

    outcome.findings = ablation_findings(outcome.search.ablation, len(data.val[1]))
    outcome.candidate = candidate(outcome.search.best, outcome.findings)
    if outcome.findings:
        top = outcome.findings[0]
        ctx.decide("ablation_candidate", top["component"], f"removing {top['component']} ({top['change']}) "
                   f"raised val accuracy by {top['gain']:+.4f}, beyond the sampling error {top['noise']:.4f}; "
                   f"candidate: {outcome.candidate['source']}", finding=top)
    if outcome.candidate is None:
        outcome.reason = "kept the baseline: no feasible trial completed"
    elif all(plan.setting(k) == v for k, v in outcome.refined_params.items()):
        outcome.reason = "kept the baseline: the best configuration is the plan itself"
    elif outcome.budget.mode == "search_only":
        outcome.reason = (f"kept the baseline: the best configuration ({outcome.candidate['source']}, "
                          f"{outcome.refined_params}) is only reported, its retraining does not fit the budget "
                          f"({outcome.budget.reason})")
    else:
        outcome.refined_changes = param_changes(outcome.refined_params, data.class_counts,
                                                f"refinement: {outcome.candidate['source']}")
        outcome.refined_plan = plan.apply(outcome.refined_changes)
        _compare(ctx, plan, outcome, data, job, time.perf_counter() - started)


def candidate(best: dict[str, Any] | None, findings: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What the before/after compares: the best trial, or the best trial without the component whose
    removal measured higher still (same fidelity, so the values rank)."""
    if best is None:
        return None
    chosen = {"source": f"best trial {best['number']} of study {best['study']}", "params": dict(best["params"]),
              "value": best["value"]}
    if findings and findings[0]["val_accuracy"] > best["value"]:
        top = findings[0]
        chosen = {"source": f"ablation: best trial {best['number']} without {top['component']} ({top['change']})",
                  "params": {**best["params"], **top["params"]}, "value": top["val_accuracy"],
                  "removed": top["component"]}
    return chosen


def _spent_words(outcome: Outcome) -> str:
    """The time spent against the budget, in words."""
    total = outcome.budget.total if outcome.budget else None
    parts = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in outcome.spent.items())
    return f"spent {parts}" + (f" of a {total:.0f}s budget" if total is not None else " (no time budget)")


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


def _compare(ctx: StageContext, plan: TrainingPlan, outcome: Outcome, data: Any, job: Any, spent: float) -> None:
    """Seeded before/after on the whole training split within what is left of the budget, then the adoption rule."""
    from mlestar.tuning.compare import compare, decide

    config = ctx.config.refinement
    started = time.perf_counter()
    reused = bool(outcome.reuse and outcome.reuse["reused"])
    outcome.comparison = compare(plan, outcome.refined_plan or plan, outcome.baseline_val if reused else None,
                                 data, job, seeds=config.seeds, budget=outcome.budget.compare_seconds(spent),
                                 max_seconds=ctx.config.constraints.max_training_time,
                                 work_dir=ctx.out_dir / "retrain", report=ctx.report,
                                 progress=lambda done, total: ctx.progress("before/after retraining", done, total))
    outcome.spent["compare"] = time.perf_counter() - started
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
    return plan_doc.apply(outcome.refined_changes).model_copy(update={"refined_params": outcome.refined_params})


def write_reports(ctx: StageContext, plan: TrainingPlan, outcome: Outcome) -> None:
    """Trials table and plots, ablation table and chart, before/after table, refinement.json."""
    from mlestar.tuning.plots import plot_ablation
    from mlestar.tuning.report import write_results

    search = outcome.search
    write_results(outcome.rows, ctx.out_dir, search.importance if search else ("refinement disabled", {}),
                  baseline=outcome.baseline_val)
    ablation = search.ablation if search else []
    atomic_write_text(ctx.out_dir / "ablation.md", render_ablation(ablation, search.focus if search else None,
                                                                   outcome.findings))
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
            "worker_command": worker_command(job) if job else None,
            "candidate": outcome.candidate, "ablation_findings": outcome.findings,
            "budget": outcome.budget.to_dict() if outcome.budget else None, "spent_seconds": outcome.spent,
            "pruner": outcome.rungs.to_dict() if outcome.rungs else None, "tuned_recipe": outcome.tuned,
            "stage4_reuse": outcome.reuse}


def render_ablation(rows: list[dict[str, Any]], focus: dict[str, Any] | None,
                    findings: list[dict[str, Any]] | None = None) -> str:
    """``ablation.md``: components ranked by the validation accuracy lost without them, then the findings."""
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
            f"{table}\n\n{focus_line}\n\n{render_findings(findings)}")


def render_findings(findings: list[dict[str, Any]] | None) -> str:
    """The ablations that raised val accuracy beyond the sampling error: candidates for the before/after."""
    if not findings:
        return "Findings: no removal raised val accuracy beyond the validation sampling error.\n"
    lines = [f"- removing **{f['component']}** ({f['change']}): val {f['reference']:.4f} -> {f['val_accuracy']:.4f} "
             f"({f['gain']:+.4f}, beyond the sampling error {f['noise']:.4f})" for f in findings]
    return ("Findings: components whose removal raised val accuracy beyond the sampling error; the best trial "
            "without the first is a candidate for the before/after comparison.\n\n" + "\n".join(lines) + "\n")


def render_before_after(plan: TrainingPlan, outcome: Outcome) -> str:
    """``before_after.md``: settings, per-seed validation accuracy, the decision, how to look at the study."""
    params = outcome.refined_params
    rows = [[key, plan.setting(key), value] for key, value in sorted(params.items())]
    removed = (outcome.candidate or {}).get("removed")
    after = f"after (best trial without {removed})" if removed else "after (best trial)"
    parts = ["# Refinement: before / after (validation split)\n",
             markdown_table(["setting", "before (stage 3 plan)", after], rows) if rows else
             "No refined configuration.", "", *_context_lines(outcome)]
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


def _context_lines(outcome: Outcome) -> list[str]:
    """Budget and time spent, the tuned recipe, and whether stage 4's run is the "before", one line each."""
    lines = []
    if outcome.budget is not None:
        lines.append(f"Budget: {outcome.budget.reason}; {_spent_words(outcome)}.\n")
    if outcome.tuned is not None:
        dropped = ", ".join(outcome.tuned["dropped"]) or "nothing (refinement.search_tuned_recipe: true)"
        lines.append(f"Tuned recipe: {outcome.tuned['recipe']}; left out of the search: {dropped}.\n")
    if outcome.reuse is not None:
        lines.append(f"Before side: {outcome.reuse['reason']}.\n")
    return lines
