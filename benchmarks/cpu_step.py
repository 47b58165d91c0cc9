"""Training-step speed on this machine: fp32 against bf16 autocast, stem bias training or spent.

Usage:  .venv/bin/python benchmarks/cpu_step.py [--models airbench_s airbench] [--batch 256] [--repeats 2]

For each model, times forward + backward + SGD steps on random data with
``mlestar.training.probe.train_throughput`` (channels-last, the median of the
later steps) in four settings, in one process, each ``--repeats`` times in
turn (so a drift of the machine spreads over all of them):

- fp32 and bf16 autocast: what ``precision: auto`` decides between
  (``training/precision.py``);
- the stem's whitening bias taking gradients (the first ``whiten_bias_epochs``
  epochs) or spent (after them, when the fit loop stops its gradient).

Prints images/s (best of the repeats) and each setting's ratio against fp32
with the bias training, the baseline measured in the same run, and the CPU's
bf16 flags.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anchors import machine  # noqa: E402  (sibling benchmark script)

from mlestar.models import create_model  # noqa: E402
from mlestar.training.precision import choose_precision  # noqa: E402
from mlestar.training.probe import train_throughput  # noqa: E402

SETTINGS = list(itertools.product(("fp32", "bf16"), (False, True)))  # (precision, stem bias spent)


def speed(name: str, precision: str, spent: bool, batch: int) -> float:
    """Images/s of ``name``'s training step; ``spent``: the stem's bias takes no gradient."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=3, image_size=32)
    model.whiten.bias.requires_grad_(not spent)
    cpu = torch.device("cpu")
    return train_throughput(model, (3, 32, 32), 10, batch_size=batch, device=cpu, precision=precision,
                            channels_last=True, max_seconds=6.0)["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["airbench_s", "airbench"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    auto, why = choose_precision("auto", torch.device("cpu"))
    print(f"{machine(torch.device('cpu'))}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"precision auto -> {auto} ({why})")
    for name in args.models:
        best = {s: 0.0 for s in SETTINGS}
        for _ in range(args.repeats):
            for precision, spent in SETTINGS:
                best[(precision, spent)] = max(best[(precision, spent)], speed(name, precision, spent, args.batch))
        base = best[("fp32", False)]
        for (precision, spent), value in best.items():
            stem = "stem bias spent" if spent else "stem bias trains"
            print(f"  {name:11s} {precision}  {stem:16s} {value:7.0f} img/s  {value / base:.2f}x")


if __name__ == "__main__":
    main()
