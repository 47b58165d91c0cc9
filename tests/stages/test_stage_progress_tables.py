"""Every long step of a table run reports progress ``(label, done, total)`` and ends at ``done == total``."""

from __future__ import annotations

import pytest


Call = tuple[str, int, int]


def last_of_each(calls: list[Call]) -> dict[str, tuple[int, int]]:
    """The final ``(done, total)`` reported under each label."""
    return {label: (done, total) for label, done, total in calls}


def test_each_long_table_step_reports_progress_to_the_end(finished_table_run_progress: list[Call]) -> None:
    calls = finished_table_run_progress  # the shared tiny table run (tests/conftest.py), as it ran
    last = last_of_each(calls)
    # the tiny config: 2 CV folds, 200 boosting rounds planned, 4 trials, 2 seeds; breast cancer has 30 features
    expected = {
        "situation analysis: profile, duplicates, target, correlation, drift, leakage, plots, report": (8, 8),
        "situation analysis: drift check folds": (3, 3),
        "task definition: LightGBM fit-time probe": (1, 1),
        "cross-validation folds": (2, 2),
        "boosting rounds: fold 1/2": (200, 200), "boosting rounds: fold 2/2": (200, 200),
        "boosting rounds: final fit": (200, 200),
        "implementation: cross-validation, final fit, importance, plots": (4, 4),
        "evaluation: test scores, SHAP, importance, plots, latency and throughput": (5, 5),
        "refinement trials": (4, 4),
        "refinement: baseline refits over seeds": (1, 1),  # seed 0 is stage 4's model, reused
        "refinement: search, seeded refits, ensemble, ablations": (4, 4),
        "deployment: ONNX export and parity, schema and drift, bundle, benchmark": (4, 4),
    }
    for label, end in expected.items():
        assert last.get(label) == end, (label, [c for c in calls if c[0] == label])
    leakage = last["situation analysis: leakage probes (columns)"]
    assert leakage[0] == leakage[1] >= 30  # every feature column probed, one report each
    assert last["ablations"][0] == last["ablations"][1]  # all-numeric data: no kind groups, an empty bar closed
    for label in last:  # every bar starts at 0, never runs backwards, and ends full
        dones = [done for name, done, _ in calls if name == label]
        assert dones[0] == 0 and dones == sorted(dones), (label, dones)
        assert last[label][0] == last[label][1], label


@pytest.mark.parametrize("learner", ["lightgbm", "xgboost"])
def test_boosting_rounds_are_reported_a_few_times_a_second_not_every_round(learner: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """300 boosting rounds on a clock that moves 10 ms per reading: a report each 0.25 s, not each round."""
    import itertools

    import numpy as np

    from mlestar.domains.tables import progress
    from mlestar.domains.tables.learners import create_learner, fit_learner

    clock = itertools.count()
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock) * 0.01)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 5)), rng.integers(0, 2, 400)
    calls: list[tuple[int, int]] = []
    estimator = create_learner(learner, "binary", {"n_estimators": 300}, seed=0)
    fit_learner(learner, estimator, x[:300], y[:300], x[300:], y[300:], early_stopping_rounds=300,
                on_round=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 300) and calls[-1] == (300, 300)
    assert 10 <= len(calls) <= 15  # 0, about one per 25 rounds (12), the end: not 301
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert estimator.get_params().get("callbacks") is None  # nothing of the ticker stays on a saved model
