"""Planning and fitting table models: column steps, learners, early stopping, CV resume, remedies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlestar.domains.tables.dataset import load_table_dataset
from mlestar.domains.tables.fit import cross_validate, fit_plan, permutation_importance
from mlestar.domains.tables.learners import create_learner, list_learners
from mlestar.domains.tables.model import load_model
from mlestar.domains.tables.planning import apply_remedies, make_plan
from mlestar.errors import ConfigError
from tests.domains.tables.tables_helpers import mixed_frame, record_of, table_config, write_csv


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    path = write_csv(mixed_frame(), tmp_path_factory.mktemp("t") / "t.csv")
    return load_table_dataset(table_config(path=str(path), target="y", id_columns=["row_id"]).data, 0)


def _plan(ds, **kw):
    return make_plan(record_of(ds), kw.pop("recs", {}), learner=kw.pop("learner", None), seed=0,
                     cv_folds=kw.pop("cv_folds", 0), budget_s=kw.pop("budget_s", None),
                     fit_time_s=kw.pop("fit_time_s", None))


def test_plan_gives_every_column_a_reasoned_step(mixed) -> None:
    plan = _plan(mixed, recs={"drop_columns": [{"column": "shop", "reason": "leak suspect (AUC 0.99)"}]})
    steps = {s.column: s for s in plan.columns}
    assert steps["x"].action == "numeric" and not steps["x"].scale
    assert steps["color"].action == "onehot" and "3 values" in steps["color"].reason
    assert steps["shop"].action == "drop" and "AUC 0.99" in steps["shop"].reason
    assert plan.inputs == ["x", "color", "day"] and plan.datetime_columns == ["day"]


def test_linear_learner_scales_and_budget_falls_back(mixed) -> None:
    plan = _plan(mixed, budget_s=1.0, fit_time_s=5.0)
    assert plan.learner == "linear" and "exceed the 1s" in plan.reasons["learner"]
    assert all(s.scale for s in plan.columns if s.action == "numeric")


def test_fit_stops_early_and_handles_missing_values_and_dates(mixed) -> None:
    outcome = fit_plan(_plan(mixed), mixed.train, mixed.val, mixed.class_names)
    assert outcome.report.best_iteration < 2000  # stopped well before the cap
    assert len(outcome.report.curve["binary_logloss"]["valid"]) >= outcome.report.best_iteration
    assert outcome.val_scores["roc_auc"] > 0.8
    proba = outcome.model.predict_proba(mixed.test)
    assert proba.shape == (len(mixed.test), 2) and np.allclose(proba.sum(axis=1), 1.0)


def test_saved_model_predicts_the_same(mixed, tmp_path) -> None:
    model = fit_plan(_plan(mixed, learner="linear"), mixed.train, mixed.val, mixed.class_names).model
    model.save(tmp_path / "m.joblib")
    again = load_model(tmp_path / "m.joblib")
    assert np.array_equal(again.predict_proba(mixed.test), model.predict_proba(mixed.test))


def test_regression_log_target_predicts_in_the_target_scale() -> None:
    ds = load_table_dataset(table_config(dataset="diabetes").data, 0)
    plan = _plan(ds, recs={"target_transform": {"choice": "log1p", "reason": "skew 1.2"}})
    assert plan.target_transform == "log1p"
    outcome = fit_plan(plan, ds.train, ds.val, ds.class_names)
    predicted = outcome.model.predict_values(ds.val)
    assert 25 < float(np.median(predicted)) < 346  # the target's own range, not its log
    assert outcome.val_scores["r2"] > 0.2


def test_cross_validation_resumes_from_fold_files(mixed, tmp_path) -> None:
    plan = _plan(mixed, cv_folds=3)
    first = cross_validate(plan, mixed, tmp_path)
    assert len(first["folds"]) == 3 and not np.isnan(np.array(first["oof"])).any()
    record = json.loads((tmp_path / "fold_1.json").read_text())
    record["scores"]["roc_auc"] = 0.123  # a finished fold is read back, not refitted
    (tmp_path / "fold_1.json").write_text(json.dumps(record))
    assert cross_validate(plan, mixed, tmp_path)["folds"][1] == 0.123


def test_remedies_change_learner_parameters_with_reasons(mixed) -> None:
    plan = _plan(mixed)
    changed, lines = apply_remedies(plan, [{"remedy": "add_regularization", "gate": "g", "diagnosis": "overfitting"},
                                           {"remedy": "add_augmentation", "gate": "g", "diagnosis": "overfitting"}],
                                    {"num_leaves": 31})
    assert changed.params["reg_lambda"] == 1.0 and changed.params["min_child_samples"] == 40
    assert "nothing changed" in lines[1] and "reg_lambda" in changed.reasons["remedy_1"]


def test_permutation_importance_ranks_the_signal_first(mixed) -> None:
    model = fit_plan(_plan(mixed), mixed.train, mixed.val, mixed.class_names).model
    importance = permutation_importance(model, mixed.val)
    assert list(importance)[0] == "x" and importance["x"] > importance["day"]


def test_unknown_learner_names_the_registered_ones() -> None:
    assert {"lightgbm", "xgboost", "hist_gradient_boosting", "linear"} <= set(list_learners())
    with pytest.raises(ConfigError, match="did you mean 'lightgbm'"):
        create_learner("lightgbn", "binary")
