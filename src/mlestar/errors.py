"""One exception root for everything mlestar raises on purpose.

Every error names the object at fault and, where one exists, the fix
(``hint``). The CLI turns any :class:`MlestarError` into a one-paragraph
message and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno


class MlestarError(Exception):
    """Root of all deliberate mlestar errors.

    Args:
        message: what is wrong, naming the object (file, key, stage, run).
        hint: how to fix it, or ``None`` when there is nothing to suggest.
    """

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(MlestarError):
    """The config file is missing, unreadable, malformed or invalid."""


class DataError(MlestarError):
    """A data source cannot be read or does not hold what it should."""


class StageError(MlestarError):
    """A stage cannot run: a missing input, an unknown stage name."""


class GateError(MlestarError):
    """A quality gate is defined wrongly (not a gate that failed: that is a result)."""


class TrackingError(MlestarError):
    """The artifact store, lineage database or a run folder is inconsistent."""


class AuditError(TrackingError):
    """The audit trail is broken: an edited, removed or reordered record."""


class RunNotFoundError(TrackingError):
    """A run id names no folder under the runs directory."""


class PlanError(MlestarError):
    """A training plan, or a change to it, is invalid: an unknown setting, a value out of range."""


class TrainingError(MlestarError):
    """Training cannot start or continue (bad checkpoint, diverged loss)."""


class ExportError(MlestarError):
    """A model cannot be exported, or its export disagrees with the original."""


class BundleError(MlestarError):
    """An inference bundle is incomplete or its checksums do not match."""


class InteropError(MlestarError):
    """A run cannot be handed to another tool (MLflow) or opened through the Python API."""


class TuningError(MlestarError):
    """A search cannot start or join: bad storage, a study made for another search space or plan."""


class ResourceError(MlestarError):
    """The machine refused an operation: disk full, permission denied, read-only folder, a locked database.

    Not a bug and not a gate: the environment needs fixing, so the CLI exits 2.
    """


# errno -> (what happened, how to fix it); {path} is filled in
_OS_HINTS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", "free space on the file system holding {path} (df -h), then resume the run"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space within your quota, then resume the run"),
    errno.EACCES: ("permission denied", "make {path} writable for this user (ls -ld), or use --runs-dir elsewhere"),
    errno.EPERM: ("the operation is not permitted (an immutable or protected file?)",
                  "check lsattr/ls -l on {path}, or use --runs-dir elsewhere"),
    errno.EROFS: ("the file system is read-only", "point --runs-dir at a writable folder"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n), then resume the run"),
    errno.EIO: ("an input/output error from the device", "check the disk (dmesg); then resume the run"),
}


def from_os_error(exc: OSError, doing: str) -> ResourceError:
    """A :class:`ResourceError` naming the path, the real cause and the fix for an ``OSError``.

    Args:
        exc: the error the operating system raised.
        doing: what mlestar was doing, e.g. ``"writing the run's files"``.
    """
    path = exc.filename if exc.filename is not None else "?"
    cause, hint = _OS_HINTS.get(exc.errno or -1, (exc.strerror or str(exc), "fix the cause, then resume the run"))
    return ResourceError(f"{doing}: {cause} ({path})", hint=hint.format(path=path))
