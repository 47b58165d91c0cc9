"""Diagnose a failed gate and choose the remedy that can fix it.

The diagnosis reads the run's metrics: a gate on size or latency means the
model is too large or too slow; a gate on training time means the plan is
over budget; an accuracy gate is overfitting when train accuracy exceeds
validation accuracy by more than :data:`OVERFIT_GAP`, underfitting otherwise.
Each diagnosis has remedies in order of preference; the first one allowed by
the config and not yet tried on this gate is chosen (then they cycle).

A remedy is a pure function of the (frozen) training plan that returns typed
changes (:class:`~mlestar.training.plan.PlanChange`: setting, value, reason);
the planner applies them, so the new plan is an artifact like any other and
each changed setting records the remedy as its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mlestar.config.catalog import METRICS, suggest
from mlestar.errors import PlanError
from mlestar.training.plan import PlanChange, TrainingPlan
from mlestar.workflow.gates import GateOutcome

OVERFIT_GAP = 0.05  # train - val accuracy above this is overfitting, not underfitting

_SIZE_METRICS = {"model_size", "num_params", "planned_params", "bundle_size", "peak_memory"}
_SPEED_METRICS = {"latency_p50", "latency_p95", "deploy_latency_p95", "throughput"}
_TIME_METRICS = {"training_time", "planned_training_time", "estimated_epoch_time"}
_LENGTH_METRICS = {"epochs_completed"}

_PREFERENCES: dict[str, tuple[str, ...]] = {
    "too_large": ("simplify_model",),
    "too_slow": ("simplify_model", "reduce_batch_size"),
    "over_time_budget": ("reduce_epochs", "mixed_precision", "simplify_model"),
    "undertrained": ("increase_epochs",),
    "data_quality": (),  # no training change fixes the data: such a gate fails the run at once
    "overfitting": ("add_regularization", "add_augmentation", "simplify_model"),
    "underfitting": ("increase_epochs", "raise_learning_rate", "grow_model", "lower_learning_rate"),
}


@dataclass(frozen=True)
class Diagnosis:
    """Why a gate failed, in one word (``kind``) and one sentence (``evidence``)."""

    kind: str
    evidence: str


def diagnose(outcome: GateOutcome, metrics: dict[str, Any]) -> Diagnosis:
    """Classify a failed gate from the metrics the run has so far."""
    metric = outcome.metric
    if METRICS[metric].stage == "situation_analysis":
        return Diagnosis("data_quality", f"{metric} describes the data; fix the data and run again")
    if metric in _SIZE_METRICS:
        return Diagnosis("too_large", f"{metric} is over its limit")
    if metric in _SPEED_METRICS:
        return Diagnosis("too_slow", f"{metric} misses its limit")
    if metric in _TIME_METRICS:
        return Diagnosis("over_time_budget", f"{metric} is over budget")
    if metric in _LENGTH_METRICS:
        return Diagnosis("undertrained", f"{metric} is below the required number")
    train, val = metrics.get("train_accuracy"), metrics.get("val_accuracy")
    if METRICS[metric].higher_is_better and train is not None and val is not None and train - val > OVERFIT_GAP:
        return Diagnosis("overfitting", f"train accuracy {train:.3f} exceeds val accuracy {val:.3f} "
                                        f"by more than {OVERFIT_GAP}")
    detail = f" (train {train:.3f}, val {val:.3f})" if train is not None and val is not None else ""
    return Diagnosis("underfitting", f"{metric} below target without a train/val gap{detail}")


def choose_remedy(diagnosis: Diagnosis, allowed: list[str], tried: list[str]) -> str | None:
    """First preferred remedy allowed and untried; else the least-tried allowed one; else None."""
    candidates = [r for r in _PREFERENCES[diagnosis.kind] if r in allowed]
    if not candidates:
        return None
    for remedy in candidates:
        if remedy not in tried:
            return remedy
    return min(candidates, key=tried.count)


# A remedy reads the plan and returns the settings it changes; the planner applies them (``reason``: why).
Remedy = Callable[[TrainingPlan, str], list[PlanChange]]


def _scale(field: str, factor: float, *, low: float | None = None, high: float | None = None,
           integer: bool = False) -> Remedy:
    """A remedy multiplying one numeric setting by ``factor``, clamped to ``[low, high]``."""
    def changes(plan: TrainingPlan, reason: str) -> list[PlanChange]:
        new = plan.setting(field) * factor
        new = max(low, new) if low is not None else new
        new = min(high, new) if high is not None else new
        return [PlanChange(field, int(round(new)) if integer else new, reason)]
    return changes


def _regularize(plan: TrainingPlan, reason: str) -> list[PlanChange]:
    """Double weight decay (5e-4 from none, at most 0.05) and add 0.1 label smoothing (at most 0.3)."""
    return [PlanChange("weight_decay", min(plan.weight_decay * 2 if plan.weight_decay else 5e-4, 0.05), reason),
            PlanChange("label_smoothing", min(plan.label_smoothing + 0.1, 0.3), reason)]


def _augment(plan: TrainingPlan, reason: str) -> list[PlanChange]:
    """Translation when there is none; flips too where they keep the label."""
    old = plan.augmentation
    # Flips change a digit's meaning; translation is safe for every image kind.
    new = "translate" if old == "none" else "flip_translate" if plan.flip_safe else old
    return [PlanChange("augmentation", new, reason)]


def _mixed_precision(plan: TrainingPlan, reason: str) -> list[PlanChange]:
    """bf16 autocast."""
    return [PlanChange("precision", "bf16", reason)]


REMEDY_FUNCTIONS: dict[str, Remedy] = {
    "increase_epochs": _scale("epochs", 2, high=1000, integer=True),
    "reduce_epochs": _scale("epochs", 0.5, low=1, integer=True),
    "raise_learning_rate": _scale("learning_rate", 2, high=2.0),
    "lower_learning_rate": _scale("learning_rate", 0.5),
    "simplify_model": _scale("width", 0.5, low=2, integer=True),
    "grow_model": _scale("width", 2, high=1024, integer=True),
    "reduce_batch_size": _scale("batch_size", 0.5, low=1, integer=True),
    "add_regularization": _regularize,
    "add_augmentation": _augment,
    "mixed_precision": _mixed_precision,
}


def remedy_changes(plan: TrainingPlan, remedy: str, reason: str) -> list[PlanChange]:
    """The settings ``remedy`` changes in ``plan``, each with ``reason``; the plan itself is not changed.

    Raises:
        PlanError: ``remedy`` is not a known remedy.
    """
    if remedy not in REMEDY_FUNCTIONS:
        raise PlanError(f"unknown remedy {remedy!r}{suggest(remedy, list(REMEDY_FUNCTIONS))}",
                        hint=f"remedies: {', '.join(REMEDY_FUNCTIONS)}")
    return REMEDY_FUNCTIONS[remedy](plan, reason)
