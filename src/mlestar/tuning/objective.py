"""One trial: draw parameters, check the architecture against the constraints, train, report each epoch.

The objective is the best-epoch validation accuracy (the test split is never
loaded for tuning). Every epoch's validation accuracy goes to the pruner, which
may stop the trial (``TrialPruned``). Model size and batch-1 latency depend
only on the architecture, so they are checked on a freshly built model before
any training: a trial that breaks ``max_model_size`` or
``max_inference_latency`` is recorded as infeasible (user attributes
``feasible: false`` and ``violations``, Optuna constraints > 0) with value 0,
trains not at all, and can never be chosen as best.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any, Callable

from mlestar.errors import TrainingError
from mlestar.utils import faults
from mlestar.training.plan import TrainingPlan
from mlestar.tuning.job import TrialData, TuneJob
from mlestar.tuning.space import apply_params, suggest_params
from mlestar.tuning.trainer import train_plan

INFEASIBLE_VALUE = 0.0  # what an infeasible or diverged trial scores: below any model that learned
LATENCY_PROBE_SECONDS = 0.5  # "briefly": enough for a p95 of batch-1 passes on a small model
LATENCY_CONFIRMATIONS = 3  # probes before a latency violation stands: one busy moment must not condemn an architecture


def worker_identity() -> dict[str, Any]:
    """Host, pid and process start time: enough to tell later whether this process still runs."""
    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(), "started": round(psutil.Process().create_time(), 2)}


def trial_epochs(job: TuneJob, params: dict[str, Any]) -> int:
    """A drawn ``epochs`` wins; else the job's epochs per trial; else the plan's."""
    return int(params.get("epochs") or job.epochs or job.plan.epochs)


class Objective:
    """Callable for ``study.optimize``; holds the data and a cache of architecture checks."""

    def __init__(self, job: TuneJob, data: TrialData, report: Callable[[str], None] = lambda line: None) -> None:
        self.job, self.data, self.report = job, data, report
        self.specs = job.specs()
        self._checked: dict[str, dict[str, Any]] = {}

    def __call__(self, trial: Any) -> float:
        trial.set_user_attr("worker", worker_identity())
        # the trial is RUNNING in the storage and names its worker: where a test can stop or kill a worker
        faults.point("trial:running:-:before")
        params = {**self.job.fixed, **suggest_params(trial, self.specs)}
        plan = apply_params(self.job.plan, params, self.data.class_counts)
        trial.set_user_attr("plan_params", params)
        check = self.check(plan)
        record_feasibility(trial, check)
        if check["violations"]:
            return INFEASIBLE_VALUE
        try:
            result = train_plan(plan, self.data, epochs=trial_epochs(self.job, params),
                                on_epoch=pruning_callback(trial))
        except TrainingError as exc:  # diverged: a poor setting, not a broken search
            trial.set_user_attr("error", exc.message)
            return INFEASIBLE_VALUE
        return max(row["val_accuracy"] for row in result.history)

    def check(self, plan: TrainingPlan) -> dict[str, Any]:
        """Size, latency and violations of the plan's architecture (measured once per architecture)."""
        from mlestar.training.plan import architecture

        key = json.dumps(architecture(plan), sort_keys=True)
        if key not in self._checked:
            self._checked[key] = check_architecture(plan, self.job.constraints, self.data.input_shape)
        return self._checked[key]


def check_architecture(plan: TrainingPlan, limits: dict[str, float | None],
                       input_shape: tuple[int, int, int]) -> dict[str, Any]:
    """Size, latency (only when limited) and the constraint margins of a fresh model.

    Returns ``{"model_size", "latency_p95", "margins", "violations"}``: a
    margin is ``value / limit - 1`` (<= 0 is within the limit) per set limit.
    """
    from mlestar.evaluation.efficiency import measure_latency, model_size_bytes
    from mlestar.training.plan import build_model

    model = build_model(plan)
    values: dict[str, float] = {"max_model_size": float(model_size_bytes(model))}
    if limits.get("max_inference_latency"):
        values["max_inference_latency"] = confirmed_latency(
            lambda: measure_latency(model, input_shape, warmup=3, repeats=30, max_seconds=LATENCY_PROBE_SECONDS)["p95"],
            float(limits["max_inference_latency"]))
    margins = {name: values[name] / float(limit) - 1.0 for name, limit in limits.items()
               if limit and name in values}
    violations = [{"constraint": name, "value": values[name], "limit": limits[name]}
                  for name, margin in margins.items() if margin > 0]
    return {"model_size": values["max_model_size"], "latency_p95": values.get("max_inference_latency"),
            "margins": margins, "violations": violations}


def confirmed_latency(probe: Callable[[], float], limit: float) -> float:
    """The p95 latency of ``probe``, re-measured up to :data:`LATENCY_CONFIRMATIONS` times while over ``limit``.

    Other processes on the machine only ever add latency, so the lowest of the probes is the
    estimate of what the architecture costs; a violation is recorded only when every probe
    agrees. (Seen on a loaded 2-core machine: one 0.5 s probe over 20 ms marked the plan's own
    architecture, measured at 9 ms by stage 5, infeasible for a whole study.)
    """
    best = probe()
    for _ in range(LATENCY_CONFIRMATIONS - 1):
        if best <= limit:
            break
        best = min(best, probe())
    return best


def record_feasibility(trial: Any, check: dict[str, Any]) -> None:
    """User attributes for the trials table, and Optuna constraints so samplers steer away."""
    trial.set_user_attr("feasible", not check["violations"])
    trial.set_user_attr("violations", check["violations"])
    trial.set_user_attr("model_size", check["model_size"])
    trial.set_user_attr("latency_p95", check["latency_p95"])
    if hasattr(trial, "set_constraint"):  # Optuna >= 5: feasibility-aware best trial, TPE and dashboard
        for name, margin in check["margins"].items():
            trial.set_constraint(name, margin)


def pruning_callback(trial: Any) -> Callable[[int, dict[str, float]], None]:
    """Per-epoch hook for :func:`mlestar.training.fit`: report val accuracy, stop when the pruner says so."""
    import optuna

    def on_epoch(epoch: int, row: dict[str, float]) -> None:
        trial.report(row["val_accuracy"], epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"val accuracy {row['val_accuracy']:.4f} after epoch {epoch}")

    return on_epoch
