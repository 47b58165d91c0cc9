"""Stage 3: which airbench width and how many epochs a time budget buys; remedies applied as typed changes."""

import math

import pytest
import torch

from mlestar.models import model_info
from mlestar.stages.s3_action_planning import (
    MIN_GOOD_EPOCHS, ReasonedPlan, apply_adjustments, epochs_in, pick_by_budget, render_plan,
)
from mlestar.training.plan import PlanDocument, build_model, spec_from_plan
from mlestar.training.probe import LOOP_STEPS, loop_throughput
from mlestar.training.recipes import airbench_settings
from plan_helpers import sample_document, sample_plan

# images/s of the three widths on the 2-core development CPU (docs/benchmarks.md)
CPU_PROBES = {"airbench_xs": {"images_per_second": 1130.0}, "airbench_s": {"images_per_second": 430.0},
              "airbench": {"images_per_second": 180.0}}


def test_epochs_in_accounts_for_the_per_epoch_overhead() -> None:
    # 45,000 images at 1,130 img/s: 39.8 s per epoch, 43.8 s with the 10% margin
    assert epochs_in(240, 45_000, CPU_PROBES["airbench_xs"]) == 5
    assert epochs_in(830, 45_000, CPU_PROBES["airbench_s"]) == 7


@pytest.mark.parametrize("budget, expected", [(830, "airbench_s"), (3000, "airbench")])
def test_budget_buys_the_largest_width_with_enough_epochs(budget: float, expected: str) -> None:
    name, why = pick_by_budget(CPU_PROBES, budget, 45_000)
    assert name == expected
    assert f">= {MIN_GOOD_EPOCHS} epochs" in why and "airbench_xs: " in why


def test_too_small_a_budget_falls_back_to_the_smallest_net() -> None:
    name, why = pick_by_budget(CPU_PROBES, 240, 45_000)  # airbench_xs gets 5 epochs, the others fewer
    assert name == "airbench_xs" and "no candidate fits" in why and "airbench_xs: 5 epochs" in why


def test_loop_probe_runs_the_recipe_loop_and_leaves_the_model_usable() -> None:
    plan = sample_plan(**airbench_settings(32, device="cpu"), model="airbench_xs", recipe="airbench",
                       width=model_info("airbench_xs").default_width, image_size=16, in_channels=3)
    model = build_model(plan)
    bias, weights = model.whiten.bias.detach().clone(), [p.detach().clone() for p in model.parameters()]
    probe = loop_throughput(model, (3, 16, 16), 10, spec_from_plan(plan), device=torch.device("cpu"),
                            min_seconds=0.2)
    # Timed in the regime most epochs train in: the stem's bias is spent (no gradient), everything else trains.
    assert torch.equal(model.whiten.bias, bias) and model.whiten.bias.requires_grad
    assert sum(not torch.equal(a, b) for a, b in zip(model.parameters(), weights)) >= 2
    assert math.isfinite(probe["images_per_second"]) and probe["images_per_second"] > 0
    assert probe["steps"] >= 3 * LOOP_STEPS and probe["steps"] % LOOP_STEPS == 0  # warm-up + at least 2 passes
    assert probe["batch_size"] == 32 and probe["method"].startswith("fit's epoch loop")
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_remedies_apply_in_order_and_each_changed_setting_records_its_remedy() -> None:
    doc = sample_document(epochs=4)
    plan = ReasonedPlan(training=doc.training, reasons=doc.reasons)
    adjustments = [{"gate": "acc", "remedy": "add_regularization", "diagnosis": "overfitting"},
                   {"gate": "epochs", "remedy": "increase_epochs", "diagnosis": "undertrained"},
                   {"gate": "epochs", "remedy": "increase_epochs", "diagnosis": "undertrained"}]
    new, applied = apply_adjustments(plan, adjustments)
    assert [line for line, _ in applied] == [
        "add_regularization (gate acc): weight_decay: 0.0005 -> 0.001, label_smoothing: 0.0 -> 0.1",
        "increase_epochs (gate epochs): epochs: 4 -> 8", "increase_epochs (gate epochs): epochs: 8 -> 16"]
    assert (new.training.epochs, new.training.weight_decay, new.training.label_smoothing) == (16, 1e-3, 0.1)
    # both settings the regularisation changed say so (the display-string parser recorded only the first)
    assert new.reasons["label_smoothing"] == "remedy add_regularization after gate 'acc' (overfitting)"
    assert new.reasons["weight_decay"] == new.reasons["label_smoothing"]
    assert new.reasons["epochs"] == "remedy increase_epochs after gate 'epochs' (undertrained)"
    assert new.reasons["model"] == doc.reasons["model"] and plan.training.epochs == 4
    out = PlanDocument(**{**doc.model_dump(), "training": new.training, "reasons": new.reasons,
                          "adjustments": [line for line, _ in applied]})
    md = render_plan(out)
    assert "| epochs | 16 | remedy increase_epochs after gate 'epochs' (undertrained) |" in md
    assert "- increase_epochs (gate epochs): epochs: 8 -> 16" in md


def airbench_inputs(flip_safe: bool) -> tuple[dict, dict, dict]:
    """Stage 1's record and recommendations and stage 2's spec for 16px RGB images, 45,000 to train on."""
    record = {"image_shape": [16, 16, 3], "class_names": [str(i) for i in range(10)],
              "splits": {"train": {"size": 45_000}}}
    recs = {"augmentation": {"choice": "flip_translate" if flip_safe else "translate", "translate_pad": 1,
                             "flip_safe": flip_safe, "reason": "16px images"},
            "class_weighting": {"choice": "none", "reason": "balanced"}}
    spec = {"probe": {"device": "cpu", "precision": "fp32", "reference_flops": 1e6}, "estimated_epoch_time_s": 1.0}
    return record, recs, spec


def test_an_airbench_plan_is_typed_with_its_recipe_fields_and_round_trips() -> None:
    from mlestar.config import build_config
    from mlestar.stages.s3_action_planning import base_plan

    plan, probes = base_plan(build_config({}), *airbench_inputs(flip_safe=False))
    t = plan.training
    assert (probes, t.model, t.recipe, t.lookahead_every, t.whiten_init) == ({}, "airbench", "airbench", 5, True)
    assert t.alternating_flip is False and plan.reasons["alternating_flip"] == "stage 1: flips would change the label"
    assert t.batch_size == 256 and t.learning_rate == pytest.approx(airbench_settings(256)["learning_rate"])
    doc = PlanDocument(training=t, reasons=plan.reasons, estimate={"params": 1, "training_seconds": 1.0})
    assert PlanDocument.from_json(doc.to_json()) == doc and doc.to_json()["training"]["bias_lr_scale"] == 64.0


def test_a_time_budget_probes_and_fits_epochs_on_the_typed_plan() -> None:
    from mlestar.config import build_config
    from mlestar.stages.s3_action_planning import base_plan, fit_constraints

    torch.set_num_threads(1)
    config = build_config({"constraints": {"max_training_time": "1s"}})
    record, recs, spec = airbench_inputs(flip_safe=True)
    plan, probes = base_plan(config, record, recs, spec)
    assert list(probes) == ["airbench_xs"]  # it misses the epochs that make a net worth it: no larger one probed
    assert plan.training.model == "airbench_xs" and plan.training.epochs == 1
    assert plan.reasons["epochs"].startswith("1s budget / ")
    fitted, params, seconds, notes = fit_constraints(plan, config, record, spec, probes)
    assert params > 0 and seconds > 1.0 and fitted.training.epochs == 1  # one epoch is the least it can cut to
    assert notes == ["epochs -> 1 to fit the time budget"]
    assert fitted.reasons["epochs"].startswith("cut to fit max_training_time 1s")


def test_a_config_naming_muon_plans_airbench94_muons_recipe_with_micro_batches_on_a_cpu() -> None:
    from mlestar.config import build_config
    from mlestar.stages.s3_action_planning import base_plan

    plan, _ = base_plan(build_config({"training": {"optimizer": "muon"}}), *airbench_inputs(flip_safe=True))
    t = plan.training
    assert (t.optimizer, t.schedule, t.batch_size, t.micro_batch_size, t.lookahead_every) == (
        "muon", "linear", 2000, 250, 0)
    assert (t.muon_lr, t.muon_momentum, t.momentum) == (0.24, 0.6, 0.85)
    assert t.learning_rate == pytest.approx(airbench_settings(2000, optimizer="muon")["learning_rate"])
    assert plan.reasons["optimizer"] == "set in the config" and plan.reasons["schedule"] == "airbench recipe"
    spec = spec_from_plan(t)
    assert (spec.optimizer, spec.micro_batch_size, spec.muon_lr) == ("muon", 250, 0.24)
    own, _ = base_plan(build_config({"training": {"optimizer": "muon", "micro_batch_size": 500}}),
                       *airbench_inputs(flip_safe=True))
    assert own.training.micro_batch_size == 500 and own.reasons["micro_batch_size"] == "set in the config"


def test_sgd_plans_keep_airbench94s_recipe_and_no_micro_batches() -> None:
    from mlestar.config import build_config
    from mlestar.stages.s3_action_planning import base_plan

    for training in ({}, {"optimizer": "adamw"}):
        plan, _ = base_plan(build_config({"training": training}), *airbench_inputs(flip_safe=True))
        assert plan.training.schedule == "triangular" and plan.training.micro_batch_size is None
        assert "micro_batch_size" not in plan.training.to_json()  # plan.json keeps its format


@pytest.mark.parametrize("batch, steps", [(32, LOOP_STEPS), (256, LOOP_STEPS), (512, 3), (1024, 2), (2000, 2)])
def test_large_batches_are_probed_over_fewer_steps_of_about_the_same_images(batch: int, steps: int) -> None:
    from mlestar.training.probe import loop_steps

    assert loop_steps(batch) == steps
