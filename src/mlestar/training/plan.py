"""Turn a stage 3 plan (``plan.json['training']``) into a model and a :class:`TrainSpec`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mlestar.models import create_model
from mlestar.training.spec import TrainSpec

_SPEC_KEYS = ("epochs", "batch_size", "optimizer", "learning_rate", "momentum", "weight_decay",
              "label_smoothing", "schedule", "augmentation", "translate_pad", "precision", "seed")
# Recipe settings a plan may carry; absent ones keep TrainSpec's defaults (plain recipes).
_OPTIONAL_KEYS = ("warmup_fraction", "final_lr_fraction", "bias_lr_scale", "alternating_flip", "lookahead_every",
                  "lookahead_alpha", "whiten_init", "whiten_bias_epochs", "channels_last", "compile")


def architecture(plan: dict[str, Any]) -> dict[str, Any]:
    """The :func:`create_model` arguments, as saved in model files."""
    return {"name": plan["model"], "num_classes": plan["num_classes"], "in_channels": plan["in_channels"],
            "image_size": plan["image_size"], "width": plan["width"]}


def build_model(plan: dict[str, Any]) -> nn.Module:
    """A fresh model for the plan, seeded so the initial weights are reproducible."""
    torch.manual_seed(plan["seed"])
    arch = architecture(plan)
    return create_model(arch.pop("name"), **arch)


def spec_from_plan(plan: dict[str, Any], *, max_seconds: float | None = None, **overrides: Any) -> TrainSpec:
    """The :class:`TrainSpec` of a plan; ``overrides`` replace plan values (refinement trials)."""
    values = {key: plan[key] for key in _SPEC_KEYS}
    values.update({key: plan[key] for key in _OPTIONAL_KEYS if key in plan})
    values.update(overrides)
    weights = plan.get("class_weights")
    return TrainSpec(**values, class_weights=tuple(weights) if weights else None, max_seconds=max_seconds)
