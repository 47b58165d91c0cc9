"""A run the time budget cuts short re-times its schedule, so it still anneals; an unhurried run is unchanged."""

from types import SimpleNamespace
from typing import Iterator

import pytest
import torch

from mlestar.training import TrainSpec, fit
from mlestar.training.horizon import Horizon, epochs_within
from mlestar.training.loop import Trainer
from mlestar.training.optim import schedule_factor


def test_the_map_is_the_identity_until_retimed_then_ends_the_plan_at_the_new_end() -> None:
    horizon = Horizon(100)
    assert [horizon.nominal(s) for s in (0, 37, 100)] == [0, 37, 100]
    assert horizon.retime(20, 60)
    assert horizon.nominal(20) == 20 and horizon.nominal(40) == 60 and horizon.nominal(60) == 100
    assert horizon.nominal(10) == 10  # steps already taken keep their place
    assert horizon.retime(40, 80)  # a faster stretch moves the end back out, continuing from where it is
    assert horizon.nominal(40) == 60 and horizon.nominal(80) == 100 and horizon.nominal(60) == pytest.approx(80)
    assert not horizon.retime(50, 80)  # the same end: no new knot
    assert horizon.retime(50, 500) and horizon.end == 100  # never past the plan
    assert horizon.retime(60, 50) and horizon.end == 60 and horizon.nominal(60) == 100  # over budget: the end now
    copy = Horizon(1)
    copy.load_state_dict(horizon.state_dict())
    assert copy == horizon


@pytest.mark.parametrize("spent, last, expected", [(0.0, 10.0, 3), (21.0, 10.0, 1), (29.9, 10.0, 1),
                                                   (30.0, 10.0, 0), (45.0, 10.0, 0), (0.0, 7.0, 5)])
def test_epochs_within_keeps_the_crossing_epoch(spent: float, last: float, expected: int) -> None:
    assert epochs_within(30.0, spent, last) == expected


def fake_clock(epoch_seconds: list[float]) -> Iterator[float]:
    """perf_counter values for fit's two reads per epoch (start, end): each epoch takes the next duration."""
    now = 0.0
    for seconds in epoch_seconds:
        yield now
        now += seconds
        yield now


def data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 4, 4, generator=generator), torch.randint(0, 3, (96,), generator=generator)
    return (x, y), (x[:32], y[:32])


def net() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))


SPEC = TrainSpec(epochs=6, batch_size=32, learning_rate=0.1, momentum=0.9, schedule="linear", seed=3)


def test_fit_over_budget_ends_after_the_crossing_epoch_with_the_schedule_retimed(monkeypatch) -> None:
    from mlestar.training import loop

    clock = fake_clock([5, 5, 10, 10, 10, 10])  # the host slows down after epoch 2
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    lines: list[str] = []
    train, val = data()
    result = fit(net(), train, val, TrainSpec(**{**SPEC.to_dict(), "max_seconds": 25.0}), tensorboard=False,
                 report=lines.append)
    # After epoch 2 (10 s, 5 s each) 3 more fit: end 5. After epoch 3 (20 s, now 10 s each) 1 more: end 4.
    assert len(result.history) == 4 and result.training_time == 30
    assert "end after epoch 4 of 6" in (result.stopped_early or "")
    assert [line.split(": the")[1] for line in lines if "budget holds" in line] == [
        " schedule now ends after epoch 5", " schedule now ends after epoch 4"]
    peak = SPEC.learning_rate
    assert [round(row["lr"] / peak, 4) for row in result.history] == [1.0, round(1 - 1 / 6, 4), round(1 - 2 / 6, 4),
                                                                     round(1 - (2 + 4 / 3) / 6, 4)]


def test_a_budget_that_never_binds_changes_nothing(monkeypatch) -> None:
    train, val = data()
    free = fit(net(), train, val, SPEC, tensorboard=False, keep="last")
    ample = fit(net(), train, val, TrainSpec(**{**SPEC.to_dict(), "max_seconds": 1e9}), tensorboard=False,
                keep="last")
    assert ample.stopped_early is None and len(ample.history) == SPEC.epochs
    for a, b in zip(free.model.parameters(), ample.model.parameters()):
        assert torch.equal(a, b)


def test_a_retimed_trainer_anneals_to_the_schedule_end_and_checkpoints_its_horizon() -> None:
    train, _ = data()
    spec = TrainSpec(**{**SPEC.to_dict(), "schedule": "triangular", "final_lr_fraction": 0.05,
                        "lookahead_every": 1})
    trainer = Trainer(net(), train, spec)
    for epoch in (1, 2):
        trainer.train_epoch(epoch)
        trainer.history.append({"time": 10.0 * epoch})
    trainer.train_time = 20.0
    assert trainer.retime(30.0) is not None and trainer.end_epoch == 3
    trainer.train_epoch(3)
    lr = trainer.opt.param_groups[0]["lr"]
    end_factor = schedule_factor(spec, trainer.total_steps)(trainer.total_steps)
    assert lr == pytest.approx(spec.learning_rate * end_factor) and end_factor == pytest.approx(0.05)
    assert trainer.state()["horizon"] == trainer.horizon.state_dict() and trainer.horizon.end == 3 * 3


def test_a_run_already_over_budget_ends_now_with_lookahead_s_average() -> None:
    train, _ = data()
    # Blends every 5 steps: of the 9 steps, the last 4 leave the net away from the average until finish().
    trainer = Trainer(net(), train, TrainSpec(**{**SPEC.to_dict(), "lookahead_every": 5}))
    for epoch in (1, 2, 3):
        trainer.train_epoch(epoch)
        trainer.history.append({"time": 10.0 * epoch})
    trainer.train_time = 30.0
    assert trainer.retime(25.0) is not None and trainer.end_epoch == 3
    slow = trainer.lookahead.state_dict()
    assert all(torch.equal(value, slow[key]) for key, value in trainer.model.state_dict().items())
