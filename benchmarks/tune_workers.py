"""Refinement search on digits: one worker vs two on one machine (journal storage), and a pruned search.

Usage:
  .venv/bin/python benchmarks/tune_workers.py                       # 12 trials, 1 worker then 2
  .venv/bin/python benchmarks/tune_workers.py --trials 20 --epochs 8 --workers 1 2 --repeat 3
  .venv/bin/python benchmarks/tune_workers.py --search              # 20 trials, median pruning, ablation, focus

Workers mode: the same number of trials (no pruner, so every trial trains the
same epochs) on a fresh journal-file study, first by this process alone, then
by this process plus extra ``mlestar tune --worker`` processes; each process
uses one thread. Wall time includes starting the extra workers (they import
torch and load the data), as a user would see it. Prints trials, seconds and
the speed-up over one worker.

Search mode: stage 6's whole search (main study with the median pruner,
ablation, focused search) on the full digits training split; prints how many
trials completed and were pruned, and the time taken.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mlestar.config.schema import DataConfig, RefinementConfig
from mlestar.data.sources import load_dataset
from mlestar.stages.common import dataset_record
from mlestar.tuning.job import TuneJob, trial_data
from mlestar.tuning.report import trial_rows
from mlestar.tuning.search import run_phase, search
from mlestar.tuning.space import space_to_json
from mlestar.tuning.study import open_study

SPACE = {"learning_rate": {"type": "float", "low": 0.005, "high": 0.5, "log": True},
         "weight_decay": {"type": "float", "low": 1e-5, "high": 5e-3, "log": True},
         "width": {"type": "int", "low": 16, "high": 64, "log": True}}


def digits_plan(epochs: int) -> dict:
    """What stage 3 plans for digits with the small CNN (one thread per process)."""
    return {"model": "small_cnn", "width": 32, "epochs": epochs, "batch_size": 32, "optimizer": "sgd",
            "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "label_smoothing": 0.0,
            "schedule": "onecycle", "augmentation": "translate", "translate_pad": 1, "precision": "fp32",
            "seed": 0, "device": "cpu", "num_threads": 1, "processes": 1, "num_classes": 10, "in_channels": 1,
            "image_size": 8, "class_weighting": "none", "flip_safe": False}


def make_job(folder: Path, name: str, trials: int, epochs: int, pruner: str) -> TuneJob:
    data = DataConfig(source="digits")
    record = dataset_record(load_dataset(data, 0))
    return TuneJob(study=name, storage=str(folder / f"{name}.journal"), plan=digits_plan(epochs), space=SPACE,
                   target_trials=trials, seed=0, data=data.model_dump(mode="json"),
                   preprocessing=record["preprocessing"],
                   split_hashes={s: record["splits"][s]["hash"] for s in ("train", "val")}, pruner=pruner)


def time_workers(folder: Path, workers: int, trials: int, epochs: int) -> tuple[float, int, int]:
    """Wall seconds, finished trials, and processes that ran trials, for ``workers`` processes."""
    job = make_job(folder, f"w{workers}", trials, epochs, pruner="none")
    data = trial_data(job)
    settings = RefinementConfig(n_trials=trials, workers=workers, storage="journal", pruner="none",
                                search_space=SPACE)
    started = time.perf_counter()
    opened = open_study(job)
    run_phase(opened, data, settings, log_dir=folder, deadline=None, report=lambda line: None,
              progress=lambda done, total: None)
    seconds = time.perf_counter() - started
    rows = trial_rows(opened.study, "main")
    return seconds, sum(r["state"] == "COMPLETE" for r in rows), len({r["worker"] for r in rows})


def workers_mode(args: argparse.Namespace) -> None:
    """Each repeat times every worker count in turn (alternating, so load from other jobs hits all alike)."""
    torch.set_num_threads(1)
    print(f"{args.trials} trials x {args.epochs} epochs, digits (1,295 train images), small_cnn, 1 thread each")
    print("| repeat | workers | trials completed | processes that ran trials | wall seconds | speed-up |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for repeat in range(1, args.repeat + 1):
        with tempfile.TemporaryDirectory() as tmp:
            results = {n: time_workers(Path(tmp), n, args.trials, args.epochs) for n in args.workers}
        base = results[args.workers[0]][0]
        for n, (seconds, done, procs) in results.items():
            print(f"| {repeat} | {n} | {done} | {procs} | {seconds:.1f} | {base / seconds:.2f}x |", flush=True)
        ratios.append(base / results[args.workers[-1]][0])
    print(f"median speed-up of {args.workers[-1]} workers over {args.workers[0]}: {statistics.median(ratios):.2f}x "
          f"over {len(ratios)} repeat(s)")


def search_mode(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        job = make_job(Path(tmp), "search", args.trials, args.epochs, pruner="median")
        settings = RefinementConfig(n_trials=args.trials, storage="journal", pruner="median", search_space=SPACE)
        job = TuneJob(**{**job.__dict__, "space": space_to_json(settings.search_space)})
        started = time.perf_counter()
        result = search(job, trial_data(job), settings, log_dir=Path(tmp), report=print)
        seconds = time.perf_counter() - started
    states = [r["state"] for r in result.rows]
    print(f"{len(states)} trials: {states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned; "
          f"best val {result.best['value']:.4f} {result.best['params']}; "
          f"focus: {result.focus['component'] if result.focus else 'none'}; {seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=None, help="trials per study (12; --search: 20)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per trial")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--repeat", type=int, default=1, help="repeats of the comparison (median speed-up)")
    parser.add_argument("--search", action="store_true", help="time the whole pruned search instead")
    args = parser.parse_args()
    args.trials = args.trials or (20 if args.search else 12)
    search_mode(args) if args.search else workers_mode(args)


if __name__ == "__main__":
    main()
