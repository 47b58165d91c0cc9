"""A config in the older MLE-Star template's shape, pointed at digits, runs all seven stages.

It trains with the template's Adam and a CosineAnnealingLR scheduler, so the
checkpoint must hold torch Adam state, and the plan the translated values.
The sizes are the tiny workflow's (tests/tiny_workflow.py): 40 images per
class, 2 epochs, 2 trials, one thread.
"""

from pathlib import Path

import torch

from mlestar.config import load_config
from mlestar.config.catalog import STAGE_ORDER, stage_folder
from mlestar.utils.io import read_json
from mlestar.workflow.runner import RunOptions, run_workflow

TEMPLATE_ON_DIGITS = """
experiment:
  name: "legacy-digits"
  author: "tests"
data:
  dataset: digits
  max_per_class: 40
  random_seed: 3
model:
  framework: pytorch
  architecture: small_cnn
training:
  batch_size: 32
  epochs: 2
  optimizer: {type: Adam, learning_rate: 0.003, weight_decay: 0.0001}
  scheduler: {type: CosineAnnealingLR, T_max: 2}
hyperparameter_tuning:
  enabled: true
  method: optuna
  n_trials: 2
  search_space:
    learning_rate: [0.001, 0.01]
    label_smoothing: [0.05, 0.2]
environment:
  cuda_available: false
  max_cpu_cores: 1
"""


def test_template_shape_runs_the_whole_workflow_with_adam_and_cosine(tmp_path: Path) -> None:
    path = tmp_path / "mle_star_config.yaml"
    path.write_text(TEMPLATE_ON_DIGITS, encoding="utf-8")
    loaded = load_config(path)
    assert [w.split(": ", 1)[0] for w in loaded.warnings] == ["experiment.author", "training.scheduler.T_max"]

    runs = tmp_path / "runs"
    state = run_workflow(loaded, RunOptions(runs_dir=runs))
    assert state.status == "passed"
    assert all(state.stage(name)["status"] == "passed" for name in STAGE_ORDER)

    run = runs / state.run_id
    plan = read_json(run / stage_folder("action_planning") / "plan.json")["training"]
    assert (plan["model"], plan["optimizer"], plan["schedule"]) == ("small_cnn", "adam", "cosine")
    assert (plan["learning_rate"], plan["weight_decay"], plan["epochs"], plan["seed"]) == (0.003, 0.0001, 2, 3)
    checkpoint = torch.load(run / stage_folder("implementation") / "checkpoints" / "last.pt", weights_only=False)
    groups = checkpoint["opt"]["param_groups"]
    assert groups[0]["decoupled_weight_decay"] is False and groups[0]["weight_decay"] == 0.0001
    assert all("exp_avg_sq" in s for s in checkpoint["opt"]["state"].values())  # Adam's moments, not SGD's
    assert groups[0]["lr"] < 1e-9  # the cosine reached 0 at the last step
    assert state.data["metrics"]["trials_completed"] + state.data["metrics"]["trials_pruned"] >= 2
