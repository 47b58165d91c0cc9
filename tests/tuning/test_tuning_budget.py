"""Stage 6's budget: a share of stage 4's measured training time, split between search and retraining."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlestar.config.schema import RefinementConfig
from mlestar.tuning.budget import plan_budget, share_needed


def budget(t4: float = 100.0, *, plan_epochs: int = 10, trial_epochs: int = 3, reuse: bool = True, **settings):
    settings.setdefault("budget_floor", "1s")  # the floor has its own test
    return plan_budget(RefinementConfig(**settings), t4, plan_epochs=plan_epochs, trial_epochs=trial_epochs,
                       reuse_before=reuse)


def test_the_default_share_is_half_of_stage_4s_measured_seconds() -> None:
    b = budget(200.0, train_fraction=0.25)
    assert RefinementConfig().budget_share == 0.5 and b.total == pytest.approx(100.0)
    assert b.trial_estimate == pytest.approx(200.0 * 3 / 10 * 0.25)  # 15 s per trial
    # half a training cannot pay the one full-length retraining (200 s): search only, the winner reported
    assert b.mode == "search_only" and b.search == pytest.approx(100.0)
    assert "budget_share >= 1.2" in b.reason  # 200 s retraining + 2 x 15 s trials = 230 s = 1.15 x 200 s


def test_a_share_that_pays_the_retraining_gives_the_search_the_rest() -> None:
    b = budget(100.0, budget_share=2.0, train_fraction=0.5)
    assert b.mode == "search_and_compare" and b.retrain_estimate == 100.0
    assert b.search == pytest.approx(100.0)  # 200 s - the 100 s reserve
    assert b.compare_seconds(spent=120.0) == pytest.approx(80.0)  # what is left when the comparison starts
    assert b.compare_seconds(spent=250.0) == 0.0


def test_a_baseline_that_must_be_retrained_doubles_the_reserve() -> None:
    b = budget(100.0, budget_share=2.0, train_fraction=0.5, reuse=False)
    assert b.retrain_estimate == 200.0 and b.mode == "search_only"


def test_no_search_when_not_even_two_trials_fit() -> None:
    b = budget(100.0, budget_share=0.1, trial_epochs=10)  # a trial is a whole training
    assert b.mode == "skip" and b.search == 0.0 and "budget_share >= 2" in b.reason


def test_explicit_timeouts_win_over_the_share() -> None:
    b = budget(100.0, timeout="30s")
    assert b.search == 30.0 and b.mode == "search_only"  # 50 - 30 s left cannot retrain 100 s
    b = budget(100.0, timeout="30s", compare_timeout="10 minutes")
    assert b.search == 30.0 and b.mode == "search_and_compare" and b.compare_seconds(spent=999.0) == 600.0


def test_without_a_share_trials_and_timeout_bound_the_stage() -> None:
    b = budget(100.0, budget_share=None, timeout="1h")
    assert b.total is None and b.search == 3600.0 and b.mode == "search_and_compare"
    assert b.compare_seconds(spent=1e9) is None


@pytest.mark.parametrize("bad", [{"budget_share": 0}, {"budget_share": -1}, {"budget_share": 50},
                                 {"pruner": "halving", "epochs_per_trial": 1}])
def test_the_validator_refuses_nonsense(bad: dict) -> None:
    with pytest.raises(ValidationError):
        RefinementConfig(**bad)


def test_share_needed_rounds_up_to_a_tenth() -> None:
    assert share_needed(200.0, 230.0) == 1.2 and share_needed(100.0, 100.0) == 1.0 and share_needed(0.0, 5.0) == 0.0


def test_the_floor_lets_a_seconds_long_training_search_and_compare() -> None:
    b = plan_budget(RefinementConfig(), 3.0, plan_epochs=10, trial_epochs=10, reuse_before=True)
    assert RefinementConfig().budget_floor == 120.0
    assert b.total == 120.0 and b.mode == "search_and_compare" and b.search == pytest.approx(117.0)
    assert "raised to budget_floor 120s" in b.reason
    big = plan_budget(RefinementConfig(), 600.0, plan_epochs=10, trial_epochs=3, reuse_before=True)
    assert big.total == pytest.approx(300.0) and "budget_floor" not in big.reason  # the share is above the floor
