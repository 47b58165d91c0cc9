"""The MLE-Star tabular sample config: translated with a warning per key it cannot honour, then run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlestar.config.loader import load_config
from mlestar.errors import ConfigError
from tests.domains.tables.tables_helpers import mixed_frame, write_csv

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy" / "tabular_sample_project.yaml"


def _pointed_at(tmp_path: Path, **data: object) -> Path:
    raw = yaml.safe_load(FIXTURE.read_text())
    raw["data"].update(data)
    path = tmp_path / "mle_star_config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_the_tabular_sample_translates_to_a_table_config(tmp_path: Path) -> None:
    csv = write_csv(mixed_frame(), tmp_path / "train.csv")
    loaded = load_config(_pointed_at(tmp_path, raw_data_path=str(csv)))
    cfg = loaded.config
    assert (cfg.domain, cfg.data.target, cfg.data.task, cfg.data.id_columns) == ("tables", "y", "binary", ["row_id"])
    assert cfg.data.columns == {"color": "categorical"} and cfg.tables.learner == "xgboost"
    assert (cfg.tables.cv_folds, cfg.tables.ensemble, cfg.refinement.n_trials) == (3, True, 6)
    assert [(g.metric, g.op, g.threshold) for g in cfg.gates] == [("cv_score", ">=", 0.7), ("test_roc_auc", ">=", 0.6)]
    assert cfg.task.targets == {"test_accuracy": 0.7, "test_roc_auc": 0.75}


def test_every_key_it_cannot_honour_is_named_with_why(tmp_path: Path) -> None:
    csv = write_csv(mixed_frame(), tmp_path / "train.csv")
    warnings = load_config(_pointed_at(tmp_path, raw_data_path=str(csv))).warnings
    by_key = {w.split(":", 1)[0]: w for w in warnings}
    assert "mlestar fits one learner (xgboost)" in by_key["models.lightgbm"]
    assert "not a learner mlestar has" in by_key["models.random_forest"]
    assert "stage 3 plans preprocessing" in by_key["feature_engineering.scaling"]
    assert "these targets do not apply" in by_key["evaluation.targets.regression"]
    assert "no such gate for tables" in by_key["quality_gates.stage_5_evaluation.fairness_check"]
    assert "imputes" in by_key["error_handling.data_issues.impute_missing_values"]
    assert "data.encoding" in by_key and "mle_star_workflow.stages" not in by_key


def test_without_a_file_it_says_which_key_to_add(tmp_path: Path) -> None:
    raw = yaml.safe_load(FIXTURE.read_text())
    del raw["data"]["raw_data_path"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="data.path is missing") as err:
        load_config(path)
    assert "target_column" in (err.value.hint or "")


@pytest.mark.slow
def test_it_runs_all_seven_stages_when_pointed_at_a_csv(tmp_path: Path) -> None:
    from mlestar.workflow.runner import RunOptions, run_workflow

    csv = write_csv(mixed_frame(rows=500), tmp_path / "train.csv")
    loaded = load_config(_pointed_at(tmp_path, raw_data_path=str(csv)))
    state = run_workflow(loaded, RunOptions(runs_dir=tmp_path / "runs"))
    assert state.status == "passed"
