"""Stage 6 for tables: search, ensemble, ablations, and a seeded before/after comparison.

The baseline is stage 5's model (stage 4's fit with its chosen threshold),
reused as the "before" side for its seed. The best trial and the ensemble of
the best distinct trials are candidates; the one adopted must beat the
baseline on validation by more than the seed-to-seed noise. Writes the
adopted ``model.joblib`` and ``plan.json`` (the baseline's when it is kept).
"""

from __future__ import annotations

import functools
from typing import Any

from mlestar.stages.common import Steps, markdown_table
from mlestar.stages.tables.common import DATASET_REF, checked_dataset, n_jobs
from mlestar.utils.io import atomic_write_json, atomic_write_text
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

PLAN_REF = "action_planning/plan.json"
BASE_MODEL_REF = "evaluation/model.joblib"
STEPS_LABEL = "refinement: search, seeded refits, ensemble, ablations"
TRIALS_LABEL = "refinement trials"
BASELINE_SEEDS_LABEL = "refinement: baseline refits over seeds"
BEST_SEEDS_LABEL = "refinement: best trial refits over seeds"
ENSEMBLE_LABEL = "refinement: ensemble fits over seeds"
ABLATIONS_LABEL = "ablations"


def _seeds(seed: int, count: int) -> list[int]:
    return [seed + i for i in range(count)]


def render(result: dict[str, Any]) -> str:
    """``before_after.md``: the candidates over seeds, the decision, and the ablations."""
    rows = [[c["name"], f"{c['mean']:.5f}", f"{c['std']:.5f}", ", ".join(f"{s:.4f}" for s in c["scores"])]
            for c in result["candidates"]]
    ablation = markdown_table(["dropped group", "columns", f"val {result['score']}", "change"],
                              [[a["group"], ", ".join(a["columns"][:6]), f"{a['score']:.5f}", f"{a['change']:+.5f}"]
                               for a in result["ablations"]]) if result["ablations"] else "No column groups to ablate."
    return (f"# Refinement: before and after\n\nValidation {result['score']} over seeds {result['seeds']}.\n\n"
            f"{markdown_table(['candidate', 'mean', 'std', 'per seed'], rows)}\n\n"
            f"**Adopted: {result['adopted']}**: {result['reason']}\n\n"
            f"Search: {result['search']['completed']} complete and {result['search']['pruned']} pruned trial(s) "
            f"in {result['search']['seconds']:.1f}s.\n\n## Ablations\n\n{ablation}\n")


@register_stage
class TableRefinement(Stage):
    """Stage 6 (tables): refinement that must earn its place."""

    name = "refinement"
    domain = "tables"
    title = "Refinement"
    config_paths = ("refinement", "tables", "task.primary_metric", "seed")
    inputs = (DATASET_REF, PLAN_REF, BASE_MODEL_REF)
    outputs = ("refinement.json", "before_after.md", "trials.csv", "model.joblib", "plan.json",
               "optimization_history.png")
    uses_torch = False

    def run(self, ctx: StageContext) -> StageResult:
        from mlestar.domains.tables.model import load_model
        from mlestar.domains.tables.plan import TablePlan
        from mlestar.domains.tables.scoring import primary_score_name

        dataset = checked_dataset(ctx)
        plan = TablePlan.model_validate(ctx.read_json(PLAN_REF))
        baseline_model = load_model(ctx.input(BASE_MODEL_REF))
        score = primary_score_name(ctx.config.task.primary_metric, plan.task)
        if not ctx.config.refinement.enabled:
            return self._keep(ctx, baseline_model, plan, score, "refinement.enabled is false")
        result, model, adopted_plan = self._refine(ctx, dataset, plan, baseline_model, score)
        return self._finish(ctx, result, model, adopted_plan)

    def _refine(self, ctx: StageContext, dataset: Any, plan: Any, baseline_model: Any, score: str
                ) -> tuple[dict[str, Any], Any, Any]:
        from mlestar.domains.tables import refine

        cfg, jobs = ctx.config.refinement, n_jobs(ctx.config)
        seeds = _seeds(ctx.config.seed, cfg.seeds)
        steps = Steps(ctx, STEPS_LABEL, 4)
        search = refine.run_search(plan, dataset, score=score, n_trials=cfg.n_trials, timeout=cfg.timeout,
                                   storage=f"sqlite:///{ctx.out_dir / 'study.db'}",
                                   study_name=cfg.study_name or f"{ctx.run_id}-refinement", pruner=cfg.pruner,
                                   n_jobs=jobs, warmup_rounds=refine.warmup_rounds(baseline_model),
                                   on_trial=functools.partial(ctx.progress, TRIALS_LABEL))
        steps.advance()
        candidates = _candidates(ctx, dataset, plan, baseline_model, score, search, seeds)
        steps.advance()
        candidates += _ensemble(ctx, dataset, plan, score, search, seeds)
        steps.advance()
        winner, reason = self._choose(ctx, candidates[0], candidates[1:], score, dataset)
        ablation = refine.ablations(winner.plan or plan, dataset, score, winner.scores[0], n_jobs=jobs,
                                    on_group=functools.partial(ctx.progress, ABLATIONS_LABEL)) \
            if cfg.ablation else []
        steps.finish()
        result = {"score": score, "seeds": seeds, "adopted": winner.name, "reason": reason,
                  "candidates": [{"name": c.name, "scores": c.scores, "mean": c.mean, "std": c.std}
                                 for c in candidates],
                  "baseline_mean": candidates[0].mean, "noise": max(c.std for c in candidates),
                  "search": {"completed": search.completed, "pruned": search.pruned, "seconds": search.seconds,
                             "best_params": search.best_params, "best_value": search.best_value,
                             "trials": search.trials}, "ablations": ablation}
        refine.save_trials_csv(search.trials, ctx.out_dir / "trials.csv")
        return result, winner.model, winner.plan

    @staticmethod
    def _choose(ctx: StageContext, base: Any, challengers: list[Any], score: str, dataset: Any) -> tuple[Any, str]:
        from mlestar.domains.tables import refine

        best, reason = base, ("no candidate beat the baseline by more than the noise (seed to seed, and over "
                              "bootstrap resamples of the validation rows)")
        for challenger in challengers:
            wins, improvement, noise = refine.adopt(best, challenger, score, dataset, seed=ctx.config.seed)
            ctx.decide("candidate", challenger.name, f"mean gain {improvement:+.5f} against noise {noise:.5f}",
                       adopted=wins)
            if wins:
                best, reason = challenger, f"{challenger.name}: mean gain {improvement:+.5f} > noise {noise:.5f}"
        return best, reason

    def _keep(self, ctx: StageContext, model: Any, plan: Any, score: str, why: str) -> StageResult:
        result = {"score": score, "seeds": [], "adopted": "baseline (stage 4 plan)", "reason": why,
                  "candidates": [], "baseline_mean": None, "noise": 0.0, "ablations": [],
                  "search": {"completed": 0, "pruned": 0, "seconds": 0.0, "trials": []}}
        from mlestar.domains.tables import refine

        refine.save_trials_csv([], ctx.out_dir / "trials.csv")
        return self._finish(ctx, result, model, plan)

    def _finish(self, ctx: StageContext, result: dict[str, Any], model: Any, plan: Any) -> StageResult:
        from mlestar.domains.tables.evaluate import pick_threshold
        from mlestar.domains.tables.scoring import LOWER_IS_BETTER
        from mlestar.domains.tables.trainplots import plot_history

        dataset = checked_dataset(ctx)
        if result["adopted"] != "baseline (stage 4 plan)" and model.task == "binary":
            model.threshold, why = pick_threshold(dataset.val[dataset.target].to_numpy(),
                                                  model.predict_proba(dataset.val)[:, 1])
            ctx.decide("decision_threshold", model.threshold, f"adopted model: {why}")
        model.save(ctx.out_dir / "model.joblib")
        atomic_write_json(ctx.out_dir / "plan.json", plan.model_dump(mode="json"))
        atomic_write_json(ctx.out_dir / "refinement.json", result)
        atomic_write_text(ctx.out_dir / "before_after.md", render(result))
        plot_history([t["value"] for t in result["search"]["trials"]], ctx.out_dir / "optimization_history.png",
                     metric=result["score"], higher_is_better=result["score"] not in LOWER_IS_BETTER)
        ctx.decide("adopt", result["adopted"], result["reason"])
        return StageResult(metrics=self._metrics(result), summary=f"adopted {result['adopted']}: {result['reason']}")

    @staticmethod
    def _metrics(result: dict[str, Any]) -> dict[str, float | None]:
        from mlestar.domains.tables.scoring import gain

        by_name = {c["name"]: c for c in result["candidates"]}
        adopted = by_name.get(result["adopted"])
        base = result["baseline_mean"]
        challengers = [c for c in result["candidates"] if c["name"] != "baseline (stage 4 plan)"]
        best = max((gain(result["score"], c["mean"], base) for c in challengers), default=0.0) if base is not None \
            else 0.0
        improvement = gain(result["score"], adopted["mean"], base) if adopted and base is not None else 0.0
        return {"refined_val_score": adopted["mean"] if adopted else base,
                "refinement_improvement": improvement, "refinement_regression": max(0.0, -best),
                "refinement_noise": result["noise"], "trials_completed": float(result["search"]["completed"]),
                "trials_pruned": float(result["search"]["pruned"])}


def _candidates(ctx: StageContext, dataset: Any, plan: Any, baseline_model: Any, score: str, search: Any,
                seeds: list[int]) -> list[Any]:
    """The baseline over ``seeds`` (seed 0 is stage 4's own model, reused), then the best trial's plan."""
    from mlestar.domains.tables import refine

    jobs = n_jobs(ctx.config)
    base = refine.Candidate("baseline (stage 4 plan)", [refine.val_score(baseline_model, dataset, score)],
                            baseline_model, plan)
    if len(seeds) > 1:
        base.scores += refine.seeded_scores(plan, dataset, score, seeds[1:], jobs,
                                            on_seed=functools.partial(ctx.progress, BASELINE_SEEDS_LABEL))[0]
    if not search.best_params:
        return [base]
    best_plan = plan.with_changes(params={**plan.params, **search.best_params})
    values, model = refine.seeded_scores(best_plan, dataset, score, seeds, jobs,
                                         on_seed=functools.partial(ctx.progress, BEST_SEEDS_LABEL))
    return [base, refine.Candidate("best trial", values, model, best_plan)]


def _ensemble(ctx: StageContext, dataset: Any, plan: Any, score: str, search: Any, seeds: list[int]) -> list[Any]:
    """The soft-voting ensemble of the best distinct trials, fitted once per seed (none when off or too few)."""
    from mlestar.domains.tables import refine

    members = refine.distinct_best(search, score)
    if not (ctx.config.tables.ensemble and len(members) >= 2):
        return []
    models = []
    ctx.progress(ENSEMBLE_LABEL, 0, len(seeds))
    for seed in seeds:
        models.append(refine.ensemble_model(plan, members, dataset, seed=seed, n_jobs=n_jobs(ctx.config)))
        ctx.progress(ENSEMBLE_LABEL, len(models), len(seeds))
    return [refine.Candidate(f"soft-voting ensemble of {len(members)} trials",
                             [refine.val_score(m, dataset, score) for m in models], models[0], plan,
                             {"members": members})]
