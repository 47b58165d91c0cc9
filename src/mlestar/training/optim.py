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
from mlestar.training.muon import Muon
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
        # The stem's bias learns at the weights' rate: 64x would swamp the whitened input (airbench94 does the
        # same). Under Muon the weights' rate is the head's, and airbench94_muon gives the stem the biases' rate.
        muon = spec.optimizer == "muon"
        groups.append({"name": "whiten_bias", "params": [whiten_bias],
                       "lr_scale": spec.bias_lr_scale if muon else 1.0,
                       "weight_decay": bias_decay if muon else spec.weight_decay})
    if spec.optimizer == "muon":
        groups = _split_filters(groups, spec)
    return [g for g in groups if g["params"]]


def _split_filters(groups: list[dict[str, Any]], spec: TrainSpec) -> list[dict[str, Any]]:
    """Muon: conv filter banks (4-D weights) leave the weights group for an orthogonal one at Muon's rate."""
    weights = groups[0]["params"]
    filters = [p for p in weights if p.ndim == 4]
    groups[0]["params"] = [p for p in weights if p.ndim != 4]
    return [{"name": "filters", "params": filters, "lr_scale": spec.muon_lr / spec.learning_rate,
             "weight_decay": 0.0, "momentum": spec.muon_momentum, "orthogonal": True}, *groups]


def make_optimizer(model: nn.Module, spec: TrainSpec) -> torch.optim.Optimizer:
    """The optimizer ``spec.optimizer`` names over :func:`param_groups`, each at its scaled learning rate.

    sgd: Nesterov SGD (plain SGD at momentum 0), coupled L2 decay. muon:
    conv filters by :class:`~mlestar.training.muon.Muon` at ``muon_lr`` and
    ``muon_momentum``, the rest by Nesterov SGD as under sgd. adam:
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
    if spec.optimizer == "muon":
        return Muon(groups, lr=spec.learning_rate, momentum=spec.momentum)
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
    linear: from 1 straight down to 0, no warm-up (airbench94_muon's).
    """
    total = max(total_steps, 1)
    if spec.schedule == "constant":
        return lambda step: 1.0
    if spec.schedule == "linear":
        return lambda step: max(0.0, 1 - step / total)
    if spec.schedule == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    if spec.schedule == "triangular":
        points = [0, max(1, int(spec.warmup_fraction * total)), total]
        values = [0.2, 1.0, spec.final_lr_fraction]
        return lambda step: float(np.interp(step, points, values))
    warm = max(1, int(0.2 * total))
    return lambda step: (step + 1) / warm if step < warm else max(0.0, (total - step) / max(1, total - warm))


def make_scheduler(opt: torch.optim.Optimizer, spec: TrainSpec, steps_per_epoch: int,
                   clock: Callable[[int], float] = lambda step: step) -> torch.optim.lr_scheduler.LambdaLR:
    """One LambdaLR with a factor per group; the whitening bias stops after its epochs.

    Under the linear schedule the whitening bias decays linearly to 0 over its own epochs (airbench94_muon);
    under the others it follows the common schedule and stops. ``clock`` maps each step to the planned
    schedule's step (:class:`~mlestar.training.horizon.Horizon`; the identity unless a budget re-timed it).
    """
    planned = schedule_factor(spec, spec.epochs * steps_per_epoch)

    def factor(step: int) -> float:
        return planned(clock(step))  # type: ignore[arg-type]  # the schedules take fractional steps too

    stop = spec.whiten_bias_epochs * steps_per_epoch
    whiten = (lambda step: max(0.0, 1 - step / max(stop, 1))) if spec.schedule == "linear" else factor
    lambdas = [(lambda step: whiten(step) * (step < stop)) if g.get("name") == "whiten_bias" else factor
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

    def step(self, model: nn.Module, step: int, nominal: float | None = None) -> None:
        """Blend every ``every`` steps; the ramp follows ``nominal`` (the planned schedule's step), else ``step``."""
        if step % self.every:
            return
        self._blend(model, self.alpha**self.every * (min(step if nominal is None else nominal, self.total)
                                                      / self.total) ** 3)

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
