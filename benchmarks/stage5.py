"""Time each part of stage 5 (results evaluation) on a CIFAR-10-sized job, against one training epoch.

Usage (from the repository root):
  .venv/bin/python benchmarks/stage5.py                 # CIFAR-10 JPEG test split (10,000), airbench_s
  .venv/bin/python benchmarks/stage5.py --limit 500     # quick check: 500 test, validation and training images
  .venv/bin/python benchmarks/stage5.py --synthetic     # random 32x32x3 uint8 images of the same counts
  .venv/bin/python benchmarks/stage5.py --whole 2       # also the real stage, twice: `mlestar run --only evaluation`
  .venv/bin/python benchmarks/stage5.py --runtimes auto auto:bf16   # TTA's extra views fp32, then bf16

Each part is timed for every ``--runtimes`` value of ``evaluation.runtime`` (default ``torch``,
then ``auto``: ONNX Runtime when the export matches PyTorch), and the sums are printed as a
ratio against the first, all in this process.

Parts (in this process, a freshly initialised ``airbench_s``: speed does not depend on the
weights): the split check (stage 1's hashes), calibration (where the checkout has it: a
validation pass and the temperature fit), the test pass with every TTA view and the metrics
(of which: the plain pass, the extra flip + 1px translate views, the airbench recipe's),
efficiency (as the stage calls it), each plot, brightness subsets and the top mistakes.
Indented lines are included in the line above them. Their sum is stage 5's work;
the baseline is one training epoch of the same model (the fit loop, batch 256, the airbench
recipe) on the training split, measured in the same process. Printed: seconds per part,
the sum, the ratio to one epoch, and the ratio to ``--epochs`` epochs (6 by default: the
15-minute preset's airbench_s run in docs/benchmarks.md).

``--whole N`` also runs the real stage N times through the CLI (stages 1-4 made once
first with 50 training images per class and 1 epoch, so the test split is the full
10,000): each line is the stage's own duration from ``run.json``, loading, split check and
report files included.

Before/after: the script uses only public functions that existed at commit b85fd65
(``mlestar.stages.s5_evaluation.write_visuals`` / ``brightness_subsets`` / ``top_mistakes``,
``mlestar.evaluation.holdout.evaluate_on_test``); efficiency is measured as the stage
measures it in the checkout being timed (``s5_evaluation.measure_efficiency`` where it
exists, else the call stage 5 made at b85fd65), and calibration only where
``s5_evaluation.fit_calibration`` exists. To time an older checkout, run this file with that checkout's sources
first on the path, e.g.:
  git worktree add /tmp/before b85fd65
  PYTHONPATH=/tmp/before/src .venv/bin/python benchmarks/stage5.py --whole 2   # before
  PYTHONPATH=$PWD/src        .venv/bin/python benchmarks/stage5.py --whole 2   # after
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlestar.training.precision import choose_precision

ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
MODEL = "airbench_s"
TTA = "flip_translate"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class Timer:
    """Seconds per named part, in the order first timed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._wrapped: list[tuple[Any, str, Any]] = []

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def wrap(self, module: Any, attribute: str, name: str) -> None:
        """Time every call of ``module.attribute`` as part ``name`` (for functions imported at call time)."""
        original = getattr(module, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.part(name):
                return original(*args, **kwargs)

        self._wrapped.append((module, attribute, original))
        setattr(module, attribute, timed)

    def unwrap(self) -> None:
        """Put back every function :meth:`wrap` replaced (so a second timer times them alone)."""
        for module, attribute, original in reversed(self._wrapped):
            setattr(module, attribute, original)
        self._wrapped.clear()


def load_data(args: argparse.Namespace) -> Any:
    """The dataset: the CIFAR-10 JPEG archive, or synthetic images of the same shape and counts."""
    from mlestar.config.schema import DataConfig
    from mlestar.data.dataset import ImageDataset, ImageSplit
    from mlestar.data.sources import load_dataset

    if not args.synthetic:
        dataset = load_dataset(DataConfig(source="imagefolder", path=args.archive), seed=0)
    else:
        rng = np.random.default_rng(0)

        def split(n: int) -> ImageSplit:
            return ImageSplit(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                              rng.integers(0, 10, n).astype(np.int64))

        dataset = ImageDataset("synthetic", split(45_000), split(5_000), split(10_000), CLASS_NAMES, "synthetic")
    if args.limit:
        import dataclasses

        def first(split: Any, seed: int) -> Any:  # a seeded random N of the split, in index order
            return split.subset(np.sort(np.random.default_rng(seed).permutation(len(split))[:args.limit]))

        dataset = dataclasses.replace(dataset, train=first(dataset.train, 1), val=first(dataset.val, 2),
                                      test=first(dataset.test, 0))
    return dataset


def fresh_model() -> torch.nn.Module:
    from mlestar.models import create_model

    torch.manual_seed(0)
    return create_model(MODEL, num_classes=10, in_channels=3, image_size=32)


def stage_efficiency(model: torch.nn.Module, shape: tuple[int, int, int]) -> dict[str, Any]:
    """Efficiency exactly as the checkout's stage 5 measures it."""
    from mlestar.stages import s5_evaluation

    if hasattr(s5_evaluation, "measure_efficiency"):
        return s5_evaluation.measure_efficiency(model, shape)
    from mlestar.evaluation.efficiency import efficiency_report  # the call stage 5 made at b85fd65

    return efficiency_report(model, shape, latency_seconds=2.0, throughput_seconds=1.0)


def calibrate(model: torch.nn.Module, dataset: Any, prep: Any, runtime: str) -> tuple[dict[str, Any], Any, bool]:
    """``(calibration record, what computes the test logits, channels_last)`` as the checkout's stage 5 does it.

    Before ``evaluation.runtime`` existed, ``fit_calibration`` returned the record alone and stage 5
    ran PyTorch channels-last; ``runtime`` is then ignored.
    """
    import inspect

    from mlestar.stages import s5_evaluation as s5

    if "runtime" not in inspect.signature(s5.fit_calibration).parameters:
        return s5.fit_calibration(model, dataset, prep, True), model, True
    record, forward = s5.fit_calibration(model, dataset, prep, True, runtime)
    return record, forward.module, forward.channels_last


def split_setting(setting: str) -> tuple[str, str]:
    """``RUNTIME[:TTA_PRECISION]`` -> ``(evaluation.runtime, evaluation.tta_precision)``; fp32 when not given."""
    runtime, _, precision = setting.partition(":")
    return runtime, precision or "fp32"


def view_forward(model: torch.nn.Module, tta_precision: str) -> dict[str, Any]:
    """``{"views": ...}`` for ``evaluate_on_test`` as the checkout's stage 5 builds it (nothing before it could).

    The model is taken as trained in ``precision: auto`` on this machine (what a preset run trains).
    """
    from mlestar.stages import s5_evaluation as s5

    if not hasattr(s5, "tta_views"):
        return {}
    trained, _ = choose_precision("auto", torch.device("cpu"))
    return {"views": s5.tta_views(tta_precision, trained, model, True)[0]}


def time_parts(dataset: Any, timer: Timer, setting: str) -> dict[str, Any]:
    """Run stage 5's work part by part, as the checkout's stage calls it; returns the efficiency record.

    ``setting``: ``evaluation.runtime`` (``torch``, ``auto``) where the checkout has it, with
    ``:bf16`` or ``:auto`` for ``evaluation.tta_precision`` (default fp32).
    """
    runtime, tta_precision = split_setting(setting)
    from mlestar.data.dataset import differing_splits, split_hash
    from mlestar.evaluation import plots
    from mlestar.evaluation.holdout import evaluate_on_test
    from mlestar.stages import s5_evaluation as s5
    from mlestar.training import loop, tta

    hashes = {name: split_hash(getattr(dataset, name)) for name in ("train", "val", "test")}
    prep = dataset.preprocessing()
    model = fresh_model()
    with timer.part("split check (stage 1 hashes)"):
        assert not differing_splits(dataset, hashes)
    calibration, scorer, channels_last = {}, model, True
    if hasattr(s5, "fit_calibration"):  # temperature scaling (after b85fd65): one validation pass
        with timer.part(f"calibration ({len(dataset.val)} validation images)"):
            calibration, scorer, channels_last = calibrate(model, dataset, prep, runtime)
    timer.wrap(loop, "evaluate_logits", "  plain pass")  # evaluate_on_test imports both at call time
    timer.wrap(tta, "tta_logits", "  extra TTA views (5)")
    with timer.part("test pass, all views, metrics"):
        kwargs = {"temperature": calibration["temperature"]} if calibration else {}
        kwargs.update(view_forward(model, tta_precision))
        metrics, probs, _ = evaluate_on_test(scorer, dataset, prep, tta=TTA, channels_last=channels_last,
                                             **kwargs)
    with timer.part("efficiency"):
        eff = stage_efficiency(model, (3, 32, 32))
    for name in ("plot_confusion_matrix", "plot_reliability_diagram", "plot_misclassified"):
        timer.wrap(plots, name, f"  plot: {name.removeprefix('plot_')}")
    with tempfile.TemporaryDirectory() as out, timer.part("plots (all)"):
        s5.write_visuals(Path(out), metrics, probs, dataset, 32)
    with timer.part("brightness subsets"):
        s5.brightness_subsets(dataset, probs, [85.0, 170.0])
    with timer.part("top mistakes"):
        s5.top_mistakes(dataset, probs, 20)
    timer.unwrap()
    return eff


def epoch_seconds(dataset: Any) -> float:
    """One training epoch of the same model (the fit loop only: no loading, no evaluation), in ``precision: auto``."""
    from mlestar.training.loop import fit, split_to_tensors
    from mlestar.training.plan import TrainingPlan, spec_from_plan
    from mlestar.training.recipes import airbench_settings

    prep = dataset.preprocessing()
    train = split_to_tensors(dataset.train, prep, torch.device("cpu"))
    val = split_to_tensors(dataset.val.subset(np.arange(min(256, len(dataset.val)))), prep, torch.device("cpu"))
    plan = TrainingPlan(**{**airbench_settings(256, device="cpu"), "epochs": 1}, model=MODEL, recipe="airbench",
                        width=32, image_size=32, in_channels=3, num_classes=10, flip_safe=True,
                        class_weighting="none", precision=choose_precision("auto", torch.device("cpu"))[0],
                        device="cpu", seed=0)
    return fit(fresh_model(), train, val, spec_from_plan(plan), tensorboard=False).training_time


def whole_stage(args: argparse.Namespace, repeats: int, setting: str) -> list[float]:
    """The real stage 5's duration (run.json), ``repeats`` times, through ``mlestar run --only evaluation``.

    ``setting``: as in :func:`time_parts`; each key is written into the config only where it is not
    ``auto`` (runtime) or ``fp32`` (TTA precision), so the config also loads in a checkout without them.
    """
    runtime, tta_precision = split_setting(setting)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = root / "stage5.yaml"
        config.write_text(f"project: {{name: stage5-bench}}\nseed: 0\n"
                          f"data: {{source: imagefolder, path: {args.archive}, max_per_class: 50}}\n"
                          f"training: {{model: {MODEL}, epochs: 1}}\nevaluation: {{tta: {TTA}"
                          + (f", runtime: {runtime}" if runtime != "auto" else "")
                          + (f", tta_precision: {tta_precision}" if tta_precision != "fp32" else "") + "}\n")
        env = {**os.environ, "MLESTAR_CACHE_DIR": str(root / "cache")}
        for stage in ("situation_analysis", "task_definition", "action_planning", "implementation"):
            cli_only(config, root / "runs", env, stage)
        return [cli_only(config, root / "runs", env, "evaluation") for _ in range(repeats)]


def cli_only(config: Path, runs: Path, env: dict[str, str], stage: str) -> float:
    """``mlestar run CONFIG --only STAGE`` in a fresh process; the stage's duration from run.json."""
    subprocess.run([sys.executable, "-m", "mlestar", "run", str(config), "--only", stage, "--runs-dir", str(runs)],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    newest = max((p for p in runs.iterdir() if (p / "run.json").exists()), key=lambda p: p.stat().st_mtime)
    return float(json.loads((newest / "run.json").read_text())["stages"][stage]["duration"])


def report(timer: Timer, epoch: float, args: argparse.Namespace, n_test: int, n_train: int,
           eff: dict[str, Any], runtime: str) -> float:
    """Print one runtime's parts and ratios; return their sum (seconds)."""
    total = sum(v for k, v in timer.seconds.items() if not k.startswith("  "))
    print(f"stage 5 parts, {runtime} (evaluation.runtime[:tta_precision]; {MODEL}, {n_test} test images, TTA {TTA}, "
          f"torch threads {torch.get_num_threads()}):")
    for name, seconds in timer.seconds.items():
        print(f"  {name:40s} {seconds:8.2f} s")
    print(f"  {'sum':40s} {total:8.2f} s")
    measured = eff.get("measured")
    print(f"efficiency measured on: {json.dumps(measured) if measured else 'time caps (2 s latency, 1 s throughput)'}")
    passes = sum(v for k, v in timer.seconds.items()  # calibration's fit on 5,000 logits is milliseconds
                 if k.startswith(("  plain pass", "  extra TTA views", "calibration")))
    print(f"of which forward passes over test (every view) and validation: {passes:.2f} s; the rest "
          f"{total - passes:.2f} s")
    trained = choose_precision("auto", torch.device("cpu"))[0]
    print(f"one training epoch ({n_train} images, batch 256, {trained}: precision auto here): {epoch:.2f} s")
    print(f"ratio stage 5 / one epoch: {total / epoch:.1%}; / {args.epochs} epochs: {total / (epoch * args.epochs):.1%}"
          f" (forward passes alone: {passes / (epoch * args.epochs):.1%})"
          + ("  (--limit: test and train sizes differ from a real run; run without it for the real ratio)"
             if args.limit else ""))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--synthetic", action="store_true", help="random images instead of the archive")
    parser.add_argument("--limit", type=int, default=None, help="N test, validation and training images (quick check)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of the run to compare with (default 6)")
    parser.add_argument("--whole", type=int, default=0, metavar="N", help="also time the real stage N times")
    parser.add_argument("--runtimes", nargs="+", default=["torch", "auto"], metavar="RUNTIME[:TTA_PRECISION]",
                        help="evaluation.runtime values (torch, auto, onnxruntime) to time, each with an optional "
                             "evaluation.tta_precision (fp32 when not given), e.g. auto:bf16; the first is the "
                             "baseline (default: torch auto)")
    args = parser.parse_args()
    dataset = load_data(args)
    parts = {}
    for runtime in args.runtimes:
        timer = Timer()
        parts[runtime] = (timer, time_parts(dataset, timer, runtime))
    epoch = epoch_seconds(dataset)
    sums = {runtime: report(timer, epoch, args, len(dataset.test), len(dataset.train), eff, runtime)
            for runtime, (timer, eff) in parts.items()}
    base = args.runtimes[0]
    for runtime in args.runtimes[1:]:
        print(f"parts' sum, {runtime} against {base}: {sums[runtime]:.2f} s / {sums[base]:.2f} s = "
              f"{sums[runtime] / sums[base]:.2f}x")
    for runtime in args.runtimes if args.whole else []:
        durations = whole_stage(args, args.whole, runtime)
        print(f"real stage 5, evaluation.runtime {runtime} (mlestar run --only evaluation, 10,000 test images): "
              + ", ".join(f"{d:.2f} s" for d in durations)
              + f"; best / {args.epochs} epochs of the epoch above: {min(durations) / (epoch * args.epochs):.1%}"
              + ("  (epoch measured under --limit: not comparable)" if args.limit else ""))


if __name__ == "__main__":
    main()
