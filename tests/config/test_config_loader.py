"""Loading configs: paths in errors, suggestions, YAML line numbers, gates, sample-project files."""

from pathlib import Path

import pytest

from mlestar.config import build_config, default_config, load_config
from mlestar.config.catalog import normalize_stage
from mlestar.errors import ConfigError

FIXTURES = Path(__file__).parent.parent / "fixtures"


def test_default_config_is_digits_with_all_defaults() -> None:
    loaded = default_config()
    assert loaded.config.data.source == "digits"
    assert loaded.config.refinement.enabled
    assert len(loaded.hash) == 64


def test_unknown_keys_name_their_path_and_a_suggestion() -> None:
    with pytest.raises(ConfigError) as err:
        build_config({"trainng": {}, "training": {"epocs": 3}, "refinement": {"search_space": {
            "learning_rate": {"type": "float", "low": 0.1, "high": 1.0, "choises": [1]}}}})
    text = str(err.value)
    assert "trainng: unknown key; did you mean 'training'?" in text
    assert "training.epocs: unknown key; did you mean 'epochs'?" in text
    assert "refinement.search_space.learning_rate.choises: unknown key; did you mean 'choices'?" in text


def test_wrong_types_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"training\.epochs: Input should be a valid integer"):
        build_config({"training": {"epochs": "many"}})


def test_units_are_parsed_into_base_units() -> None:
    cfg = build_config({"constraints": {"max_training_time": "<4 hours", "max_model_size": "42 MiB",
                                        "max_inference_latency": "<50ms per sample"}})
    assert cfg.constraints.max_training_time == 14400
    assert cfg.constraints.max_model_size == 42 * 2**20
    assert cfg.constraints.max_inference_latency == pytest.approx(0.05)


def test_gate_threshold_uses_the_metric_unit_and_defaults_stage() -> None:
    cfg = build_config({"gates": [{"metric": "model_size", "op": "<=", "threshold": "50MB"},
                                  {"metric": "val_accuracy", "threshold": "90%"}]})
    size, acc = cfg.gates
    assert (size.stage, size.threshold) == ("evaluation", 50e6)
    assert (acc.stage, acc.threshold) == ("implementation", 0.9)
    assert acc.on_fail.max_attempts == 2


def test_gate_on_a_metric_nothing_produces() -> None:
    with pytest.raises(ConfigError, match="no stage produces a metric named 'val_acc'; did you mean 'val_accuracy'"):
        build_config({"gates": [{"metric": "val_acc", "threshold": 0.9}]})


def test_gate_at_an_unknown_stage() -> None:
    with pytest.raises(ConfigError, match="unknown stage '9_magic'"):
        build_config({"gates": [{"metric": "val_accuracy", "threshold": 0.9, "stage": "9_magic"}]})


def test_gate_checked_before_its_metric_exists() -> None:
    with pytest.raises(ConfigError, match="only produced later"):
        build_config({"gates": [{"metric": "test_accuracy", "threshold": 0.9, "stage": "implementation"}]})


def test_gate_cannot_return_to_a_later_stage() -> None:
    with pytest.raises(ConfigError, match="cannot return to 'deployment'"):
        build_config({"gates": [{"metric": "val_accuracy", "threshold": 0.9,
                                 "on_fail": {"return_to": "deployment"}}]})


@pytest.mark.parametrize("raw, name", [("4", "implementation"), ("stage_4_implementation", "implementation"),
                                       ("7_deployment_prep", "deployment"), ("7_deployment_preparation", "deployment"),
                                       ("5_results_evaluation", "evaluation"), ("refinement", "refinement")])
def test_stage_aliases(raw: str, name: str) -> None:
    assert normalize_stage(raw) == name


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("project:\n  name: x\ntraining:\n  epochs: [1, 2\n  batch_size: 3\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(path)


def test_missing_and_folder_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_non_mapping_yaml(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(path)


def test_empty_search_space_is_refused() -> None:
    with pytest.raises(ConfigError, match="search space is empty"):
        build_config({"refinement": {"search_space": {}}})


def test_starter_config_is_valid() -> None:
    starter = Path(__file__).parents[2] / "src" / "mlestar" / "config" / "starter.yaml"
    loaded = load_config(starter)
    assert loaded.warnings == []
    assert loaded.config.constraints.max_training_time == 600


def test_sample_project_config_translates_with_warnings() -> None:
    loaded = load_config(FIXTURES / "sample_project_config.yaml")
    cfg = loaded.config
    gates = {(g.metric, g.stage): g for g in cfg.gates}
    assert gates[("val_accuracy", "implementation")].threshold == 0.85
    assert gates[("training_time", "implementation")].threshold == 14400
    assert gates[("test_accuracy", "evaluation")].threshold == 0.85
    assert gates[("latency_p95", "evaluation")].threshold == pytest.approx(0.05)
    assert gates[("model_size", "evaluation")].threshold == 50e6
    assert gates[("peak_memory", "evaluation")].threshold == 2e9
    assert cfg.constraints.max_model_size == 50e6
    assert cfg.constraints.max_inference_latency == pytest.approx(0.05)
    assert cfg.task.targets == {"test_accuracy": 0.85, "macro_f1": 0.84}
    assert cfg.remedies == ["reduce_batch_size", "lower_learning_rate", "simplify_model", "mixed_precision"]
    assert (cfg.training.epochs, cfg.training.batch_size, cfg.training.schedule) == (3, 64, "cosine")
    warned = "\n".join(loaded.warnings)
    for key in ("project.type", "mle_star_workflow.stages.4_implementation.duration",
                "quality_gates.stage_7_deployment.min_throughput", "evaluation.metrics",
                "error_handling.restart_from_checkpoint", "hardware"):
        assert key in warned, key
    assert "training.scheduler" not in warned  # `scheduler: cosine` is mlestar's cosine schedule


def test_a_table_config_is_told_where_image_settings_went(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data: {source: table, dataset: iris}\ntraining: {epochs: 3}\n")
    with pytest.raises(ConfigError, match="a table run reads the `tables` section"):
        load_config(path)
    path.write_text("data: {source: table, dataset: iris}\ngates: [{metric: test_rmse, op: '<=', threshold: 1}]\n"
                    "tables: {cv_folds: 3}\n")
    loaded = load_config(path)  # task auto: the metric's task is checked in stage 2
    assert loaded.config.tables.cv_folds == 3 and loaded.config.task.primary_metric is None


def test_a_saved_table_config_loads_again() -> None:
    from mlestar.config.schema import MlestarConfig

    config = MlestarConfig(data={"source": "table", "dataset": "wine", "task": "multiclass"})
    again = build_config(config.model_dump(mode="json"), base_units=True)  # config.json holds base units
    assert again == config and again.task.primary_metric == "test_accuracy"
