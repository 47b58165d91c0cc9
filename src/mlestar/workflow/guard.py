"""While a stage runs, it can open only what its contract declares.

Kedro's runner hands a node exactly its declared inputs, so a node cannot
read what it did not declare. A stage here gets paths, so the same promise
is kept by watching: a Python audit hook (PEP 578) sees every ``open`` in the
process, and while a stage runs, opening a file inside the run's folder is
allowed only for

- the stage's own folder (read and write),
- the artifacts it declared in ``inputs`` (read only),
- the runner's own records it appends to through the context (``audit.jsonl``).

Anything else raises :class:`~mlestar.errors.StageError` from ``open`` itself,
so an undeclared read cannot slip into a result (and out of the cache key).
Threads a stage starts are not watched (context variables do not follow
them); files outside the run folder (data, caches) are not the contract's.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mlestar.errors import StageError

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


@dataclass(frozen=True)
class _Scope:
    stage: str
    run_dir: str  # absolute, ending in a separator
    own: str  # the stage's folder, absolute, ending in a separator
    readable: frozenset[str]  # declared inputs, absolute
    appendable: frozenset[str]  # runner records the context writes for the stage

    def check(self, path: str, flags: int) -> None:
        inside_own = path.startswith(self.own) or path == self.own[:-1]  # the folder itself (an fsync)
        if not path.startswith(self.run_dir) or inside_own or path in self.appendable:
            return
        if path in self.readable and not flags & _WRITE_FLAGS:
            return
        what = "write" if flags & _WRITE_FLAGS else "read"
        relative = path[len(self.run_dir):]
        raise StageError(f"stage {self.stage!r} tried to {what} {relative}, which its contract does not declare",
                         hint=f"declare it in {self.stage}'s `inputs` (reads) or write only under its own folder")


_scope: ContextVar[_Scope | None] = ContextVar("mlestar_stage_scope", default=None)
_installed = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "open":
        return
    scope = _scope.get()
    if scope is None or isinstance(args[0], int):
        return
    try:
        path = os.path.abspath(os.fsdecode(args[0]))
    except (TypeError, ValueError):
        return
    flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
    scope.check(path, flags)


def _install() -> None:
    global _installed
    if not _installed:
        sys.addaudithook(_hook)  # hooks cannot be removed: one, consulting the current scope
        _installed = True


@contextmanager
def confined(stage: str, run_dir: Path, out_dir: Path, inputs: list[Path], appendable: list[Path]
             ) -> Iterator[None]:
    """Within the block (this thread and what it awaits), enforce the stage's file contract."""
    _install()

    def folder(path: Path) -> str:
        return os.path.join(os.path.abspath(path), "")

    scope = _Scope(stage, folder(run_dir), folder(out_dir), frozenset(os.path.abspath(p) for p in inputs),
                   frozenset(os.path.abspath(p) for p in appendable))
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)
