"""Configs of the original MLE-Star sample family load: what maps lands in its field, the rest is warned by path.

The fixtures under tests/fixtures/legacy/ are written for these tests in the
two shapes of that family: the CIFAR-10 sample project's mle_star_config.yaml
and the older project template (experiment / model / hyperparameter_tuning /
paths / environment).
"""

from pathlib import Path
from typing import get_args

import pytest

from mlestar.config import load_config
from mlestar.config.legacy import is_legacy
from mlestar.config.legacy.training import REGISTERED_MODELS
from mlestar.config.schema import TUNABLE, OptimizerName
from mlestar.errors import ConfigError
from mlestar.models import list_models

LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy"


def warned(loaded) -> list[str]:  # noqa: ANN001  (LoadedConfig)
    """The legacy key path of each warning, in order."""
    return [w.split(": ", 1)[0] for w in loaded.warnings]


def load_yaml(tmp_path: Path, text: str):  # noqa: ANN201
    path = tmp_path / "mle_star_config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_cifar10_sample_maps_optimizer_scheduler_data_and_model() -> None:
    cfg = load_config(LEGACY / "cifar10_sample_project.yaml").config
    t = cfg.training
    assert (t.optimizer, t.learning_rate, t.weight_decay) == ("adam", 0.001, 0.0001)
    assert (t.schedule, t.epochs, t.batch_size, t.device) == ("cosine", 100, 128, "auto")
    assert (t.model, t.augmentation) == ("resnet18", "flip_translate")
    assert (cfg.data.source, cfg.data.val_fraction, cfg.data.image_size, cfg.data.channels) == ("cifar10", 0.2, 32, 3)
    assert cfg.task.primary_metric == "test_accuracy"
    assert cfg.task.secondary_metrics == ["macro_f1"]
    assert cfg.task.targets == {"test_accuracy": 0.85}
    c = cfg.constraints
    assert (c.max_training_time, c.max_inference_latency, c.max_model_size, c.max_peak_memory) == \
        (14400, pytest.approx(0.05), 50e6, 2e9)
    assert {(g.metric, g.stage, g.threshold) for g in cfg.gates} == {
        ("val_accuracy", "implementation", 0.75), ("training_time", "implementation", 21600),
        ("test_accuracy", "evaluation", 0.8), ("model_size", "evaluation", 100e6)}
    assert cfg.remedies == ["reduce_batch_size", "lower_learning_rate", "mixed_precision"]
    assert cfg.deployment.formats == ["torchscript", "onnx"]
    assert cfg.deployment.serve.max_batch_size == 1


def test_cifar10_sample_warns_exactly_the_unmapped_keys() -> None:
    loaded = load_config(LEGACY / "cifar10_sample_project.yaml")
    stages = "mle_star_workflow.stages"
    assert warned(loaded) == [
        "project.type", "project.task", "project.framework",
        f"{stages}.1_situation_analysis.description", f"{stages}.1_situation_analysis.duration_estimate",
        f"{stages}.4_implementation.description", f"{stages}.4_implementation.dependencies",
        "data.classes", "data.preprocessing.normalization",
        "data.preprocessing.augmentation.train.RandomCrop.padding",
        "data.preprocessing.augmentation.train.ColorJitter",
        "model.architecture",  # mapped to the closest registered model, and says so
        "model.type", "model.parameters.num_classes", "model.parameters.dropout_rate", "model.estimated_params",
        "training.scheduler.T_max", "training.scheduler.eta_min",
        "training.hyperparameters.early_stopping", "training.hyperparameters.patience",
        "training.hardware.num_workers",
        "evaluation.secondary_metrics.precision_weighted", "evaluation.secondary_metrics.top_k_accuracy",
        "evaluation.analysis", "logging", "deployment.serving.framework", "deployment.serving.timeout",
        "error_handling.memory_issues.gradient_checkpointing",
    ]
    text = "\n".join(loaded.warnings)
    assert "model.architecture: no 'ResNet-inspired CNN' in mlestar; the closest registered model, resnet18" in text
    assert "training.scheduler.T_max: mlestar computes the schedule's length itself" in text
    assert "training.scheduler.eta_min: mlestar's cosine decays to 0, not to 1e-05" in text


def test_template_project_maps_each_section() -> None:
    cfg = load_config(LEGACY / "template_project.yaml").config
    assert (cfg.project.name, cfg.project.description, cfg.project.runs_dir) == \
        ("flowers", "Flower photos, five classes", LEGACY / "outputs")  # relative to the file
    assert (cfg.seed, cfg.deterministic) == (7, False)
    assert (cfg.data.source, cfg.data.path) == ("imagefolder", LEGACY / "images" / "raw")
    # 70/20/10 of all images: test 10%, validation 20% of all = 2/9 of what the test leaves
    assert cfg.data.test_fraction == 0.1
    assert cfg.data.val_fraction == pytest.approx(0.2 / 0.9, abs=1e-6)
    t = cfg.training
    assert (t.model, t.optimizer, t.learning_rate, t.schedule) == ("resnet18", "adam", 0.001, "cosine")
    assert (t.epochs, t.batch_size, t.device, t.num_threads) == (12, 32, "cpu", 4)
    assert cfg.constraints.max_peak_memory == 8e9
    r = cfg.refinement
    assert (r.enabled, r.n_trials, r.sampler) == (True, 20, "tpe")
    space = {name: spec.model_dump(exclude_defaults=True) for name, spec in r.search_space.items()}
    assert space == {
        "learning_rate": {"type": "float", "low": 0.0001, "high": 0.01, "log": True},
        "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
        "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    }


def test_template_project_warns_exactly_the_unmapped_keys() -> None:
    loaded = load_config(LEGACY / "template_project.yaml")
    assert warned(loaded) == [
        "experiment.version", "experiment.author", "data.processed_data_path",
        "model.type", "model.hidden_layers", "model.dropout_rate", "model.model_save_path",
        "training.lr_scheduler.type", "training.lr_scheduler.step_size", "training.lr_scheduler.gamma",
        "training.early_stopping", "evaluation.metrics", "evaluation.cross_validation",
        "hyperparameter_tuning.search_space.hidden_layers", "logging", "environment.python_version",
        "paths.project_root", "paths.data_root", "paths.model_root",
    ]
    text = "\n".join(loaded.warnings)
    assert "training.lr_scheduler.type: 'step' has no equivalent in mlestar; training.schedule: cosine" in text
    assert "paths.data_root: data.path is already './images/raw/' from data.raw_data_path" in text
    assert "model.type: training.model is already 'resnet18' from model.architecture; 'cnn' (small_cnn)" in text


@pytest.mark.parametrize(("scheduler", "schedule", "warned_keys"), [
    ("cosine", "cosine", []),
    ("{type: CosineAnnealingLR, T_max: 50, eta_min: 0}", "cosine", ["T_max"]),
    ("{type: CosineAnnealingWarmRestarts, T_0: 10}", "cosine", ["type", "T_0"]),
    ("{type: OneCycleLR, max_lr: 0.1, pct_start: 0.3}", "onecycle", ["pct_start"]),
    ("{type: StepLR, step_size: 30, gamma: 0.1}", "cosine", ["type", "step_size", "gamma"]),
    ("{type: ReduceLROnPlateau, patience: 5}", "cosine", ["type", "patience"]),
    ("{type: linear_with_warmup, warmup_steps: '10%'}", "onecycle", ["type", "warmup_steps"]),
    ("{type: constant}", "constant", []),
])
def test_schedulers_map_to_a_schedule_training_has(tmp_path: Path, scheduler: str, schedule: str,
                                                   warned_keys: list[str]) -> None:
    loaded = load_yaml(tmp_path, f"quality_gates: {{}}\ntraining:\n  scheduler: {scheduler}\n")
    assert loaded.config.training.schedule == schedule
    prefix = "training.scheduler" if scheduler.startswith("{") else None
    assert warned(loaded) == [f"{prefix}.{key}" for key in warned_keys]


def test_a_schedule_without_equivalent_names_what_is_used_instead(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, "quality_gates: {}\ntraining:\n  lr_scheduler: {type: ExponentialLR, gamma: 0.9}\n")
    assert loaded.warnings[0] == (
        "training.lr_scheduler.type: 'ExponentialLR' has no equivalent in mlestar; training.schedule: cosine "
        "(one smooth decay from learning_rate to 0 over the whole run) is used instead")


def test_onecycle_max_lr_is_the_peak_learning_rate(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, "quality_gates: {}\ntraining:\n  scheduler: {type: OneCycleLR, max_lr: 0.2}\n")
    assert loaded.config.training.learning_rate == 0.2


@pytest.mark.parametrize(("optimizer", "expected", "warned_keys"), [
    ("adam", {"optimizer": "adam"}, []),
    ("{type: Adam, learning_rate: 0.001, weight_decay: 0.0001}",
     {"optimizer": "adam", "learning_rate": 0.001, "weight_decay": 0.0001}, []),
    # YAML 1.1 reads 2e-5 as a string; it still becomes the float
    ("{type: AdamW, learning_rate: 2e-5, weight_decay: 0.01, eps: 1e-8, betas: [0.9, 0.999]}",
     {"optimizer": "adamw", "learning_rate": 2e-5, "weight_decay": 0.01}, []),
    ("{type: SGD, lr: 0.1, momentum: 0.8, nesterov: false}",
     {"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.8}, ["nesterov"]),
    ("{type: Adam, lr: 0.01, momentum: 0.9, betas: [0.8, 0.99]}",
     {"optimizer": "adam", "learning_rate": 0.01, "momentum": 0.9}, ["momentum", "betas"]),
    ("{type: NAdam, lr: 0.002}", {"optimizer": "adam", "learning_rate": 0.002}, ["type"]),
    ("{type: RMSprop, lr: 0.01}", {"optimizer": "sgd", "learning_rate": 0.01}, ["type"]),
])
def test_optimizers_map_to_sgd_adam_or_adamw(tmp_path: Path, optimizer: str, expected: dict,
                                             warned_keys: list[str]) -> None:
    loaded = load_yaml(tmp_path, f"quality_gates: {{}}\ntraining:\n  optimizer: {optimizer}\n")
    t = loaded.config.training
    assert {key: getattr(t, key) for key in expected} == expected
    assert warned(loaded) == [f"training.optimizer.{key}" for key in warned_keys]


def test_unknown_optimizer_says_what_stays(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, "quality_gates: {}\ntraining:\n  optimizer: {type: RMSprop}\n")
    assert loaded.warnings == ["training.optimizer.type: no optimizer 'RMSprop' in mlestar (sgd, adam, adamw); "
                               "training.optimizer is not set, so it stays sgd (Nesterov)"]


def test_adam_is_an_optimizer_the_config_and_the_search_accept() -> None:
    assert "adam" in get_args(OptimizerName)
    assert TUNABLE["optimizer"].choices == get_args(OptimizerName)


def test_registered_model_names_match_the_registry() -> None:
    assert set(REGISTERED_MODELS) == set(list_models())


def test_template_search_space_forms(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, """
hyperparameter_tuning:
  method: random_search
  trials: 5
  search_space:
    lr: {type: loguniform, low: 1.0e-4, high: 1.0e-1}
    weight_decay: [1.0e-5, 1.0e-4]
    momentum: {type: float, low: 0.8, high: 0.99}
    optimizer: {type: categorical, choices: [SGD, AdamW]}
    epochs: [2, 4]
    batch_size: [0, 32]
    label_smoothing: 0.1
    dropout_rate: [0.3, 0.7]
""")
    r = loaded.config.refinement
    assert (r.sampler, r.n_trials) == ("random", 5)
    space = {name: spec.model_dump(exclude_defaults=True) for name, spec in r.search_space.items()}
    assert space == {
        "learning_rate": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
        "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-4},  # 10x apart: linear
        "momentum": {"type": "float", "low": 0.8, "high": 0.99},
        "optimizer": {"type": "categorical", "choices": ["sgd", "adamw"]},
        "epochs": {"type": "categorical", "choices": [2, 4]},
    }
    path = "hyperparameter_tuning.search_space"
    assert warned(loaded) == [f"{path}.batch_size", f"{path}.label_smoothing", f"{path}.dropout_rate"]
    assert "'batch_size' cannot be [0]" in loaded.warnings[0]


def test_template_experiment_environment_and_switched_off_search(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, """
experiment: {name: petals, seed: 11}
hyperparameter_tuning: {enabled: false, n_trials: 50, optimization_direction: maximize}
environment: {cuda_available: true, deterministic: true, set_random_seed: false}
""")
    cfg = loaded.config
    assert (cfg.project.name, cfg.seed, cfg.deterministic) == ("petals", 11, True)
    assert (cfg.refinement.enabled, cfg.refinement.n_trials) == (False, 50)
    assert cfg.training.device == "cuda"
    assert loaded.warnings == ["environment.set_random_seed: mlestar always seeds Python, NumPy and PyTorch (seed)"]


@pytest.mark.parametrize(("device", "expected"), [("cuda_if_available", "auto"), ("gpu", "cuda"), ("cpu", "cpu")])
def test_hardware_device_maps(tmp_path: Path, device: str, expected: str) -> None:
    loaded = load_yaml(tmp_path, f"quality_gates: {{}}\ntraining:\n  hardware: {{device: {device}}}\n")
    assert loaded.config.training.device == expected
    assert loaded.warnings == []


def test_a_device_mlestar_lacks_is_warned(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, "quality_gates: {}\ntraining:\n  hardware: {device: mps}\n")
    assert loaded.config.training.device == "auto"
    assert warned(loaded) == ["training.hardware.device"]


def test_conflicting_values_name_the_key_that_won(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, """
performance_targets: {accuracy: "90%", training_time: "2 hours"}
evaluation:
  targets: {accuracy: 0.9, training_time: "3 hours"}
""")
    assert loaded.config.task.targets == {"test_accuracy": 0.9}  # "90%" and 0.9 agree: no warning
    assert loaded.config.constraints.max_training_time == 7200
    assert loaded.warnings == ["evaluation.targets.training_time: constraints.max_training_time is already "
                               "'2 hours' from performance_targets.training_time; '3 hours' ignored"]


def test_stage_level_gates_and_refinement_switch_of_the_v2_template(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, """
mle_star_workflow:
  stages:
    4_implementation:
      enabled: true
      quality_gates: {min_validation_accuracy: 0.75, max_training_time: "8 hours", training_convergence: true}
    6_refinement:
      enabled: false
      config: {optimization_strategies: {hyperparameter_tuning: {trials: 50}}}
""")
    cfg = loaded.config
    assert {(g.metric, g.threshold) for g in cfg.gates} == {("val_accuracy", 0.75), ("training_time", 28800)}
    assert cfg.refinement.enabled is False
    stages = "mle_star_workflow.stages"
    assert warned(loaded) == [f"{stages}.4_implementation.quality_gates.training_convergence",
                              f"{stages}.6_refinement.config"]


def test_split_folders_give_the_image_folder_root(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, """
quality_gates: {}
data:
  dataset_name: custom_dataset
  paths: {train_data: data/train/, val_data: data/val/, test_data: data/test/}
""")
    assert (loaded.config.data.source, loaded.config.data.path) == ("imagefolder", tmp_path / "data")
    assert loaded.warnings == ["data.dataset_name: 'custom_dataset' is not a data source mlestar has; the images "
                               "under 'data' are read as an image folder"]


def test_a_named_dataset_without_images_is_refused_with_its_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.dataset 'ImageNet' is not a data set mlestar can read") as err:
        load_yaml(tmp_path, "quality_gates: {}\ndata: {dataset: ImageNet}\n")
    assert "data.path" in (err.value.hint or "")


def test_digits_ignores_a_path_and_says_so(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, "quality_gates: {}\ndata: {dataset: digits, raw_data_path: ./data/raw/}\n")
    assert (loaded.config.data.source, loaded.config.data.path) == ("digits", None)
    assert loaded.warnings == ["data.raw_data_path: digits is bundled with scikit-learn; the path is not read"]


@pytest.mark.parametrize("kind", ["nlp", "speech"])
def test_non_image_sample_projects_are_refused_not_run_on_other_data(tmp_path: Path, kind: str) -> None:
    with pytest.raises(ConfigError, match=rf"project\.type is '{kind}'; mlestar trains image classifiers and table"):
        load_yaml(tmp_path, f"project: {{name: x, type: {kind}}}\nquality_gates: {{}}\n")


def test_template_markers_make_a_file_legacy_and_native_sections_pass_through(tmp_path: Path) -> None:
    assert all(is_legacy({key: {}}) for key in ("experiment", "hyperparameter_tuning", "paths", "environment"))
    assert not is_legacy({"training": {}, "refinement": {}})
    loaded = load_yaml(tmp_path, """
experiment: {name: mixed}
training: {schedule: constant, augmentation: flip, label_smoothing: 0.1}
refinement: {n_trials: 3, seeds: 1}
""")
    cfg = loaded.config
    assert (cfg.training.schedule, cfg.training.augmentation, cfg.training.label_smoothing) == ("constant", "flip", 0.1)
    assert (cfg.refinement.n_trials, cfg.refinement.seeds) == (3, 1)
    assert loaded.warnings == []


@pytest.mark.parametrize(("text", "expected"), [
    ("quality_gates:\n  stage_4_implementation: [min_val_accuracy]\n",
     "quality_gates.stage_4_implementation: expected a mapping, got list ['min_val_accuracy']; ignored"),
    ("mle_star_workflow:\n  stages: [1_situation_analysis]\n",
     "mle_star_workflow.stages: expected a mapping, got list ['1_situation_analysis']; ignored"),
    ("quality_gates:\n  stage_5_evaluation: {min_test_accuracy: {classification: 0.8}}\n",
     "quality_gates.stage_5_evaluation.min_test_accuracy: a gate takes one threshold, not {'classification': 0.8}; "
     "ignored"),
    ("quality_gates: {}\ndata:\n  preprocessing: {augmentation: {train: RandomHorizontalFlip, test: Normalize}}\n",
     "data.preprocessing.augmentation.test: mlestar never augments validation or test images (test-time "
     "augmentation: evaluation.tta)"),
])
def test_malformed_sections_are_warned_not_crashed_on(tmp_path: Path, text: str, expected: str) -> None:
    loaded = load_yaml(tmp_path, text)
    assert loaded.warnings == [expected]


def test_an_mlestar_section_and_translated_keys_merge_field_by_field(tmp_path: Path) -> None:
    loaded = load_yaml(tmp_path, """
quality_gates: {}
deployment:
  serving: {batch_size: 1, port: 9000}
  serve: {host: 0.0.0.0, port: 8080}
""")
    serve = loaded.config.deployment.serve
    assert (serve.max_batch_size, serve.host, serve.port) == (1, "0.0.0.0", 9000)
    assert loaded.warnings == ["deployment.serve.port: deployment.serve.port is already 9000 from "
                               "deployment.serving.port; 8080 ignored"]
