"""When the time budget binds mid-run: stopping at a high learning rate against re-timing the schedule.

Usage:  .venv/bin/python benchmarks/retime.py [--model airbench_s] [--planned 12] [--held 6] [--limit-train 10000]

The airbench recipe is planned for ``--planned`` epochs, and the host turns out
to hold only ``--held`` of them in the budget (decided after epoch 2, as fit
decides from the second epoch on). Three runs of the same seed and data:

- **stopped**: the rule before re-timing: the planned schedule, cut off after ``--held`` epochs;
- **re-timed**: what fit does now (``training/horizon.py``): after epoch 2 the rest of the
  planned schedule is traversed to end with epoch ``--held``;
- **planned for held**: the plan it would have made knowing the pace (``--held`` epochs from the start).

Prints test accuracy (plain and flip+translate TTA) for each, and the gap each leaves to the third.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anchors import machine  # noqa: E402  (sibling benchmark scripts)
from cifar10 import ARCHIVE, accuracies, plan_for, training_tensors  # noqa: E402

from mlestar.config.schema import DataConfig  # noqa: E402
from mlestar.data.sources import load_dataset  # noqa: E402
from mlestar.training.loop import Trainer, prepare_model, split_to_tensors  # noqa: E402
from mlestar.training.plan import build_model, spec_from_plan  # noqa: E402
from mlestar.training.precision import choose_precision  # noqa: E402


def run(kind: str, args: argparse.Namespace, train, precision: str) -> torch.nn.Module:
    """Train one variant and return its final weights (``kind``: stopped, retimed, planned)."""
    epochs = args.held if kind == "planned" else args.planned
    plan = plan_for(args.model, epochs, None, precision, args.seed)
    spec = spec_from_plan(plan)
    torch.manual_seed(spec.seed)
    model = prepare_model(build_model(plan), train[0], spec)
    trainer = Trainer(model, train, spec)
    for epoch in range(1, args.held + 1):
        trainer.train_epoch(epoch)
        if kind == "retimed" and epoch == 2:
            trainer.horizon.retime(trainer.step_count, args.held * trainer.steps_per_epoch)
    trainer.thaw()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="airbench_s")
    parser.add_argument("--planned", type=int, default=12)
    parser.add_argument("--held", type=int, default=6)
    parser.add_argument("--limit-train", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    args = parser.parse_args()
    cpu = torch.device("cpu")
    precision, _ = choose_precision("auto", cpu)
    dataset = load_dataset(DataConfig(source="imagefolder", path=args.archive), seed=0)
    prep = dataset.preprocessing()
    train, _ = training_tensors(dataset, prep, "train", cpu, args.limit_train)
    test = split_to_tensors(dataset.test, prep, cpu)
    print(f"{machine(cpu)}; {args.model}, {precision}, {len(train[0])} training images, planned {args.planned} "
          f"epochs, the budget holds {args.held}; seed {args.seed}", flush=True)
    results = {kind: accuracies(run(kind, args, train, precision), *test) for kind in ("stopped", "retimed", "planned")}
    best = results["planned"][1]
    for kind, (plain, tta) in results.items():
        print(f"  {kind:9s} test {plain:.4f} plain, {tta:.4f} TTA ({(tta - best) * 100:+.2f} points TTA "
              f"against planned for {args.held})")


if __name__ == "__main__":
    main()
