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


def say(line: str) -> None:
    """Progress line from the runner, printed as is (no markup interpretation)."""
    console.print(line, markup=False, soft_wrap=True)
