"""Training runs the search needs: trials, ablations and the seeded before/after retraining.

Trials and ablations train in this process, without checkpoints or
TensorBoard, on the job's trial subset. The before/after retraining trains on
the whole training split with the configuration's own epochs, like stage 4,
and goes through torchrun when the plan asks for several processes.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mlestar.training.plan import TrainingPlan
from mlestar.tuning.job import TrialData, TuneJob


def train_plan(plan: TrainingPlan, data: TrialData, *, epochs: int | None = None, full: bool = False,
               max_seconds: float | None = None,
               on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> Any:
    """Fit ``plan`` in this process; returns :class:`~mlestar.training.FitResult` (best-val weights).

    ``full`` trains on the whole training split, else on the trial subset;
    ``epochs`` overrides the plan's. ``on_epoch`` may raise to stop (pruning).
    """
    import torch

    from mlestar.training import fit
    from mlestar.training.plan import build_model, spec_from_plan

    plan = plan.replace(epochs=epochs) if epochs else plan
    return fit(build_model(plan).to(torch.device(plan.device)), data.train if full else data.trial_train, data.val,
               spec_from_plan(plan, max_seconds=max_seconds), on_epoch=on_epoch, tensorboard=False)


@dataclass
class Retrained:
    """One before/after training run: best-epoch val accuracy, the model (CPU) and its wall time."""

    val_accuracy: float
    model: Any
    seconds: float


def retrain(plan: TrainingPlan, data: TrialData, job: TuneJob, *, work_dir: Path, max_seconds: float | None,
            report: Callable[[str], None]) -> Retrained:
    """Train ``plan`` on the whole training split, through torchrun when ``plan.processes > 1``."""
    started = time.perf_counter()
    if plan.processes > 1:
        val, model = _distributed(plan, job, work_dir, max_seconds, report)
    else:
        result = train_plan(plan, data, full=True, max_seconds=max_seconds)
        val, model = result.history[result.best_epoch - 1]["val_accuracy"], result.model.cpu()
    return Retrained(float(val), model, time.perf_counter() - started)


def _distributed(plan: TrainingPlan, job: TuneJob, work_dir: Path, max_seconds: float | None,
                 report: Callable[[str], None]) -> tuple[float, Any]:
    """DDP over ``plan.processes`` ranks (stage 4's launcher); the work folder is removed afterwards."""
    from mlestar.training.distributed import train_ddp

    work_dir.mkdir(parents=True, exist_ok=True)
    try:
        result = train_ddp(plan, data=job.data, seed=job.seed, preprocessing=job.preprocessing,
                           split_hashes=job.split_hashes, max_seconds=max_seconds, resume=False, out_dir=work_dir,
                           report=report)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)  # checkpoints and logs of a retrain are not results
    return result.history[result.best_epoch - 1]["val_accuracy"], result.model
