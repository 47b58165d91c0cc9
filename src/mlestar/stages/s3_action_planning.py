"""Stage 3, action planning: model and training strategy, each choice with its reason.

Starts from the config's training section, fills every ``auto`` from stage
1's recommendations and stage 2's probe, applies the remedies chosen after
failed gates, then fits the plan inside the constraints (model size,
training time) and writes ``plan.json`` and ``plan.md``.
"""

from __future__ import annotations

from typing import Any, Callable

from mlestar.config.schema import MlestarConfig
from mlestar.stages.common import DATASET_REF, markdown_table
from mlestar.training.plan import (PlanChange, PlanDocument, PlanEstimate, ReasonedPlan, TrainingPlan,
                                  balanced_class_weights, describe_changes)
from mlestar.training.probe_cache import ProbeSource, reproducible, source_of
from mlestar.utils.io import atomic_write_text
from mlestar.workflow.remedies import remedy_changes
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

RECS_REF = "situation_analysis/recommendations.json"
ANALYSIS_REF = "situation_analysis/analysis.json"
SPEC_REF = "task_definition/task_spec.json"
BYTES_PER_PARAM = 4  # fp32 weights


class PlanDraft:
    """A training plan under construction: values plus one reason per choice.

    Only :func:`base_plan` fills it; :meth:`freeze` validates it into the
    frozen plan every later step reads and changes.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.reasons: dict[str, str] = {}

    def set(self, key: str, value: Any, reason: str) -> None:
        self.values[key] = value
        self.reasons[key] = reason

    def freeze(self) -> ReasonedPlan:
        """The validated plan with its reasons.

        Raises:
            PlanError: a value no plan may hold (naming the setting).
        """
        training = TrainingPlan.from_json(self.values, source="stage 3's plan")
        return ReasonedPlan(training=training, reasons=self.reasons)


# A bigger net trained this many epochs beats a smaller one given the same time. Measured (GPU sweep of
# validation accuracy at batch 256, docs/benchmarks.md): airbench_s at 7 epochs 88.5% vs airbench_xs at 20
# (the same compute) 87.5%; at 5 vs 14 they tie (86.7 / 86.5%); airbench at 3 (86.6%) loses to airbench_s at 7.
MIN_GOOD_EPOCHS = 6
EPOCH_OVERHEAD = 1.1     # the probe's small random tensor vs gathering from the full dataset, and timing noise
MAX_EPOCH_FACTOR = 2     # with time to spare, train up to 2x the recipe's epochs rather than idle


def choose_model(config: MlestarConfig, record: dict[str, Any], spec: dict[str, Any],
                 progress: Callable[[int, int], None] = lambda done, total: None
                 ) -> tuple[str, str, dict[str, Any]]:
    """The model to train, why, and the throughput probes behind the choice.

    ``progress(done, total)`` follows the probes (one per airbench width, at most).
    """
    from mlestar.models import model_info
    from mlestar.training.recipes import AIRBENCH_MODELS

    height = record["image_shape"][0]
    if config.training.model != "auto":
        model_info(config.training.model)  # raises with a suggestion when unknown
        return config.training.model, "set in the config", {}
    if height < model_info(AIRBENCH_MODELS[0]).min_image_size:
        return "small_cnn", f"{height}px images are too small for the airbench nets' pooling", {}
    budget = config.constraints.max_training_time
    if budget is None:
        return "airbench", "no time limit: the airbench94 shape", {}
    n_train = record["splits"]["train"]["size"]
    probes: dict[str, dict[str, Any]] = {}
    for name in AIRBENCH_MODELS:  # smallest first: once one misses MIN_GOOD_EPOCHS, larger ones would too
        probes[name] = probe_candidate(name, record, spec, config)
        progress(len(probes), len(AIRBENCH_MODELS))
        if epochs_in(budget, n_train, probes[name]) < MIN_GOOD_EPOCHS:
            break
    progress(len(AIRBENCH_MODELS), len(AIRBENCH_MODELS))  # the widths left unprobed need no probe
    return pick_by_budget(probes, budget, n_train) + (probes,)


def epochs_in(budget: float, n_train: int, probe: dict[str, Any]) -> int:
    """Whole epochs of ``n_train`` images that fit ``budget`` at the probed speed."""
    return int(budget / (EPOCH_OVERHEAD * n_train / probe["images_per_second"]))


def probe_candidate(name: str, record: dict[str, Any], spec: dict[str, Any], config: MlestarConfig
                    ) -> dict[str, Any]:
    """Measured training images/s of one candidate in the airbench recipe's own loop, at the planned precision.

    From the probe cache (training/probe_cache.py) when this machine measured
    the same candidate plan and image shape before: a re-plan after a
    loop-back costs no probe. The result's ``cache`` says which it was.
    """
    import torch

    from mlestar.models import model_info
    from mlestar.training.plan import build_model, spec_from_plan
    from mlestar.training.probe import LOOP_SECONDS, loop_steps, loop_throughput
    from mlestar.training.probe_cache import cached_measurement
    from mlestar.training.recipes import airbench_settings, recipe_optimizer

    height, _, channels = record["image_shape"]
    t = config.training
    if t.num_threads:  # time the threads training will use, also in a resumed process stage 2 did not set up
        torch.set_num_threads(t.num_threads)
    settings = airbench_settings(t.batch_size if "batch_size" in t.model_fields_set else None,
                                 device=spec["probe"]["device"],
                                 optimizer=recipe_optimizer(t.optimizer, "optimizer" in t.model_fields_set))
    candidate = TrainingPlan(**settings, model=name, recipe="airbench", width=t.width or model_info(name).default_width,
                             image_size=height, in_channels=channels, num_classes=len(record["class_names"]),
                             flip_safe=True, class_weighting="none", precision=spec["probe"]["precision"],
                             device=spec["probe"]["device"], seed=0)
    shape = (channels, height, height)
    setup = {"method": "loop_throughput", "plan": candidate.to_json(), "shape": list(shape),
             "loop_steps": loop_steps(candidate.batch_size), "loop_seconds": LOOP_SECONDS}
    return cached_measurement(setup, candidate.device, lambda: loop_throughput(
        build_model(candidate), shape, candidate.num_classes, spec_from_plan(candidate),
        device=torch.device(candidate.device)))


def pick_by_budget(probes: dict[str, dict[str, Any]], budget: float, n_train: int) -> tuple[str, str]:
    """Largest candidate that fits ``MIN_GOOD_EPOCHS`` in the budget; else the smallest."""
    fits = {name: epochs_in(budget, n_train, p) for name, p in probes.items()}
    good = [name for name in probes if fits[name] >= MIN_GOOD_EPOCHS]
    name = good[-1] if good else next(iter(probes))
    ips = probes[name]["images_per_second"]
    why = (f"largest candidate with >= {MIN_GOOD_EPOCHS} epochs in {budget:.0f}s at the measured {ips:.0f} img/s"
           if good else f"no candidate fits {MIN_GOOD_EPOCHS} epochs in {budget:.0f}s; the smallest does most")
    return name, why + " (" + ", ".join(f"{n}: {fits[n]} epochs" for n in probes) + ")"


def base_plan(config: MlestarConfig, record: dict[str, Any], recs: dict[str, Any], spec: dict[str, Any],
              progress: Callable[[int, int], None] = lambda done, total: None
              ) -> tuple[ReasonedPlan, dict[str, Any]]:
    """Every training setting chosen from config, recipe, recommendations and probes, before remedies."""
    from mlestar.models import model_info
    from mlestar.training.recipes import airbench_settings, recipe_for, recipe_optimizer

    t = config.training
    plan = PlanDraft()
    model, why, probes = choose_model(config, record, spec, progress)
    recipe = recipe_for(model)
    plan.set("model", model, why)
    plan.set("recipe", recipe, "the recipe this model family is tuned with")
    plan.set("width", t.width or model_info(model).default_width, "set in the config" if t.width else "model default")
    given = t.model_fields_set
    defaults = airbench_settings(t.batch_size if "batch_size" in given else None, device=spec["probe"]["device"],
                                 optimizer=recipe_optimizer(t.optimizer, "optimizer" in given)
                                 ) if recipe == "airbench" else {}
    for key in ("epochs", "batch_size", "optimizer", "learning_rate", "momentum", "weight_decay",
                "label_smoothing", "schedule"):
        from_recipe = key in defaults and key not in given
        plan.set(key, defaults[key] if from_recipe else getattr(t, key),
                 f"{recipe} recipe" if from_recipe else "set in the config")
    for key, value in defaults.items():
        if key not in plan.values and key not in ("augmentation", "translate_pad"):
            plan.set(key, value, f"{recipe} recipe")
    if "micro_batch_size" in given:
        plan.set("micro_batch_size", t.micro_batch_size, "set in the config")
    _augmentation(plan, t.augmentation, recs["augmentation"], defaults)
    _rest(plan, config, record, recs, spec)
    return _fit_epochs(plan.freeze(), config, probes, record, given), probes


def _augmentation(plan: PlanDraft, configured: str, rec: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Augmentation: the config's, else stage 1's recommendation (the recipe's pad when it has one)."""
    if configured != "auto":
        plan.set("augmentation", configured, "set in the config")
    else:
        plan.set("augmentation", rec["choice"], f"stage 1: {rec['reason']}")
    pad = defaults.get("translate_pad", rec["translate_pad"])
    plan.set("translate_pad", pad, "recipe" if "translate_pad" in defaults else f"stage 1: {rec['reason']}")
    plan.set("flip_safe", rec["flip_safe"], f"stage 1: {rec['reason']}")
    if not rec["flip_safe"] and defaults.get("alternating_flip"):
        plan.set("alternating_flip", False, "stage 1: flips would change the label")


def _fit_epochs(plan: ReasonedPlan, config: MlestarConfig, probes: dict[str, Any], record: dict[str, Any],
                given: set[str]) -> ReasonedPlan:
    """With a probe and no epochs in the config: as many epochs as the budget holds (up to 2x the recipe)."""
    budget = config.constraints.max_training_time
    if "epochs" in given or not probes or budget is None:
        return plan
    ips = probes[plan.training.model]["images_per_second"]
    epoch_s = EPOCH_OVERHEAD * record["splits"]["train"]["size"] / ips
    epochs = max(1, min(int(budget / epoch_s), MAX_EPOCH_FACTOR * plan.training.epochs))
    return plan.apply([PlanChange("epochs", epochs, f"{budget:.0f}s budget / {epoch_s:.1f}s per measured epoch")])


def _rest(plan: PlanDraft, config: MlestarConfig, record: dict[str, Any], recs: dict[str, Any],
          spec: dict[str, Any]) -> None:
    t = config.training
    weighting = recs["class_weighting"]
    plan.set("class_weighting", weighting["choice"] if t.class_weighting == "auto" else t.class_weighting,
             f"stage 1: {weighting['reason']}" if t.class_weighting == "auto" else "set in the config")
    plan.set("precision", spec["probe"]["precision"] if t.precision == "auto" else t.precision,
             spec["probe"].get("precision_reason", "measured in stage 2") if t.precision == "auto"
             else "set in the config")
    plan.set("device", spec["probe"]["device"], "where stage 2 measured")
    # Measured (docs/benchmarks.md): on an H200 the airbench net trained 10 epochs in 2.75 s eager and
    # 3.43 s compiled (a launch-bound small net), after ~30 s of compilation; on CPUs compiling costs minutes.
    plan.set("compile", t.compile, "set in the config" if "compile" in t.model_fields_set else
             "eager: torch.compile did not pay for airbench nets on an H200 or on CPUs (measured)")
    plan.set("num_threads", t.num_threads, "set in the config" if t.num_threads else "all cores")
    plan.set("processes", t.processes, "set in the config" if t.processes > 1 else "one process (no DDP)")
    height, _, channels = record["image_shape"]
    plan.set("image_size", height, "stage 1")
    plan.set("in_channels", channels, "stage 1")
    plan.set("num_classes", len(record["class_names"]), "stage 1")
    plan.set("seed", config.seed, "set in the config")


def apply_adjustments(plan: ReasonedPlan, adjustments: list[dict[str, Any]]
                      ) -> tuple[ReasonedPlan, list[tuple[str, list[PlanChange]]]]:
    """Apply the remedies of failed gates in order.

    Returns the new plan (each changed setting's reason names the remedy and
    gate) and, per remedy, its display line and its changes.
    """
    applied = []
    for adj in adjustments:
        reason = f"remedy {adj['remedy']} after gate {adj['gate']!r} ({adj['diagnosis']})"
        changes = remedy_changes(plan.training, adj["remedy"], reason)
        applied.append((f"{adj['remedy']} (gate {adj['gate']}): {describe_changes(plan.training, changes)}",
                        changes))
        plan = plan.apply(changes)
    return plan, applied


def estimate(plan: TrainingPlan, record: dict[str, Any], spec: dict[str, Any], probes: dict[str, Any] | None = None
             ) -> tuple[int, float]:
    """(parameters, estimated training seconds) of the plan.

    From the stage 3 probe of the planned model when there is one, else the
    stage 2 reference probe scaled by the FLOPs ratio.
    """
    from mlestar.evaluation.efficiency import count_flops
    from mlestar.models import count_params, create_model, model_info
    from mlestar.training.plan import architecture

    arch = architecture(plan)
    model = create_model(arch.pop("name"), **arch)  # not build_model: estimating must not reseed torch
    probe = (probes or {}).get(plan.model)
    if probe is not None and plan.width == model_info(plan.model).default_width:
        seconds = plan.epochs * EPOCH_OVERHEAD * record["splits"]["train"]["size"] / probe["images_per_second"]
        return count_params(model), seconds
    flops = count_flops(model, (plan.in_channels, plan.image_size, plan.image_size))
    ratio = flops / max(spec["probe"]["reference_flops"], 1)
    seconds = plan.epochs * spec["estimated_epoch_time_s"] * ratio
    return count_params(model), seconds


def fit_constraints(plan: ReasonedPlan, config: MlestarConfig, record: dict[str, Any], spec: dict[str, Any],
                    probes: dict[str, Any]) -> tuple[ReasonedPlan, int, float, list[str]]:
    """Shrink width to fit the size limit and epochs to fit the time limit.

    Returns the fitted plan, its parameters and estimated seconds, and what changed.
    """
    notes = []
    params, seconds = estimate(plan.training, record, spec, probes)
    limit = config.constraints.max_model_size
    while limit and params * BYTES_PER_PARAM > limit and plan.training.width > 4:
        plan = plan.apply([PlanChange("width", plan.training.width // 2,
                                      f"halved to fit max_model_size {limit / 1e6:.2f} MB")])
        params, seconds = estimate(plan.training, record, spec, probes)
        notes.append(f"width -> {plan.training.width} to fit the size limit")
    budget = config.constraints.max_training_time
    if budget and seconds > budget:
        epochs = max(1, int(plan.training.epochs * budget / seconds))
        plan = plan.apply([PlanChange("epochs", epochs,
                                      f"cut to fit max_training_time {budget:.0f}s (estimate {seconds:.0f}s)")])
        notes.append(f"epochs -> {epochs} to fit the time budget")
        params, seconds = estimate(plan.training, record, spec, probes)
    return plan, params, seconds, notes


@register_stage
class ActionPlanning(Stage):
    """Stage 3: the training plan, justified choice by choice."""

    name = "action_planning"
    title = "Action planning"
    config_paths = ("training", "constraints", "seed")
    inputs = (DATASET_REF, RECS_REF, SPEC_REF, ANALYSIS_REF)
    outputs = ("plan.json", "plan.md")
    uses_adjustments = True

    def run(self, ctx: StageContext) -> StageResult:
        record, recs, spec = ctx.read_json(DATASET_REF), ctx.read_json(RECS_REF), ctx.read_json(SPEC_REF)
        plan, probes = base_plan(ctx.config, record, recs, spec,
                                 lambda done, total: ctx.progress("throughput probes", done, total))
        sources = {name: source for name, p in probes.items() if (source := source_of(p)) is not None}
        if probes:  # each probe's ``cache``: hit or why measured, key, age (plan.json keeps key and time only)
            ctx.audit.append("throughput_probe", stage=self.name, probes=probes)
        plan, applied = apply_adjustments(plan, ctx.adjustments)
        for line, changes in applied:
            ctx.decide("plan_change", line, changes[0].reason,
                       changes=[{"field": c.field, "value": c.value} for c in changes])
        plan, params, seconds, notes = fit_constraints(plan, ctx.config, record, spec, probes)
        if plan.training.class_weighting == "balanced":
            weights = balanced_class_weights(ctx.read_json(ANALYSIS_REF)["class_counts"]["train"])
            plan = plan.apply([PlanChange("class_weights", weights, "inverse class frequency (balanced)")])
        doc = PlanDocument(training=plan.training, reasons=plan.reasons, adjustments=[line for line, _ in applied],
                           constraint_fits=notes, estimate=PlanEstimate(params=params, training_seconds=seconds),
                           probes={name: reproducible(p) for name, p in probes.items()})
        doc.save(ctx.out_dir / "plan.json")
        atomic_write_text(ctx.out_dir / "plan.md", render_plan(doc, sources))
        for key in ("model", "recipe", "width", "epochs", "augmentation", "precision"):
            ctx.decide(key, doc.training.setting(key), doc.reasons[key])
        v = doc.training
        return StageResult(metrics={"planned_training_time": seconds, "planned_params": float(params)},
                           summary=f"{v.model} width {v.width} ({params:,} params), {v.epochs} epochs, "
                                   f"{v.optimizer} lr {v.learning_rate:g}, aug {v.augmentation}, "
                                   f"{v.precision}; est. {seconds:.1f}s{_probe_summary(sources)}")


def _probe_summary(sources: dict[str, ProbeSource]) -> str:
    """``; probes: 2 cached, 1 measured`` for the stage summary; empty without probes."""
    if not sources:
        return ""
    hits = sum(source.cached for source in sources.values())
    return f"; probes: {hits} cached, {len(sources) - hits} measured"


def render_plan(plan: PlanDocument, sources: dict[str, ProbeSource] | None = None) -> str:
    """``plan.md``: every setting with its reason, remedies and constraint fits, then the throughput probes.

    ``sources`` (by model) say which probes came from the probe cache and how
    old they were; plan.json holds only each probe's key and measurement time.
    """
    rows = [[key, value, plan.reasons.get(key, "")] for key, value in plan.training.to_json().items()
            if key != "class_weights"]
    extra = "".join(f"- {line}\n" for line in plan.adjustments + plan.constraint_fits) or "- none\n"
    est = plan.estimate
    return (f"# Training plan\n\n{markdown_table(['setting', 'value', 'reason'], rows)}\n\n"
            f"## Changes from remedies and constraints\n\n{extra}\n"
            f"Estimate: {est.params:,} parameters, {est.training_seconds:.1f}s of training.\n"
            f"{_probe_section(plan, sources or {})}")


def _probe_section(plan: PlanDocument, sources: dict[str, ProbeSource]) -> str:
    """The probes behind the model choice: speed, where the number came from, when measured, cache key."""
    if not plan.probes:
        return ""
    rows = []
    for name, probe in plan.probes.items():
        cache = probe.get("cache") or {}
        source = sources.get(name)
        rows.append([name, f"{probe['images_per_second']:.0f}", source.describe() if source else "measured",
                     cache.get("measured_at", ""), str(cache.get("key", ""))[:16]])
    headers = ["model", "images/s", "source", "measured at", "cache key"]
    return f"\n## Throughput probes\n\n{markdown_table(headers, rows)}\n"
