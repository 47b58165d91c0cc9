"""Run the workflow in child processes that can be killed at any named fault point.

Children are forked from a multiprocessing *forkserver* that has imported
mlestar (and torch) once, so each kill costs a fork, not an interpreter start
and a torch import. A child arms the fault points it is given
(``MLESTAR_FAULTS``), runs or resumes the workflow, and either finishes
(exit 0), stops on a failed gate (exit 1) or dies at its point (``-SIGKILL``).
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

from mlestar.utils import faults

FAULT_RUN: dict[str, Any] = {
    "project": {"name": "faults"},
    "data": {"source": "digits", "max_per_class": 20},
    "training": {"epochs": 2, "batch_size": 32, "num_threads": 1},
    "refinement": {"n_trials": 1, "epochs_per_trial": 1, "seeds": 1, "ablation": False, "focus_fraction": 0.0,
                   "search_space": {"label_smoothing": {"type": "float", "low": 0.05, "high": 0.2}}},
    "deployment": {"formats": ["torchscript"]},
}

_context: Any = None


def context() -> Any:
    """The forkserver context, started once per test session with mlestar preloaded."""
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        # what every child would import anyway; torch.optim's first use imports dynamo (seconds)
        _context.set_forkserver_preload(["torch", "torch._dynamo", "matplotlib.pyplot", "sklearn.datasets",
                                         "mlestar.workflow.runner", "mlestar.stages.s1_situation_analysis",
                                         "mlestar.stages.s5_evaluation", "mlestar.stages.s6_refinement",
                                         "mlestar.stages.s7_deployment", "fault_harness"])
    return _context


def _child(config: dict[str, Any], runs_dir: str, resume: str | None, spec: str, record: str | None,
           cache_dir: str) -> None:
    from mlestar.config import build_config
    from mlestar.config.loader import LoadedConfig
    from mlestar.workflow.runner import RunOptions, run_workflow

    os.environ["MLESTAR_CACHE_DIR"] = cache_dir
    if record:
        os.environ[faults.RECORD_ENV] = record
    faults.configure(spec)
    loaded = LoadedConfig(config=build_config(config))
    state = run_workflow(loaded, RunOptions(runs_dir=Path(runs_dir), resume=resume))
    os._exit(0 if state.status == "passed" else 1)


def run_child(runs_dir: Path, *, cache_dir: Path, resume: str | None = None, kill_at: str = "",
              record: Path | None = None, config: dict[str, Any] | None = None, timeout: float = 600) -> int:
    """Run (or resume) the fault workflow in a forked child; returns its exit code (-9 when killed)."""
    spec = f"kill@{kill_at}" if kill_at else ""
    proc = context().Process(target=_child, args=(config or FAULT_RUN, str(runs_dir), resume, spec,
                                                  str(record) if record else None, str(cache_dir)))
    proc.start()
    proc.join(timeout)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise AssertionError(f"the child did not finish in {timeout} s (kill_at={kill_at!r})")
    return int(proc.exitcode)


def run_quietly(runs_dir: str, spec: str) -> None:
    """A forkserver child's target: run the fault workflow with ``spec`` armed (for ``Process``)."""
    from mlestar.config import LoadedConfig, build_config
    from mlestar.workflow.runner import RunOptions, run_workflow

    faults.configure(spec)
    run_workflow(LoadedConfig(config=build_config(FAULT_RUN)), RunOptions(runs_dir=Path(runs_dir)))


def run_cli(args: list[str], spec: str, log: str) -> None:
    """A forkserver child's target: ``mlestar ARGS`` with ``spec`` armed, output to ``log``; exits with its code.

    The same command a user types, without a new interpreter importing torch.
    """
    from mlestar.cli.app import app

    faults.configure(spec)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    try:
        app(args, prog_name="mlestar")
    except SystemExit as done:
        os._exit(int(done.code or 0))
    os._exit(0)
