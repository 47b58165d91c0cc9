"""Decode image files into uint8 pixels, one at a time or on a process pool.

Each file goes through steps 1 to 3 of :mod:`mlestar.data.preprocess`, the
same steps serving runs on every request: decoded with PIL, turned upright,
brought to its *natural* mode (``"L"`` or ``"RGB"``, 16-bit scaled, alpha
dropped, palettes expanded) and, when the wanted size or channel count is
already known, conformed to it straight away so that a folder of big photos
never sits in memory at full size. A bad file never raises: it comes back as
a :class:`Decoded` with a ``reason`` from ``SkippedFile.REASONS``.

Why a process pool: opening a small JPEG costs ~0.2 ms of Python-level header
parsing in PIL that holds the GIL, so threads do not help and two processes
nearly halve the time. The pool is fed lazily from an iterator, so reading an
archive in this process overlaps decoding in the workers.
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from mlestar.data.preprocess import ImageRejected, conform, natural_pixels, open_image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                            ".ppm", ".pgm", ".pbm", ".pnm"})
CHUNK = 256  # files per pool task: big enough to amortize pickling, small enough to balance 2 workers

Payload = bytes | str  # the file's bytes, or a path the worker reads itself
Count = Callable[[int, int], None]  # progress: (files decoded, files in all)


@dataclass(frozen=True)
class Target:
    """The wanted output; ``None`` keeps that property as decoded (decided later)."""

    side: int | None = None
    channels: int | None = None


@dataclass(frozen=True)
class Decoded:
    """What became of one file.

    Attributes:
        name: the file's name, as given.
        pixels: ``(H, W, C)`` uint8, or ``None`` when the file was skipped.
        mode: PIL mode as stored (``"RGBA"``, ``"P"``, ...).
        size: ``(width, height)`` after EXIF rotation, before any resize.
        reason: ``"truncated"`` or ``"unreadable"`` when ``pixels`` is ``None``.
        detail: the decoder's message for a skipped file.
    """

    name: str
    pixels: np.ndarray | None = None
    mode: str = ""
    size: tuple[int, int] = (0, 0)
    reason: str = ""
    detail: str = ""


def is_image_name(name: str) -> bool:
    """True for a visible file with an image suffix (``._x.jpg`` from macOS is not one)."""
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in IMAGE_SUFFIXES


def decode_image(name: str, payload: Payload, target: Target = Target()) -> Decoded:
    """Decode one file; never raises for a bad file.

    ``reason`` is ``"truncated"`` when PIL reports truncated data while loading
    (``LOAD_TRUNCATED_IMAGES`` stays off: a half-grey image is worse than none),
    ``"unreadable"`` for anything else that fails (see :class:`ImageRejected`).
    """
    try:
        data = payload if isinstance(payload, bytes) else Path(payload).read_bytes()
    except OSError as exc:
        return Decoded(name, reason="unreadable", detail=f"cannot read the file: {exc.strerror or exc}")
    try:
        image = open_image(data)
        natural = natural_pixels(image)
    except ImageRejected as exc:
        return Decoded(name, reason="truncated" if exc.kind == "truncated" else "unreadable", detail=exc.message)
    height, width = natural.shape[:2]  # after EXIF rotation, before any resize
    return Decoded(name, conform(natural, target.side, target.channels), image.mode, (width, height))


def decode_all(items: Iterable[tuple[str, Payload]], target: Target = Target(), *,
               workers: int | None = None, chunk: int = CHUNK, progress: Count | None = None,
               expected: int | None = None) -> list[Decoded]:
    """Decode every ``(name, payload)`` of ``items``, in order.

    When ``items`` holds no more than one ``chunk`` they are decoded here: a
    pool would cost more than it saves. Otherwise ``workers`` processes
    (default: the CPUs this process may use) decode chunk by chunk while
    ``items`` is still being produced, so an iterator that reads an archive
    overlaps with decoding. Exceptions raised by ``items`` propagate.

    ``progress(done, total)`` is called with 0 first, then once per decoded chunk
    (every ``chunk`` files: nothing is added per file), and last with ``done == total``.
    ``total`` is ``expected`` (the files the caller counted beforehand), or without it
    the items read so far, which runs ahead of decoding only when a pool is used.
    """
    fed = _Counted(items)
    report = _Reporter(progress, expected, fed)
    chunks = _chunked(fed, chunk)
    first = next(chunks, None)
    if first is None:
        return report.end([])
    report([])
    workers = workers or _default_workers()
    out: list[Decoded] = []
    if len(first) < chunk or workers < 2:
        for part in itertools.chain([first], chunks):
            out += [decode_image(name, payload, target) for name, payload in part]
            report(out)
        return report.end(out)
    with _context().Pool(workers, initializer=_lower_priority) as pool:
        jobs = ((part, target) for part in itertools.chain([first], chunks))
        for packed in pool.imap(_decode_packed, jobs):
            out += _unpack(packed)
            report(out)
    return report.end(out)


class _Counted:
    """An iterator that counts the items taken from it (the pool's feeder thread takes them ahead)."""

    def __init__(self, items: Iterable[tuple[str, Payload]]) -> None:
        self._items, self.count = iter(items), 0

    def __iter__(self) -> Iterator[tuple[str, Payload]]:
        return self

    def __next__(self) -> tuple[str, Payload]:
        item = next(self._items)
        self.count += 1
        return item


@dataclass
class _Reporter:
    """Turns the decoded list's length into ``progress(done, total)`` calls; total never below done."""

    progress: Count | None
    expected: int | None
    fed: _Counted

    def __call__(self, out: list[Decoded]) -> None:
        if self.progress is not None:
            self.progress(len(out), max(len(out), self.expected if self.expected is not None else self.fed.count))

    def end(self, out: list[Decoded]) -> list[Decoded]:
        """The last report (``done == total``, even when ``expected`` counted a file that was not read)."""
        if self.progress is not None:
            self.progress(len(out), len(out))
        return out


_Packed = tuple[list[Decoded], list[tuple[int, ...]], bytes]


def _decode_packed(job: tuple[list[tuple[str, Payload]], Target]) -> _Packed:
    """Pool task: decode one chunk; the pixels travel back as one bytes blob.

    Pickling hundreds of tiny arrays one by one costs a fifth of decoding them,
    mostly in the parent, which is the busiest process (it also reads the archive).
    """
    part, target = job
    decoded = [decode_image(name, payload, target) for name, payload in part]
    shapes = [d.pixels.shape if d.pixels is not None else () for d in decoded]
    blob = b"".join(d.pixels.tobytes() for d in decoded if d.pixels is not None)
    return [dataclasses.replace(d, pixels=None) for d in decoded], shapes, blob


def _unpack(packed: _Packed) -> list[Decoded]:
    """Inverse of :func:`_decode_packed`: slice the blob back into (writable) arrays."""
    metas, shapes, blob = packed
    buffer = np.frombuffer(bytearray(blob), dtype=np.uint8)
    out, offset = [], 0
    for meta, shape in zip(metas, shapes):
        if not shape:
            out.append(meta)
            continue
        size = int(np.prod(shape))
        out.append(Decoded(meta.name, buffer[offset:offset + size].reshape(shape), meta.mode, meta.size))
        offset += size
    return out


def _chunked(items: Iterable[tuple[str, Payload]], size: int) -> Iterator[list[tuple[str, Payload]]]:
    """Lists of up to ``size`` consecutive items."""
    iterator = iter(items)
    while part := list(itertools.islice(iterator, size)):
        yield part


def _default_workers() -> int:
    """CPUs this process may run on (respects taskset and container CPU sets)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _context() -> multiprocessing.context.BaseContext:
    """Fork where the platform has it: workers start in milliseconds and need no re-import.

    The workers only run PIL and numpy, so forking a parent that has torch's
    thread pool running is safe here. Elsewhere (macOS, Windows) use spawn.
    """
    if "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _lower_priority() -> None:
    """Pool initializer: let the parent, which reads the archive and feeds every worker, win ties for a CPU."""
    if hasattr(os, "nice"):
        os.nice(5)
