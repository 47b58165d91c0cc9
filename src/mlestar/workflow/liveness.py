"""Who is executing a run right now, and is that process still alive?

A process executing a run holds an exclusive ``flock`` on ``<run>/.lock`` for
as long as it runs; the kernel drops the lock when the process dies, however it
dies (``SIGKILL`` included). On the same machine that answers "alive?" exactly,
and it also stops a second process from executing the same run. Across
machines (a runs folder on a network share) the lock is not trusted: a
heartbeat file whose mtime the owner refreshes every few seconds answers instead.
``run.json`` keeps ``owner`` (host, pid) so a message can name the process.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mlestar.errors import TrackingError, from_os_error

LOCK_FILE = ".lock"
HEARTBEAT_FILE = ".heartbeat"
HEARTBEAT_S = 5.0  # how often the owner touches the heartbeat file
STALE_AFTER_S = 60.0  # a heartbeat this old means the owner on another machine is gone


def owner_record() -> dict[str, Any]:
    """What ``run.json`` stores about the executing process."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}


@dataclass
class RunLock:
    """The exclusive right to execute one run; :meth:`acquire`, then :meth:`release` when done."""

    run_dir: Path
    _handle: IO[bytes] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat: threading.Thread | None = None

    def acquire(self, owner_hint: str = "") -> RunLock:
        """Take the lock and start the heartbeat.

        Raises:
            TrackingError: another live process is executing this run.
            ResourceError: the lock file cannot be created (read-only folder, full disk).
        """
        try:
            handle = open(Path(self.run_dir) / LOCK_FILE, "ab")
        except OSError as exc:
            raise from_os_error(exc, f"cannot lock run folder {self.run_dir}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise TrackingError(f"run {Path(self.run_dir).name} is being executed by another process{owner_hint}",
                                hint="wait for it to finish, or stop it (Ctrl-C / kill) before resuming") from None
        self._handle = handle
        self._touch()
        self._beat = threading.Thread(target=self._beat_loop, name="mlestar-heartbeat", daemon=True)
        self._beat.start()
        return self

    def release(self) -> None:
        """Stop the heartbeat and drop the lock (idempotent)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=HEARTBEAT_S)
        if self._handle is not None:
            self._handle.close()  # closing the file drops the flock
            self._handle = None

    def _touch(self) -> None:
        path = Path(self.run_dir) / HEARTBEAT_FILE
        try:
            path.touch()
        except OSError:
            pass  # a heartbeat is a hint for other machines; a full disk must not kill the run for it

    def _beat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._touch()


def is_alive(run_dir: Path, owner: dict[str, Any] | None) -> bool:
    """Whether the process that ``run.json`` names as the owner is still executing the run."""
    run_dir = Path(run_dir)
    if owner and owner.get("host") not in (None, socket.gethostname()):
        return _heartbeat_fresh(run_dir)
    lock = run_dir / LOCK_FILE
    if not lock.exists():
        return _pid_alive(owner)  # a run from before locks existed
    try:
        with open(lock, "rb") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True  # someone holds it exclusively: the owner is running
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            return False
    except OSError:
        return _heartbeat_fresh(run_dir)


def _heartbeat_fresh(run_dir: Path) -> bool:
    try:
        return time.time() - (run_dir / HEARTBEAT_FILE).stat().st_mtime < STALE_AFTER_S
    except OSError:
        return False


def _pid_alive(owner: dict[str, Any] | None) -> bool:
    if not owner or not owner.get("pid"):
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True
