"""The search space at trial time: draw order, conditions, and a trial's parameters applied to a plan.

The config validates a space once (:mod:`mlestar.config.schema`: known
parameters, ranges, conditions without cycles); here a trial draws it. A
parameter with ``when`` is drawn only after the parameters it names, and only
when they took one of the listed values; otherwise the plan's value stands and
the parameter is absent from the trial's ``params``, which is what Optuna's
samplers expect of a conditional space.
"""

from __future__ import annotations

from typing import Any, Mapping

from mlestar.config.schema import ParamSpec
from mlestar.training.plan import PlanChange, TrainingPlan, balanced_class_weights


def draw_order(space: Mapping[str, ParamSpec]) -> list[str]:
    """Parameter names, each after every parameter its ``when`` names (the config rules out cycles).

    Otherwise alphabetical, whatever order the config wrote them in: a seeded sampler's draws
    depend on the order of the calls, and a run's saved config (sorted keys) must draw what
    the YAML did, or ``mlestar reproduce`` searches different trials.
    """
    order: list[str] = []

    def place(name: str) -> None:
        if name not in order:
            for other in space[name].when or {}:
                place(other)
            order.append(name)

    for name in sorted(space):
        place(name)
    return order


def is_active(spec: ParamSpec, drawn: Mapping[str, Any]) -> bool:
    """True when every condition of ``spec`` holds for the values drawn so far."""
    return all(name in drawn and drawn[name] in values for name, values in (spec.when or {}).items())


def suggest(trial: Any, name: str, spec: ParamSpec) -> Any:
    """Draw one parameter from an Optuna trial according to its spec."""
    if spec.type == "categorical":
        return trial.suggest_categorical(name, list(spec.choices or []))
    if spec.type == "int":
        return trial.suggest_int(name, int(spec.low or 0), int(spec.high or 0), log=spec.log)
    return trial.suggest_float(name, float(spec.low or 0.0), float(spec.high or 0.0), log=spec.log)


def suggest_params(trial: Any, space: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Draw every active parameter, conditions first; inactive ones are left out."""
    drawn: dict[str, Any] = {}
    for name in draw_order(space):
        if is_active(space[name], drawn):
            drawn[name] = suggest(trial, name, space[name])
    return drawn


def space_to_json(space: Mapping[str, ParamSpec]) -> dict[str, dict[str, Any]]:
    """The space as plain JSON (for job files and the study's stored signature)."""
    return {name: spec.model_dump(mode="json", exclude_none=True) for name, spec in space.items()}


def space_from_json(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, ParamSpec]:
    """Inverse of :func:`space_to_json`."""
    return {name: ParamSpec.model_validate(dict(spec)) for name, spec in raw.items()}


def is_continuous(space: Mapping[str, ParamSpec]) -> bool:
    """True when CMA-ES can search the space: float/int only, nothing conditional."""
    return all(spec.type != "categorical" and not spec.when for spec in space.values())


def param_changes(params: Mapping[str, Any], class_counts: list[int], reason: str) -> list[PlanChange]:
    """A trial's parameters as typed plan changes, each with ``reason``.

    ``class_weighting`` is a plan choice, but training reads the weights:
    ``balanced`` also sets them from ``class_counts``, ``none`` unsets them.

    Raises:
        PlanError: a parameter that is not a plan setting, or a value it cannot take.
    """
    changes = [PlanChange(name, value, reason) for name, value in params.items()]
    if "class_weighting" in params:
        weights = balanced_class_weights(class_counts) if params["class_weighting"] == "balanced" else None
        changes.append(PlanChange("class_weights", weights, reason))
    return changes


def apply_params(plan: TrainingPlan, params: Mapping[str, Any], class_counts: list[int]) -> TrainingPlan:
    """A new plan with a trial's parameters in it (``plan`` itself is frozen; see :func:`param_changes`)."""
    return plan.apply(param_changes(params, class_counts, "trial parameters"))


def untuned_space(space: Mapping[str, ParamSpec], recipe: str) -> tuple[dict[str, ParamSpec], list[str]]:
    """(the space less the settings ``recipe``'s author tuned at length, the names dropped, sorted).

    See :data:`mlestar.training.recipes.TUNED_SETTINGS`; a recipe that is not tuned drops nothing.
    """
    from mlestar.training.recipes import tuned_settings

    fixed = tuned_settings(recipe)
    return {name: spec for name, spec in space.items() if name not in fixed}, sorted(set(space) & fixed)
