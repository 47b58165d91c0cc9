"""Stage 6's parts for tables: the search, the ensemble, the adoption rule and ablations."""

from __future__ import annotations

import numpy as np
import pytest

from mlestar.domains.tables import refine
from mlestar.domains.tables.dataset import load_table_dataset
from mlestar.domains.tables.planning import make_plan
from tests.domains.tables.tables_helpers import mixed_frame, record_of, table_config, write_csv


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    path = write_csv(mixed_frame(rows=500), tmp_path_factory.mktemp("t") / "t.csv")
    ds = load_table_dataset(table_config(path=str(path), target="y", id_columns=["row_id"]).data, 0)
    plan = make_plan(record_of(ds), {}, learner=None, seed=0, cv_folds=0, budget_s=None, fit_time_s=None)
    return ds, plan


def test_search_starts_from_the_plan_and_prunes(mixed) -> None:
    ds, plan = mixed
    result = refine.run_search(plan, ds, score="roc_auc", n_trials=8, timeout=None, storage=None,
                               study_name="t", pruner="median", n_jobs=1)
    assert result.completed + result.pruned == 8 and result.completed >= 3
    first = result.trials[0]
    assert first["params"] == pytest.approx({"learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20,
                                              "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1e-3})
    assert result.best_value == max(t["value"] for t in result.trials if t["state"] == "COMPLETE")


def test_ensemble_soft_votes_the_distinct_best(mixed) -> None:
    ds, plan = mixed
    trials = [{"number": i, "state": "COMPLETE", "value": v, "params": p, "best_iteration": 40}
              for i, (v, p) in enumerate([(0.9, {"num_leaves": 8}), (0.95, {"num_leaves": 16}),
                                          (0.95, {"num_leaves": 16}), (0.8, {"num_leaves": 64})])]
    search = refine.SearchResult(trials, {"num_leaves": 16}, 0.95, 4, 0, 0.0)
    members = refine.distinct_best(search, "roc_auc", k=2)
    assert [m["params"]["num_leaves"] for m in members] == [16, 8]  # the duplicate is skipped
    model = refine.ensemble_model(plan, members, ds, seed=0, n_jobs=1)
    proba = model.predict_proba(ds.val)
    assert proba.shape == (len(ds.val), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert [est.named_steps["model"].n_estimators for est in model.pipeline.estimators_] == [40, 40]


def test_adoption_needs_a_gain_beyond_the_noise() -> None:
    base = refine.Candidate("base", [0.90, 0.91, 0.89])
    assert not refine.adopt(base, refine.Candidate("c", [0.905, 0.915, 0.895]), "accuracy")[0]  # gain 0.005 < std
    assert refine.adopt(base, refine.Candidate("c", [0.95, 0.96, 0.94]), "accuracy")[0]
    assert refine.adopt(refine.Candidate("b", [10.0, 10.2]), refine.Candidate("c", [8.0, 8.1]), "rmse")[0]


def test_ablation_finds_the_group_that_matters(mixed) -> None:
    ds, plan = mixed
    rows = refine.ablations(plan, ds, "roc_auc", reference=0.85, n_jobs=1)
    assert {r["group"] for r in rows} == {"numeric", "categorical", "datetime"}
    assert rows[0]["group"] == "numeric" and rows[0]["change"] < -0.1  # x carries most of the signal


def test_no_trial_is_pruned_before_half_the_baselines_rounds(mixed) -> None:
    ds, plan = mixed
    from mlestar.domains.tables.fit import fit_plan

    baseline = fit_plan(plan, ds.train, ds.val, ds.class_names).model
    kept = baseline.pipeline.named_steps["model"].best_iteration_
    assert refine.warmup_rounds(baseline) == max(20, kept // 2)


def test_a_gain_the_validation_rows_could_produce_is_not_adopted(mixed) -> None:
    from mlestar.domains.tables.fit import fit_plan

    ds, plan = mixed
    a = fit_plan(plan, ds.train, ds.val, ds.class_names).model
    b = fit_plan(plan.with_changes(params={"num_leaves": 8}), ds.train, ds.val, ds.class_names).model
    base = refine.Candidate("base", [0.900, 0.900], a)
    challenger = refine.Candidate("c", [0.903, 0.903], b)  # +0.003, no seed noise at all
    assert refine.adopt(base, challenger, "roc_auc")[0]
    wins, improvement, noise = refine.adopt(base, challenger, "roc_auc", ds)
    assert not wins and noise > improvement  # 75 validation rows: AUC moves by more than 0.003
    assert noise == pytest.approx(refine.bootstrap_gain_std(a, b, ds, "roc_auc"))
