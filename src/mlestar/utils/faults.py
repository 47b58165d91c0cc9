"""Named fault points: where a crash or an I/O error can be injected on purpose.

Every step that changes state on disk (an artifact write, a lineage
transaction, an audit append) calls :func:`point` just before and just after
it. Normally that is one dictionary lookup. A test arms a point to prove the
workflow survives a fault exactly there, as SQLite's and FoundationDB's test
harnesses do:

- ``kill``: ``SIGKILL`` this process (a power cut, an OOM kill);
- ``stop``: ``SIGSTOP`` this process, so a test can act on a run frozen at a
  known point (send it ``SIGTERM``, look at it while it is alive), then ``SIGCONT``;
- ``interrupt``: raise ``KeyboardInterrupt`` (Ctrl-C) right there;
- an errno name (``ENOSPC``, ``EACCES``, ``EROFS``): raise that ``OSError``.

Arming is by environment (``MLESTAR_FAULTS="kill@audit:stage_passed:implementation:after"``,
read once per process, so a child process can be told where to die) or by
:func:`arm` in-process. ``MLESTAR_FAULTS_RECORD=FILE`` appends every point
passed, one label a line, so a test can list the points a run goes through.

A label is ``site:what:detail:side`` with ``side`` ``before`` or ``after``,
e.g. ``write:04_implementation/model.pt:before``. An armed label fires at
its first occurrence in the process, or at its ``#N``-th with a suffix
(``...:after#3``).
"""

from __future__ import annotations

import errno
import os
import re
import signal
from pathlib import Path

ENV = "MLESTAR_FAULTS"
RECORD_ENV = "MLESTAR_FAULTS_RECORD"

_armed: dict[str, tuple[str, int]] = {}  # label -> (action, occurrence that fires)
_seen: dict[str, int] = {}
_loaded = False
_SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}
_STAGE_FOLDER = re.compile(r"^\d\d_[a-z_]+$")


def _parse(spec: str) -> dict[str, tuple[str, int]]:
    """``"kill@a:b:before, ENOSPC@c:d:after#2"`` -> {label: (action, occurrence)}."""
    out: dict[str, tuple[str, int]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        action, _, label = item.partition("@")
        label, _, nth = label.partition("#")
        if action not in _SIGNALS and action != "interrupt" and not hasattr(errno, action):
            raise ValueError(f"{ENV}: unknown fault action {action!r}; use kill, stop, interrupt or an errno "
                             "name like ENOSPC")
        out[label] = (action, int(nth or 1))
    return out


def _load() -> None:
    global _loaded
    _loaded = True
    _armed.update(_parse(os.environ.get(ENV, "")))


def arm(label: str, action: str = "kill", occurrence: int = 1) -> None:
    """Make ``label`` fire ``action`` at its ``occurrence``-th pass (in this process)."""
    if not _loaded:
        _load()
    _armed.update(_parse(f"{action}@{label}#{occurrence}"))


def disarm() -> None:
    """Forget every armed point and every count (tests call this in teardown)."""
    _armed.clear()
    _seen.clear()


def configure(spec: str) -> None:
    """Replace what is armed with ``spec`` (the ``MLESTAR_FAULTS`` syntax); counts restart."""
    global _loaded
    disarm()
    _loaded = True
    _armed.update(_parse(spec))


def point(label: str, path: Path | str | None = None) -> None:
    """Pass the fault point ``label``; fire it when armed. ``path`` names the file for an OSError."""
    if not _loaded:
        _load()
    record = os.environ.get(RECORD_ENV)
    if record:
        with open(record, "a", encoding="utf-8") as fh:
            fh.write(label + "\n")
    if not _armed:
        return
    count = _seen[label] = _seen.get(label, 0) + 1
    action, occurrence = _armed.get(label, ("", 0))
    if count != occurrence:
        return
    if action in _SIGNALS:
        os.kill(os.getpid(), _SIGNALS[action])
        return  # after SIGCONT, a stopped process carries on
    if action == "interrupt":
        raise KeyboardInterrupt(f"fault point {label}")
    code = getattr(errno, action)
    raise OSError(code, os.strerror(code), str(path) if path is not None else None)


def file_label(path: Path | str) -> str:
    """A run-independent name for a file: from its stage folder on (``04_implementation/model.pt``).

    Files outside a stage folder are named by their file name alone (``run.json``),
    so labels recorded in one run can arm the same point in another.
    """
    parts = Path(path).parts
    for index in range(len(parts) - 2, max(len(parts) - 6, -1), -1):
        if _STAGE_FOLDER.match(parts[index]):
            return "/".join(parts[index:])
    return parts[-1] if parts else ""
