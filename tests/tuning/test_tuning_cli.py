"""``mlestar tune``: bad input exits 2 with one clear message and leaves existing studies untouched."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.tuning.storage import open_storage
from tune_helpers import unique_study, write_config

runner = CliRunner()
LR = {"learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True}}


def invoke(*args: object) -> object:
    return runner.invoke(app, [str(a) for a in args])


def test_prepare_creates_the_study_and_a_job_file_workers_can_use(tiny_run: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, tiny_run.parent, n_trials=2, epochs_per_trial=1, search_space=LR)
    result = invoke("tune", config, "--run", tiny_run, "--out", tmp_path / "out", "--prepare")
    assert result.exit_code == 0, result.output
    assert "mlestar tune --worker --study" in result.output and "optuna-dashboard sqlite:///" in result.output
    assert (tmp_path / "out" / "tune_job.json").exists() and (tmp_path / "out" / "study.db").exists()
    assert "0/2 trials finished" in result.output
    worker = invoke("tune", "--worker", tmp_path / "out" / "tune_job.json", "--threads", 1)
    assert worker.exit_code == 0, worker.output
    assert "study has 2 finished trial(s) of 2" in worker.output


def test_an_existing_study_with_another_space_is_refused_untouched(tiny_run: Path, tmp_path: Path) -> None:
    storage, study = f"sqlite:///{tmp_path / 'shared.db'}", unique_study()
    first = write_config(tmp_path, tiny_run.parent, n_trials=1, epochs_per_trial=1, search_space=LR)
    done = invoke("tune", first, "--run", tiny_run, "--out", tmp_path / "a", "--storage", storage, "--study", study)
    assert done.exit_code == 0, done.output
    before = len(optuna.load_study(study_name=study, storage=open_storage(storage)).trials)
    (tmp_path / "b").mkdir()
    other = write_config(tmp_path / "b", tiny_run.parent, n_trials=3, epochs_per_trial=1,
                         search_space={"learning_rate": {"type": "float", "low": 0.001, "high": 0.3, "log": True}})
    refused = invoke("tune", other, "--run", tiny_run, "--out", tmp_path / "b", "--storage", storage,
                     "--study", study)
    assert refused.exit_code == 2
    assert "exists with a different search space" in refused.output and "Traceback" not in refused.output
    assert len(optuna.load_study(study_name=study, storage=open_storage(storage)).trials) == before
    worker = invoke("tune", "--worker", "--study", study, "--storage", storage, other)
    assert worker.exit_code == 2 and "search space in" in worker.output


@pytest.mark.parametrize("args, message", [
    (["--storage", "postgresql+psycopg2://me:secret@127.0.0.1:1/db"], "cannot open the study storage"),
    (["--storage", "/no/such/folder/study.journal"], "does not exist"),
])
def test_unreachable_storage_exits_2(tiny_run: Path, tmp_path: Path, args: list[str], message: str) -> None:
    config = write_config(tmp_path, tiny_run.parent, n_trials=1, search_space=LR)
    result = invoke("tune", config, "--run", tiny_run, "--out", tmp_path / "out", "--prepare", *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "secret" not in result.output


def test_worker_and_usage_errors_exit_2(tiny_run: Path, tmp_path: Path) -> None:
    missing = invoke("tune", "--worker", "--study", "nope", "--storage", f"sqlite:///{tmp_path / 'x.db'}")
    assert missing.exit_code == 2 and "no study named 'nope'" in missing.output
    assert invoke("tune", "--worker").exit_code == 2
    usage = invoke("tune", write_config(tmp_path, tiny_run.parent))
    assert usage.exit_code == 2 and "needs CONFIG and --run RUN" in usage.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("refinement:\n  search_space:\n    learning_rate: {type: float, low: 0.3, high: 0.1}\n")
    result = invoke("tune", bad, "--run", tiny_run)
    assert result.exit_code == 2 and "low < high" in result.output
