"""Data-parallel training through torchrun (DDP): gloo on CPUs, NCCL on GPUs.

Stage 4 calls :func:`launch`, which writes a job file and starts
``python -m torch.distributed.run --standalone --nproc_per_node N -m
mlestar.training.distributed JOB``. Every rank loads the same data (from the
decoded-image cache), checks it against stage 1's split hashes, and runs
:func:`mlestar.training.loop.fit` on its share of each batch; rank 0 writes
checkpoints, TensorBoard logs and the result file the stage reads back. The
runner stays one process, so lineage, gates and the audit trail are unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from mlestar.errors import TrainingError
from mlestar.training.checkpoint import load_torch, save_torch
from mlestar.utils.io import atomic_write_json, read_json

JOB_FILE = "distributed_job.json"
RESULT_FILE = "distributed_result.pt"


def launch(job: dict[str, Any], out_dir: Path, processes: int, report: Callable[[str], None]) -> dict[str, Any]:
    """Run the job on ``processes`` ranks and return rank 0's result.

    ``job`` holds ``plan`` (``TrainingPlan.to_json()``), ``data`` (the DataConfig as JSON), ``seed``,
    ``preprocessing``, ``split_hashes``, ``max_seconds`` and ``resume``.

    Raises:
        TrainingError: a rank failed; its output was already reported.
    """
    job_path = atomic_write_json(out_dir / JOB_FILE, {**job, "out_dir": str(out_dir)})
    (out_dir / RESULT_FILE).unlink(missing_ok=True)
    threads = max(1, (os.cpu_count() or 1) // processes)  # ranks share the cores instead of fighting over them
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "mlestar.training.distributed", str(job_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        if not line.startswith(("W1", "I1", "[W", "WARNING")):  # torchrun's own chatter
            report(line.rstrip())
    if proc.wait() != 0 or not (out_dir / RESULT_FILE).exists():
        raise TrainingError(f"distributed training with {processes} processes failed (exit {proc.returncode}):\n"
                            + "\n".join(tail), hint="run with training.processes: 1 to see the error directly")
    return load_torch(out_dir / RESULT_FILE)


def train_ddp(plan: Any, *, data: dict[str, Any], seed: int, preprocessing: dict[str, Any],
              split_hashes: dict[str, str], max_seconds: float | None, resume: bool, out_dir: Path,
              report: Callable[[str], None]) -> Any:
    """Train ``plan`` (a :class:`~mlestar.training.plan.TrainingPlan`) on ``plan.processes`` ranks.

    The one way in for stage 4 and the refinement's retraining: builds the job,
    runs it through :func:`launch`, and rebuilds rank 0's model. Returns a
    :class:`~mlestar.training.loop.FitResult` (``world``: the ranks it ran on).
    """
    from mlestar.training.loop import FitResult
    from mlestar.training.plan import build_model

    job = {"plan": plan.to_json(), "data": data, "seed": seed, "preprocessing": preprocessing,
           "split_hashes": split_hashes, "max_seconds": max_seconds, "resume": resume}
    out = launch(job, out_dir, plan.processes, report)
    model = build_model(plan)
    model.load_state_dict(out["state_dict"])
    return FitResult(model, out["history"], out["best_epoch"], out["training_time"], out["resumed_from"],
                     out["stopped_early"], world=int(out["world"]))


def _least(n: int) -> int:
    """The smallest ``n`` of all ranks: the earliest last epoch any of them foresees (their clocks differ slightly)."""
    import torch.distributed as dist

    value = torch.tensor([n])
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return int(value.item())


def _wrap(device: torch.device) -> Callable[[torch.nn.Module], torch.nn.Module]:
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return lambda model: DistributedDataParallel(model, device_ids=ids)


def _load_data(job: dict[str, Any]) -> tuple[Any, Any]:
    """The job's dataset, verified against stage 1's split hashes."""
    from mlestar.config.schema import DataConfig
    from mlestar.data.dataset import Preprocessing
    from mlestar.data.sources import load_dataset
    from mlestar.data.dataset import differing_splits

    dataset = load_dataset(DataConfig.model_validate(job["data"]), job["seed"])
    for name in differing_splits(dataset, job["split_hashes"]):
        raise TrainingError(f"rank sees a different {name} split than stage 1 recorded",
                            hint="every rank must read the same data: check data.path on this machine")
    return dataset, Preprocessing.from_dict(job["preprocessing"])


def worker(job_path: Path) -> None:
    """One rank: train on its shard; rank 0 saves the result."""
    import torch.distributed as dist

    from mlestar.training.loop import Shard, fit, split_to_tensors
    from mlestar.training.plan import TrainingPlan, build_model, spec_from_plan

    use_cuda = torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if use_cuda else torch.device("cpu")
    job = read_json(job_path)
    dataset, prep = _load_data(job)
    plan = TrainingPlan.from_json(job["plan"], source=f"the plan in {job_path}")
    shard = Shard(rank=rank, world=world, wrap=_wrap(device), least=_least)
    result = fit(build_model(plan).to(device), split_to_tensors(dataset.train, prep, device),
                 split_to_tensors(dataset.val, prep, device), spec_from_plan(plan, max_seconds=job["max_seconds"]),
                 out_dir=Path(job["out_dir"]), resume=job["resume"], shard=shard,
                 report=(lambda line: print(line, flush=True)) if rank == 0 else (lambda line: None))
    if rank == 0:
        save_torch({"state_dict": {k: v.cpu() for k, v in result.model.state_dict().items()},
                    "history": result.history, "best_epoch": result.best_epoch,
                    "training_time": result.training_time, "resumed_from": result.resumed_from,
                    "stopped_early": result.stopped_early, "world": world}, Path(job["out_dir"]) / RESULT_FILE)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
