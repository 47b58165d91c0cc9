"""Ablations: which component of the best configuration earns its accuracy, and where to search next.

Starting from the best trial's configuration, each component that is on is
switched off or reset, one at a time (augmentation -> none, label smoothing
-> 0, schedule -> constant, lookahead off, class weighting off, width halved),
and trained with the trial settings (same epochs, training subset and seed), so
the best trial's own value is the reference. The impact of a component is
reference minus ablated validation accuracy: positive when it helps. The
component with the largest positive impact that has parameters to vary gets
the focused search: its parameters are searched (the configured spec where the
search space has one, else a range around the best value) with everything else
held at the best configuration.

A component whose removal *raises* validation accuracy beyond the sampling
error of one measurement on the validation split (``sqrt(p(1 - p) / n)``, as
the before/after rule uses) is a finding, not noise: the best configuration
without it becomes a candidate for the before/after comparison
(:func:`ablation_findings`). On the digits default, removing augmentation once
took validation from 96.5% to 99.3% and the run kept the plan.

Settings a tuned recipe fixed (``frozen``) are neither ablated nor searched.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from mlestar.config.schema import TUNABLE, ParamSpec
from mlestar.errors import TrainingError
from mlestar.training.plan import TrainingPlan
from mlestar.tuning.job import TrialData, TuneJob
from mlestar.tuning.objective import INFEASIBLE_VALUE, trial_epochs
from mlestar.tuning.space import apply_params
from mlestar.tuning.trainer import train_plan

HALF = "half"  # marker: the off value is half the current one


@dataclass(frozen=True)
class Component:
    """A part of a configuration that can be switched off.

    Attributes:
        name: shown in tables and charts.
        key: the plan setting that switches it.
        off: the value that switches it off (``HALF``: half the current value).
        params: what a focused search over this component varies.
    """

    name: str
    key: str
    off: Any
    params: tuple[str, ...]


COMPONENTS: tuple[Component, ...] = (
    Component("augmentation", "augmentation", "none", ("augmentation", "translate_pad")),
    Component("label_smoothing", "label_smoothing", 0.0, ("label_smoothing",)),
    Component("schedule", "schedule", "constant", ("schedule", "learning_rate", "warmup_fraction")),
    Component("lookahead", "lookahead_every", 0, ("lookahead_every", "lookahead_alpha")),
    Component("class_weighting", "class_weighting", "none", ("class_weighting",)),
    Component("width", "width", HALF, ("width",)),
)


def off_value(component: Component, plan: TrainingPlan) -> Any:
    """The value that switches ``component`` off in ``plan``."""
    return int(plan.setting(component.key)) // 2 if component.off == HALF else component.off


def is_on(component: Component, plan: TrainingPlan) -> bool:
    """True when switching the component off would change what trains (a width of 4 cannot halve)."""
    current = plan.setting(component.key)  # an unset recipe field counts as TrainSpec's default (lookahead: 0)
    if component.off == HALF:
        return int(current) // 2 >= TUNABLE["width"].low
    return current != component.off


def run_ablation(job: TuneJob, data: TrialData, best_params: dict[str, Any], best_value: float, *,
                 deadline: float | None = None, report: Callable[[str], None] = lambda line: None,
                 progress: Callable[[int, int], None] = lambda done, total: None,
                 frozen: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Train the best configuration with each component off; rows ranked by impact (largest first).

    Components left when ``deadline`` (epoch seconds) passes are not trained, nor
    those whose switch is in ``frozen`` (a tuned recipe's settings).
    ``progress(done, total)`` follows the ablations; it ends at ``done == total`` either way.
    """
    best_plan = apply_params(job.plan, best_params, data.class_counts)
    todo = [component for component in COMPONENTS if is_on(component, best_plan) and component.key not in frozen]
    rows = []
    for component in todo:
        if deadline is not None and time.time() >= deadline:
            report(f"  ablation: time budget spent before {component.name}")
            break
        rows.append(_ablate(component, best_plan, job, data, best_params, best_value))
        report(f"  ablation {rows[-1]['change']}: val {rows[-1]['val_accuracy']:.4f} "
               f"(impact {rows[-1]['impact']:+.4f})")
        progress(len(rows), len(todo))
    progress(len(todo), len(todo))
    rows.sort(key=lambda row: -row["impact"])
    return [{**row, "rank": rank} for rank, row in enumerate(rows, 1)]


def _ablate(component: Component, best_plan: TrainingPlan, job: TuneJob, data: TrialData,
            best_params: dict[str, Any], best_value: float) -> dict[str, Any]:
    """One ablation run and its table row."""
    off = off_value(component, best_plan)
    plan = apply_params(best_plan, {component.key: off}, data.class_counts)
    started = time.perf_counter()
    try:
        result = train_plan(plan, data, epochs=trial_epochs(job, best_params))
        value, error = max(row["val_accuracy"] for row in result.history), None
    except TrainingError as exc:  # the setting diverges without this component: it matters
        value, error = INFEASIBLE_VALUE, exc.message
    before = _show(best_plan.setting(component.key))
    return {"component": component.name, "change": f"{component.key}: {before} -> {off}",
            "setting": component.key, "off": off,
            "reference": best_value, "val_accuracy": value, "impact": best_value - value,
            "seconds": time.perf_counter() - started, "error": error}


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def ablation_findings(rows: list[dict[str, Any]], val_size: int) -> list[dict[str, Any]]:
    """Ablations whose removal raised val accuracy beyond one validation sampling error; best first.

    Each returned row gains ``gain`` (ablated minus reference), ``noise`` (the
    sampling error at the reference's accuracy on ``val_size`` images) and
    ``params`` (the setting that removes the component, to lay over the best
    trial's). Rows without ``setting`` (cached by an older version) are skipped.
    """
    found = []
    for row in rows:
        p = min(max(float(row["reference"]), 0.0), 1.0)
        noise = math.sqrt(p * (1 - p) / val_size) if val_size else 0.0
        if "setting" in row and not row.get("error") and -row["impact"] > noise:
            found.append({**row, "gain": -row["impact"], "noise": noise, "params": {row["setting"]: row["off"]}})
    return sorted(found, key=lambda row: -row["gain"])


def focus_target(rows: list[dict[str, Any]], plan: TrainingPlan, configured: dict[str, ParamSpec],
                 frozen: frozenset[str] = frozenset()) -> tuple[str, dict[str, ParamSpec]] | None:
    """The component to search next and its space: the largest positive impact with parameters to vary."""
    by_name = {c.name: c for c in COMPONENTS}
    for row in rows:
        if row["impact"] <= 0:
            break
        space = focus_space(by_name[row["component"]], plan, configured, frozen)
        if space:
            return row["component"], space
    return None


def focus_space(component: Component, plan: TrainingPlan, configured: dict[str, ParamSpec],
                frozen: frozenset[str] = frozenset()) -> dict[str, ParamSpec]:
    """The component's parameters, less ``frozen`` ones: the configured spec (conditions dropped: the rest is
    fixed) or a default."""
    space = {}
    for name in (name for name in component.params if name not in frozen):
        spec = configured[name].model_copy(update={"when": None}) if name in configured \
            else default_spec(name, plan)
        if spec is not None:
            space[name] = spec
    return space


def default_spec(name: str, plan: TrainingPlan) -> ParamSpec | None:
    """A range around the plan's value for parameters the configured space does not search."""
    value = plan.setting(name)
    flips = ["flip", "flip_translate"] if plan.flip_safe else []
    specs: dict[str, Callable[[], ParamSpec]] = {
        "learning_rate": lambda: ParamSpec(type="float", low=max(1e-6, value / 3), high=min(10.0, value * 3),
                                           log=True),
        "label_smoothing": lambda: ParamSpec(type="float", low=0.0, high=0.3),
        "augmentation": lambda: ParamSpec(type="categorical", choices=["none", "translate", *flips]),
        "translate_pad": lambda: ParamSpec(type="int", low=1, high=4),
        "schedule": lambda: ParamSpec(type="categorical", choices=list(TUNABLE["schedule"].choices)),
        "warmup_fraction": lambda: ParamSpec(type="float", low=0.05, high=0.5),
        "lookahead_every": lambda: ParamSpec(type="int", low=1, high=20),
        "lookahead_alpha": lambda: ParamSpec(type="float", low=0.8, high=0.99),
        "class_weighting": lambda: ParamSpec(type="categorical", choices=["none", "balanced"]),
        "width": lambda: ParamSpec(type="int", low=max(4, int(value) // 2), high=min(1024, int(value) * 2), log=True),
    }
    return specs[name]() if name in specs else None
