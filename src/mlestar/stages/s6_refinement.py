"""Stage 6, refinement: an Optuna study around the plan, adopted only if it beats the baseline.

Trials train the planned model with sampled settings and report validation
accuracy every epoch, so the pruner stops hopeless trials early. The study
lives in ``study.db`` (SQLite) in the stage folder; the test split is never
read here. The adopted model and plan are written as ``model.pt`` and
``plan.json`` whichever wins, so stage 7 has one input.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

from mlestar.config.schema import ParamSpec, RefinementConfig
from mlestar.stages.common import DATASET_REF, checked_dataset, markdown_table
from mlestar.utils.io import atomic_write_json, atomic_write_text
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

PLAN_REF = "action_planning/plan.json"
BASE_METRICS_REF = "implementation/metrics.json"
BASE_MODEL_REF = "implementation/model.pt"


def suggest(trial: Any, name: str, spec: ParamSpec) -> Any:
    """Draw one parameter from the trial according to its spec."""
    if spec.type == "categorical":
        return trial.suggest_categorical(name, spec.choices)
    if spec.type == "int":
        return trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)
    return trial.suggest_float(name, float(spec.low), float(spec.high), log=spec.log)


def make_sampler(config: RefinementConfig, seed: int) -> Any:
    import optuna

    samplers = {"tpe": lambda: optuna.samplers.TPESampler(seed=seed),
                "random": lambda: optuna.samplers.RandomSampler(seed=seed),
                "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed)}
    return samplers[config.sampler]()


def make_pruner(config: RefinementConfig) -> Any:
    import optuna

    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


class Objective:
    """Trains one trial; keeps the best trial's model in memory for adoption."""

    def __init__(self, plan: dict[str, Any], train: Any, val: Any, config: RefinementConfig) -> None:
        self.plan, self.train, self.val, self.config = plan, train, val, config
        self.best_value, self.best_model, self.best_params = -1.0, None, {}

    def __call__(self, trial: Any) -> float:
        import optuna

        from mlestar.training import fit
        from mlestar.training.plan import build_model, spec_from_plan

        params = {name: suggest(trial, name, spec) for name, spec in self.config.search_space.items()}
        plan = {**self.plan, **params}
        epochs = self.config.epochs_per_trial or plan["epochs"]
        spec = spec_from_plan(plan, epochs=epochs)

        def report(epoch: int, row: dict[str, float]) -> None:
            trial.report(row["val_accuracy"], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        result = fit(build_model(plan), self.train, self.val, spec, on_epoch=report, tensorboard=False)
        value = max(row["val_accuracy"] for row in result.history)
        if value > self.best_value:
            self.best_value, self.best_model, self.best_params = value, result.model, params
        return value


@register_stage
class Refinement(Stage):
    """Stage 6: Optuna search, adoption decision, before/after comparison."""

    name = "refinement"
    title = "Refinement"
    config_paths = ("refinement", "data", "seed")
    inputs = (DATASET_REF, PLAN_REF, BASE_METRICS_REF, BASE_MODEL_REF)
    outputs = ("refinement.json", "before_after.md", "trials.csv", "model.pt", "plan.json")
    code_modules = ("mlestar.training", "mlestar.models", "mlestar.stages.common")

    def run(self, ctx: StageContext) -> StageResult:
        plan_doc = ctx.read_json(PLAN_REF)
        baseline = ctx.read_json(BASE_METRICS_REF)["val_accuracy"]
        config = ctx.config.refinement
        study_info: dict[str, Any] = {"trials": []}
        objective = None
        if config.enabled:
            objective, study_info = self._search(ctx, plan_doc["training"], config)
        adopted = objective is not None and objective.best_model is not None \
            and objective.best_value > baseline + config.min_improvement
        refined = objective.best_value if adopted else baseline
        self._write_adopted(ctx, plan_doc, objective if adopted else None)
        reason = (f"best trial {objective.best_value:.4f} vs baseline {baseline:.4f} "
                  f"(min improvement {config.min_improvement})" if objective else "refinement disabled")
        ctx.decide("adopt_refined_model", adopted, reason, params=objective.best_params if adopted else {})
        summary = {"baseline_val_accuracy": baseline, "refined_val_accuracy": refined, "adopted": adopted,
                   "reason": reason, "best_params": objective.best_params if objective else {}, **study_info}
        atomic_write_json(ctx.out_dir / "refinement.json", summary)
        atomic_write_text(ctx.out_dir / "trials.csv", trials_csv(study_info["trials"]))
        atomic_write_text(ctx.out_dir / "before_after.md", render_before_after(summary, plan_doc["training"]))
        completed = sum(t["state"] == "COMPLETE" for t in study_info["trials"])
        return StageResult(metrics={"refined_val_accuracy": refined, "refinement_improvement": refined - baseline,
                                    "trials_completed": float(completed)},
                           summary=f"{completed} trial(s) completed, "
                                   f"{sum(t['state'] == 'PRUNED' for t in study_info['trials'])} pruned; "
                                   f"{'adopted' if adopted else 'kept baseline'}: val {refined:.2%} "
                                   f"(baseline {baseline:.2%})")

    def _search(self, ctx: StageContext, plan: dict[str, Any], config: RefinementConfig
                ) -> tuple[Objective, dict[str, Any]]:
        import optuna
        import torch

        from mlestar.training import split_to_tensors

        dataset, prep = checked_dataset(ctx)
        device = torch.device(plan["device"])
        objective = Objective(plan, split_to_tensors(dataset.train, prep, device),
                              split_to_tensors(dataset.val, prep, device), config)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(study_name=f"{ctx.run_id}-refinement", direction="maximize",
                                    storage=f"sqlite:///{ctx.out_dir / 'study.db'}", load_if_exists=True,
                                    sampler=make_sampler(config, ctx.config.seed), pruner=make_pruner(config))
        started = time.time()
        def after_trial(study: Any, trial: Any) -> None:
            value = "" if trial.value is None else f" val {trial.value:.4f}"
            ctx.report(f"  trial {trial.number}: {trial.state.name.lower()}{value} {trial.params}")
            ctx.progress("refinement trials", len(study.trials), config.n_trials)

        study.optimize(objective, n_trials=config.n_trials, timeout=config.timeout, callbacks=[after_trial])
        trials = [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
                   "epochs": len(t.intermediate_values)} for t in study.trials]
        return objective, {"trials": trials, "study_seconds": time.time() - started, "storage": "study.db"}

    @staticmethod
    def _write_adopted(ctx: StageContext, plan_doc: dict[str, Any], objective: Objective | None) -> None:
        from mlestar.training import save_model_file
        from mlestar.training.plan import architecture

        if objective is None:
            shutil.copyfile(ctx.input(BASE_MODEL_REF), ctx.out_dir / "model.pt")
            atomic_write_json(ctx.out_dir / "plan.json", plan_doc)
            return
        plan = {**plan_doc["training"], **objective.best_params}
        dataset, prep = checked_dataset(ctx)
        save_model_file(ctx.out_dir / "model.pt", objective.best_model.cpu(), architecture=architecture(plan),
                        preprocessing=prep.to_dict(), class_names=list(dataset.class_names))
        atomic_write_json(ctx.out_dir / "plan.json", {**plan_doc, "training": plan,
                                                      "refined_params": objective.best_params})


def trials_csv(trials: list[dict[str, Any]]) -> str:
    """One row per trial: number, state, value, epochs, then each parameter."""
    names = sorted({key for t in trials for key in t["params"]})
    lines = [",".join(["number", "state", "value", "epochs", *names])]
    for t in trials:
        values = [str(t["number"]), t["state"], "" if t["value"] is None else f"{t['value']:.6f}", str(t["epochs"])]
        lines.append(",".join(values + [str(t["params"].get(n, "")) for n in names]))
    return "\n".join(lines) + "\n"


def render_before_after(summary: dict[str, Any], plan: dict[str, Any]) -> str:
    """``before_after.md``: baseline vs refined settings and validation accuracy."""
    params = summary["best_params"]
    rows = [[key, plan.get(key), params.get(key, plan.get(key))] for key in sorted(params)]
    rows.append(["val_accuracy", summary["baseline_val_accuracy"], summary["refined_val_accuracy"]])
    return (f"# Refinement: before / after (validation split)\n\n"
            f"{markdown_table(['setting', 'before (stage 4)', 'after (adopted)'], rows)}\n\n"
            f"Decision: {'adopted the refined model' if summary['adopted'] else 'kept the stage 4 model'} "
            f"({summary['reason']}).\n")
