"""Muon (training/muon.py) and the airbench94_muon recipe: the update's invariants and the groups.

Its exact resume is in test_training_recipe.py, with airbench94's recipe."""

import pytest
import torch

from mlestar.models import create_model
from mlestar.training import TrainSpec
from mlestar.training.muon import Muon, orthogonalize
from mlestar.training.optim import make_optimizer, make_scheduler, param_groups
from mlestar.training.recipes import AIRBENCH_MUON, MUON_HEAD_LR_PER_IMAGE, airbench_settings


def airbench_xs() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("airbench_xs", num_classes=3, in_channels=3, image_size=16)


@pytest.mark.parametrize("shape", [(64, 216), (256, 64, 3, 3), (300, 20)])
def test_orthogonalize_equalises_singular_values_and_keeps_the_directions(shape: tuple[int, ...]) -> None:
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    g2 = g.reshape(len(g), -1) * torch.logspace(0, 1, g[0].numel())  # columns scaled over 10x
    out = orthogonalize(g2.reshape(shape)).reshape(len(g), -1)
    assert out.shape == g2.shape
    s, s_in = torch.linalg.svdvals(out), torch.linalg.svdvals(g2)
    # Jordan's 3-step iteration lands most singular values in about [0.5, 1.5]; only the tiniest lag.
    assert s.max() < 1.6 and (s > 0.5).float().mean() > 0.8
    assert s.max() / s.min() < 2.5 < s_in.max() / s_in.min()  # condition number: 5 to 6 -> under 2.5
    u, _, vh = torch.linalg.svd(g2, full_matrices=False)
    polar = u @ vh
    cosine = (out * polar).sum() / (out.norm() * polar.norm())
    assert cosine > 0.8  # close to U V^T, the orthogonal factor of the gradient


def test_filter_step_ignores_the_gradient_scale_and_resets_the_norm() -> None:
    steps = []
    for scale in (1.0, 1000.0):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(8, 4, 3, 3) * 5)
        opt = Muon([{"params": [w], "orthogonal": True}], lr=0.1, momentum=0.6)
        w.grad = torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(1)) * scale
        before = w.detach().clone() * (8 ** 0.5 / w.detach().norm())
        opt.step()
        steps.append(w.detach() - before)
    torch.testing.assert_close(steps[0], steps[1], rtol=1e-4, atol=1e-5)
    # The update is orthogonalised: its singular values sit near 1, scaled by lr.
    s = torch.linalg.svdvals(steps[0].reshape(8, -1) / 0.1)
    assert s.min() > 0.3 and s.max() < 1.6


def test_other_groups_step_exactly_as_torch_nesterov_sgd_with_coupled_decay() -> None:
    torch.manual_seed(0)
    a, b = torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(5, 3))
    with torch.no_grad():
        b.copy_(a)
    ours = Muon([{"params": [a], "weight_decay": 0.01}], lr=0.3, momentum=0.85)
    torchs = torch.optim.SGD([b], lr=0.3, momentum=0.85, nesterov=True, weight_decay=0.01)
    for step in range(4):
        grad = torch.randn(5, 3, generator=torch.Generator().manual_seed(step))
        a.grad, b.grad = grad.clone(), grad.clone()
        ours.step()
        torchs.step()
    torch.testing.assert_close(a, b)


def test_muon_groups_put_filters_alone_and_the_stem_at_the_bias_rate() -> None:
    model = airbench_xs()
    spec = TrainSpec(optimizer="muon", learning_rate=0.5, momentum=0.85, bias_lr_scale=64, weight_decay=2e-3,
                     muon_lr=0.24, muon_momentum=0.6, whiten_bias_epochs=3)
    groups = {g["name"]: g for g in param_groups(model, spec)}
    filters = [p for p in model.parameters() if p.ndim == 4 and p.requires_grad]
    assert [id(p) for p in groups["filters"]["params"]] == [id(p) for p in filters]
    assert [id(p) for p in groups["weights"]["params"]] == [id(model.head.weight)]
    opt = make_optimizer(model, spec)
    rates = {g["name"]: (g["lr"], g["momentum"], g["weight_decay"]) for g in opt.param_groups}
    assert rates["filters"] == pytest.approx((0.24, 0.6, 0.0))
    assert rates["weights"] == pytest.approx((0.5, 0.85, 2e-3))
    assert rates["whiten_bias"] == rates["biases"] == pytest.approx((32.0, 0.85, 2e-3 / 64))


def test_linear_schedule_decays_every_group_to_zero_and_the_stem_over_its_own_epochs() -> None:
    model = airbench_xs()
    spec = TrainSpec(optimizer="muon", learning_rate=0.5, schedule="linear", epochs=4, whiten_bias_epochs=2,
                     bias_lr_scale=64)
    opt = make_optimizer(model, spec)
    sched = make_scheduler(opt, spec, steps_per_epoch=10)
    seen: dict[int, dict[str, float]] = {}
    for step in range(40):
        seen[step] = {g["name"]: g["lr"] / g["initial_lr"] for g in opt.param_groups}
        opt.step()
        sched.step()
    assert seen[0]["filters"] == seen[0]["whiten_bias"] == 1.0
    assert seen[20]["filters"] == pytest.approx(0.5) and seen[10]["whiten_bias"] == pytest.approx(0.5)
    assert seen[20]["whiten_bias"] == 0.0 and seen[39]["filters"] == pytest.approx(1 / 40)


def test_muon_recipe_translates_airbench94_muons_rates() -> None:
    s = airbench_settings(2000, optimizer="muon")
    assert s["optimizer"] == "muon" and s["schedule"] == "linear" and s["lookahead_every"] == 0
    # airbench94_muon: head 0.67 and biases 0.053 per summed-loss image, logits / 256 (ours / 9).
    assert s["learning_rate"] == pytest.approx(0.67 * 2000 * (9 / 256) ** 2)
    assert s["learning_rate"] * s["bias_lr_scale"] == pytest.approx(0.053 * 2000)
    assert s["learning_rate"] * s["weight_decay"] == pytest.approx(2e-6 * 2000)  # per-step shrink
    assert airbench_settings(500, optimizer="muon")["learning_rate"] == pytest.approx(500 * MUON_HEAD_LR_PER_IMAGE)
    assert airbench_settings(None, device="cpu", optimizer="muon")["batch_size"] == AIRBENCH_MUON["cpu_batch_size"]
