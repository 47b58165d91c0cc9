"""The Python API for notebooks and scripts: ``mlestar.run(config)`` returns a :class:`Run`.

``import mlestar`` stays light: the package's ``__getattr__`` imports this module
only when one of its names is first used (docs/api.md shows the whole surface).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from mlestar.config import LoadedConfig, MlestarConfig, build_config, default_config, load_config
from mlestar.config.catalog import normalize_stage, stage_folder, stage_option
from mlestar.errors import InteropError
from mlestar.workflow.inspect import find_run, list_runs
from mlestar.workflow.runner import RunOptions, load_run_config, run_workflow
from mlestar.workflow.state import RunState

ConfigLike = LoadedConfig | MlestarConfig | Mapping[str, Any] | str | Path | None

__all__ = ["Run", "RunOptions", "StageView", "list_runs_in", "load_config", "run"]


@dataclass(frozen=True)
class StageView:
    """One stage of a run as ``run.json`` recorded it.

    Attributes:
        name: ``"implementation"``; folder: its folder in the run (``04_implementation``).
        status: pending, running, passed, skipped (cached), failed or interrupted.
        metrics: what it measured; summary: its one-line result; duration: seconds.
    """

    name: str
    folder: Path
    status: str
    metrics: dict[str, Any]
    summary: str | None
    duration: float | None


class Run:
    """A workflow run on disk: its id, folder, status, metrics, stages and files.

    Reading is live: each property re-reads ``run.json``, so a ``Run`` of a run
    that another process is executing shows its progress.
    """

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        self._state()  # fail now, not at the first property, when it is not a run

    @classmethod
    def load(cls, runs_dir: str | Path = "runs", ref: str = "latest") -> Run:
        """The run ``ref`` (an id, a unique prefix, ``latest`` or a run folder) under ``runs_dir``.

        Raises:
            RunNotFoundError: no run, or more than one, matches.
        """
        return cls(find_run(Path(runs_dir), ref))

    def _state(self) -> RunState:
        return RunState.load(self.dir)

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def status(self) -> str:
        """running, passed, failed or interrupted (a killed process's run reads interrupted)."""
        return self._state().status

    @property
    def metrics(self) -> dict[str, Any]:
        """Every stage's metrics, merged (later stages win on a shared name)."""
        return dict(self._state().data["metrics"])

    @property
    def stages(self) -> dict[str, StageView]:
        """Stage name -> :class:`StageView`, in workflow order."""
        entries = self._state().data["stages"]
        return {name: StageView(name, self.dir / stage_folder(name), str(e.get("status")), dict(e.get("metrics") or {}),
                                e.get("summary"), e.get("duration")) for name, e in entries.items()}

    @property
    def config(self) -> MlestarConfig:
        """The config the run was started with (its saved ``config.json``)."""
        return load_run_config(self.dir).config

    @property
    def bundle(self) -> Path:
        """The serving bundle folder stage 7 writes (``mlestar serve`` takes it)."""
        return self.artifact("deployment/bundle")

    def artifact(self, path: str) -> Path:
        """A file or folder of the run: ``"implementation/model.pt"``, ``"04_implementation/model.pt"``
        or a run-level file (``"run.json"``).

        Raises:
            InteropError: the run has no such file (yet).
        """
        stage, _, rest = path.partition("/")
        try:
            candidate = self.dir / stage_folder(normalize_stage(stage)) / rest if rest else self.dir / path
        except ValueError:
            candidate = self.dir / path
        if not candidate.exists():
            raise InteropError(f"run {self.id} has no {path!r} (looked for {candidate})",
                               hint="`mlestar lineage RUN` lists its files; a stage not run yet has none")
        return candidate

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r})"


def run(config: ConfigLike = None, *, runs_dir: str | Path | None = None, from_stage: str | None = None,
        only: str | None = None, resume: str | None = None, use_cache: bool = True,
        report: Callable[[str], None] | None = print) -> Run:
    """Run the workflow and return the finished :class:`Run` (passed, or failed on a gate).

    Args:
        config: a path to a YAML config, a loaded config, a config dict (as the YAML
            would hold), or None for the embedded digits default.
        runs_dir: where run folders go; default: the config's ``project.runs_dir``.
        from_stage, only: re-execute from this stage on / execute just this stage
            (names as the CLI takes them: ``implementation``, ``4``, ``04_implementation``).
        resume: the id of an interrupted run to continue (``config`` is then ignored).
        use_cache: reuse identical earlier stage executions.
        report: receives one progress line per event (default ``print``; None: silent).

    Raises:
        MlestarError: a bad config, missing data, an environment error; a failed gate
            is not an error: the returned run's ``status`` is ``"failed"``.
    """
    options = RunOptions(runs_dir=None if runs_dir is None else Path(runs_dir), resume=resume,
                         from_stage=stage_option(from_stage), only_stage=stage_option(only), use_cache=use_cache,
                         report=report or (lambda line: None))
    loaded = _loaded(config, resume, options.runs_dir)
    state = run_workflow(loaded, options)
    return Run(state.path.parent)


def list_runs_in(runs_dir: str | Path = "runs") -> list[Run]:
    """Every run under ``runs_dir``, oldest first."""
    return [Run(Path(state.path).parent) for state in list_runs(Path(runs_dir))]


def _loaded(config: ConfigLike, resume: str | None, runs_dir: Path | None) -> LoadedConfig:
    if resume is not None:
        return load_run_config(find_run(runs_dir or Path("runs"), resume))
    if config is None:
        return default_config()
    if isinstance(config, LoadedConfig):
        return config
    if isinstance(config, MlestarConfig):
        return LoadedConfig(config=config)
    if isinstance(config, Mapping):
        return LoadedConfig(config=build_config(dict(config)))
    return load_config(Path(config))

