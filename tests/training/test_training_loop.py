"""The fit loop learns, checkpoints every epoch, and resumes to identical weights."""

from pathlib import Path

import pytest
import torch

from mlestar.config import default_config
from mlestar.data import load_dataset
from mlestar.models import create_model
from mlestar.training import TrainSpec, fit, split_to_tensors
from mlestar.training.augment import random_flip, random_translate


@pytest.fixture(scope="module")
def digits_tensors() -> tuple:
    torch.set_num_threads(1)
    dataset = load_dataset(default_config().config.data, seed=0)
    prep = dataset.preprocessing()
    cpu = torch.device("cpu")
    return split_to_tensors(dataset.train, prep, cpu), split_to_tensors(dataset.val, prep, cpu)


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("small_cnn", num_classes=10, in_channels=1, image_size=8, width=8)


SPEC = TrainSpec(epochs=3, batch_size=64, learning_rate=0.1, augmentation="translate", seed=3)


class Stop(Exception):
    pass


def test_fit_learns_digits(digits_tensors: tuple) -> None:
    train, val = digits_tensors
    result = fit(model(), train, val, TrainSpec(epochs=4, batch_size=32, learning_rate=0.1), tensorboard=False)
    assert len(result.history) == 4
    assert max(r["val_accuracy"] for r in result.history) > 0.8  # chance is 0.1
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_resume_after_interruption_gives_identical_weights(digits_tensors: tuple, tmp_path: Path) -> None:
    train, val = digits_tensors
    straight = fit(model(), train, val, SPEC, tensorboard=False).model.state_dict()

    def stop_after_first(epoch: int, row: dict) -> None:
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        fit(model(), train, val, SPEC, out_dir=tmp_path, on_epoch=stop_after_first, tensorboard=False)
    assert (tmp_path / "checkpoints" / "last.pt").exists()
    resumed = fit(model(), train, val, SPEC, out_dir=tmp_path, resume=True, tensorboard=False)
    assert resumed.resumed_from == 1 and len(resumed.history) == 3
    for key, value in straight.items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_tensorboard_logs_are_written(digits_tensors: tuple, tmp_path: Path) -> None:
    train, val = digits_tensors
    fit(model(), train, val, TrainSpec(epochs=1), out_dir=tmp_path)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_translate_shifts_by_at_most_pad() -> None:
    x = torch.zeros(16, 1, 8, 8)
    x[:, :, 4, 4] = 1.0
    out = random_translate(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    ys, xs = torch.nonzero(out[:, 0] == 1.0, as_tuple=True)[1:]
    assert ((ys - 4).abs() <= 2).all() and ((xs - 4).abs() <= 2).all()
    assert len(set(zip(ys.tolist(), xs.tolist()))) > 1  # really random per image


def test_flip_mirrors_some_images() -> None:
    x = torch.arange(8.0).view(1, 1, 1, 8).repeat(32, 1, 1, 1)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == 7).sum().item()
    assert 0 < flipped < 32


def test_keep_last_returns_the_final_weights_not_the_best(digits_tensors: tuple, tmp_path: Path) -> None:
    """keep='last' (a model trained on train+val) returns what the last epoch left, as the checkpoint holds it."""
    from mlestar.training.checkpoint import load_torch

    train, val = digits_tensors
    result = fit(model(), train, val, SPEC, out_dir=tmp_path, tensorboard=False, keep="last")
    last = load_torch(tmp_path / "checkpoints" / "last.pt")
    assert result.best_epoch == len(result.history) == 3
    for key, value in last["model"].items():
        assert torch.equal(value, result.model.state_dict()[key]), key
    best = fit(model(), train, val, SPEC, tensorboard=False)  # same seed: the same run, best epoch loaded
    untimed = [[{k: v for k, v in row.items() if k != "time"} for row in run.history] for run in (best, result)]
    assert untimed[0] == untimed[1]
    for key, value in last["best_state"].items():
        assert torch.equal(value, best.model.state_dict()[key]), key


def test_non_finite_loss_stops_training_with_a_hint(digits_tensors: tuple) -> None:
    from mlestar.errors import TrainingError

    train, val = digits_tensors
    with pytest.raises(TrainingError, match="loss became (nan|inf) in epoch 1") as info:
        fit(model(), train, val, TrainSpec(epochs=2, batch_size=64, learning_rate=1e9, momentum=0.9),
            tensorboard=False)
    assert "learning_rate" in (info.value.hint or "")


@pytest.mark.parametrize("n, micro, sizes", [(2000, 250, [250] * 8), (512, 250, [171, 170, 171]),
                                             (100, None, [100]), (100, 500, [100])])
def test_micro_batches_split_evenly_and_cover_the_batch(n: int, micro: int | None, sizes: list[int]) -> None:
    from mlestar.training.loop import micro_batches

    parts = micro_batches(n, micro)
    assert [p.stop - p.start for p in parts] == sizes
    assert parts[0].start == 0 and parts[-1].stop == n and all(a.stop == b.start for a, b in zip(parts, parts[1:]))


def test_gradient_accumulation_takes_the_same_steps_as_the_whole_batch() -> None:
    """Without batch norm, parts of a batch sum to the whole batch's mean gradient: the same weights after."""
    from dataclasses import replace

    from mlestar.training.loop import Trainer

    torch.manual_seed(0)
    x, y = torch.randn(96, 1, 4, 4), torch.randint(0, 3, (96,))
    spec = TrainSpec(epochs=2, batch_size=48, learning_rate=0.1, momentum=0.9, seed=3)
    weights = []
    for micro in (None, 16, 20):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
        trainer = Trainer(model, (x, y), replace(spec, micro_batch_size=micro))
        loss, _ = trainer.train_epoch(1)
        weights.append((model[1].weight.detach().clone(), loss))
    for w, loss in weights[1:]:
        torch.testing.assert_close(w, weights[0][0], rtol=1e-5, atol=1e-6)
        assert loss == pytest.approx(weights[0][1], rel=1e-5)
    torch.manual_seed(1)
    initial = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))[1].weight
    assert (weights[0][0] - initial).abs().max() > 1e-3  # it did train
