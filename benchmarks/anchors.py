"""Side-by-side anchors: the `airbench` package's train94 against mlestar's recipe, one process, same data.

Usage (install the anchor first: ``.venv/bin/pip install --no-deps airbench==0.1.8``):
  .venv/bin/python benchmarks/anchors.py --seeds 0 1                      # CPU: 2 seeds
  python3 benchmarks/anchors.py --device cuda --seeds 0 1 2 --warmup      # GPU: 3 seeds
  .venv/bin/python benchmarks/anchors.py --limit-train 5000 --limit-test 2000 --seeds 0 --time-shares 0.8
      # a reduced CPU check: 4 airbench steps per epoch, so the accuracies mostly measure step counts

Every row trains on the same tensors: the CIFAR-10 JPEG copy's training and
validation splits joined (50,000 images, as airbench trains), decoded once and
handed to both sides; each model is tested once on the same 10,000 test images,
plain and with airbench's flip + translate TTA (level 2). Rows, per seed:

- ``airbench94``: ``airbench.train94`` (PyPI package, its own hyperparameters,
  9.9 epochs, batch 1024, its own loader and evaluation);
- ``mlestar, same epochs``: mlestar's recipe for ``--model`` at ``round(9.9)`` epochs;
- ``mlestar, equal time`` (and ``0.8x time``): the same recipe at the most whole
  epochs that fit that share of airbench94's training time, at the per-epoch
  speed mlestar showed in the same-epochs row (the planner's rule, with its
  speed measured in this run instead of probed).

Images seen differ a little: airbench's loader drops the last partial batch of
each epoch and stops after ``ceil(batches x 9.9)`` steps, mlestar sees every
image every epoch; each row prints its images per second too, which compares
the engines whatever the step counts (on 5,000 images the difference is 22%,
on 50,000 it is 2%).

Training seconds: airbench94's is the wall time of its ``train`` call with
``verbose=False`` (whitening, the training loop and building its test loader);
mlestar's is ``fit``'s training time (whitening and the loop). Evaluation is
outside both. Ratios are against airbench94 in the same run.

The package assumes CUDA and fp16. On a CPU the fewest shims that let it run
are applied, and every one is printed (see :func:`cpu_shims`); nothing in its
training or evaluation code is changed. Precision, as the issue's shim list
says: the package runs bf16 autocast (fp32 weights) on a CPU with AMX and fp32
on any other CPU (``--anchor-precision`` overrides it); mlestar's rows use
``precision: auto`` (bf16 on a CPU with native bf16 dot products: AMX or
AVX-512 BF16). The autocast shim must not cache its bf16 weight copies: the
package's whole ``train`` call runs inside it, and a cached copy would feed
every step the first step's weights (the package then stays at chance; that was
this script's bug until 2026-12-03). The header line says which precision each
side ran.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar10 import ARCHIVE, accuracies, plan_for  # noqa: E402  (sibling benchmark script)

from mlestar.config.schema import DataConfig  # noqa: E402
from mlestar.data.dataset import ImageSplit  # noqa: E402
from mlestar.data.sources import load_dataset  # noqa: E402
from mlestar.tracking.environment import cpu_info  # noqa: E402
from mlestar.training.loop import fit, split_to_tensors  # noqa: E402
from mlestar.training.plan import build_model, spec_from_plan  # noqa: E402
from mlestar.training.precision import choose_device, choose_precision, cpu_has_amx, cpu_native_bf16  # noqa: E402

AIRBENCH_EPOCHS = 9.9  # airbench94's hyp['opt']['train_epochs']


class _CpuEvent:
    """Stands in for ``torch.cuda.Event(enable_timing=True)``: wall-clock marks, milliseconds between them."""

    def __init__(self, enable_timing: bool = False) -> None:
        self.at = 0.0

    def record(self, stream: Any = None) -> None:
        self.at = time.perf_counter()

    def elapsed_time(self, end: _CpuEvent) -> float:
        return (end.at - self.at) * 1000.0


@contextlib.contextmanager
def cpu_shims(bf16: bool) -> Iterator[list[str]]:
    """Patch just enough of torch and airbench for ``train94`` on a CPU; yields the list of shims applied.

    Undone on exit, so the mlestar rows that follow run on unpatched torch.
    """
    import airbench.utils as utils

    shims: list[str] = []
    saved = {"cuda": torch.nn.Module.cuda, "half": torch.nn.Module.half, "event": torch.cuda.Event,
             "sync": torch.cuda.synchronize, "init": utils.CifarLoader.__init__,
             "whiten": utils.init_whitening_conv}
    original_init = saved["init"]

    def loader_init(self: Any, path: str, *args: Any, gpu: Any = 0, **kwargs: Any) -> None:
        original_init(self, path, *args, gpu="cpu", **kwargs)
        self.images = self.images.float()  # fp16 storage -> fp32, as the fp32 weights need

    torch.nn.Module.cuda = lambda self, device=None: self  # type: ignore[method-assign,assignment]
    shims.append("nn.Module.cuda() is a no-op (the net stays on the CPU)")
    torch.nn.Module.half = lambda self: self  # type: ignore[method-assign,assignment]
    shims.append("nn.Module.half() is a no-op: fp32 weights (CPU fp16 convolutions are emulated)")
    utils.CifarLoader.__init__ = loader_init  # type: ignore[method-assign]
    shims.append("CifarLoader loads onto the CPU (map_location) and keeps images in fp32, not fp16")
    torch.cuda.Event = _CpuEvent  # type: ignore[misc,assignment]
    torch.cuda.synchronize = lambda device=None: None  # type: ignore[assignment]
    shims.append("torch.cuda.Event/synchronize: wall-clock timer, no-op sync")
    try:
        with contextlib.ExitStack() as stack:
            if bf16:
                # cache_enabled=False: one autocast spans every step, and its cache would keep the first step's
                # bf16 weight copies for the whole run (the fp32 weights train, the forward never sees them).
                stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False))
                shims.append("bf16 autocast around training and evaluation, its weight-cast cache off (native bf16 "
                             f"here: {cpu_native_bf16()})")
                utils.init_whitening_conv = _fp32(saved["whiten"])  # type: ignore[attr-defined]
                shims.append("init_whitening_conv runs outside the autocast, in fp32 as on the GPU (a bf16 "
                             "patch covariance has negative eigenvalues: NaN stem weights)")
            yield shims
    finally:
        torch.nn.Module.cuda = saved["cuda"]  # type: ignore[method-assign]
        torch.nn.Module.half = saved["half"]  # type: ignore[method-assign]
        torch.cuda.Event = saved["event"]  # type: ignore[misc]
        torch.cuda.synchronize = saved["sync"]
        utils.CifarLoader.__init__ = saved["init"]  # type: ignore[method-assign]
        utils.init_whitening_conv = saved["whiten"]  # type: ignore[attr-defined]


def _fp32(function: Any) -> Any:
    """``function`` run with autocast off: its matmuls in the dtype of their inputs (fp32 here)."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast("cpu", enabled=False):
            return function(*args, **kwargs)

    return wrapped


def write_airbench_data(folder: Path, train: ImageSplit, test: ImageSplit, classes: list[str]) -> None:
    """``folder/cifar10/{train,test}.pt`` in airbench's layout: uint8 NHWC images, int64 labels, class names."""
    (folder / "cifar10").mkdir(parents=True, exist_ok=True)
    for name, split in (("train", train), ("test", test)):
        torch.save({"images": torch.from_numpy(split.images), "labels": torch.from_numpy(split.labels),
                    "classes": classes}, folder / "cifar10" / f"{name}.pt")


def airbench_row(seed: int, device: torch.device, epochs: float, shims_out: list[str],
                 batch_size: int = 1024, precision: str = "auto") -> dict[str, Any]:
    """One ``train94`` run from ``./cifar10`` (the caller's cwd): seconds, test accuracy plain and TTA.

    ``shims_out`` receives the shims applied (none on CUDA). ``batch_size`` is airbench94's 1024 except in tests.
    ``precision``: see :func:`anchor_precision`.
    """
    import airbench
    from airbench import utils

    on_cpu = device.type == "cpu"
    bf16 = anchor_precision(device, precision) == "bf16"
    torch.manual_seed(seed)
    with cpu_shims(bf16) if on_cpu else contextlib.nullcontext([]) as shims:
        loader = utils.CifarLoader("cifar10", train=True, batch_size=batch_size, aug={"flip": True, "translate": 2},
                                   altflip=True)
        _sync(device)
        start = time.perf_counter()
        model = airbench.train94(loader, epochs=epochs, verbose=False)
        _sync(device)
        seconds = time.perf_counter() - start
        test = utils.CifarLoader("cifar10", train=False, batch_size=2000)
        plain, tta = airbench.evaluate(model, test, tta_level=0), airbench.evaluate(model, test, tta_level=2)
        shims_out[:] = list(shims)
    # its loader drops the last partial batch, and train() stops after ceil(batches x epochs) steps
    images = math.ceil(len(loader) * epochs) * batch_size
    return {"row": "airbench94", "seed": seed, "epochs": epochs, "seconds": seconds, "plain": plain, "tta": tta,
            "images": images}


def anchor_precision(device: torch.device, choice: str = "auto") -> str:
    """airbench94's precision here: its own fp16 on a GPU; on a CPU ``choice``, where ``auto`` is the issue's rule.

    ``auto``: bf16 autocast with fp32 weights on a CPU with AMX, fp32 on any other CPU (``--anchor-precision``).
    """
    if device.type == "cuda":
        return "fp16"
    if choice != "auto":
        return choice
    return "bf16" if cpu_has_amx() else "fp32"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def mlestar_row(label: str, data: Any, test: tuple[torch.Tensor, torch.Tensor], args: argparse.Namespace,
                seed: int, epochs: int, precision: str) -> dict[str, Any]:
    """mlestar's recipe for ``args.model`` trained by ``fit``; the final epoch's weights, as airbench keeps."""
    device = test[0].device
    plan = plan_for(args.model, epochs, args.batch, precision, seed, device.type, args.compile, args.optimizer)
    result = fit(build_model(plan).to(device), data[0], data[1], spec_from_plan(plan), tensorboard=False,
                 keep="last")
    plain, tta = accuracies(result.model, *test)
    return {"row": label, "seed": seed, "epochs": epochs, "seconds": result.training_time, "plain": plain,
            "tta": tta, "batch": plan.batch_size, "images": epochs * len(data[0][0])}  # every image, every epoch


def epochs_for(seconds: float, per_epoch: float) -> int:
    """The most whole epochs that fit ``seconds`` at ``per_epoch`` seconds each (at least 1)."""
    return max(1, int(seconds / per_epoch))


HOST_PROBE_SECONDS = 3.0  # reference workload before and after each row
DRIFT_LIMIT = 1.10        # host pace spread beyond which time ratios are flagged


def host_speed(device: torch.device, precision: str, seconds: float = HOST_PROBE_SECONDS) -> float:
    """Steps/s of a fixed conv forward+backward (256 channels, 8x8, 64 images) at ``precision``: the host's pace.

    A shared CPU's speed drifts (this session's 2-core host ran the same step 2.4x faster at one hour
    than at another): rows timed minutes apart compare fairly only when this stays level across them.
    """
    generator = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device)
    x = torch.randn(64, 256, 8, 8, generator=generator).to(device).requires_grad_(True)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16 if precision == "fp16" else None
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - began < seconds:
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            conv(x).float().square().mean().backward()
        _sync(device)
        times.append(time.perf_counter() - start)
    return 1 / statistics.median(times[2:])


def with_host(row_fn: Any, device: torch.device, precision: str) -> dict[str, Any]:
    """``row_fn()``'s row with the host's pace just before and after it (``host_before``, ``host_after``)."""
    before = host_speed(device, precision)
    row = row_fn()
    return {**row, "host_before": before, "host_after": host_speed(device, precision)}


def host_drift(rows: list[dict[str, Any]]) -> float:
    """Fastest over slowest host pace measured around the rows (1.0: level; rows without a pace: 1.0)."""
    paces = [r[k] for r in rows for k in ("host_before", "host_after") if k in r]
    return max(paces) / min(paces) if paces else 1.0


def seed_rows(seed: int, data: Any, test: Any, args: argparse.Namespace, precision: str,
              shims: list[str]) -> list[dict[str, Any]]:
    """airbench94, mlestar at the same epochs, then mlestar at each time share of airbench94's seconds.

    With ``args.mlestar_epochs``: airbench94, then mlestar at each of those epoch counts instead (a recipe
    whose epochs are known, such as airbench94_muon's 8; the rows report their measured time ratio).
    """
    device = test[0].device
    anchor = with_host(lambda: airbench_row(seed, device, args.epochs, shims, precision=args.anchor_precision),
                       device, precision)
    _print(anchor, anchor)
    rows = [anchor]

    def ours(label: str, epochs: int) -> dict[str, Any]:
        row = with_host(lambda: mlestar_row(label, data, test, args, seed, epochs, precision), device, precision)
        _print(row, anchor)
        rows.append(row)
        return row

    for epochs in args.mlestar_epochs:
        ours(f"mlestar, {epochs} epochs", epochs)
    if args.mlestar_epochs:
        return rows
    same = ours("mlestar, same epochs", round(args.epochs))
    per_epoch = same["seconds"] / same["epochs"]
    for share in args.time_shares:
        ours(f"mlestar, {share:g}x time", epochs_for(share * anchor["seconds"], per_epoch))
    return rows


def _print(row: dict[str, Any], anchor: dict[str, Any]) -> None:
    print(f"  seed {row['seed']} {row['row']:24s} {row['epochs']:>5} epochs  {row['seconds']:8.1f} s "
          f"({row['seconds'] / anchor['seconds']:.2f}x; {row['images'] / row['seconds']:.0f} img/s)  test {row['plain']:.4f} plain, {row['tta']:.4f} TTA "
          f"({(row['tta'] - anchor['tta']) * 100:+.2f} points TTA){_pace(row, anchor)}", flush=True)


def _pace(row: dict[str, Any], anchor: dict[str, Any]) -> str:
    """The host's pace around ``row`` against the pace around ``anchor`` (blank when not measured)."""
    if "host_before" not in row or "host_before" not in anchor:
        return ""
    base = (anchor["host_before"] + anchor["host_after"]) / 2
    return f"; host pace {row['host_before'] / base:.2f}x -> {row['host_after'] / base:.2f}x the anchor's"


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread per row label, with time and accuracy against airbench94's means."""
    labels = list(dict.fromkeys(r["row"] for r in rows))
    anchor = [r for r in rows if r["row"] == "airbench94"]
    base_s, base_tta = statistics.fmean(r["seconds"] for r in anchor), statistics.fmean(r["tta"] for r in anchor)
    out = []
    for label in labels:
        group = [r for r in rows if r["row"] == label]
        tta = [r["tta"] for r in group]
        seconds = statistics.fmean(r["seconds"] for r in group)
        out.append({"row": label, "seeds": len(group), "epochs": sorted({r["epochs"] for r in group}),
                    "seconds": seconds, "time_ratio": seconds / base_s,
                    "images_per_second": statistics.fmean(r["images"] / r["seconds"] for r in group),
                    "plain": statistics.fmean(r["plain"] for r in group), "tta": statistics.fmean(tta),
                    "tta_sd": statistics.stdev(tta) if len(tta) > 1 else 0.0,
                    "tta_gain_points": (statistics.fmean(tta) - base_tta) * 100})
    return out


def machine(device: torch.device) -> str:
    """The device in words, with the CPU flags that decide the precision."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = cpu_info()
    return f"CPU {cpu['model']}, {cpu['cores']} threads, flags {' '.join(cpu['flags']) or 'none of amx/avx512/avx2'}"


def load_tensors(args: argparse.Namespace, device: torch.device) -> tuple[Any, Any, ImageSplit, ImageSplit, list]:
    """mlestar's (train, val) and test tensors, and the joined training split and test split as arrays."""
    dataset = load_dataset(DataConfig(source="imagefolder", path=args.archive), seed=0)
    prep = dataset.preprocessing()
    train = ImageSplit(np.concatenate([dataset.train.images, dataset.val.images]),
                       np.concatenate([dataset.train.labels, dataset.val.labels]))
    if args.limit_train:
        train = train.subset(np.sort(np.random.default_rng(0).permutation(len(train))[:args.limit_train]))
    test = dataset.test
    if args.limit_test:
        test = test.subset(np.sort(np.random.default_rng(1).permutation(len(test))[:args.limit_test]))
    tensors = split_to_tensors(train, prep, device)
    data = (tensors, (tensors[0][:512], tensors[1][:512]))  # fit's per-epoch val: a token, nothing is selected
    return data, split_to_tensors(test, prep, device), train, test, list(dataset.class_names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--model", default="airbench", help="mlestar's model (airbench: airbench94's widths)")
    parser.add_argument("--epochs", type=float, default=AIRBENCH_EPOCHS, help="airbench94's epochs")
    parser.add_argument("--batch", type=int, default=None, help="mlestar's batch (default: its recipe's)")
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "muon"],
                        help="mlestar's airbench recipe: airbench94's (sgd) or airbench94_muon's (muon)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--time-shares", type=float, nargs="*", default=[1.0, 0.8])
    parser.add_argument("--mlestar-epochs", type=int, nargs="*", default=[],
                        help="mlestar at these epochs instead of the same-epochs and time-share rows")
    parser.add_argument("--limit-train", type=int, default=None, help="a seeded random N of the 50,000")
    parser.add_argument("--limit-test", type=int, default=None, help="a seeded random N of the 10,000 test images")
    parser.add_argument("--warmup", action="store_true", help="one untimed short run of each side first (GPU)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--anchor-precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="the package's precision on a CPU (auto: bf16 autocast with AMX, else fp32)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    run(args)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every seed's rows, then the summary; returns the summary rows."""
    device = choose_device(args.device)
    precision, _ = choose_precision("auto", device)  # bf16 on GPUs and on CPUs with native bf16
    data, test, train_split, test_split, classes = load_tensors(args, device)
    shims: list[str] = []
    rows: list[dict[str, Any]] = []
    print(f"{machine(device)}; torch {torch.__version__}, {torch.get_num_threads()} threads; mlestar {args.model} "
          f"({args.optimizer}), "
          f"{precision}; airbench94 {anchor_precision(device, args.anchor_precision)}; train {len(train_split)} images, "
          f"test {len(test_split)}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        write_airbench_data(Path(folder), train_split, test_split, classes)
        cwd = os.getcwd()
        os.chdir(folder)  # airbench reads ./cifar10/{train,test}.pt
        try:
            if args.warmup:
                airbench_row(99, device, 1, shims, precision=args.anchor_precision)
                mlestar_row("warm-up", data, test, args, 99, 1, precision)
            for seed in args.seeds:
                rows += seed_rows(seed, data, test, args, precision, shims)
        finally:
            os.chdir(cwd)
    print("shims applied to the airbench package: " + ("; ".join(shims) if shims else "none (CUDA)"))
    summary = summarise(rows)
    for s in summary:
        print(f"{s['row']:24s} {s['seeds']} seed(s), epochs {s['epochs']}: {s['seconds']:.1f} s "
              f"({s['time_ratio']:.2f}x), test {s['plain']:.4f} plain, TTA {s['tta']:.4f} ± {s['tta_sd']:.4f} "
              f"({s['tta_gain_points']:+.2f} points)")
    drift = host_drift(rows)
    print(f"host pace (reference conv step before and after each row): fastest / slowest = {drift:.2f}"
          + (f"; over {DRIFT_LIMIT:.2f} the time ratios above carry that error: rerun on a quieter machine"
             if drift > DRIFT_LIMIT else ""))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(device), "shims": shims, "rows": rows,
                                         "summary": summary, "host_drift": drift}, indent=2))
    return summary


if __name__ == "__main__":
    main()
