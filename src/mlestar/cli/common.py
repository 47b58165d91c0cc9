"""What every command shares: the consoles, error handling, option types."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Any, Callable, TypeVar

import typer
from rich.console import Console

from mlestar.errors import MlestarError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

RunsDir = Annotated[Path, typer.Option("--runs-dir", help="folder holding run folders and lineage.db")]


def guarded(fn: F) -> F:
    """Turn :class:`MlestarError` into one clear message and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MlestarError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}", markup=True, soft_wrap=True)
            if exc.hint:
                err_console.print(f"[yellow]hint:[/] {exc.hint}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


class ProgressBars:
    """Draws one Rich progress bar per label; the runner calls it with ``(label, done, total)``.

    Bars are transient and only shown on a terminal, so logs and CliRunner output
    stay plain text.
    """

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=console, transient=True,
                                  disable=not console.is_terminal)
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
    """Progress line from the runner, printed as is (no markup interpretation)."""
    console.print(line, markup=False, soft_wrap=True)
