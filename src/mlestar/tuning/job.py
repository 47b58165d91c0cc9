"""The tuning job: everything a worker needs to run trials of one study, on any machine.

A :class:`TuneJob` is small and self-contained: the stage 3 training plan,
the search space, the data config with the split hashes stage 1 recorded, the
trial settings and the constraints. Whoever creates a study stores the job in
it (user attribute ``mlestar_job``) and writes it as ``tune_job.json`` beside
it, so ``mlestar tune --worker --study NAME --storage URL`` needs nothing else
on a machine that can read the same data. A worker refuses data whose split
hashes differ from the job's: trials on other machines train on the same images.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from mlestar.config.schema import ConstraintsConfig, DataConfig, MlestarConfig, ParamSpec
from mlestar.errors import TuningError
from mlestar.training.plan import TrainingPlan
from mlestar.tuning.space import space_from_json, space_to_json
from mlestar.utils.io import atomic_write_json, read_json

JOB_FILE = "tune_job.json"
JOB_VERSION = 1


@dataclass(frozen=True)
class TuneJob:
    """One study's work. Times in seconds, sizes in bytes.

    Attributes:
        study, storage: the study's name and storage string (see :mod:`mlestar.tuning.storage`).
        plan: stage 3's training plan, the base every trial changes.
        space: the search space as JSON (:func:`mlestar.tuning.space.space_to_json`).
        fixed: parameters every trial sets before drawing (a focused search: the best so far).
        target_trials: finished (complete or pruned) trials the study should reach.
        epochs: epochs per trial; None: the plan's (a drawn ``epochs`` wins).
        train_fraction: share of the training split a trial trains on (seeded subset).
        sampler, pruner: config names (``tpe``, ``halving``, ``median``, ...; stage 6 resolves ``auto``).
        min_resource: epochs before a trial's first ranking by a halving or Hyperband pruner
            (stage 6 chooses it from stage 4's curve: :mod:`mlestar.tuning.rungs`).
        seed: the run's seed (data split and sampler).
        data: the DataConfig as JSON; a worker may swap in its own paths.
        preprocessing: normalisation recorded by stage 1.
        split_hashes: ``{"train": sha256, "val": sha256}`` from stage 1.
        constraints: ``max_model_size`` (bytes) and ``max_inference_latency`` (s), None when unset.
        heartbeat: database storages' heartbeat interval.
        deterministic: ask PyTorch for deterministic kernels.
        timeout: seconds a worker keeps starting trials (from its start); None: until done.
    """

    study: str
    storage: str
    plan: TrainingPlan
    space: dict[str, dict[str, Any]]
    target_trials: int
    seed: int
    data: dict[str, Any]
    preprocessing: dict[str, Any]
    split_hashes: dict[str, str]
    fixed: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    train_fraction: float = 1.0
    sampler: str = "tpe"
    pruner: str = "median"
    min_resource: int = 1
    constraints: dict[str, float | None] = field(default_factory=dict)
    heartbeat: float = 10.0
    deterministic: bool = True
    timeout: float | None = None
    version: int = JOB_VERSION

    def specs(self) -> dict[str, ParamSpec]:
        """The search space as validated :class:`ParamSpec` objects."""
        return space_from_json(self.space)

    def signature(self) -> dict[str, Any]:
        """What must match for two jobs to share a study: the trials would not be comparable otherwise."""
        keys = ("plan", "space", "fixed", "epochs", "train_fraction", "split_hashes", "constraints")
        raw = self.to_dict()
        return {key: raw[key] for key in keys}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``from_dict`` inverts it); the plan as ``plan.json['training']`` holds it."""
        return _plain({**asdict(self), "plan": self.plan.to_json()})

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TuneJob:
        """Rebuild a job; refuse one written by an incompatible version.

        Raises:
            TuningError: not a job, or a job of another version.
            PlanError: the job's plan is not a valid training plan.
        """
        if raw.get("version") != JOB_VERSION or "study" not in raw:
            raise TuningError(f"not an mlestar tuning job (version {raw.get('version')!r}, expected "
                              f"{JOB_VERSION})", hint="re-create the study with this mlestar version")
        known = {f for f in cls.__dataclass_fields__}
        values = {key: value for key, value in raw.items() if key in known}
        plan = TrainingPlan.from_json(raw.get("plan"), source=f"the plan of tuning job {raw['study']!r}",
                                      hint="re-create the study with this mlestar version")
        return cls(**{**values, "plan": plan})

    def with_data(self, data: DataConfig) -> TuneJob:
        """The same job reading its images through another data config (paths on this machine)."""
        return replace(self, data=data.model_dump(mode="json"))


def _plain(obj: Any) -> Any:
    """JSON round trip: tuples become lists, so stored and fresh signatures compare equal."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def build_job(config: MlestarConfig, plan: TrainingPlan, record: dict[str, Any], *, study: str,
              storage: str, target_trials: int, min_resource: int = 1) -> TuneJob:
    """The main search's job for a run: plan from stage 3, data record from stage 1, settings from the config."""
    r = config.refinement
    return TuneJob(study=study, storage=storage, plan=plan, space=space_to_json(r.search_space),
                   target_trials=target_trials, seed=config.seed, data=config.data.model_dump(mode="json"),
                   preprocessing=record["preprocessing"],
                   split_hashes={name: record["splits"][name]["hash"] for name in ("train", "val")},
                   epochs=r.epochs_per_trial, train_fraction=r.train_fraction, sampler=r.sampler,
                   pruner=r.pruner, min_resource=min_resource, constraints=constraint_limits(config.constraints),
                   heartbeat=r.heartbeat_interval, deterministic=config.deterministic, timeout=r.timeout)


def constraint_limits(constraints: ConstraintsConfig) -> dict[str, float | None]:
    """The limits a trial's architecture must meet."""
    return {"max_model_size": constraints.max_model_size,
            "max_inference_latency": constraints.max_inference_latency}


def write_job(job: TuneJob, folder: Path) -> Path:
    """Write ``tune_job.json`` into ``folder``; returns its path."""
    return atomic_write_json(Path(folder) / JOB_FILE, job.to_dict())


def read_job(path: Path) -> TuneJob:
    """Load a job file.

    Raises:
        TuningError: the file is missing or not a job.
    """
    if not Path(path).is_file():
        raise TuningError(f"job file {path} does not exist", hint=f"the stage writes {JOB_FILE} next to the study")
    try:
        raw = read_json(path)
    except (OSError, ValueError) as exc:
        raise TuningError(f"{path} is not a readable job file: {exc}") from None
    return TuneJob.from_dict(raw if isinstance(raw, dict) else {})


@dataclass
class TrialData:
    """A job's training and validation tensors on its device, loaded once per process.

    Attributes:
        train, val: ``(images NCHW float, labels)`` of the whole splits.
        trial_train: the seeded subset trials train on (``train`` when the fraction is 1).
        class_counts: training images per class (balanced class weights).
        input_shape: ``(C, H, W)`` of one image.
    """

    train: tuple[Any, Any]
    val: tuple[Any, Any]
    trial_train: tuple[Any, Any]
    class_counts: list[int]
    input_shape: tuple[int, int, int]


def trial_data(job: TuneJob, dataset: Any | None = None) -> TrialData:
    """Tensors for ``job``; loads and verifies the dataset when ``dataset`` is None.

    Raises:
        TuningError: the data here differs from the data the job was made for.
    """
    import torch

    from mlestar.data.dataset import Preprocessing
    from mlestar.training import split_to_tensors

    dataset = dataset if dataset is not None else load_job_dataset(job)
    prep = Preprocessing.from_dict(job.preprocessing)
    device = torch.device(job.plan.device)
    train = split_to_tensors(dataset.train, prep, device)
    subset = _subset(len(dataset.train), job.train_fraction, job.seed)
    counts = np.bincount(dataset.train.labels, minlength=job.plan.num_classes).tolist()
    return TrialData(train=train, val=split_to_tensors(dataset.val, prep, device),
                     trial_train=train if subset is None else (train[0][subset], train[1][subset]),
                     class_counts=counts, input_shape=tuple(train[0].shape[1:]))


def _subset(size: int, fraction: float, seed: int) -> Any:
    """Seeded indices of ``fraction`` of ``size`` rows (sorted, so batches keep the split's order), or None."""
    if fraction >= 1.0:
        return None
    import torch

    keep = max(1, round(size * fraction))
    order = np.random.default_rng(seed).permutation(size)[:keep]
    return torch.from_numpy(np.sort(order))


def load_job_dataset(job: TuneJob) -> Any:
    """The job's dataset without its test split, checked against the job's split hashes.

    Raises:
        TuningError: a split differs (other data, another seed, another cap per class).
    """
    from mlestar.data.dataset import differing_splits
    from mlestar.data.sources import load_dataset

    dataset = load_dataset(DataConfig.model_validate(job.data), job.seed).without_test()
    for name in differing_splits(dataset, job.split_hashes):
        raise TuningError(f"the {name} split loaded here differs from the one study {job.study!r} was made for",
                          hint="point data.path at the same images (and keep seed, val_fraction and "
                               "max_per_class as in the run)")
    return dataset
