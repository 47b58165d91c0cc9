"""Trials tables, parameter importance (optuna.importance or the few-trials fallback), figures."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import optuna
import pytest

from mlestar.tuning.plots import plot_ablation, plot_history, plot_importance
from mlestar.tuning.report import MIN_TRIALS_FOR_OPTUNA_IMPORTANCE, best_row, param_importances, trial_rows, trials_csv

PNG = b"\x89PNG\r\n\x1a\n"


def study_with(n: int) -> optuna.Study:
    """Value grows with lr, ignores wd; aug choice 'b' is better; every third trial is infeasible."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    for i in range(n):
        trial = study.ask()
        lr = trial.suggest_float("lr", 0.01, 1.0, log=True)
        wd = trial.suggest_float("wd", 0.0, 1.0)
        aug = trial.suggest_categorical("aug", ["a", "b"])
        trial.set_user_attr("feasible", i % 3 != 2)
        trial.set_user_attr("plan_params", {"lr": lr, "wd": wd, "aug": aug})
        study.tell(trial, lr + (0.3 if aug == "b" else 0.0) + 0.001 * wd)
    return study


def test_few_trials_fall_back_to_rank_correlation() -> None:
    method, values = param_importances(study_with(5), ["lr", "wd", "aug"])
    assert "Spearman" in method and f"needs {MIN_TRIALS_FOR_OPTUNA_IMPORTANCE}" in method
    assert sum(values.values()) == pytest.approx(1.0)
    assert values["lr"] > values["wd"]


def test_enough_trials_use_optuna_importance() -> None:
    method, values = param_importances(study_with(20), ["lr", "wd", "aug"])
    assert method.startswith("optuna.importance")
    assert set(values) == {"lr", "wd", "aug"} and sum(values.values()) == pytest.approx(1.0)


def test_trials_table_and_best_excludes_infeasible() -> None:
    rows = trial_rows(study_with(6), "main")
    table = list(csv.DictReader(io.StringIO(trials_csv(rows))))
    assert [r["number"] for r in table] == [str(i) for i in range(6)]
    assert {"lr", "wd", "aug", "state", "value", "feasible"} <= set(table[0])
    best = best_row(rows)
    assert best is not None and best["feasible"] is True
    assert best["value"] == max(r["value"] for r in rows if r["feasible"])


def test_figures_are_pngs_even_with_nothing_to_show(tmp_path: Path) -> None:
    rows = trial_rows(study_with(6), "main")
    outputs = [plot_history(rows, tmp_path / "h.png", baseline=0.5), plot_history([], tmp_path / "h0.png"),
               plot_importance({"lr": 0.7, "wd": 0.3}, "test", tmp_path / "i.png"),
               plot_importance({}, "none", tmp_path / "i0.png"),
               plot_ablation([{"component": "width", "impact": 0.1}, {"component": "schedule", "impact": -0.05}],
                             tmp_path / "a.png"), plot_ablation([], tmp_path / "a0.png")]
    assert all(path.read_bytes()[:8] == PNG for path in outputs)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temp file left behind
