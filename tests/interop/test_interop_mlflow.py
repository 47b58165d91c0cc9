"""The MLflow export: a finished run written to a temporary SQLite store and read back with MlflowClient."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mlestar.cli.app import app
from mlestar.errors import InteropError
from mlestar.interop.mlflow_export import KIND_TAG, RUN_TAG, MlflowExport, export_run, flatten
from mlestar.tracking.lineage import LineageDB
from mlestar.utils.io import read_json

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

STAGE_FOLDERS = ["01_situation_analysis", "02_task_definition", "03_action_planning", "04_implementation",
                 "05_evaluation", "06_refinement", "07_deployment"]


def _load(flavor: Any, done: MlflowExport) -> Any:
    """``flavor.load_model`` of the export's model from the export's own store.

    A ``models:/`` URI is resolved through the process-wide tracking URI, which other tests
    (and MLflow's default) may have set elsewhere.
    """
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(done.tracking_uri)
    try:
        return flavor.load_model(done.model_uri)
    finally:
        mlflow.set_tracking_uri(previous)


def _export(run: tuple[Path, str], store: Path) -> tuple[MlflowExport, MlflowClient]:
    runs_dir, run_id = run
    uri = f"sqlite:///{store / 'mlflow.db'}"
    return export_run(runs_dir / run_id, tracking_uri=uri), MlflowClient(tracking_uri=uri)


@pytest.fixture(scope="module")
def image_export(finished_run: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[MlflowExport, MlflowClient, Path]:
    """The tiny image run exported once; artifacts under the store's folder (MLflow's default ./mlruns)."""
    store = tmp_path_factory.mktemp("mlflow-images")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(store)
        done, client = _export(finished_run, store)
    return done, client, finished_run[0] / finished_run[1]


def _children(client: MlflowClient, done: MlflowExport) -> list[Any]:
    return client.search_runs([done.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{done.parent_run_id}'")


def test_parent_run_holds_the_config_metrics_and_run_files(image_export: Any) -> None:
    done, client, run_dir = image_export
    parent = client.get_run(done.parent_run_id)
    state = read_json(run_dir / "run.json")
    assert parent.info.run_name == run_dir.name and parent.info.status == "FINISHED"
    assert parent.data.tags[RUN_TAG] == run_dir.name and parent.data.tags[KIND_TAG] == "workflow"
    assert parent.data.tags["mlestar.config_hash"] == state["config_hash"]
    assert parent.data.params["training.epochs"] == "2"
    assert parent.data.params["data.source"] == "digits"
    assert parent.data.metrics["test_accuracy"] == pytest.approx(state["metrics"]["test_accuracy"])
    listed = {f.path for f in client.list_artifacts(done.parent_run_id)}
    assert {"run.json", "config.json", "environment.json", "audit.jsonl"} <= listed


def test_each_stage_is_a_nested_run_with_its_params_metrics_files_and_hashes(image_export: Any) -> None:
    done, client, run_dir = image_export
    children = _children(client, done)
    assert sorted(r.info.run_name for r in children) == STAGE_FOLDERS
    assert list(done.stage_runs) == [name.split("_", 1)[1] for name in STAGE_FOLDERS]
    impl = client.get_run(done.stage_runs["implementation"])
    entry = read_json(run_dir / "run.json")["stages"]["implementation"]
    assert impl.data.tags["mlestar.stage_status"] == "passed" and impl.info.status == "FINISHED"
    assert impl.data.tags["mlestar.fingerprint"] == entry["fingerprint"]
    assert impl.data.metrics["val_accuracy"] == pytest.approx(entry["metrics"]["val_accuracy"])
    # what stage 4 read (the data and seed; its epochs come from the plan), not the whole config
    assert impl.data.params["data.max_per_class"] == "40" and impl.data.params["seed"] == "0"
    assert "training.epochs" not in impl.data.params and "refinement.n_trials" not in impl.data.params
    assert impl.data.params["config_paths"] == "data, seed, deterministic, constraints.max_training_time"
    model_pt = next(r for r in LineageDB(run_dir.parent / "lineage.db", writer=False).artifacts(run_dir.name)
                    if r.path == "04_implementation/model.pt")
    assert impl.data.tags["mlestar.sha256.04_implementation/model.pt"] == model_pt.sha256
    assert "model.pt" in {f.path for f in client.list_artifacts(impl.info.run_id)}


def test_training_history_becomes_metric_histories_with_steps(image_export: Any) -> None:
    done, client, run_dir = image_export
    history = read_json(run_dir / "04_implementation" / "history.json")
    points = client.get_metric_history(done.stage_runs["implementation"], "curve/val_loss")
    assert [p.step for p in sorted(points, key=lambda p: p.step)] == [row["epoch"] for row in history]
    assert [p.value for p in sorted(points, key=lambda p: p.step)] == pytest.approx([r["val_loss"] for r in history])
    assert len(points) >= 2


def test_the_logged_pytorch_model_loads_and_predicts_like_the_run_s_model(image_export: Any) -> None:
    import torch

    from mlestar.training import load_model_file

    done, _, run_dir = image_export
    loaded = _load(mlflow.pytorch, done)
    original, payload = load_model_file(run_dir / "06_refinement" / "model.pt")
    arch = payload["architecture"]
    batch = torch.from_numpy(np.random.default_rng(0).normal(
        size=(3, arch["in_channels"], arch["image_size"], arch["image_size"])).astype(np.float32))
    with torch.no_grad():
        expected = original(batch).numpy()
        got = loaded(batch).numpy()
    assert got.shape == (3, len(payload["class_names"]))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_exporting_the_same_run_again_is_refused_without_replace(image_export: Any) -> None:
    done, client, run_dir = image_export
    with pytest.raises(InteropError, match="already in MLflow") as caught:
        export_run(run_dir, tracking_uri=done.tracking_uri)
    assert "--replace" in (caught.value.hint or "")
    parents = client.search_runs([done.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'workflow'")
    assert [p.info.run_id for p in parents] == [done.parent_run_id]


def test_table_run_exports_with_the_sklearn_pipeline_and_replace_deletes_the_first(
        finished_table_run: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlestar.domains.tables.model import load_model

    monkeypatch.chdir(tmp_path)
    first, client = _export(finished_table_run, tmp_path)
    runs_dir, run_id = finished_table_run
    assert len(_children(client, first)) == 7
    curve = client.get_metric_history(first.stage_runs["implementation"], "curve/valid_binary_logloss")
    assert len(curve) > 10 and sorted(p.step for p in curve)[:3] == [0, 1, 2]

    second = export_run(runs_dir / run_id, tracking_uri=first.tracking_uri, replace=True)
    assert second.replaced == [first.parent_run_id]
    assert client.get_run(first.parent_run_id).info.lifecycle_stage == "deleted"
    active = client.search_runs([first.experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{run_id}'")
    assert len(active) == 8  # one parent and seven stages: the first export is gone

    table_model = load_model(runs_dir / run_id / "07_deployment" / "bundle" / "model.joblib")
    pipeline = _load(mlflow.sklearn, second)
    frame = table_model.prepare(_rows(runs_dir / run_id))
    np.testing.assert_allclose(pipeline.predict_proba(frame), table_model.pipeline.predict_proba(frame))


def _rows(run_dir: Path) -> Any:
    """Five test rows of the run's data, read the way the run read them."""
    from mlestar.domains import load_dataset
    from mlestar.workflow.runner import load_run_config

    config = load_run_config(run_dir).config
    return load_dataset(config.data, config.seed).test.head(5)


def test_flatten_turns_nested_config_into_dotted_params() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": {}}) == {"a.b": "1", "a.c": "[1, 2]", "d": "null",
                                                                       "e": "{}"}
    assert len(flatten({"long": "x" * 7000})["long"]) == 6000


def test_cli_export_mlflow_refuses_a_second_export_with_a_hint(image_export: Any) -> None:
    done, _, run_dir = image_export
    result = CliRunner().invoke(app, ["export", "mlflow", run_dir.name, "--runs-dir", str(run_dir.parent),
                                      "--tracking-uri", done.tracking_uri])
    assert result.exit_code == 2
    assert "already in MLflow" in result.output and "--replace" in result.output
