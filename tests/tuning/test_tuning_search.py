"""Searches that really train (tiny digits, 1 thread): pruning, constraints, ablation, focused search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from mlestar.config import build_config
from mlestar.tuning.ablation import COMPONENTS, focus_space, focus_target, is_on, run_ablation
from mlestar.tuning.job import TrialData, TuneJob, trial_data
from mlestar.tuning.report import best_row, trial_rows
from mlestar.tuning.search import run_phase, search
from mlestar.tuning.standalone import run_job
from mlestar.tuning.study import open_study
from plan_helpers import sample_plan
from tiny_workflow import TINY, merge
from tune_helpers import unique_study

WIDE_LR = {"learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}}


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def tiny_job(run_dir: Path, tmp_path: Path, **refinement: Any) -> tuple[TuneJob, TrialData, Any]:
    """Job, data and settings for the shared tiny run, searching in ``tmp_path``."""
    config = build_config(merge(TINY, {"refinement": refinement}))
    job = run_job(config, run_dir, study=unique_study("s"), storage=None, out_dir=tmp_path)
    return job, trial_data(job), config.refinement


def test_six_trial_search_prunes_trials_fed_by_epoch_accuracy(tiny_run: Path, tmp_path: Path) -> None:
    job, data, settings = tiny_job(tiny_run, tmp_path, n_trials=6, epochs_per_trial=4, search_space=WIDE_LR,
                                   sampler="random", ablation=False)
    opened = open_study(job)
    run_phase(opened, data, settings, log_dir=tmp_path, deadline=None, report=print, progress=lambda d, t: None)
    rows = trial_rows(opened.study, "main")
    states = [r["state"] for r in rows]
    assert states.count("COMPLETE") + states.count("PRUNED") == 6
    assert "PRUNED" in states, states
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert all(r["epochs"] < 4 for r in pruned)  # stopped early, after reporting fewer epochs
    assert all(r["epochs"] == 4 for r in rows if r["state"] == "COMPLETE")


def test_infeasible_architectures_are_recorded_and_never_best(tiny_run: Path, tmp_path: Path) -> None:
    from mlestar.evaluation.efficiency import model_size_bytes
    from mlestar.training.plan import build_model

    job, data, settings = tiny_job(tiny_run, tmp_path, n_trials=3, epochs_per_trial=1, sampler="random",
                                   ablation=False, search_space={"width": {"type": "int", "low": 4, "high": 64}})
    limit = model_size_bytes(build_model(job.plan.replace(width=16)))
    job = TuneJob(**{**job.__dict__, "constraints": {"max_model_size": limit, "max_inference_latency": None}})
    opened = open_study(job)
    for width in (8, 64, 12):  # one too large between two that fit
        opened.study.enqueue_trial({"width": width})
    run_phase(opened, data, settings, log_dir=tmp_path, deadline=None, report=print, progress=lambda d, t: None)
    rows = trial_rows(opened.study, "main")
    infeasible = [r for r in rows if r["feasible"] is False]
    assert infeasible and all(r["params"]["width"] > 16 and r["value"] == 0.0 for r in infeasible)
    assert infeasible[0]["violations"][0]["constraint"] == "max_model_size"
    best = best_row(rows)
    assert best is not None and best["feasible"] and best["params"]["width"] <= 16
    # every trial over a tiny latency limit: nothing is feasible, so there is no best
    slow = TuneJob(**{**job.__dict__, "study": unique_study("lat"), "target_trials": 2,
                      "constraints": {"max_model_size": None, "max_inference_latency": 1e-9}})
    run_phase(open_study(slow), data, settings, log_dir=tmp_path, deadline=None, report=print,
              progress=lambda d, t: None)
    assert best_row(trial_rows(open_study(slow).study, "main")) is None


def test_ablation_switches_off_each_component_that_is_on(tiny_run: Path, tmp_path: Path) -> None:
    job, data, _ = tiny_job(tiny_run, tmp_path, epochs_per_trial=1)
    params = {"label_smoothing": 0.1, "class_weighting": "balanced"}
    rows = run_ablation(job, data, params, best_value=0.5)
    names = {r["component"] for r in rows}
    assert {"label_smoothing", "class_weighting", "width", "schedule", "augmentation"} <= names
    assert "lookahead" not in names  # the plain recipe has none to switch off
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert [r["impact"] for r in rows] == sorted((r["impact"] for r in rows), reverse=True)
    assert all(r["impact"] == pytest.approx(0.5 - r["val_accuracy"]) for r in rows)
    assert next(r for r in rows if r["component"] == "width")["change"] == "width: 32 -> 16"


def test_focus_goes_to_the_largest_positive_impact_with_parameters() -> None:
    configured = build_config({}).refinement.search_space
    plan = sample_plan(learning_rate=0.05, width=32, augmentation="translate", flip_safe=False)
    rows = [{"component": "width", "impact": 0.2}, {"component": "label_smoothing", "impact": 0.1},
            {"component": "schedule", "impact": -0.1}]
    component, space = focus_target(rows, plan, configured)
    assert component == "width" and space["width"].low == 16 and space["width"].high == 64
    assert focus_target([{"component": "schedule", "impact": -0.01}], plan, configured) is None
    aug = focus_space(next(c for c in COMPONENTS if c.name == "augmentation"), plan, configured)
    assert aug["augmentation"].choices == ["none", "translate"]  # no flips: stage 1 found them label-changing
    ls = focus_space(next(c for c in COMPONENTS if c.name == "label_smoothing"), plan, configured)
    assert ls["label_smoothing"] == configured["label_smoothing"]  # the configured range wins
    assert not is_on(next(c for c in COMPONENTS if c.name == "width"), plan.replace(width=4))
    lookahead = next(c for c in COMPONENTS if c.name == "lookahead")
    assert not is_on(lookahead, plan) and is_on(lookahead, plan.replace(lookahead_every=5))  # unset: off


def test_search_spends_the_kept_trials_on_focus_or_the_main_study(tiny_run: Path, tmp_path: Path) -> None:
    job, data, settings = tiny_job(tiny_run, tmp_path, n_trials=4, epochs_per_trial=1, focus_fraction=0.5,
                                   pruner="none")
    lines: list[str] = []
    result = search(job, data, settings, log_dir=tmp_path, report=lines.append)
    finished = [r for r in result.rows if r["state"] in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4
    assert result.ablation and result.best is not None
    if result.focus:
        assert {r["study"] for r in result.rows} == {"main", f"focus:{result.focus['component']}"}
        assert sum(r["study"] != "main" for r in finished) == 2
    else:
        assert any("main study continues to 4 trials" in line for line in lines)
    assert result.importance[1]


@pytest.mark.slow
def test_twenty_trial_searches_with_either_pruner_finish_in_minutes(tiny_run: Path, tmp_path: Path) -> None:
    import time

    for pruner in ("median", "hyperband"):
        job, data, settings = tiny_job(tiny_run, tmp_path, n_trials=20, epochs_per_trial=6, search_space=WIDE_LR,
                                       pruner=pruner)
        started = time.perf_counter()
        result = search(job, data, settings, log_dir=tmp_path)
        states = [r["state"] for r in result.rows]
        assert states.count("COMPLETE") + states.count("PRUNED") == 20
        assert "PRUNED" in states, (pruner, states)
        assert time.perf_counter() - started < 300
