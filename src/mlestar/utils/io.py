"""Atomic file writes and content hashing.

Every file mlestar writes goes through :func:`atomic_write_bytes`: the bytes
land in a temporary file in the same directory, are flushed to disk, then
``os.replace`` swaps them in. A kill at any moment leaves either the old file
or the new one, never a truncated mix.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from mlestar.utils import faults

CACHE_ENV = "MLESTAR_CACHE_DIR"
_CHUNK = 1 << 20  # 1 MiB reads keep hashing fast without holding big files in memory
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def _replacing(path: Path) -> Iterator[tuple[int, str]]:
    """A temp file beside ``path`` (``(fd, name)``) to fill; it replaces ``path`` when the block succeeds.

    On any failure the temp file is removed and ``path`` is untouched. Fault
    points on both sides of the write and between writing and replacing.
    """
    label = faults.file_label(path)
    faults.point(f"write:{label}:before", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        yield fd, tmp
        faults.point(f"write:{label}:replace", path)  # written, not yet in place
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    faults.point(f"write:{label}:after", path)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating parent folders.

    Returns the path written. The temp file is removed if anything fails.
    """
    path = Path(path)
    with _replacing(path) as (fd, _):
        # mkstemp creates 0600 files; give the usual umask-derived mode so others can read results.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return path


_FICLONE = 0x40049409  # Linux ioctl: share the source's blocks until either file is written (reflink)


def copy_file(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` atomically, sharing blocks copy-on-write where the file system can.

    On btrfs, XFS and other reflink file systems the copy is instant and takes
    no space until one side is written; elsewhere the bytes are copied. Either
    way the two files are independent: editing one never changes the other
    (a hard link would). Permission bits and mtime are kept, as ``cp -p`` does.
    """
    source, target = Path(source), Path(target)
    with _replacing(target) as (fd, tmp):
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            try:
                fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
            except OSError:  # no reflink here (ext4, tmpfs, overlayfs, another file system): copy
                shutil.copyfileobj(src, dst, _CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
        shutil.copystat(source, tmp)
    return target


def file_signature(path: Path) -> tuple[int, int]:
    """``(size, mtime_ns)``: the cheap check that a file is unchanged since it was hashed (DVC's)."""
    stat = Path(path).stat()
    return stat.st_size, stat.st_mtime_ns


def atomic_write_text(path: Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically.

    Sorted keys make the bytes (and so the content hash) depend only on the data.
    """
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default)
    return atomic_write_text(path, text + "\n")


def _json_default(obj: Any) -> Any:
    """Serialize numpy scalars and paths that ``json`` does not know."""
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def user_cache_dir() -> Path:
    """``$MLESTAR_CACHE_DIR``, else ``~/.cache/mlestar``: where mlestar keeps what it can recompute."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "mlestar"


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash a JSON-serializable object canonically (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return sha256_bytes(text.encode("utf-8"))
