"""Decoded-image cache: decode a folder or archive once, load it in about a second afterwards.

An entry holds a loader's output *before* any seeded splitting (the source's
own splits, class names, the load report), so changing ``seed``,
``val_fraction`` or ``max_per_class`` reuses it. It lives in
``<cache root>/<key>/``:

* ``meta.json``: format, key, class names, notes, report, and per split the
  image paths, array shapes and the sha256 of each array file;
* ``<split>.images.npy`` (uint8 NHWC) and ``<split>.labels.npy`` (int64),
  uncompressed so that loading is one read.

The key (DVC style: cheap to compute, changes when the input does):

* an archive: sha256 of the archive file;
* a folder: sha256 over ``(relative path, size, mtime_ns)`` of every file, the
  way DVC decides a directory is unchanged without reading it. Editing a file
  in place with the same size within the same nanosecond goes unnoticed;

plus the conversion settings (``image_size``, ``channels``) and
:data:`CACHE_FORMAT`, which must be bumped whenever decoding (:mod:`mlestar.data.preprocess`,
:mod:`mlestar.data.decode`) changes what an image decodes to.

An entry is built in a temporary folder beside it and renamed into place, so a
reader sees a whole entry or none. One that fails to load (a missing or
truncated file, a checksum mismatch, unparsable JSON) is ignored and rebuilt.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlestar.config.schema import DataConfig
from mlestar.data.archive import source_kind, walk_files
from mlestar.data.dataset import ImageSplit, LoadReport
from mlestar.errors import DataError
from mlestar.utils.io import CACHE_ENV, atomic_write_json, read_json, sha256_file, sha256_json, user_cache_dir

# 2: decoding moved to mlestar.data.preprocess; mode I (16-bit PGM/PPM) keeps its top byte instead of
# being clipped at 255, and float or wider-than-16-bit images are skipped as unreadable.
CACHE_FORMAT = 3  # 3: the load report names the files each conversion was applied to


@dataclass(frozen=True)
class DecodedSource:
    """A loader's output before seeded splitting: exactly what a cache entry stores.

    Attributes:
        splits: ``"train"`` always; ``"val"`` and ``"test"`` when the source has them.
        class_names: label index -> class name.
        report: what the loader saw and did.
        notes: what a user should know about the load (layout, skips, conversions).
    """

    splits: dict[str, ImageSplit]
    class_names: tuple[str, ...]
    report: LoadReport
    notes: tuple[str, ...] = ()


def cache_root(config: DataConfig) -> Path:
    """``data.cache_dir``, else ``$MLESTAR_CACHE_DIR``, else ``~/.cache/mlestar``."""
    if config.cache_dir is not None:
        return Path(config.cache_dir).expanduser()
    return user_cache_dir()


def content_digest(path: Path) -> str:
    """sha256 of an archive's bytes, or of a folder's ``(path, size, mtime_ns)`` listing.

    Raises:
        DataError: ``path`` does not exist or is a file that is not an archive.
    """
    if source_kind(path) != "directory":
        return sha256_file(path)
    return sha256_json([[name, stat.st_size, stat.st_mtime_ns] for name, stat in walk_files(path)])


def cache_key(config: DataConfig) -> str:
    """The entry key for ``config``: content digest plus conversion settings and format.

    Raises:
        DataError: ``data.path`` is unset, missing, or a file that is not an archive.
    """
    if config.path is None:
        raise DataError("data.path is not set; the decoded-image cache keys on it",
                        hint="set data.path to an image folder or archive")
    path = Path(config.path)
    return sha256_json({"format": CACHE_FORMAT, "kind": source_kind(path), "content": content_digest(path),
                        "image_size": config.image_size, "channels": config.channels})


def cached_decode(config: DataConfig, decode: Callable[[], DecodedSource]) -> DecodedSource:
    """Load ``config.path``'s entry from the cache, or run ``decode()`` and store its result.

    ``report.source`` is set to ``{"kind", "path", "cache": "hit"|"miss", "key",
    "entry", "decode_seconds", "load_seconds"}``; ``decode_seconds`` is the time the
    decode took when the entry was made. A cache that cannot be written (read-only,
    disk full) costs the speed-up, not the run: a note says so.
    """
    started = time.perf_counter()
    path = Path(config.path or "")
    key = cache_key(config)
    entry = cache_root(config) / key
    data = load_entry(entry, key)
    hit = data is not None
    notes: list[str] = []
    if data is None:
        if entry.exists():
            notes.append(f"the decoded-image cache entry {entry} was unreadable; rebuilt it")
        decode_started = time.perf_counter()
        data = decode()
        data = _with_source(data, {"decode_seconds": round(time.perf_counter() - decode_started, 3)})
        notes += _try_save(entry, key, data)
    source = {"kind": source_kind(path), "path": str(path), "cache": "hit" if hit else "miss", "key": key,
              "entry": str(entry), "decode_seconds": data.report.source.get("decode_seconds"),
              "load_seconds": round(time.perf_counter() - started, 3)}
    return dataclasses.replace(_with_source(data, source), notes=data.notes + tuple(notes))


def load_entry(entry: Path, key: str) -> DecodedSource | None:
    """The entry in folder ``entry``, or ``None`` when it is absent, partial or corrupt."""
    try:
        meta = read_json(entry / "meta.json")
        if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
            return None
        splits = {name: _load_split(entry, name, info) for name, info in meta["splits"].items()}
        return DecodedSource(splits, tuple(meta["class_names"]), LoadReport.from_dict(meta["report"]),
                             tuple(meta["notes"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        # Whatever is wrong with an entry, decoding again is the fix; the caller rebuilds it.
        return None


def save_entry(entry: Path, key: str, data: DecodedSource) -> None:
    """Write ``data`` as the entry ``entry`` atomically (temp folder beside it, then rename)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name[:16]}.", suffix=".tmp", dir=entry.parent))
    try:
        meta: dict[str, Any] = {"format": CACHE_FORMAT, "key": key, "class_names": list(data.class_names),
                                "notes": list(data.notes), "report": data.report.to_dict(),
                                "splits": {name: _save_split(staging, name, split)
                                           for name, split in data.splits.items()}}
        atomic_write_json(staging / "meta.json", meta)
        _swap_in(staging, entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful swap


def _try_save(entry: Path, key: str, data: DecodedSource) -> list[str]:
    """Save, returning a note instead of raising when the cache folder is not writable."""
    try:
        save_entry(entry, key, data)
    except OSError as exc:
        return [f"could not write the decoded-image cache at {entry} ({exc}); the next load decodes again"]
    return []


def _save_split(staging: Path, name: str, split: ImageSplit) -> dict[str, Any]:
    """Write one split's arrays into the staging folder; return its ``meta.json`` record."""
    digests = {part: _save_array(staging / f"{name}.{part}.npy", array)
               for part, array in (("images", split.images), ("labels", split.labels))}
    return {"shape": list(split.images.shape), "paths": list(split.paths), "sha256": digests}


def _save_array(path: Path, array: np.ndarray) -> str:
    """``np.save`` straight into the staging folder and return the file's sha256.

    No per-file atomic rename here: the staging folder as a whole is renamed
    into place, and nothing reads it before that.
    """
    with open(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    return sha256_file(path)


def _load_split(entry: Path, name: str, info: dict[str, Any]) -> ImageSplit:
    """Load and verify one split; raises ``ValueError`` or ``OSError`` on any mismatch."""
    arrays = {}
    for part in ("images", "labels"):
        path = entry / f"{name}.{part}.npy"
        if sha256_file(path) != info["sha256"][part]:
            raise ValueError(f"{path} does not match its checksum")
        arrays[part] = np.load(path, mmap_mode=None, allow_pickle=False)
    if list(arrays["images"].shape) != info["shape"]:
        raise ValueError(f"{entry / name} images have shape {arrays['images'].shape}, expected {info['shape']}")
    return ImageSplit(arrays["images"], arrays["labels"], tuple(info["paths"]))


def _swap_in(staging: Path, entry: Path) -> None:
    """Rename ``staging`` to ``entry``; a stale entry is moved aside first.

    If another process renames its own finished entry in between, ours loses
    the race and is discarded: both decoded the same input.
    """
    if entry.exists():
        stale = Path(tempfile.mkdtemp(prefix=f".{entry.name[:16]}.", suffix=".stale", dir=entry.parent))
        os.replace(entry, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(staging, entry)
    except OSError:
        if not (entry / "meta.json").exists():
            raise


def _with_source(data: DecodedSource, source: dict[str, object]) -> DecodedSource:
    """``data`` with ``source`` merged into its report's ``source``."""
    report = dataclasses.replace(data.report, source={**data.report.source, **source})
    return dataclasses.replace(data, report=report)
