"""Stage 3, action planning: model and training strategy, each choice with its reason.

Starts from the config's training section, fills every ``auto`` from stage
1's recommendations and stage 2's probe, applies the remedies chosen after
failed gates, then fits the plan inside the constraints (model size,
training time) and writes ``plan.json`` and ``plan.md``.
"""

from __future__ import annotations

from typing import Any

from mlestar.config.schema import MlestarConfig
from mlestar.stages.common import DATASET_REF, markdown_table
from mlestar.utils.io import atomic_write_json, atomic_write_text
from mlestar.workflow.remedies import apply_remedy
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

RECS_REF = "situation_analysis/recommendations.json"
SPEC_REF = "task_definition/task_spec.json"
BYTES_PER_PARAM = 4  # fp32 weights


class Plan:
    """A training plan under construction: values plus one reason per choice."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.reasons: dict[str, str] = {}

    def set(self, key: str, value: Any, reason: str) -> None:
        self.values[key] = value
        self.reasons[key] = reason


def choose_model(config: MlestarConfig, image_size: int) -> tuple[str, str]:
    """The registered model to train and why."""
    from mlestar.models import list_models, model_info

    if config.training.model != "auto":
        model_info(config.training.model)  # raises with a suggestion when unknown
        return config.training.model, "set in the config"
    fitting = [name for name in list_models() if model_info(name).min_image_size <= image_size]
    name = "small_cnn" if "small_cnn" in fitting else fitting[0]
    return name, f"{image_size}px images: {model_info(name).description}"


def base_plan(config: MlestarConfig, record: dict[str, Any], recs: dict[str, Any], spec: dict[str, Any]) -> Plan:
    """Every training setting chosen from config, recommendations and probe, before remedies."""
    from mlestar.models import model_info

    t = config.training
    plan = Plan()
    height, _, channels = record["image_shape"]
    model, why = choose_model(config, height)
    plan.set("model", model, why)
    plan.set("width", t.width or model_info(model).default_width, "set in the config" if t.width else "model default")
    for key in ("epochs", "batch_size", "optimizer", "learning_rate", "momentum", "weight_decay",
                "label_smoothing", "schedule"):
        plan.set(key, getattr(t, key), "set in the config")
    aug = recs["augmentation"]
    plan.set("augmentation", aug["choice"] if t.augmentation == "auto" else t.augmentation,
             f"stage 1: {aug['reason']}" if t.augmentation == "auto" else "set in the config")
    plan.set("translate_pad", aug["translate_pad"], f"stage 1: {aug['reason']}")
    plan.set("flip_safe", aug["flip_safe"], f"stage 1: {aug['reason']}")
    weighting = recs["class_weighting"]
    plan.set("class_weighting", weighting["choice"] if t.class_weighting == "auto" else t.class_weighting,
             f"stage 1: {weighting['reason']}" if t.class_weighting == "auto" else "set in the config")
    plan.set("precision", spec["probe"]["precision"] if t.precision == "auto" else t.precision,
             f"measured in stage 2 on {spec['probe']['device']}" if t.precision == "auto" else "set in the config")
    plan.set("device", spec["probe"]["device"], "where stage 2 measured")
    plan.set("num_threads", t.num_threads, "set in the config" if t.num_threads else "all cores")
    plan.set("image_size", height, "stage 1")
    plan.set("in_channels", channels, "stage 1")
    plan.set("num_classes", len(record["class_names"]), "stage 1")
    return plan


def apply_adjustments(plan: Plan, adjustments: list[dict[str, Any]]) -> list[str]:
    """Apply remedies from failed gates in order; returns what each changed."""
    changes = []
    for adj in adjustments:
        change = apply_remedy(plan.values, adj["remedy"])
        plan.reasons[change.split(":")[0]] = f"remedy {adj['remedy']} after gate {adj['gate']!r} ({adj['diagnosis']})"
        changes.append(f"{adj['remedy']} (gate {adj['gate']}): {change}")
    return changes


def estimate(plan: Plan, record: dict[str, Any], spec: dict[str, Any]) -> tuple[int, float]:
    """(parameters, estimated training seconds) of the plan, scaled from the stage 2 probe by FLOPs."""
    from mlestar.evaluation.efficiency import count_flops
    from mlestar.models import count_params, create_model

    v = plan.values
    model = create_model(v["model"], num_classes=v["num_classes"], in_channels=v["in_channels"],
                         image_size=v["image_size"], width=v["width"])
    flops = count_flops(model, (v["in_channels"], v["image_size"], v["image_size"]))
    ratio = flops / max(spec["probe"]["reference_flops"], 1)
    seconds = v["epochs"] * spec["estimated_epoch_time_s"] * ratio
    return count_params(model), seconds


def fit_constraints(plan: Plan, config: MlestarConfig, record: dict[str, Any], spec: dict[str, Any]
                    ) -> tuple[int, float, list[str]]:
    """Shrink width to fit the size limit and epochs to fit the time limit; returns what changed."""
    notes = []
    params, seconds = estimate(plan, record, spec)
    limit = config.constraints.max_model_size
    while limit and params * BYTES_PER_PARAM > limit and plan.values["width"] > 4:
        plan.set("width", plan.values["width"] // 2, f"halved to fit max_model_size {limit / 1e6:.2f} MB")
        params, seconds = estimate(plan, record, spec)
        notes.append(f"width -> {plan.values['width']} to fit the size limit")
    budget = config.constraints.max_training_time
    if budget and seconds > budget:
        epochs = max(1, int(plan.values["epochs"] * budget / seconds))
        plan.set("epochs", epochs, f"cut to fit max_training_time {budget:.0f}s (estimate {seconds:.0f}s)")
        notes.append(f"epochs -> {epochs} to fit the time budget")
        params, seconds = estimate(plan, record, spec)
    return params, seconds, notes


@register_stage
class ActionPlanning(Stage):
    """Stage 3: the training plan, justified choice by choice."""

    name = "action_planning"
    title = "Action planning"
    config_paths = ("training", "constraints", "seed")
    inputs = (DATASET_REF, RECS_REF, SPEC_REF)
    outputs = ("plan.json", "plan.md")
    code_modules = ("mlestar.workflow.remedies", "mlestar.models", "mlestar.stages.common")
    uses_adjustments = True

    def run(self, ctx: StageContext) -> StageResult:
        record, recs, spec = ctx.read_json(DATASET_REF), ctx.read_json(RECS_REF), ctx.read_json(SPEC_REF)
        plan = base_plan(ctx.config, record, recs, spec)
        changes = apply_adjustments(plan, ctx.adjustments)
        params, seconds, notes = fit_constraints(plan, ctx.config, record, spec)
        plan.set("seed", ctx.config.seed, "set in the config")
        if plan.values["class_weighting"] == "balanced":
            counts = ctx.read_json("situation_analysis/analysis.json")["class_counts"]["train"]
            total = sum(counts)
            weights = [total / (len(counts) * max(c, 1)) for c in counts]
            plan.set("class_weights", weights, "inverse class frequency (balanced)")
        out = {"training": plan.values, "reasons": plan.reasons, "adjustments": changes, "constraint_fits": notes,
               "estimate": {"params": params, "training_seconds": seconds}}
        atomic_write_json(ctx.out_dir / "plan.json", out)
        atomic_write_text(ctx.out_dir / "plan.md", render_plan(out))
        for key in ("model", "width", "epochs", "augmentation", "precision"):
            ctx.decide(key, plan.values[key], plan.reasons[key])
        v = plan.values
        return StageResult(metrics={"planned_training_time": seconds, "planned_params": float(params)},
                           summary=f"{v['model']} width {v['width']} ({params:,} params), {v['epochs']} epochs, "
                                   f"{v['optimizer']} lr {v['learning_rate']:g}, aug {v['augmentation']}, "
                                   f"{v['precision']}; est. {seconds:.1f}s")


def render_plan(plan: dict[str, Any]) -> str:
    """``plan.md``: every setting with its reason, then remedies and constraint fits."""
    rows = [[key, value, plan["reasons"].get(key, "")] for key, value in plan["training"].items()
            if key != "class_weights"]
    extra = "".join(f"- {line}\n" for line in plan["adjustments"] + plan["constraint_fits"]) or "- none\n"
    est = plan["estimate"]
    return (f"# Training plan\n\n{markdown_table(['setting', 'value', 'reason'], rows)}\n\n"
            f"## Changes from remedies and constraints\n\n{extra}\n"
            f"Estimate: {est['params']:,} parameters, {est['training_seconds']:.1f}s of training.\n")
