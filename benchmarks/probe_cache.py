"""Stage 3's planning time cold (every probe measured) vs warm (a re-plan after a loop-back: every probe a hit).

Usage:  .venv/bin/python benchmarks/probe_cache.py [--image-size 32] [--train-size 45000] [--budget 830s]
                                                   [--threads N] [--device auto]

Plans the CIFAR-10 shape (32px RGB, 10 classes, 45,000 training images) with
stage 3's own functions (``base_plan``, ``apply_adjustments``,
``fit_constraints``) twice in one process against an empty probe cache in a
temporary ``$MLESTAR_CACHE_DIR``: cold, then warm with an ``increase_epochs``
remedy applied, as the workflow re-plans after a failed gate. It needs no
data: stage 3 reads only stage 1's record and stage 2's spec, built here. The
modules stage 3 imports are imported before the clock starts, so the cold time
is the probes' and not Python's. Prints both times, their ratio, each probe's
source, and whether the two plans chose the same model.

How many widths are probed depends on the budget (the planner stops at the
first width that misses 6 epochs). A small setting that finishes in seconds:
``--image-size 16 --train-size 5000 --budget 20s``.
Target (issue 14): the warm re-plan under 2 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Any


def planning_inputs(image_size: int, train_size: int, device: str, precision: str
                    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Stage 1's record and recommendations and stage 2's spec for ``image_size`` px RGB, 10 classes."""
    record = {"image_shape": [image_size, image_size, 3], "class_names": [str(i) for i in range(10)],
              "splits": {"train": {"size": train_size}}}
    recs = {"augmentation": {"choice": "flip_translate", "translate_pad": 2, "flip_safe": True,
                             "reason": "benchmark"},
            "class_weighting": {"choice": "none", "reason": "balanced classes"}}
    # reference_flops and the epoch time serve only plans without a probe; every auto plan here has one
    spec = {"probe": {"device": device, "precision": precision, "reference_flops": 1e6},
            "estimated_epoch_time_s": 1.0}
    return record, recs, spec


def plan_once(config: Any, inputs: tuple[dict[str, Any], ...], adjustments: list[dict[str, str]]
              ) -> tuple[float, Any, dict[str, Any]]:
    """(seconds, fitted plan, probes) of stage 3's planning, file writes aside."""
    from mlestar.stages.s3_action_planning import apply_adjustments, base_plan, fit_constraints

    record, recs, spec = inputs
    start = time.perf_counter()
    plan, probes = base_plan(config, record, recs, spec)
    plan, _ = apply_adjustments(plan, adjustments)
    plan, _, _, _ = fit_constraints(plan, config, record, spec, probes)
    return time.perf_counter() - start, plan, probes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--train-size", type=int, default=45_000)
    parser.add_argument("--budget", default="830s", help="constraints.max_training_time (a duration with a unit)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads [default: all cores]")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    os.environ["MLESTAR_CACHE_DIR"] = tempfile.mkdtemp(prefix="mlestar-probe-bench-")
    os.environ.pop("MLESTAR_NO_PROBE_CACHE", None)

    import torch

    import mlestar.evaluation.efficiency  # noqa: F401  (imported by stage 3; not the probes' cost)
    import mlestar.training.loop  # noqa: F401
    from mlestar.config import build_config
    from mlestar.training.precision import choose_device, choose_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    precision, _ = choose_precision("auto", device)
    config = build_config({"constraints": {"max_training_time": args.budget}})
    inputs = planning_inputs(args.image_size, args.train_size, device.type, precision)
    remedy = [{"gate": "val_accuracy", "remedy": "increase_epochs", "diagnosis": "undertrained"}]
    cold_s, cold_plan, cold_probes = plan_once(config, inputs, [])
    warm_s, warm_plan, warm_probes = plan_once(config, inputs, remedy)
    print(f"device {device.type} ({precision}), {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{args.image_size}px x {args.train_size} images, budget {args.budget}")
    for name in cold_probes:
        print(f"  {name:12s} {cold_probes[name]['images_per_second']:8.0f} img/s  cold: "
              f"{cold_probes[name]['cache']['status']:8s} warm: {warm_probes[name]['cache']['status']}")
    print(f"cold plan (probes measured): {cold_s:8.2f} s -> {cold_plan.training.model}, "
          f"{cold_plan.training.epochs} epochs")
    print(f"warm re-plan (cache hits):   {warm_s:8.2f} s -> {warm_plan.training.model}, "
          f"{warm_plan.training.epochs} epochs (after increase_epochs and the budget)")
    print(f"ratio cold / warm: {cold_s / max(warm_s, 1e-9):.1f}x; saved {cold_s - warm_s:.2f} s; "
          f"warm under 2 s: {'yes' if warm_s < 2 else 'NO'}; same model: "
          f"{'yes' if cold_plan.training.model == warm_plan.training.model else 'NO'}")
    return 0 if warm_s < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
