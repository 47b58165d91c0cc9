"""The search space: config validation (clear refusals) and drawing with conditions."""

from __future__ import annotations

import optuna
import pytest

from mlestar.config import build_config
from mlestar.config.schema import ParamSpec, RefinementConfig
from mlestar.errors import ConfigError, PlanError
from mlestar.tuning.space import (
    apply_params, draw_order, is_active, param_changes, space_from_json, space_to_json, suggest_params,
)
from plan_helpers import sample_plan

SGD_MOMENTUM = {"optimizer": {"type": "categorical", "choices": ["sgd", "adamw"]},
                "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "sgd"}},
                "learning_rate": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
                "width": {"type": "int", "low": 8, "high": 64, "log": True}}


def refusal(**refinement: object) -> str:
    with pytest.raises(ConfigError) as info:
        build_config({"refinement": refinement})
    return str(info.value)


@pytest.mark.parametrize("space, expected", [
    ({}, "the search space is empty"),
    ({"learning_rate": {"type": "float", "low": 0.3, "high": 0.1}}, "needs low < high"),
    ({"learning_rate": {"type": "float", "low": 0.1, "high": 0.1}}, "needs low < high"),
    ({"learning_rate": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "needs low > 0"),
    ({"momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"optimizer": "sgd"}}},
     "'optimizer' is not in the search space"),
    ({"optimizer": {"type": "categorical", "choices": ["adamw"]},
      "momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"optimizer": "sgd"}}},
     "the condition is contradictory"),
    ({"momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"momentum": 0.6}}}, "on itself"),
    ({"learning_rate": {"type": "float", "low": 0.01, "high": 0.1, "when": {"width": 16}},
      "width": {"type": "int", "low": 8, "high": 32, "when": {"learning_rate": 0.05}}}, "form a cycle"),
    ({"width": {"type": "float", "low": 8, "high": 64}}, "'width' is a whole number"),
    ({"label_smoothing": {"type": "float", "low": 0.0, "high": 1.5}}, "'label_smoothing' cannot be [1.5]"),
    ({"augmentation": {"type": "categorical", "choices": ["none", "mixup"]}}, "'augmentation' cannot be ['mixup']"),
    ({"optimizer": {"type": "categorical", "choices": ["sgd", "sgd"]}}, "lists a value twice"),
    ({"learning_rte": {"type": "float", "low": 0.01, "high": 0.1}}, "did you mean 'learning_rate'?"),
])
def test_bad_search_spaces_are_refused_with_the_reason(space: dict, expected: str) -> None:
    assert expected in refusal(search_space=space)


def test_cmaes_refuses_categorical_and_conditional_spaces() -> None:
    one_choice = {"optimizer": {"type": "categorical", "choices": ["sgd"]}}
    assert "cmaes searches continuous spaces only, but 'optimizer' is categorical (1 choice(s))" in \
        refusal(sampler="cmaes", search_space=one_choice)
    assert "'momentum' is conditional" in refusal(sampler="cmaes", search_space={
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.1},
        "momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"learning_rate": 0.05}}})
    build_config({"refinement": {"sampler": "cmaes", "search_space": {
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
        "width": {"type": "int", "low": 8, "high": 32}}}})


def test_unknown_sampler_pruner_and_storage_forms_are_refused() -> None:
    assert "refinement.sampler" in refusal(sampler="bayes")
    assert "refinement.pruner" in refusal(pruner="asha")
    assert "neither sqlite, journal nor a database URL" in refusal(storage="postgres-server")
    assert "need storage: journal" in refusal(workers=2)


def test_conditions_are_drawn_after_their_subject_and_only_when_they_hold() -> None:
    space = RefinementConfig(search_space=SGD_MOMENTUM).search_space
    order = draw_order(space)
    assert order.index("optimizer") < order.index("momentum")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(12):
        trial = study.ask()
        params = suggest_params(trial, space)
        seen.append(params)
        study.tell(trial, 0.5)
    assert all(("momentum" in p) == (p["optimizer"] == "sgd") for p in seen)
    assert {p["optimizer"] for p in seen} == {"sgd", "adamw"}
    assert all(isinstance(p["width"], int) and 8 <= p["width"] <= 64 for p in seen)
    assert is_active(space["momentum"], {"optimizer": "sgd"}) and not is_active(space["momentum"], {})


def test_space_round_trips_through_json() -> None:
    space = RefinementConfig(search_space=SGD_MOMENTUM).search_space
    assert space_from_json(space_to_json(space)) == space
    assert space_to_json(space)["momentum"]["when"] == {"optimizer": ["sgd"]}


def test_apply_params_turns_class_weighting_into_weights() -> None:
    plan = sample_plan(learning_rate=0.05, class_weighting="none")
    balanced = apply_params(plan, {"class_weighting": "balanced"}, [10, 30])
    assert balanced.class_weighting == "balanced" and balanced.class_weights == pytest.approx((2.0, 2 / 3))
    assert apply_params(balanced, {"class_weighting": "none"}, [10, 30]).class_weights is None
    assert apply_params(plan, {"learning_rate": 0.1}, [1, 1]) == plan.replace(learning_rate=0.1)
    assert (plan.learning_rate, plan.class_weights) == (0.05, None)  # the plan itself is not changed


def test_trial_parameters_are_typed_changes_checked_against_the_plan() -> None:
    changes = param_changes({"learning_rate": 0.1, "class_weighting": "balanced"}, [10, 30], "trial 3")
    assert [(c.field, c.reason) for c in changes] == [("learning_rate", "trial 3"), ("class_weighting", "trial 3"),
                                                      ("class_weights", "trial 3")]
    with pytest.raises(PlanError, match="no setting 'dropout'"):
        param_changes({"dropout": 0.1}, [1, 1], "trial 4")
    with pytest.raises(PlanError, match="plan change is not valid: optimizer"):
        param_changes({"optimizer": "lbfgs"}, [1, 1], "trial 5")


def test_param_spec_shapes() -> None:
    with pytest.raises(ValueError, match="takes 'choices', not low/high/log"):
        ParamSpec(type="categorical", choices=[1, 2], low=1)
    with pytest.raises(ValueError, match="whole-number bounds"):
        ParamSpec(type="int", low=1.5, high=4)
    assert ParamSpec(type="float", low=0, high=1, when={"optimizer": ["sgd", "adamw"]}).when == \
        {"optimizer": ["sgd", "adamw"]}


def test_the_draw_order_is_the_same_whatever_order_the_config_wrote_the_space_in() -> None:
    """A run's saved config has sorted keys: ``reproduce`` must draw the same trials as the YAML did."""
    specs = {"weight_decay": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
             "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
             "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2}}
    written = RefinementConfig(search_space=specs).search_space
    saved = RefinementConfig(search_space=dict(sorted(specs.items()))).search_space
    assert list(written) != list(saved)
    draws = []
    for space in (written, saved):
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
        draws.append([suggest_params(study.ask(), space) for _ in range(3)])
    assert draws[0] == draws[1]


def test_a_tuned_recipe_leaves_only_what_it_did_not_fix() -> None:
    from mlestar.config.schema import ParamSpec
    from mlestar.tuning.space import untuned_space

    space = {"learning_rate": ParamSpec(type="float", low=0.1, high=1.0, log=True),
             "label_smoothing": ParamSpec(type="float", low=0.0, high=0.3),
             "epochs": ParamSpec(type="int", low=8, high=12),
             "augmentation": ParamSpec(type="categorical", choices=["none", "flip_translate"])}
    kept, dropped = untuned_space(space, "airbench")
    assert sorted(kept) == ["augmentation", "epochs"] and dropped == ["label_smoothing", "learning_rate"]
    assert untuned_space(space, "plain") == (space, [])
