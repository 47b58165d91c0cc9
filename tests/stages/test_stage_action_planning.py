"""Stage 3's budget rule: which airbench width and how many epochs a time budget buys."""

import math

import pytest
import torch

from mlestar.models import create_model
from mlestar.stages.s3_action_planning import MIN_GOOD_EPOCHS, epochs_in, pick_by_budget
from mlestar.training.plan import spec_from_plan
from mlestar.training.probe import LOOP_STEPS, loop_throughput
from mlestar.training.recipes import airbench_settings

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
    torch.manual_seed(0)
    model = create_model("airbench_xs", num_classes=10, in_channels=3, image_size=16)
    spec = spec_from_plan({**airbench_settings(32, device="cpu"), "precision": "fp32", "seed": 0})
    probe = loop_throughput(model, (3, 16, 16), 10, spec, device=torch.device("cpu"), min_seconds=0.2)
    assert math.isfinite(probe["images_per_second"]) and probe["images_per_second"] > 0
    assert probe["steps"] >= 3 * LOOP_STEPS and probe["steps"] % LOOP_STEPS == 0  # warm-up + at least 2 passes
    assert probe["batch_size"] == 32 and probe["method"].startswith("fit's epoch loop")
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
