"""Export a finished workflow run to MLflow: one parent run, one nested run per stage, the model.

What lands where:

- **parent run** (named after the workflow run id): the whole config flattened into
  params (``training.epochs``), the run's metrics, ``run.json``, ``config.json``,
  ``environment.json`` and ``audit.jsonl`` as artifacts, and the deployed model: the
  PyTorch flavour for images (the adopted model, ``06_refinement/model.pt``), the
  scikit-learn flavour for tables (the fitted pipeline of the bundle's ``model.joblib``).
- **one child run per stage** (``mlflow.parentRunId`` set, named ``04_implementation``):
  the config values the stage read (its ``config_paths``) as params, its metrics, its
  folder as artifacts, tags with its status, code-and-input fingerprint and the sha256
  of every file it wrote (from the lineage database). Stage 4's per-epoch history
  (images) or per-iteration learning curve (tables) becomes metric histories named
  ``curve/<name>`` with ``step`` = epoch or iteration.

Every MLflow run carries the tag ``mlestar.run_id``; exporting a run already in the
experiment is refused unless ``replace`` is given, which deletes the earlier export
first, so one experiment never holds a run twice.

The default store is ``sqlite:///mlflow.db``: MLflow 3 refuses the ``./mlruns`` file
store unless ``MLFLOW_ALLOW_FILE_STORE`` is set. Artifacts go to the experiment's
artifact location (MLflow's default, ``./mlruns`` beside where the command runs).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from mlestar.config.catalog import stage_folder
from mlestar.errors import InteropError
from mlestar.tracking.lineage import LineageDB
from mlestar.utils.io import read_json
from mlestar.workflow.runner import AUDIT_FILE, CONFIG_FILE, ENVIRONMENT_FILE, LINEAGE_FILE, load_run_config
from mlestar.workflow.stage import list_stages, select_config, stage_class
from mlestar.workflow.state import RUN_FILE, RunState

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
RUN_TAG = "mlestar.run_id"
KIND_TAG = "mlestar.kind"  # "workflow" on the parent, "stage" on each child
MODEL_NAME = "model"
_MAX_PARAM = 6000  # MLflow refuses longer param values (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH)
_RUN_FILES = (RUN_FILE, CONFIG_FILE, ENVIRONMENT_FILE, AUDIT_FILE)
# mlestar's stage status -> MLflow's run status: a cached stage reused a passed execution
_STATUS = {"passed": "FINISHED", "skipped": "FINISHED", "failed": "FAILED", "interrupted": "KILLED",
           "pending": "KILLED", "running": "KILLED"}


@dataclass(frozen=True)
class MlflowExport:
    """Where one export went.

    Attributes:
        tracking_uri, experiment_id: the MLflow store and experiment written to.
        parent_run_id: the MLflow run of the whole workflow run.
        stage_runs: stage name -> its nested MLflow run id, in workflow order.
        model_uri: the logged model (``models:/...``), or None when the run has no model yet.
        replaced: parent run ids of earlier exports of the same run that were deleted.
    """

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    stage_runs: dict[str, str]
    model_uri: str | None
    replaced: list[str] = field(default_factory=list)


def export_run(run_dir: Path, *, tracking_uri: str = DEFAULT_TRACKING_URI, experiment: str | None = None,
               replace: bool = False) -> MlflowExport:
    """Write the run at ``run_dir`` into MLflow (see the module docstring for the layout).

    Args:
        experiment: MLflow experiment name; default: the run's project name. Created when absent.
        replace: delete an earlier export of this run from the experiment instead of refusing.

    Raises:
        InteropError: the run is still executing, or is already exported and ``replace`` is False.
        RunNotFoundError, TrackingError: ``run_dir`` is not a readable run.
    """
    from mlflow.tracking import MlflowClient

    run_dir = Path(run_dir)
    state = RunState.load(run_dir)
    if state.status == "running":
        raise InteropError(f"run {state.run_id} is still executing",
                           hint="export it once `mlestar status` shows it passed, failed or interrupted")
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = _experiment(client, experiment or str(state.data["project"]))
    replaced = _clear_earlier(client, experiment_id, state.run_id, replace, experiment or str(state.data["project"]))
    parent = _parent_run(client, experiment_id, run_dir, state)
    children = {name: _stage_run(client, experiment_id, parent, run_dir, state, name)
                for name in list_stages(_domain(run_dir))}
    model_uri = _log_model(tracking_uri, parent, run_dir)
    _end(client, parent, state.status, state.data.get("ended"))
    return MlflowExport(tracking_uri, experiment_id, parent, children, model_uri, replaced)


# --------------------------------------------------------------------------- experiment and duplicates


def _experiment(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage == "deleted":
        raise InteropError(f"MLflow experiment {name!r} is deleted",
                           hint="restore it (`mlflow experiments restore`) or pass --experiment with another name")
    return found.experiment_id if found is not None else client.create_experiment(name)


def _clear_earlier(client: MlflowClient, experiment_id: str, run_id: str, replace: bool, name: str) -> list[str]:
    """Parent ids of earlier exports of ``run_id``, deleted (children too) when ``replace``; else refuse."""
    earlier = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{run_id}'")
    parents = [r.info.run_id for r in earlier if r.data.tags.get(KIND_TAG) == "workflow"]
    if earlier and not replace:
        raise InteropError(f"run {run_id} is already in MLflow experiment {name!r} (MLflow run "
                           f"{', '.join(parents) or earlier[0].info.run_id})",
                           hint="pass --replace to delete that export and write the run again")
    for found in earlier:
        client.delete_run(found.info.run_id)
    return parents


# --------------------------------------------------------------------------- runs


def _parent_run(client: MlflowClient, experiment_id: str, run_dir: Path, state: RunState) -> str:
    data = state.data
    tags = {RUN_TAG: state.run_id, KIND_TAG: "workflow", "mlestar.status": state.status,
            "mlestar.config_hash": str(data.get("config_hash")), "mlestar.project": str(data.get("project"))}
    run = client.create_run(experiment_id, run_name=state.run_id, tags=tags, start_time=_ms(data.get("created")))
    parent = run.info.run_id
    config = read_json(run_dir / CONFIG_FILE)
    _log(client, parent, params=flatten(config), metrics=_metrics(data.get("metrics") or {}, 0))
    for name in _RUN_FILES:
        if (run_dir / name).is_file():
            client.log_artifact(parent, str(run_dir / name))
    return parent


def _stage_run(client: MlflowClient, experiment_id: str, parent: str, run_dir: Path, state: RunState,
               name: str) -> str:
    """One nested run for stage ``name``: params it read, metrics, curves, files, hashes."""
    entry = state.data["stages"].get(name) or {"status": "pending"}
    folder = run_dir / stage_folder(name)
    tags = {"mlflow.parentRunId": parent, RUN_TAG: state.run_id, KIND_TAG: "stage", "mlestar.stage": name,
            "mlestar.stage_status": str(entry.get("status")), "mlestar.fingerprint": str(entry.get("fingerprint")),
            "mlestar.config_hash": str(state.data.get("config_hash")), **_content_hashes(run_dir, state.run_id, name)}
    if entry.get("summary"):
        tags["mlestar.summary"] = str(entry["summary"])[:_MAX_PARAM]
    run = client.create_run(experiment_id, run_name=stage_folder(name), tags=tags, start_time=_ms(entry.get("started")))
    child = run.info.run_id
    _log(client, child, params=_stage_params(run_dir, name),
         metrics=[*_metrics(entry.get("metrics") or {}, 0), *_curves(folder, name)])
    if folder.is_dir():
        client.log_artifacts(child, str(folder))
    _end(client, child, str(entry.get("status")), entry.get("ended"))
    return child


def _stage_params(run_dir: Path, name: str) -> dict[str, str]:
    """The config values the stage read, flattened, and the paths it declares reading."""
    config = load_run_config(run_dir).config
    paths = stage_class(name, config.domain).config_paths
    return {**flatten(select_config(config, tuple(paths))), "config_paths": ", ".join(paths)}


def _content_hashes(run_dir: Path, run_id: str, name: str) -> dict[str, str]:
    """``mlestar.sha256.<run-relative path>`` for each file the lineage recorded for the stage."""
    db_path = run_dir.parent / LINEAGE_FILE
    if not db_path.is_file():
        return {}
    records = LineageDB(db_path, writer=False).artifacts(run_id)
    return {f"mlestar.sha256.{r.path}": r.sha256 for r in records if r.stage == name}


def _end(client: MlflowClient, run_id: str, status: str, ended: float | None) -> None:
    client.set_terminated(run_id, status=_STATUS.get(status, "KILLED"), end_time=_ms(ended))


def _log(client: MlflowClient, run_id: str, *, params: dict[str, str], metrics: list[Metric]) -> None:
    from mlflow.entities import Param

    client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


# --------------------------------------------------------------------------- params and metrics


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"training.epochs": "2"}``; lists as JSON; values cut to MLflow's 6000 characters."""
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            out[name] = text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 3] + "..."
    return out


def _metrics(values: dict[str, Any], step: int) -> list[Metric]:
    """The numeric, finite values of ``values`` (None and text are not metrics)."""
    from mlflow.entities import Metric

    now = _now_ms()
    return [Metric(key, float(value), now, step) for key, value in values.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)]


def _curves(folder: Path, name: str) -> list[Metric]:
    """Stage 4's training curves as ``curve/<name>`` histories (an empty list for other stages)."""
    if name != "implementation":
        return []
    from mlflow.entities import Metric

    now = _now_ms()
    return [Metric(f"curve/{key}", value, now, step) for key, step, value in _curve_points(folder)]


def _curve_points(folder: Path) -> Iterator[tuple[str, int, float]]:
    """(metric, step, value): images' ``history.json`` per epoch, tables' ``training.json`` per iteration."""
    if (folder / "history.json").is_file():
        for row in read_json(folder / "history.json"):
            yield from ((key, int(row["epoch"]), float(v)) for key, v in row.items()
                        if key != "epoch" and isinstance(v, (int, float)) and math.isfinite(v))
    elif (folder / "training.json").is_file():
        curve = read_json(folder / "training.json").get("curve") or {}
        for metric, splits in curve.items():
            for split, points in splits.items():
                yield from ((f"{split}_{metric}", step, float(v)) for step, v in enumerate(points)
                            if math.isfinite(v))


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


# --------------------------------------------------------------------------- the model


def _domain(run_dir: Path) -> str:
    return str(load_run_config(run_dir).config.domain)


def _log_model(tracking_uri: str, parent: str, run_dir: Path) -> str | None:
    """Log the deployed model on the parent run; None when the run has not produced it."""
    import mlflow

    images_model = run_dir / stage_folder("refinement") / "model.pt"
    table_model = run_dir / stage_folder("deployment") / "bundle" / "model.joblib"
    if _domain(run_dir) == "tables":
        log = _log_table_model if table_model.is_file() else None
    else:
        log = _log_image_model if images_model.is_file() else None
    if log is None:
        return None
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with mlflow.start_run(run_id=parent):
            return log(images_model if log is _log_image_model else table_model)
    finally:
        mlflow.set_tracking_uri(previous)


def _log_image_model(path: Path) -> str:
    """The adopted model (stage 6's ``model.pt``) in the PyTorch flavour, with a signature from one input."""
    import mlflow.pytorch
    import numpy as np
    import torch

    from mlestar.training import load_model_file

    model, payload = load_model_file(path)
    arch = payload["architecture"]
    # two rows: MLflow's default "pt2" format (torch.export) would fix the batch size at an example's 1
    example = np.zeros((2, arch["in_channels"], arch["image_size"], arch["image_size"]), dtype=np.float32)
    # pt2 holds the graph and weights, not pickled mlestar classes: loading needs torch only
    info = mlflow.pytorch.log_model(model, name=MODEL_NAME, input_example=example,
                                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
    return str(info.model_uri)


def _log_table_model(path: Path) -> str:
    """The bundle's fitted scikit-learn pipeline in the sklearn flavour.

    The pipeline reads the frame :meth:`TableModel.prepare` makes (the schema's input
    columns, numbers as float32, categories as text); ``schema.json`` in the bundle says which.
    """
    import mlflow.sklearn

    from mlestar.domains.tables.model import load_model

    table_model = load_model(path)
    # cloudpickle, as the bundle's joblib file: MLflow's default, skops, needs a package mlflow-skinny lacks
    # and a hand-kept list of trusted types for mlestar's and LightGBM's classes
    info = mlflow.sklearn.log_model(table_model.pipeline, name=MODEL_NAME, serialization_format="cloudpickle",
                                    pip_requirements=[*_step_requirements(table_model.pipeline), _mlestar_req()])
    return str(info.model_uri)


def _step_requirements(pipeline: Any) -> list[str]:
    """``name==version`` of the distributions whose classes the pipeline's steps are (sklearn, lightgbm, ...).

    Given to MLflow instead of letting it infer them, which loads the model in a subprocess.
    """
    import importlib.metadata

    owners = importlib.metadata.packages_distributions()
    roots = {"sklearn"} | {type(step).__module__.split(".")[0] for _, step in pipeline.steps}
    dists = sorted({dist for root in roots for dist in owners.get(root, []) if dist != "mlestar"})
    return [f"{dist}=={importlib.metadata.version(dist)}" for dist in dists]


def _mlestar_req() -> str:
    # the pickled pipeline may hold mlestar's own transformers: unpickling it needs the package
    from mlestar import __version__

    return f"mlestar=={__version__}"
