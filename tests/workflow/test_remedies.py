"""Diagnosis and remedy choice from metrics, and the typed changes each remedy makes to a plan."""

import pytest

from mlestar.config.catalog import REMEDIES
from mlestar.errors import PlanError
from mlestar.training.plan import PlanChange, describe_changes
from mlestar.workflow.gates import GateOutcome
from mlestar.workflow.remedies import REMEDY_FUNCTIONS, choose_remedy, diagnose, remedy_changes
from plan_helpers import sample_document, sample_plan


def outcome(metric: str, value: float = 0.5) -> GateOutcome:
    return GateOutcome("g", "implementation", metric, ">=", 0.9, value, False, "")


@pytest.mark.parametrize("metric, metrics, kind", [
    ("val_accuracy", {"train_accuracy": 0.99, "val_accuracy": 0.80}, "overfitting"),
    ("val_accuracy", {"train_accuracy": 0.70, "val_accuracy": 0.69}, "underfitting"),
    ("test_accuracy", {"train_accuracy": 0.70, "val_accuracy": 0.72}, "underfitting"),
    ("model_size", {}, "too_large"),
    ("latency_p95", {}, "too_slow"),
    ("training_time", {}, "over_time_budget"),
    ("epochs_completed", {"train_accuracy": 0.99, "val_accuracy": 0.5}, "undertrained"),
    ("leakage_fraction", {}, "data_quality"),
    ("unreadable_fraction", {}, "data_quality"),
])
def test_diagnosis(metric: str, metrics: dict, kind: str) -> None:
    assert diagnose(outcome(metric), metrics).kind == kind


def test_choice_prefers_untried_then_least_tried() -> None:
    d = diagnose(outcome("val_accuracy"), {"train_accuracy": 0.99, "val_accuracy": 0.5})
    allowed = list(REMEDY_FUNCTIONS)
    assert choose_remedy(d, allowed, []) == "add_regularization"
    assert choose_remedy(d, allowed, ["add_regularization"]) == "add_augmentation"
    tried = ["add_regularization", "add_augmentation", "simplify_model", "add_regularization"]
    assert choose_remedy(d, allowed, tried) == "add_augmentation"
    assert choose_remedy(d, ["increase_epochs"], []) is None
    data = diagnose(outcome("leakage_fraction"), {})
    assert choose_remedy(data, allowed, []) is None  # no remedy: the run fails with the reason


@pytest.mark.parametrize("remedy, start, expected", [
    ("increase_epochs", {"epochs": 4}, {"epochs": 8}),
    ("increase_epochs", {"epochs": 700}, {"epochs": 1000}),
    ("reduce_epochs", {"epochs": 1}, {"epochs": 1}),
    ("raise_learning_rate", {"learning_rate": 1.5}, {"learning_rate": 2.0}),
    ("lower_learning_rate", {"learning_rate": 0.1}, {"learning_rate": 0.05}),
    ("simplify_model", {"width": 32}, {"width": 16}),
    ("simplify_model", {"width": 3}, {"width": 2}),
    ("grow_model", {"width": 32}, {"width": 64}),
    ("reduce_batch_size", {"batch_size": 64}, {"batch_size": 32}),
    ("add_regularization", {"weight_decay": 0.0, "label_smoothing": 0.25}, {"weight_decay": 5e-4,
                                                                            "label_smoothing": 0.3}),
    ("add_regularization", {"weight_decay": 5e-4, "label_smoothing": 0.0}, {"weight_decay": 1e-3,
                                                                            "label_smoothing": 0.1}),
    ("add_augmentation", {"augmentation": "none"}, {"augmentation": "translate"}),
    ("add_augmentation", {"augmentation": "translate", "flip_safe": True}, {"augmentation": "flip_translate"}),
    ("add_augmentation", {"augmentation": "translate", "flip_safe": False}, {"augmentation": "translate"}),
    ("mixed_precision", {"precision": "fp32"}, {"precision": "bf16"}),
])
def test_each_remedy_is_a_typed_change_that_records_its_reason(remedy: str, start: dict, expected: dict) -> None:
    doc = sample_document(**start)
    reason = f"remedy {remedy} after gate 'g' (underfitting)"
    changes = remedy_changes(doc.training, remedy, reason)
    assert [c.field for c in changes] == list(expected)
    assert all(isinstance(c, PlanChange) and c.reason == reason for c in changes)
    new = doc.apply(changes)
    for field, value in expected.items():
        assert getattr(new.training, field) == pytest.approx(value) and new.reasons[field] == reason
    untouched = set(doc.reasons) - set(expected)
    assert {k: new.reasons[k] for k in untouched} == {k: doc.reasons[k] for k in untouched}
    assert doc.training.model_dump() == sample_document(**start).training.model_dump()  # the input is frozen


def test_a_remedy_change_reads_as_before_for_plan_md() -> None:
    plan = sample_plan(epochs=4, width=32)
    assert describe_changes(plan, remedy_changes(plan, "increase_epochs", "r")) == "epochs: 4 -> 8"
    assert describe_changes(plan, remedy_changes(plan, "simplify_model", "r")) == "width: 32 -> 16"


def test_every_catalogued_remedy_has_a_function_and_unknown_ones_are_refused() -> None:
    assert set(REMEDY_FUNCTIONS) == set(REMEDIES)
    with pytest.raises(PlanError, match="unknown remedy 'increase_epoch'; did you mean 'increase_epochs'"):
        remedy_changes(sample_plan(), "increase_epoch", "r")
