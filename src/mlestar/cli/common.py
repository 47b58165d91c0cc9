"""What every command shares: the consoles, error handling, option types."""

from __future__ import annotations

import functools
import logging
import signal
from pathlib import Path
from typing import Annotated, Any, Callable, NoReturn, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from mlestar.errors import ConfigError, MlestarError, from_os_error
from mlestar.utils.signals import Terminated
from mlestar.workflow.layout import Outcome  # not the runner: it imports config, data, stages

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

VERBOSITIES = ("quiet", "normal", "verbose")
_output: dict[str, Any] = {"level": "normal", "handler": None}  # set once per invocation by the app callback


def set_verbosity(level: str) -> None:
    """Set how much the commands print: ``quiet``, ``normal`` or ``verbose`` (see :func:`say`).

    ``verbose`` also sends mlestar's log records from DEBUG up to stderr (the
    runner logs each stage's cache decision and timing there); the handler of
    an earlier call is removed first, so repeated invocations in one process
    (tests) never print twice or to a stale stream.
    """
    if level not in VERBOSITIES:
        raise ValueError(f"verbosity must be one of {VERBOSITIES}, got {level!r}")
    _output["level"] = level
    logger = logging.getLogger("mlestar")
    if _output["handler"] is not None:
        logger.removeHandler(_output["handler"])
        _output["handler"] = None
    if level == "verbose":
        handler = logging.StreamHandler()  # the stderr of this invocation
        handler.setFormatter(logging.Formatter("debug: %(message)s"))
        logger.addHandler(handler)
        _output["handler"] = handler
    logger.setLevel(logging.DEBUG if level == "verbose" else logging.NOTSET)


def verbosity() -> str:
    """The level :func:`set_verbosity` set last (``normal`` unless a global option changed it)."""
    return str(_output["level"])


# Named here, not imported from mlestar.config: that would build the config's pydantic models for every
# --help. tests/cli/test_cli_light.py keeps it equal to mlestar.config.DEFAULT_CONFIG_NAME.
DEFAULT_CONFIG_NAME = "mle_star_config.yaml"

# Shared by `mlestar run` and `mlestar validate`: one spelling and one help text for overrides.
SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", "-S", metavar="KEY=VALUE",
    help="override a config setting, e.g. -S training.epochs=3 (repeatable; VALUE is YAML)")]

RunsDir = Annotated[Optional[Path], typer.Option(
    "--runs-dir", help="folder holding run folders and lineage.db [default: project.runs_dir of "
                       f"./{DEFAULT_CONFIG_NAME}, else ./runs]", show_default=False)]


def resolve_runs_dir(given: Path | None) -> Path:
    """The runs folder a command uses: ``--runs-dir`` if given; else ``project.runs_dir`` of
    ``./mle_star_config.yaml`` when that file exists (relative to the file's folder); else ``./runs``.

    The config is read as YAML only (a sample-project layout is translated), not
    validated: listing runs must not need the config's data or heavy imports.

    Raises:
        ConfigError: the config file exists but is not readable YAML, or its
            ``project.runs_dir`` is not a path.
    """
    if given is not None:
        return Path(given)
    config = Path(DEFAULT_CONFIG_NAME)
    runs_dir = _configured_runs_dir(config) if config.is_file() else None
    return Path("runs") if runs_dir is None else config.parent / runs_dir


def _configured_runs_dir(path: Path) -> str | None:
    """``project.runs_dir`` of the YAML file at ``path``, or ``None`` when it sets none."""
    import yaml

    from mlestar.config.legacy import is_legacy, translate_legacy

    hint = "fix the file, or pass --runs-dir"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read project.runs_dir from {path}: {exc}", hint=hint) from None
    if not isinstance(raw, dict):
        return None
    if is_legacy(raw):
        raw = translate_legacy(raw, source=str(path))[0]
    project = raw.get("project")
    value = project.get("runs_dir") if isinstance(project, dict) else None
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{path}: project.runs_dir must be a path, not {value!r}", hint=hint)
    return value or None


def guarded(fn: F) -> F:
    """One clear message and an exit code instead of a traceback.

    :class:`MlestarError` (and an ``OSError``, which names an environment
    problem: a full disk, a read-only folder) exit 2; Ctrl-C exits 130 and
    ``SIGTERM`` 143, as shells report them. Exit 1 stays for failed gates.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            _fail(from_os_error(exc, "mlestar could not complete the command"))
        except MlestarError as exc:
            _fail(exc)
        except Terminated:
            raise typer.Exit(128 + signal.SIGTERM) from None
        except KeyboardInterrupt:
            raise typer.Exit(128 + signal.SIGINT) from None

    return wrapper  # type: ignore[return-value]


def _fail(exc: MlestarError) -> NoReturn:
    # escaped: messages quote paths and errors such as "[Errno 28]", which are not markup
    err_console.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True, soft_wrap=True)
    if exc.hint:
        err_console.print(f"[yellow]hint:[/] {escape(exc.hint)}", soft_wrap=True)
    raise typer.Exit(exc.exit_code) from None


class ProgressBars:
    """Draws one Rich progress bar per label; the runner calls it with ``(label, done, total)``.

    Bars are transient and only shown on a terminal, so logs and CliRunner output
    stay plain text; ``--quiet`` hides them too. Each shows the time elapsed and
    Rich's estimate of the time remaining (from the recent rate of ``done``).
    """

    def __init__(self) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                  console=console, transient=True,
                                  disable=not console.is_terminal or verbosity() == "quiet")
        self._tasks: dict[str, Any] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        if label not in self._tasks:
            if not self._tasks:
                self._progress.start()
            self._tasks[label] = self._progress.add_task(label, total=total)
        self._progress.update(self._tasks[label], completed=done, total=total)
        if done >= total:
            self._progress.remove_task(self._tasks.pop(label))
            if not self._tasks:
                self._progress.stop()


    def close(self) -> None:
        """Remove any bar left open (a study stopped by its time budget, an error)."""
        for task in self._tasks.values():
            self._progress.remove_task(task)
        self._tasks.clear()
        self._progress.stop()


def say(line: str) -> None:
    """Progress line from the runner, printed as is (no markup interpretation).

    Under ``--quiet`` only the run's outcome (an :class:`~mlestar.workflow.layout.Outcome`
    line: passed, failed, interrupted) is printed; progress lines are dropped.
    """
    if verbosity() == "quiet" and not isinstance(line, Outcome):
        return
    console.print(line, markup=False, soft_wrap=True)
