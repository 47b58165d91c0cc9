"""The airbench recipe's pieces: schedules, parameter groups, lookahead, exact resume with all of them on."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mlestar.models import create_model
from mlestar.training import TrainSpec, fit
from mlestar.training.optim import Lookahead, make_optimizer, make_scheduler, param_groups, schedule_factor
from mlestar.training.recipes import AIRBENCH, airbench_settings
from mlestar.training.tta import shift, tta_logits


def airbench_xs() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("airbench_xs", num_classes=3, in_channels=3, image_size=16)


def test_triangular_schedule_shape() -> None:
    factor = schedule_factor(TrainSpec(schedule="triangular", warmup_fraction=0.2, final_lr_fraction=0.07), 100)
    assert factor(0) == pytest.approx(0.2)
    assert factor(20) == pytest.approx(1.0)
    assert factor(100) == pytest.approx(0.07)
    assert factor(60) == pytest.approx(1.0 + (0.07 - 1.0) * 0.5)


def test_onecycle_and_cosine_end_at_zero() -> None:
    for schedule in ("onecycle", "cosine"):
        factor = schedule_factor(TrainSpec(schedule=schedule), 50)
        assert factor(50) == pytest.approx(0.0, abs=1e-9)
        assert max(factor(s) for s in range(50)) == pytest.approx(1.0, abs=0.03)


def test_parameter_groups_scale_bias_learning_rate_and_decay() -> None:
    spec = TrainSpec(learning_rate=0.4, weight_decay=0.01, bias_lr_scale=64, whiten_bias_epochs=3)
    model = airbench_xs()
    groups = {g["name"]: g for g in make_optimizer(model, spec).param_groups}
    assert groups["weights"]["lr"] == pytest.approx(0.4) and groups["weights"]["weight_decay"] == 0.01
    assert groups["biases"]["lr"] == pytest.approx(0.4 * 64)
    assert groups["biases"]["weight_decay"] == pytest.approx(0.01 / 64)
    assert groups["whiten_bias"]["params"][0] is model.whiten.bias
    assert groups["whiten_bias"]["lr"] == pytest.approx(0.4)  # the stem's bias learns at the weights' rate
    frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    assert all(id(p) not in frozen for g in param_groups(model, spec) for p in g["params"])


@pytest.mark.parametrize("batch", [256, 1024])
def test_recipe_shrinks_weights_per_step_as_airbench_does(batch: int) -> None:
    """airbench sums the loss and decays weights by 0.0153 * batch / 7850 per step at the peak learning rate;
    with the mean loss and torch's coupled decay the same shrink is learning_rate * weight_decay."""
    settings = airbench_settings(batch)
    shrink = settings["learning_rate"] * settings["weight_decay"]
    assert shrink == pytest.approx(0.0153 * batch / (1024 * (1 + 1 / (1 - 0.85))), rel=1e-6)
    assert settings["learning_rate"] == pytest.approx(11.5 * batch / (1024 * (1 + 1 / (1 - 0.85))), rel=1e-6)


def test_whitening_bias_stops_learning_after_its_epochs() -> None:
    spec = TrainSpec(epochs=4, whiten_bias_epochs=1, schedule="constant")
    opt = make_optimizer(airbench_xs(), spec)
    sched = make_scheduler(opt, spec, steps_per_epoch=10)
    for _ in range(10):
        opt.step()
        sched.step()
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["whiten_bias"] == 0.0 and lrs["weights"] > 0


def test_lookahead_finish_leaves_the_averaged_weights() -> None:
    model = torch.nn.Linear(2, 1)
    look = Lookahead(model, every=1, alpha=0.5, total_steps=1)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    look.step(model, 1)  # decay 0.5 at the end of training: halfway between slow and fast weights
    assert torch.allclose(model.weight, start + 0.5)
    look.finish(model)
    assert torch.allclose(model.weight, start + 0.5)


def test_airbench_settings_scale_learning_rate_with_batch() -> None:
    gpu, cpu = airbench_settings(device="cuda"), airbench_settings(device="cpu")
    assert gpu["batch_size"] == 1024 and cpu["batch_size"] == AIRBENCH["cpu_batch_size"]
    assert gpu["learning_rate"] / cpu["learning_rate"] == pytest.approx(1024 / cpu["batch_size"])
    assert gpu["learning_rate"] == pytest.approx(11.5 * 1024 / (1024 * (1 + 1 / 0.15)))


@pytest.fixture(scope="module")
def blobs() -> tuple:
    """Three classes of 16x16 colour images separated by their mean colour."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    x = rng.normal(0, 1, (120, 3, 16, 16)).astype(np.float32)
    x[np.arange(120), labels] += 1.5
    tx, ty = torch.from_numpy(x), torch.from_numpy(labels)
    return (tx[:96], ty[:96]), (tx[96:], ty[96:])


RECIPE = TrainSpec(epochs=3, batch_size=16, learning_rate=0.2, momentum=0.85, bias_lr_scale=8, schedule="triangular",
                   warmup_fraction=0.2, final_lr_fraction=0.07, augmentation="flip_translate", translate_pad=2,
                   alternating_flip=True, lookahead_every=2, whiten_init=True, whiten_bias_epochs=1,
                   channels_last=True, label_smoothing=0.2, seed=5)


# airbench94_muon's recipe on the same data: Muon on the filters, micro-batches, the linear schedule.
MUON = replace(TrainSpec(**{k: v for k, v in airbench_settings(16, optimizer="muon").items()
                            if k in TrainSpec.__dataclass_fields__}), epochs=3, whiten_bias_epochs=1,
               micro_batch_size=8, seed=5)


@pytest.mark.parametrize("recipe", [RECIPE, MUON], ids=["airbench94", "airbench94_muon"])
def test_recipe_learns_and_resumes_to_identical_weights(blobs: tuple, tmp_path: Path, recipe: TrainSpec) -> None:
    train, val = blobs
    straight = fit(airbench_xs(), train, val, recipe, tensorboard=False)
    assert straight.history[-1]["val_accuracy"] > 0.6  # chance is 1/3

    class Stop(Exception):
        pass

    def stop(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        fit(airbench_xs(), train, val, recipe, out_dir=tmp_path, on_epoch=stop, tensorboard=False)
    resumed = fit(airbench_xs(), train, val, recipe, out_dir=tmp_path, resume=True, tensorboard=False)
    assert resumed.resumed_from == 1
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_tta_views(blobs: tuple) -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(shift(x, 1, 1)[0, 0, 1:, 1:], x[0, 0, :3, :3])
    model = airbench_xs().eval()
    images = blobs[1][0][:4]
    plain = tta_logits(model, images, "none")
    flip = tta_logits(model, images, "flip")
    assert torch.allclose(flip, (plain + tta_logits(model, images.flip(3), "none")) / 2, atol=1e-5)
    assert tta_logits(model, images, "flip_translate").shape == plain.shape


def test_spent_whitening_bias_takes_no_gradient_and_the_weights_do_not_change(
        blobs: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """After its epochs the stem's bias stops taking gradients (a faster backward), with the same result."""
    from mlestar.training.loop import Trainer

    train, val = blobs
    seen: list[tuple[int, bool]] = []
    original = Trainer.train_epoch

    def spy(self: Trainer, epoch: int) -> tuple[float, float]:
        out = original(self, epoch)
        seen.append((epoch, self.model.whiten.bias.requires_grad))
        return out

    monkeypatch.setattr(Trainer, "train_epoch", spy)
    frozen = fit(airbench_xs(), train, val, RECIPE, tensorboard=False).model
    assert seen == [(1, True), (2, False), (3, False)]  # whiten_bias_epochs=1
    assert frozen.whiten.bias.requires_grad  # fit gives it back: trainable counts stay what they were

    monkeypatch.setattr(Trainer, "freeze_spent_params", lambda self: None)
    seen.clear()
    plain = fit(airbench_xs(), train, val, RECIPE, tensorboard=False).model
    assert seen == [(1, True), (2, True), (3, True)]
    for key, value in plain.state_dict().items():
        assert torch.allclose(value, frozen.state_dict()[key], atol=1e-6, rtol=0), key


def test_no_parameter_is_spent_under_data_parallelism_or_without_a_whitening_bias() -> None:
    from mlestar.training.loop import Shard, Trainer

    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 3, (32,))
    trainer = Trainer(airbench_xs(), (x, y), RECIPE)
    trainer.step_count = trainer.steps_per_epoch  # one epoch done: whiten_bias_epochs=1 is over
    assert trainer.spent_params() == [trainer.model.whiten.bias]
    assert Trainer(airbench_xs(), (x, y), RECIPE, Shard(rank=0, world=2)).spent_params() == []
    unfrozen = Trainer(airbench_xs(), (x, y), TrainSpec(whiten_bias_epochs=0))
    unfrozen.step_count = 10**6
    assert unfrozen.spent_params() == []
