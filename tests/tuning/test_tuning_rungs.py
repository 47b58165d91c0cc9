"""Multi-fidelity rungs chosen from stage 4's validation curve."""

from __future__ import annotations

import optuna
import pytest

from mlestar.tuning.rungs import choose_rungs, first_informative_epoch, trial_epoch
from mlestar.tuning.study import make_pruner

# A CIFAR-like run of 10 epochs, 10 classes, 5,000 validation images: epoch 1 is near chance (peak rate),
# epoch 2 is above chance but far from the end, epoch 3 is past half of the way to the best 0.90.
CURVE = [0.12, 0.40, 0.62, 0.71, 0.78, 0.82, 0.85, 0.88, 0.89, 0.90]


def history(curve: list[float]) -> list[dict]:
    return [{"epoch": i, "val_accuracy": v} for i, v in enumerate(curve, 1)]


def test_the_first_informative_epoch_is_clearly_above_chance_and_halfway_to_the_best() -> None:
    assert first_informative_epoch(CURVE, num_classes=10, val_size=5000) == 3  # halfway: 0.1 + 0.4 = 0.5
    # a weak run: halfway to its best 0.25 is 0.175, so epoch 2 (0.20) qualifies on 5,000 images (3 sampling
    # errors above 10%: 0.113), but not on 20 (0.1 + 3 x 0.067 = 0.30): there every epoch may be noise
    assert first_informative_epoch([0.12, 0.20, 0.25], num_classes=10, val_size=5000) == 2
    assert first_informative_epoch([0.12, 0.20, 0.25], num_classes=10, val_size=20) is None
    assert first_informative_epoch([0.11, 0.12, 0.13], num_classes=10, val_size=100) is None  # never clear
    assert first_informative_epoch([], num_classes=10, val_size=100) is None


def test_stage_4s_epoch_maps_to_the_same_share_of_a_trials_schedule() -> None:
    assert trial_epoch(3, 10, 10, 0.0) == 3
    assert trial_epoch(3, 10, 4, 0.0) == 2   # 30% of 4 epochs -> epoch 2
    assert trial_epoch(1, 10, 4, 0.5) == 2   # not before the warm-up (half the steps) ends


def test_auto_is_successive_halving_from_the_informative_epoch() -> None:
    rungs = choose_rungs(history(CURVE), pruner="auto", num_classes=10, val_size=5000, trial_epochs=10,
                         warmup_fraction=0.23)
    assert rungs.pruner == "halving" and rungs.stage4_epoch == 3 and rungs.min_resource == 3
    assert rungs.rungs == [3, 9] and "epoch 3/10" in rungs.reason
    pruner = make_pruner(rungs.pruner, max_epochs=10, target_trials=8, min_resource=rungs.min_resource)
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner) and pruner._min_resource == 3


def test_auto_does_not_prune_when_no_epoch_before_the_last_is_informative() -> None:
    short = choose_rungs(history(CURVE), pruner="auto", num_classes=10, val_size=5000, trial_epochs=1)
    assert short.pruner == "none" and short.min_resource is None and short.rungs == []
    flat = choose_rungs(history([0.1, 0.11]), pruner="auto", num_classes=10, val_size=5000, trial_epochs=5)
    assert flat.pruner == "none" and "never clearly above chance" in flat.reason


@pytest.mark.parametrize("name", ["hyperband", "median"])
def test_an_explicit_pruner_is_kept_with_the_evidence(name: str) -> None:
    rungs = choose_rungs(history(CURVE), pruner=name, num_classes=10, val_size=5000, trial_epochs=10)
    assert rungs.pruner == name and rungs.min_resource == 3
    assert rungs.rungs == ([3, 9] if name == "hyperband" else [])
    pruner = make_pruner(name, max_epochs=10, target_trials=8, min_resource=3)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner if name == "hyperband" else optuna.pruners.MedianPruner)


def test_halving_stops_a_trial_below_the_best_at_the_first_rung() -> None:
    """With the rung at epoch 3, a trial is never ranked at epochs 1-2, and a poor one stops at 3."""
    study = optuna.create_study(direction="maximize",
                                pruner=make_pruner("halving", max_epochs=10, target_trials=4, min_resource=3))
    stopped_at = {}
    for quality in (0.9, 0.5):
        trial = study.ask()
        for epoch in range(1, 11):
            trial.report(quality * min(1.0, epoch / 5), epoch)
            if trial.should_prune():
                stopped_at[quality] = epoch
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, quality)
    assert stopped_at == {0.5: 3}
