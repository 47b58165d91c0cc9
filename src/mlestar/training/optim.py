"""Parameter groups, optimizers and learning-rate schedules.

Three groups: conv/linear weights (``learning_rate``, ``weight_decay``);
biases and batch-norm shifts (``learning_rate * bias_lr_scale``, decay divided
by the same factor, as airbench does: few, sensitive parameters learn faster
while shrinking by the same amount per step); and an airbench stem's whitening
bias, at the weights' rate, which trains only for the first
``whiten_bias_epochs`` epochs and is frozen after.
"""

from __future__ import annotations

import math
from typing import Any, Callable, get_args

import numpy as np
import torch
from torch import nn

from mlestar.config.schema import OptimizerName
from mlestar.errors import TrainingError
from mlestar.training.spec import TrainSpec


def param_groups(model: nn.Module, spec: TrainSpec) -> list[dict[str, Any]]:
    """The optimizer's groups, each tagged with a ``name``; empty groups are dropped."""
    whiten_bias = getattr(getattr(model, "whiten", None), "bias", None) if spec.whiten_bias_epochs else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = [p for p in trainable if p.ndim > 1]
    biases = [p for p in trainable if p.ndim <= 1 and p is not whiten_bias]
    bias_decay = spec.weight_decay / spec.bias_lr_scale if spec.bias_lr_scale > 1 else 0.0
    groups = [
        {"name": "weights", "params": weights, "lr_scale": 1.0, "weight_decay": spec.weight_decay},
        {"name": "biases", "params": biases, "lr_scale": spec.bias_lr_scale, "weight_decay": bias_decay},
    ]
    if whiten_bias is not None and whiten_bias.requires_grad:
        # The stem's bias learns at the weights' rate: 64x would swamp the whitened input (airbench does the same).
        groups.append({"name": "whiten_bias", "params": [whiten_bias], "lr_scale": 1.0,
                       "weight_decay": spec.weight_decay})
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    """The optimizer ``spec.optimizer`` names over :func:`param_groups`, each at its scaled learning rate.

    sgd: Nesterov SGD (plain SGD at momentum 0), coupled L2 decay. adam:
    torch's Adam, whose ``weight_decay`` is coupled L2 (added to the gradient,
    so it is rescaled by the adaptive step), as configs written for
    ``torch.optim.Adam`` expect. adamw: decoupled decay (shrinks the weights
    by ``lr * weight_decay`` per step). Each group carries its own decay.

    Raises:
        TrainingError: ``spec.optimizer`` is none of these (a plan edited by hand).
    """
    groups = param_groups(model, spec)
    for group in groups:
        group["lr"] = spec.learning_rate * group["lr_scale"]
    if spec.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=spec.learning_rate, momentum=spec.momentum, nesterov=spec.momentum > 0)
    if spec.optimizer == "adam":
        return torch.optim.Adam(groups, lr=spec.learning_rate)
    if spec.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=spec.learning_rate)
    raise TrainingError(f"unknown optimizer {spec.optimizer!r} in the training spec",
                        hint=f"use one of {', '.join(get_args(OptimizerName))} (training.optimizer)")


def schedule_factor(spec: TrainSpec, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak learning rate at each step.

    onecycle: linear warm-up over 20% of steps, then linear decay to 0.
    triangular: airbench's shape, from 0.2 up to 1 over ``warmup_fraction`` of
    the steps, then down to ``final_lr_fraction``. cosine: half a cosine to 0.
    """
    total = max(total_steps, 1)
    if spec.schedule == "constant":
        return lambda step: 1.0
    if spec.schedule == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    if spec.schedule == "triangular":
        points = [0, max(1, int(spec.warmup_fraction * total)), total]
        values = [0.2, 1.0, spec.final_lr_fraction]
        return lambda step: float(np.interp(step, points, values))
    warm = max(1, int(0.2 * total))
    return lambda step: (step + 1) / warm if step < warm else max(0.0, (total - step) / max(1, total - warm))


def make_scheduler(opt: torch.optim.Optimizer, spec: TrainSpec, steps_per_epoch: int
                   ) -> torch.optim.lr_scheduler.LambdaLR:
    """One LambdaLR with a factor per group; the whitening bias stops after its epochs."""
    factor = schedule_factor(spec, spec.epochs * steps_per_epoch)
    stop = spec.whiten_bias_epochs * steps_per_epoch
    lambdas = [(lambda step: factor(step) * (step < stop)) if g.get("name") == "whiten_bias" else factor
               for g in opt.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(opt, lambdas)


class Lookahead:
    """Slow weights every ``every`` steps (airbench's lookahead): net <- ema <- lerp(ema, net).

    The blend weight ramps up as training progresses (``alpha**every *
    progress**3``), so early steps are barely averaged and late steps strongly;
    :meth:`finish` leaves the network holding the averaged weights.
    """

    def __init__(self, model: nn.Module, every: int, alpha: float, total_steps: int) -> None:
        self.every, self.alpha, self.total = every, alpha, max(total_steps, 1)
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}

    def step(self, model: nn.Module, step: int) -> None:
        if step % self.every:
            return
        self._blend(model, self.alpha**self.every * (step / self.total) ** 3)

    def finish(self, model: nn.Module) -> None:
        self._blend(model, 1.0)

    @torch.no_grad()
    def _blend(self, model: nn.Module, decay: float) -> None:
        state = model.state_dict()
        for key, slow in self.slow.items():
            slow.lerp_(state[key], 1 - decay)
            state[key].copy_(slow)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.slow

    def load_state_dict(self, slow: dict[str, torch.Tensor]) -> None:
        self.slow = {k: v.clone() for k, v in slow.items()}
