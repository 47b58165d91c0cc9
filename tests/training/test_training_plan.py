"""The typed training plan: plan.json round trips, validation naming the setting, typed changes and their reasons."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from mlestar.config.schema import TUNABLE, AugmentationName, OptimizerName, PrecisionName, ScheduleName
from mlestar.errors import PlanError
from mlestar.training.plan import PlanChange, PlanDocument, TrainingPlan, describe_changes, spec_from_plan
from mlestar.training.recipes import airbench_settings
from mlestar.training.spec import TrainSpec
from plan_helpers import LEGACY_PLAN_JSON, legacy_plan_json, sample_document, sample_plan


def airbench_plan_json() -> dict:
    """A stage 6 plan.json of an airbench run: recipe extras, balanced weights and refined_params present."""
    raw = legacy_plan_json(**airbench_settings(256, device="cpu"), model="airbench_xs", recipe="airbench",
                           image_size=32, in_channels=3, class_weighting="balanced", class_weights=[0.5, 1.5])
    raw["training"]["num_classes"] = 2
    raw["reasons"].update({"warmup_fraction": "airbench recipe", "class_weights": "inverse class frequency"})
    raw["adjustments"] = ["increase_epochs (gate epochs_completed >= 4): epochs: 10 -> 20"]
    raw["probes"] = {"airbench_xs": {"images_per_second": 1130.0, "steps": 30}}
    raw["refined_params"] = {"learning_rate": 0.1}
    return raw


@pytest.mark.parametrize("raw", [LEGACY_PLAN_JSON, airbench_plan_json()], ids=["plain", "airbench"])
def test_a_plan_json_written_before_typing_loads_and_dumps_unchanged(raw: dict, tmp_path: Path) -> None:
    doc = PlanDocument.from_json(raw)
    assert doc.to_json() == raw
    path = doc.save(tmp_path / "plan.json")
    assert json.loads(path.read_text()) == raw  # the file keeps its keys and nesting
    assert PlanDocument.load(path) == doc


def test_typed_access_and_unset_recipe_fields() -> None:
    plan = PlanDocument.from_json(LEGACY_PLAN_JSON).training
    assert (plan.model, plan.epochs, plan.learning_rate, plan.num_threads) == ("small_cnn", 2, 0.05, 1)
    assert plan.warmup_fraction is None and "warmup_fraction" not in plan.to_json()
    assert plan.setting("warmup_fraction") == TrainSpec().warmup_fraction  # what training uses
    assert plan.setting("lookahead_every") == 0
    with pytest.raises(PlanError, match="no setting 'epoch'; did you mean 'epochs'"):
        plan.setting("epoch")


@pytest.mark.parametrize("field, value, expected", [
    ("epochs", 0, "training.epochs: Input should be greater than or equal to 1 (got 0)"),
    ("optimizer", "rmsprop", "training.optimizer: Input should be"),
    ("learning_rate", -0.1, "training.learning_rate: Input should be greater than 0"),
    ("warmup_fraction", 1.5, "training.warmup_fraction: Input should be less than or equal to 1"),
    ("device", "tpu", "training.device"),
])
def test_a_bad_value_is_refused_naming_the_setting(field: str, value: object, expected: str) -> None:
    with pytest.raises(PlanError) as info:
        PlanDocument.from_json(legacy_plan_json(**{field: value}), source="runs/x/plan.json")
    assert info.value.message.startswith("runs/x/plan.json is not valid: ")
    assert expected in info.value.message and "--from action_planning" in (info.value.hint or "")


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(PlanError, match=r"training.epoch: no such setting; did you mean 'epochs'\?"):
        PlanDocument.from_json(legacy_plan_json(epoch=3))
    raw = legacy_plan_json()
    raw["reasons"]["colour"] = "why not"
    with pytest.raises(PlanError, match=r"reasons: .*settings the plan does not have: \['colour'\]"):
        PlanDocument.from_json(raw)
    with pytest.raises(PlanError, match="no such setting"):
        sample_plan(colour="red")


def test_a_plan_is_frozen_and_replace_makes_a_validated_copy() -> None:
    plan = sample_plan()
    with pytest.raises(ValidationError):
        plan.epochs = 9  # type: ignore[misc]
    longer = plan.replace(epochs=9)
    assert (plan.epochs, longer.epochs) == (2, 9) and longer.learning_rate == plan.learning_rate
    with pytest.raises(PlanError, match="changed plan is not valid: epochs: Input should be less than or equal"):
        plan.replace(epochs=5000)


def test_plan_change_checks_its_setting_and_value_when_made() -> None:
    with pytest.raises(PlanError, match="no setting 'lr'") as info:
        PlanChange("lr", 0.1, "why")
    assert "learning_rate" in (info.value.hint or "")
    with pytest.raises(PlanError, match="plan change is not valid: batch_size: Input should be greater"):
        PlanChange("batch_size", 0, "why")
    assert PlanChange("class_weights", [1, 2], "why").value == (1.0, 2.0)  # coerced to the field's type


def test_applying_changes_records_each_reason_and_leaves_the_original() -> None:
    doc = sample_document()
    changes = [PlanChange("weight_decay", 1e-3, "remedy add_regularization"),
               PlanChange("label_smoothing", 0.1, "remedy add_regularization")]
    assert describe_changes(doc.training, changes) == "weight_decay: 0.0005 -> 0.001, label_smoothing: 0.0 -> 0.1"
    new = doc.apply(changes)
    assert (new.training.weight_decay, new.training.label_smoothing) == (1e-3, 0.1)
    assert new.reasons["weight_decay"] == new.reasons["label_smoothing"] == "remedy add_regularization"
    assert new.reasons["epochs"] == doc.reasons["epochs"] and new.estimate == doc.estimate
    assert (doc.training.weight_decay, doc.reasons["weight_decay"]) == (5e-4, "set in the config")
    weighted = doc.apply([PlanChange("class_weights", [0.5, 1.5], "balanced")])
    assert weighted.to_json()["training"]["class_weights"] == [0.5, 1.5] and "class_weights" in weighted.reasons
    unset = weighted.apply([PlanChange("class_weights", None, "none")])
    assert "class_weights" not in unset.to_json()["training"] and "class_weights" not in unset.reasons


def test_spec_from_plan_carries_every_setting_training_reads() -> None:
    spec_fields = {f.name for f in dataclasses.fields(TrainSpec)} - {"max_seconds"}
    assert spec_fields <= set(TrainingPlan.model_fields)  # a new TrainSpec field needs a plan field
    plan = sample_plan(**airbench_settings(256, device="cpu"), model="airbench_xs", recipe="airbench",
                       class_weights=[1.0] * 10)
    spec = spec_from_plan(plan, max_seconds=60.0)
    assert (spec.batch_size, spec.lookahead_every, spec.warmup_fraction, spec.max_seconds) == (256, 5, 0.23, 60.0)
    assert spec.class_weights == (1.0,) * 10
    plain = spec_from_plan(sample_plan())
    assert (plain.lookahead_every, plain.bias_lr_scale, plain.epochs) == (0, 1.0, 2)  # TrainSpec's defaults


@pytest.mark.parametrize("field, alias", [("optimizer", OptimizerName), ("schedule", ScheduleName),
                                          ("augmentation", AugmentationName), ("precision", PrecisionName)])
def test_named_settings_take_every_value_of_the_shared_alias(field: str, alias: object) -> None:
    for value in get_args(alias):
        assert getattr(sample_plan(**{field: value}), field) == value


def test_every_tunable_parameter_is_a_plan_setting() -> None:
    assert set(TUNABLE) <= set(TrainingPlan.model_fields)


def test_load_names_the_file_it_cannot_read(tmp_path: Path) -> None:
    broken = tmp_path / "plan.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(PlanError, match=f"cannot read the plan {broken}"):
        PlanDocument.load(broken)


def test_reading_a_plan_does_not_import_torch() -> None:
    # the runner and the dashboard read plans; importing torch there would cost seconds per process
    code = ("import sys, mlestar.training.plan, mlestar.workflow.remedies, mlestar.dashboard.panels; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
