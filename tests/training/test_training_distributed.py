"""Data-parallel training through torchrun with 2 CPU processes (gloo), inside the workflow."""

import json
from pathlib import Path

from tiny_workflow import run_tiny
from mlestar.tracking.audit import read_records


def test_two_process_ddp_training_in_stage_4(tmp_path: Path) -> None:
    # A time budget makes every epoch end with the ranks' all-reduce of their foreseen last epoch.
    state = run_tiny(tmp_path / "runs", training={"processes": 2, "epochs": 3, "num_threads": 1},
                     constraints={"max_training_time": "1h"},
                     refinement={"enabled": False}, deployment={"formats": ["torchscript"]})
    assert state.status == "passed"
    run_dir = tmp_path / "runs" / state.run_id
    out = run_dir / "04_implementation"
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert state.data["metrics"]["val_accuracy"] > 0.5  # 10 classes: chance is 0.1
    job = json.loads((out / "distributed_job.json").read_text())
    assert job["plan"]["processes"] == 2
    decisions = [r["data"] for r in read_records(run_dir / "audit.jsonl") if r["event"] == "decision"]
    assert {"what": "distributed", "choice": 2}.items() <= next(d for d in decisions if d["what"] == "distributed").items()
    assert not [d for d in decisions if d["what"] == "stop_early"]  # an hour is ample: the plan's 3 epochs ran
    assert (out / "checkpoints" / "last.pt").exists()


def test_micro_batches_all_reduce_once_per_step_under_ddp(tmp_path: Path) -> None:
    """With gradient accumulation, DDP syncs on the step's last part only, and the weights match one process."""
    from dataclasses import replace

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from mlestar.training import TrainSpec
    from mlestar.training.loop import Shard, Trainer

    torch.manual_seed(0)
    x, y = torch.randn(96, 1, 4, 4), torch.randint(0, 3, (96,))
    spec = TrainSpec(epochs=1, batch_size=48, learning_rate=0.1, momentum=0.9, seed=3, micro_batch_size=16)
    syncs: list[int] = []

    def counting_hook(state: object, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        syncs.append(bucket.index())
        return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda f: f.value()[0])

    def wrap(module: torch.nn.Module) -> torch.nn.Module:
        ddp = DistributedDataParallel(module)
        ddp.register_comm_hook(None, counting_hook)
        return ddp

    def net() -> torch.nn.Module:
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        shared = net()
        Trainer(shared, (x, y), spec, Shard(rank=0, world=1, wrap=wrap)).train_epoch(1)
    finally:
        dist.destroy_process_group()
    alone = net()
    Trainer(alone, (x, y), replace(spec)).train_epoch(1)
    assert len(syncs) == 2  # 2 steps of 3 parts each, one bucket: one all-reduce per step, not per part
    torch.testing.assert_close(shared[1].weight, alone[1].weight)
