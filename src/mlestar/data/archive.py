"""Walk an image tree in a folder, a tar (plain or compressed) or a zip, without extracting it.

Every kind of source yields the same :class:`Entry` stream, so the image-folder
loader never knows which one it reads. Archives are read with ``tarfile`` and
``zipfile``; a ``.tar.gz`` is decompressed exactly once, in memory, and nothing
is written to disk. Only members the caller wants (image files) have their bytes
read; for a folder the payload is the file's path and the decoding worker reads
it, which keeps the bytes out of the parent process.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import mmap
import os
import tarfile
import zipfile
import zlib
from stat import S_ISREG
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from mlestar.errors import DataError

# Longest suffixes first, so "x.tar.gz" is a tar and not something ending in ".gz".
ARCHIVE_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".tar.gz", "tar"), (".tar.bz2", "tar"), (".tar.xz", "tar"),
    (".tgz", "tar"), (".tbz2", "tar"), (".txz", "tar"), (".tar", "tar"), (".zip", "zip"),
)
LAYOUT_HINT = "lay images out as <root>/<class>/<image> or <root>/train/<class>/<image>"


@dataclass(frozen=True)
class Entry:
    """One folder or regular file of a source.

    Attributes:
        name: ``/``-separated path relative to the source root, no leading ``./``.
        size: bytes (0 for folders).
        payload: the member's bytes (archives), the absolute file path (folders),
            or ``b""`` when the caller did not want this file read.
        is_dir: a folder, recorded so that empty class folders can be reported.
        error: why the bytes could not be read; empty when they could.
    """

    name: str
    size: int = 0
    payload: bytes | str = b""
    is_dir: bool = False
    error: str = ""


def source_kind(path: Path) -> str:
    """Return ``"directory"``, ``"tar"`` or ``"zip"`` for ``path``.

    Raises:
        DataError: ``path`` does not exist, or is a file without an archive suffix.
    """
    if not path.exists():
        raise DataError(f"data path {path} does not exist", hint="check data.path (relative paths start at "
                                                                 "the folder you run mlestar from)")
    if path.is_dir():
        return "directory"
    lowered = path.name.lower()
    for suffix, kind in ARCHIVE_SUFFIXES:
        if lowered.endswith(suffix):
            return kind
    raise DataError(f"data path {path} is a file but not a .tar, .tar.gz, .tgz or .zip archive",
                    hint="point data.path at an image folder or an archive of one")


def check_readable(path: Path) -> str:
    """:func:`source_kind`, plus a cheap header check that an archive really is one.

    Raises:
        DataError: the archive's header is not tar or zip.
    """
    import tarfile
    import zipfile

    kind = source_kind(path)
    ok = {"directory": lambda p: True, "tar": tarfile.is_tarfile, "zip": zipfile.is_zipfile}[kind](path)
    if not ok:
        raise DataError(f"data path {path} is not a readable {kind} archive",
                        hint="re-create the archive, or point data.path at the extracted folder")
    return kind


def archive_stem(path: Path) -> str:
    """``path``'s name without an archive suffix: ``cifar10-jpeg.tar.gz`` -> ``cifar10-jpeg``."""
    lowered = path.name.lower()
    for suffix, _ in ARCHIVE_SUFFIXES:
        if lowered.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def iter_entries(path: Path, wanted: Callable[[str], bool]) -> Iterator[Entry]:
    """Yield every folder and regular file under ``path`` (a folder or an archive).

    Only files for which ``wanted(name)`` is true and that are not empty get a
    payload. Order is the source's own (archive order, or sorted for folders);
    callers sort if they need to.

    Raises:
        DataError: as :func:`source_kind`, or the archive cannot be read.
    """
    kind = source_kind(path)
    if kind == "directory":
        return _iter_directory(path, wanted)
    if kind == "tar":
        return _iter_tar(path, wanted)
    return _iter_zip(path, wanted)


def count_wanted(path: Path, wanted: Callable[[str], bool]) -> int | None:
    """How many files :func:`iter_entries` will offer for decoding, counted cheaply; None for a tar.

    A folder is walked by name (no ``stat``: a few milliseconds per thousand files, against
    about a second to decode them), a zip's central directory is read; a tar would have to be
    read (and decompressed) whole, so it is not counted. Empty files and broken links count
    here but get no payload, so this may exceed the files decoded by those few.
    """
    kind = source_kind(path)
    if kind == "directory":
        return sum(wanted(_relative(path, os.path.join(folder, name)))
                   for folder, _, names in os.walk(path) for name in names)
    if kind != "zip":
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(1 for info in archive.infolist()
                       if not info.is_dir() and info.file_size and wanted(_clean(info.filename)))
    except (zipfile.BadZipFile, OSError):
        return None  # iter_entries raises the DataError that names the problem


def walk_files(root: Path) -> list[tuple[str, os.stat_result]]:
    """Every file under folder ``root`` as ``(relative name, stat)``, sorted by name.

    Symbolic links to folders are not followed (as ``os.walk``); a broken link
    is reported with its own ``lstat`` so that it still shows up.
    """
    found: list[tuple[str, os.stat_result]] = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename in filenames:
            full = os.path.join(folder, filename)
            try:
                stat = os.stat(full)
            except OSError:
                stat = os.lstat(full)
            found.append((_relative(root, full), stat))
    return sorted(found, key=lambda item: item[0])


def _iter_directory(root: Path, wanted: Callable[[str], bool]) -> Iterator[Entry]:
    """Folders first (sorted), then files; the payload is the absolute path, read by the decoder."""
    for folder, dirnames, _ in os.walk(root):
        dirnames.sort()
        for dirname in dirnames:
            yield Entry(_relative(root, os.path.join(folder, dirname)), is_dir=True)
    for name, stat in walk_files(root):
        if not S_ISREG(stat.st_mode):
            yield Entry(name, error="not a regular file (a broken link or a device)")
        else:
            yield Entry(name, stat.st_size, str(root / name) if wanted(name) and stat.st_size else b"")


def _iter_tar(path: Path, wanted: Callable[[str], bool]) -> Iterator[Entry]:
    """Read a tar's members from its uncompressed bytes, slicing each file at ``offset_data``.

    ``extractfile`` builds a buffered reader per member, which for 60,000 small
    files costs as much again as parsing the headers; slicing costs nothing. A
    compressed tar is decompressed into memory once (93 MB for CIFAR-10 JPEGs),
    a plain one is memory-mapped.
    """
    try:
        with _uncompressed(path) as data:
            yield from _tar_members(data, wanted)
    except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        raise DataError(f"{path} is not a readable tar/zip archive ({exc})",
                        hint="check the download finished, or unpack it and point data.path at the folder") from exc


def _tar_members(data: bytes | mmap.mmap, wanted: Callable[[str], bool]) -> Iterator[Entry]:
    """Entries of the uncompressed tar ``data`` (an mmap is its own file object; bytes need a BytesIO)."""
    fileobj = data if isinstance(data, mmap.mmap) else io.BytesIO(data)
    with memoryview(data) as view, tarfile.open(fileobj=fileobj, mode="r:") as tar:  # type: ignore[arg-type]
        for member in tar:
            name = _clean(member.name)
            if name:
                yield _tar_entry(view, member, name, wanted)


@contextlib.contextmanager
def _uncompressed(path: Path) -> Iterator[bytes | mmap.mmap]:
    """The tar stream inside ``path``: gzip, bzip2 and xz are recognised by their magic bytes."""
    with open(path, "rb") as handle:
        magic = handle.read(6)
        handle.seek(0)
        for signature, opener in _COMPRESSIONS:
            if magic.startswith(signature):
                with opener(handle) as stream:
                    yield stream.read()
                return
        if os.fstat(handle.fileno()).st_size == 0:
            raise tarfile.ReadError("empty file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            yield mapped


_COMPRESSIONS: tuple[tuple[bytes, Callable[[BinaryIO], BinaryIO]], ...] = (
    (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw)),
    (b"BZh", lambda raw: bz2.BZ2File(raw)),
    (b"\xfd7zXZ", lambda raw: lzma.LZMAFile(raw)),
)


def _tar_entry(data: memoryview, member: tarfile.TarInfo, name: str, wanted: Callable[[str], bool]) -> Entry:
    """One tar member as an :class:`Entry`; links and sparse files are not followed."""
    if member.isdir():
        return Entry(name, is_dir=True)
    if not member.isfile() or member.issparse():
        return Entry(name, error="a link, sparse or special file, not a regular file")
    if not (wanted(name) and member.size):
        return Entry(name, member.size)
    return Entry(name, member.size, bytes(data[member.offset_data:member.offset_data + member.size]))


def _iter_zip(path: Path, wanted: Callable[[str], bool]) -> Iterator[Entry]:
    """Read a zip's members in its own order; one bad member does not spoil the rest."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path} is not a readable tar/zip archive ({exc})",
                        hint="check the download finished, or unpack it and point data.path at the folder") from exc
    with archive:
        for info in archive.infolist():
            name = _clean(info.filename)
            if not name:
                continue
            if info.is_dir():
                yield Entry(name, is_dir=True)
            elif wanted(name) and info.file_size:
                yield _zip_member(archive, info, name)
            else:
                yield Entry(name, info.file_size)


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Entry:
    """Read one member; a CRC error or an unsupported compression marks it, not the archive."""
    try:
        return Entry(name, info.file_size, archive.read(info))
    except (zipfile.BadZipFile, NotImplementedError, OSError, zlib.error, EOFError) as exc:
        return Entry(name, info.file_size, error=f"{type(exc).__name__}: {exc}")


def _clean(name: str) -> str:
    """Archive member name without leading ``./`` or ``/`` and trailing ``/``."""
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/") if name != "." else ""


def _relative(root: Path, full: str) -> str:
    """``full`` relative to ``root`` with ``/`` separators on every platform."""
    return Path(os.path.relpath(full, root)).as_posix()
