"""Diagnosis and remedy choice from metrics, and what each remedy does to a plan."""

import pytest

from mlestar.workflow.gates import GateOutcome
from mlestar.workflow.remedies import REMEDY_FUNCTIONS, apply_remedy, choose_remedy, diagnose


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


def test_remedies_change_the_plan() -> None:
    plan = {"epochs": 4, "learning_rate": 0.1, "width": 32, "batch_size": 64, "weight_decay": 5e-4,
            "label_smoothing": 0.0, "augmentation": "none", "flip_safe": False, "precision": "fp32"}
    assert apply_remedy(plan, "increase_epochs") == "epochs: 4 -> 8"
    assert apply_remedy(plan, "simplify_model") == "width: 32 -> 16"
    apply_remedy(plan, "add_regularization")
    assert plan["weight_decay"] == pytest.approx(1e-3) and plan["label_smoothing"] == pytest.approx(0.1)
    apply_remedy(plan, "add_augmentation")
    assert plan["augmentation"] == "translate"
    apply_remedy(plan, "lower_learning_rate")
    assert plan["learning_rate"] == pytest.approx(0.05)
    apply_remedy(plan, "mixed_precision")
    assert plan["precision"] == "bf16"
