"""Stage 2, task definition: metrics, targets, constraints and gates, checked for feasibility.

The feasibility check measures this machine: a few training steps of the
reference model on the dataset's image shape give images per second, hence
the time of one epoch, which is compared with the training-time budget.
"""

from __future__ import annotations

from typing import Any

from mlestar.config.catalog import METRICS
from mlestar.config.schema import MlestarConfig
from mlestar.config.units import format_quantity
from mlestar.stages.common import DATASET_REF
from mlestar.training.probe_cache import reproducible, source_of
from mlestar.utils.io import atomic_write_json
from mlestar.workflow.stage import Stage, StageContext, StageResult, register_stage

REFERENCE_MODEL = "small_cnn"  # stage 3 scales its estimate by the planned model's FLOPs relative to this
PROBE_BATCH = 64


def probe_throughput(image_shape: list[int], num_classes: int, config: MlestarConfig) -> dict[str, Any]:
    """Time a few training steps of the reference model; returns images/s and the set-up used.

    From the probe cache (training/probe_cache.py) when this machine timed the
    same reference set-up before; the result's ``cache`` says which it was.
    """
    import torch

    from mlestar.evaluation.efficiency import count_flops
    from mlestar.models import create_model
    from mlestar.training.precision import choose_device, choose_precision
    from mlestar.training.probe import MIN_SECONDS, MIN_STEPS, train_throughput
    from mlestar.training.probe_cache import cached_measurement

    if config.training.num_threads:
        torch.set_num_threads(config.training.num_threads)
    device = choose_device(config.training.device)
    precision, why = choose_precision(config.training.precision, device)
    height, _, channels = image_shape
    model = create_model(REFERENCE_MODEL, num_classes=num_classes, in_channels=channels, image_size=height)
    flops = count_flops(model, (channels, height, height))
    setup = {"method": "train_throughput", "model": REFERENCE_MODEL, "shape": [channels, height, height],
             "num_classes": num_classes, "batch_size": PROBE_BATCH, "precision": precision, "channels_last": False,
             "min_steps": MIN_STEPS, "min_seconds": MIN_SECONDS}
    measured = cached_measurement(setup, device.type, lambda: train_throughput(
        model, (channels, height, height), num_classes, batch_size=PROBE_BATCH, device=device, precision=precision))
    return {**measured, "device": device.type, "precision": precision, "precision_reason": why,
            "reference_model": REFERENCE_MODEL, "threads": torch.get_num_threads(), "reference_flops": flops}


def _source(probe: dict[str, Any]) -> str:
    """``cache hit (measured 2.1 h ago)`` or ``measured (cache miss)``: visible in the stage summary."""
    source = source_of(probe)
    return source.describe() if source else "measured"


def describe_gates(config: MlestarConfig) -> list[dict[str, Any]]:
    """Each gate with its unit, producing stage and a human-readable threshold."""
    return [{"name": g.name, "metric": g.metric, "op": g.op, "threshold": g.threshold, "stage": g.stage,
             "unit": METRICS[g.metric].unit, "readable": f"{g.metric} {g.op} "
             f"{format_quantity(float(g.threshold), METRICS[g.metric].unit)}",
             "on_fail": g.on_fail.model_dump()} for g in config.gates]


@register_stage
class TaskDefinition(Stage):
    """Stage 2: the task specification and its feasibility on this machine."""

    name = "task_definition"
    title = "Task definition"
    config_paths = ("task", "constraints", "gates", "remedies", "training.device", "training.precision",
                    "training.num_threads")
    inputs = (DATASET_REF,)
    outputs = ("task_spec.json",)

    def run(self, ctx: StageContext) -> StageResult:
        record = ctx.read_json(DATASET_REF)
        config = ctx.config
        ctx.progress("throughput probe", 0, 1)
        probe = probe_throughput(record["image_shape"], len(record["class_names"]), config)
        ctx.progress("throughput probe", 1, 1)
        epoch_time = record["splits"]["train"]["size"] / probe["images_per_second"]
        feasibility = self._feasibility(config, epoch_time)
        spec = {"task": config.task.model_dump(mode="json"),
                "constraints": config.constraints.model_dump(mode="json"),
                "gates": describe_gates(config), "remedies": list(config.remedies),
                "probe": reproducible(probe), "estimated_epoch_time_s": epoch_time, "feasibility": feasibility}
        atomic_write_json(ctx.out_dir / "task_spec.json", spec)
        ctx.decide("feasibility", feasibility["verdict"], feasibility["reason"], probe=probe)
        return StageResult(metrics={"estimated_epoch_time": epoch_time},
                           summary=f"primary metric {config.task.primary_metric}, {len(config.gates)} gate(s); "
                                   f"reference epoch {epoch_time:.2f}s on {probe['device']} "
                                   f"({probe['precision']}, probe {_source(probe)}); {feasibility['verdict']}")

    @staticmethod
    def _feasibility(config: MlestarConfig, epoch_time: float) -> dict[str, Any]:
        budget = config.constraints.max_training_time
        if budget is None:
            return {"verdict": "feasible", "reason": "no training-time limit set", "max_epochs": None}
        max_epochs = int(budget // max(epoch_time, 1e-9))
        verdict = "feasible" if max_epochs >= 1 else "infeasible"
        return {"verdict": verdict, "max_epochs": max_epochs,
                "reason": f"budget {budget:.0f}s / {epoch_time:.2f}s per reference epoch = {max_epochs} epochs"}
