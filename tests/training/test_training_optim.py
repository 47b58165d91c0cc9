"""Optimizers and schedules: adam is torch's Adam with coupled L2 decay; cosine follows a cosine."""

import math

import pytest
import torch
from torch import nn

from mlestar.errors import TrainingError
from mlestar.training.optim import make_optimizer, make_scheduler, schedule_factor
from mlestar.training.spec import TrainSpec


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_adam_is_torch_adam_with_the_given_rate_and_decay() -> None:
    opt = make_optimizer(tiny_model(), TrainSpec(optimizer="adam", learning_rate=0.003, weight_decay=1e-4))
    assert type(opt) is torch.optim.Adam
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["weights"]["lr"] == 0.003
    assert groups["weights"]["weight_decay"] == 1e-4
    assert groups["weights"]["decoupled_weight_decay"] is False
    assert groups["biases"]["weight_decay"] == 0.0  # biases are not decayed (bias_lr_scale 1)


def test_adam_decay_is_coupled_l2_unlike_adamw() -> None:
    """With a zero gradient, Adam's step comes only from L2: g = wd * w, and the first step is lr * g / (|g| + eps)
    (the bias corrections cancel), nearly a full lr step towards 0. AdamW shrinks the weight by lr * wd * w instead.
    """
    moved = {}
    for name in ("adam", "adamw"):
        model = tiny_model()
        before = model[0].weight.detach().clone()
        opt = make_optimizer(model, TrainSpec(optimizer=name, learning_rate=0.1, weight_decay=0.01))
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        moved[name] = before - model[0].weight.detach()
        w = before
    g = 0.01 * w
    assert torch.allclose(moved["adam"], 0.1 * g / (g.abs() + 1e-8), atol=1e-7)
    assert moved["adam"].abs().min() > 0.09  # coupled: every weight moves about lr, however small it is
    assert torch.allclose(moved["adamw"], 0.1 * 0.01 * w, atol=1e-7)


def test_sgd_is_nesterov_and_an_unknown_optimizer_is_refused() -> None:
    opt = make_optimizer(tiny_model(), TrainSpec(optimizer="sgd", momentum=0.9))
    assert type(opt) is torch.optim.SGD and opt.param_groups[0]["nesterov"] is True
    with pytest.raises(TrainingError, match="unknown optimizer 'rmsprop'"):
        make_optimizer(tiny_model(), TrainSpec(optimizer="rmsprop"))


def test_cosine_factor_follows_half_a_cosine_to_zero() -> None:
    total = 40
    factor = schedule_factor(TrainSpec(schedule="cosine"), total)
    for step in range(total + 1):
        assert factor(step) == pytest.approx(0.5 * (1 + math.cos(math.pi * step / total)), abs=1e-12)
    assert (factor(0), factor(total // 2), factor(total)) == (1.0, pytest.approx(0.5), pytest.approx(0.0))


def test_cosine_learning_rates_match_torch_cosine_annealing() -> None:
    """Stepped once per batch, mlestar's cosine is torch's CosineAnnealingLR(T_max=all steps, eta_min=0)."""
    spec = TrainSpec(optimizer="adam", schedule="cosine", learning_rate=0.01, epochs=3)
    ours = make_optimizer(tiny_model(), spec)
    sched = make_scheduler(ours, spec, steps_per_epoch=5)
    ref = torch.optim.Adam(tiny_model().parameters(), lr=0.01)
    ref_sched = torch.optim.lr_scheduler.CosineAnnealingLR(ref, T_max=15, eta_min=0.0)
    for _ in range(15):
        assert ours.param_groups[0]["lr"] == pytest.approx(ref.param_groups[0]["lr"], abs=1e-12)
        ours.step()
        sched.step()
        ref.step()
        ref_sched.step()
    assert ours.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
