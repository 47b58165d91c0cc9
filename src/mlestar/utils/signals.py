"""``SIGTERM`` handled like Ctrl-C, so ``kill PID`` and container stops end a run cleanly."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from types import FrameType
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives ``SIGTERM``.

    A :class:`KeyboardInterrupt` subclass on purpose: code that catches
    ``Exception`` to carry on (a trial that failed, an export that fell back)
    lets it through, exactly as it lets Ctrl-C through.
    """


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, ``SIGTERM`` raises :class:`Terminated`; the old handler comes back after.

    Outside the main thread (a server's worker thread) signals cannot be
    handled, and the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold Ctrl-C and ``SIGTERM`` back while the block runs; they arrive right after it.

    For the few steps that must not be cut in two by an exception raised
    from a signal handler: a record written to a file and the in-memory count
    that says it was written.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
