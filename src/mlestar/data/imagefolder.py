"""The ``imagefolder`` source: class-per-folder images in a folder or a .tar/.tar.gz/.zip archive.

Layouts, after stepping into a single wrapping folder (``cifar10-jpeg/...``):

* ``<root>/<split>/<class>/<image>``: split folders ``train`` (required),
  ``test`` and one of ``val``/``valid``/``validation`` (any letter case);
* ``<root>/<class>/<image>``: no split folders, everything is training data.

A wrapping folder is stepped into when it is the only top-level folder, is not
itself a split folder, and holds folders. Images nested deeper inside a class
folder belong to that class. A missing test split is held out of train
(``data.test_fraction``), a missing validation split likewise
(``data.val_fraction``), both stratified and seeded, and said so in the notes.

Classes are the class folders that hold at least one usable image, sorted by
name; label ``i`` is ``class_names[i]``. A class folder with no usable image
is listed in ``report.empty_classes`` for its split (and, if no split has an
image of it, left out of the classes). Every class of ``val``/``test`` must
have training images.

Images end up ``side x side`` with ``channels`` channels:

* ``channels``: ``data.channels``, else 3 if any image is colour (palettes
  count as colour), else 1;
* ``side``: ``data.image_size``, else from the most common original size
  (ties: the larger size): its side when square, else its longer side.

Paths in ``report.skipped`` and ``ImageSplit.paths`` are relative to
``data.path``, wrapping folder included, so each one can be found as written.
Decoded images are cached (:mod:`mlestar.data.cache`), so only the first load
of a dataset pays for decoding.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from mlestar.config.schema import DataConfig
from mlestar.data.archive import LAYOUT_HINT, Entry, archive_stem, count_wanted, iter_entries
from mlestar.data.cache import DecodedSource, cache_key, cached_decode
from mlestar.data.dataset import LISTED_FILES, ImageDataset, ImageSplit, LoadReport, SkippedFile
from mlestar.data.decode import CHUNK, Count, Decoded, Payload, Target, decode_all, is_image_name
from mlestar.data.preprocess import conform, natural_channels
from mlestar.data.archive import check_readable
from mlestar.data.sources import complete_splits, register_source
from mlestar.errors import DataError

SPLIT_FOLDERS = {"train": "train", "test": "test", "val": "val", "valid": "val", "validation": "val"}
_SPLIT_ORDER = ("train", "val", "test")


@dataclass(frozen=True)
class Layout:
    """Where classes live: under ``prefix`` (a wrapping folder or ``""``), per split folder or not.

    Attributes:
        prefix: ``""`` or the wrapping folder with a trailing ``/``.
        splits: split folder as spelled (``"Valid"``) -> ``"train"``/``"val"``/``"test"``;
            empty when there are no split folders.
    """

    prefix: str = ""
    splits: dict[str, str] = field(default_factory=dict)

    def place(self, name: str) -> tuple[str, str] | None:
        """``(split, class)`` of file ``name``, or ``None`` when it is not inside a class folder."""
        if not name.startswith(self.prefix):
            return None
        parts = name[len(self.prefix):].split("/")
        if any(_is_junk(part) for part in parts[:-1]):
            return None
        if not self.splits:
            return ("train", parts[0]) if len(parts) >= 2 else None
        if len(parts) >= 3 and parts[0] in self.splits:
            return self.splits[parts[0]], parts[1]
        return None

    def class_folders(self, dirs: Iterable[str]) -> dict[str, set[str]]:
        """Split -> class folders present in it, whether or not they hold images."""
        found: dict[str, set[str]] = defaultdict(set)
        for folder in dirs:
            placed = self.place(f"{folder}/-")  # a notional file inside: placed iff folder is (in) a class
            if placed:
                found[placed[0]].add(placed[1])
        return found

    def folder_of(self, split: str) -> str:
        """The split folder as spelled in the source (``"train"`` for a no-split layout)."""
        return next((folder for folder, canon in self.splits.items() if canon == split), split)


@dataclass
class _Scan:
    """Everything the entry stream held besides pixels, filled while it is consumed."""

    dirs: set[str] = field(default_factory=set)
    files: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (size, read error)

    def feed(self, entries: Iterable[Entry]) -> Iterator[tuple[str, Payload]]:
        """Record every entry; pass on ``(name, payload)`` of those worth decoding."""
        for entry in entries:
            if entry.is_dir:
                self.dirs.add(entry.name)
                continue
            self.files[entry.name] = (entry.size, entry.error)
            if entry.payload and not entry.error:
                yield entry.name, entry.payload

    def all_dirs(self) -> set[str]:
        """Folders, including those only implied by file paths (zips often list none)."""
        found = set(self.dirs)
        for name in self.files:
            parts = name.split("/")
            found.update("/".join(parts[:i]) for i in range(1, len(parts)))
        return found


def _fingerprint(config: DataConfig) -> str:
    """The decoded-image cache key: archive sha256 or folder stat hash, plus conversion settings.

    Also checks that the path exists and an archive is one, so the runner's
    pre-flight refuses bad paths before any run folder exists.
    """
    check_readable(Path(config.path))  # type: ignore[arg-type]
    return cache_key(config)


@register_source("imagefolder", fingerprint=_fingerprint)
def load_imagefolder(config: DataConfig, seed: int, *, progress: Count | None = None) -> ImageDataset:
    """Load ``data.path`` (folder or archive), from the decoded-image cache when it can.

    ``progress(done, total)`` follows the decoding (see :func:`decode_folder`); a cache hit
    decodes nothing and reports nothing.

    Raises:
        DataError: the path is missing or not a readable archive; no class
            folders or no usable image; a val/test class without training images.
    """
    decoded = cached_decode(config, lambda: decode_folder(config, progress=progress))
    train, val, test, notes = complete_splits(decoded.splits["train"], decoded.splits.get("val"),
                                              decoded.splits.get("test"), config, seed)
    path = Path(config.path or "")
    return ImageDataset(name=archive_stem(path.resolve()), train=train, val=val, test=test,
                        class_names=decoded.class_names, fingerprint=str(decoded.report.source["key"]),
                        notes=decoded.notes + tuple(notes), report=decoded.report)


def decode_folder(config: DataConfig, *, workers: int | None = None, chunk: int | None = None,
                  progress: Count | None = None) -> DecodedSource:
    """Read and decode every image under ``data.path``; no cache, no seeded splitting.

    ``workers`` and ``chunk`` tune the decoding pool (see
    :func:`~mlestar.data.decode.decode_all`); tests use them to force the pool.
    ``progress(files decoded, files in all)`` is called once per chunk and at the end; the
    files are counted first for a folder or zip (:func:`~mlestar.data.archive.count_wanted`).
    """
    path = Path(config.path or "")
    scan = _Scan()
    expected = count_wanted(path, is_image_name) if progress is not None else None
    results = decode_all(scan.feed(iter_entries(path, is_image_name)), Target(config.image_size, config.channels),
                         workers=workers, chunk=chunk or CHUNK, progress=progress, expected=expected)
    dirs = scan.all_dirs()
    layout = find_layout(dirs, path)
    used, skipped = _sort_files(scan, {r.name: r for r in results}, layout)
    return _assemble(path, used, skipped, layout.class_folders(dirs), layout, config)


def find_layout(dirs: set[str], path: Path) -> Layout:
    """Work out the wrapping folder and split folders from every folder name.

    Raises:
        DataError: split folders without ``train``, or two folders for one split.
    """
    prefix = _wrapper(dirs)
    splits = {name: SPLIT_FOLDERS[name.lower()] for name in _children(dirs, prefix)
              if name.lower() in SPLIT_FOLDERS}
    canon = Counter(splits.values())
    if splits and "train" not in canon:
        raise DataError(f"{path} has split folder(s) {', '.join(sorted(splits))} but no train/ folder",
                        hint="add a train/ folder (class folders inside), or drop the split folders")
    doubled = sorted(folder for folder, split in splits.items() if canon[split] > 1)
    if doubled:
        raise DataError(f"{path} has several folders for one split: {', '.join(doubled)}",
                        hint="keep one of val/, valid/, validation/ (and one train/, one test/)")
    return Layout(prefix, splits)


def _wrapper(dirs: set[str]) -> str:
    """``"name/"`` when a single top-level folder wraps the dataset, else ``""``."""
    top = _children(dirs, "")
    if len(top) != 1 or top[0].lower() in SPLIT_FOLDERS:
        return ""
    return f"{top[0]}/" if _children(dirs, f"{top[0]}/") else ""


def _children(dirs: set[str], prefix: str) -> list[str]:
    """Sorted names of the folders directly under ``prefix``, hidden and ``__MACOSX`` left out."""
    names = {d[len(prefix):] for d in dirs if d.startswith(prefix) and d != prefix and "/" not in d[len(prefix):]}
    return sorted(name for name in names if name and not _is_junk(name))


def _is_junk(name: str) -> bool:
    """Hidden names and the ``__MACOSX`` resource-fork folder that macOS adds to zips."""
    return name.startswith(".") or name == "__MACOSX"


_Use = tuple[str, str, Decoded]  # (split, class, decoded image)


def _sort_files(scan: _Scan, results: dict[str, Decoded],
                layout: Layout) -> tuple[list[_Use], list[SkippedFile]]:
    """Every file, by name, either used as ``(split, class, decoded)`` or skipped with a reason."""
    used: list[_Use] = []
    skipped: list[SkippedFile] = []
    for name in sorted(scan.files):
        size, error = scan.files[name]
        place = layout.place(name)
        why = _skip_reason(name, size, error, place, results.get(name))
        if why:
            skipped.append(SkippedFile(name, *why))
        else:
            assert place is not None
            used.append((place[0], place[1], results[name]))
    return used, skipped


def _skip_reason(name: str, size: int, error: str, place: tuple[str, str] | None,
                 result: Decoded | None) -> tuple[str, str] | None:
    """``(reason, detail)`` for a file left out, or ``None`` for a usable image."""
    if not is_image_name(name):
        hidden = name.rsplit("/", 1)[-1].startswith(".")
        return "not an image", "hidden file" if hidden else "not an image file type"
    if place is None:
        return "not an image", "not inside a class folder"
    if size == 0:
        return "zero-byte", ""
    if error:
        return "unreadable", error
    if result is None or result.pixels is None:
        return (result.reason, result.detail) if result else ("unreadable", "not decoded")
    return None


def _assemble(path: Path, used: list[_Use], skipped: list[SkippedFile], folders: dict[str, set[str]],
              layout: Layout, config: DataConfig) -> DecodedSource:
    """Check classes, conform every image to one shape, and build splits, report and notes."""
    _check_any(path, used, skipped, folders)
    class_names = _class_names(path, used, layout)
    side, channels, target_note = _choose_target(used, config)
    index = {name: i for i, name in enumerate(class_names)}
    splits = {split: _stack([u for u in used if u[0] == split], index, side, channels)
              for split in _SPLIT_ORDER if any(u[0] == split for u in used)}
    report = _report(used, skipped, folders, side, channels)
    notes = _layout_notes(layout, splits) + [target_note] + _report_notes(report, folders, class_names)
    return DecodedSource(splits, class_names, report, tuple(notes))


def _check_any(path: Path, used: list[_Use], skipped: list[SkippedFile], folders: dict[str, set[str]]) -> None:
    """Raise when there is nothing to load at all."""
    if not any(folders.values()):
        raise DataError(f"no class folders in {path}", hint=LAYOUT_HINT)
    if not used:
        reasons = Counter(s.reason for s in skipped)
        summary = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())) or "no image files"
        raise DataError(f"no usable images in the class folders of {path} ({summary})",
                        hint=f"{LAYOUT_HINT}; images must be .jpg, .png, .bmp, .gif, .tif or .webp")


def _class_names(path: Path, used: list[_Use], layout: Layout) -> tuple[str, ...]:
    """Sorted classes with training images; a val/test class without any is an error."""
    present: dict[str, set[str]] = defaultdict(set)
    for split, cls, _ in used:
        present[split].add(cls)
    for split in ("val", "test"):
        for cls in sorted(present[split] - present["train"]):
            raise DataError(f"class {cls!r} has images in the {layout.folder_of(split)}/ split of {path} "
                            f"but no training images",
                            hint=f"add images under {layout.folder_of('train')}/{cls}/ or remove "
                                 f"{layout.folder_of(split)}/{cls}/")
    return tuple(sorted(present["train"]))


def _choose_target(used: list[_Use], config: DataConfig) -> tuple[int, int, str]:
    """``(side, channels, note)`` for the loaded images (rules in the module docstring)."""
    if config.image_size:
        side, size_why = config.image_size, "data.image_size"
    else:
        sizes = Counter(decoded.size for _, _, decoded in used)
        (width, height), count = max(sizes.items(), key=lambda item: (item[1], item[0]))
        side = height if width == height else max(width, height)
        size_why = f"most common size {width}x{height}, {count} of {len(used)} images"
    if config.channels:
        channels, channel_why = config.channels, "data.channels"
    else:
        colour = any(natural_channels(decoded.mode) == 3 for _, _, decoded in used)
        channels, channel_why = (3, "a colour image was found") if colour else (1, "all images are grayscale")
    return side, channels, f"images: {side}x{side} ({size_why}), {channels} channel(s) ({channel_why})"


def _stack(items: list[_Use], index: dict[str, int], side: int, channels: int) -> ImageSplit:
    """One split's images conformed to ``side``/``channels`` and stacked, with labels and paths."""
    images = np.stack([conform(decoded.pixels, side, channels) for _, _, decoded in items])  # type: ignore[arg-type]
    labels = np.array([index[cls] for _, cls, _ in items], dtype=np.int64)
    return ImageSplit(images, labels, tuple(decoded.name for _, _, decoded in items))


def _report(used: list[_Use], skipped: list[SkippedFile], folders: dict[str, set[str]],
            side: int, channels: int) -> LoadReport:
    """Sizes and modes as found, the conversions made, and class folders left empty."""
    final_mode = "L" if channels == 1 else "RGB"
    conversions: Counter[str] = Counter()
    converted: dict[str, list[str]] = defaultdict(list)
    for _, _, decoded in used:
        done = [f"{decoded.mode}->{final_mode}"] if decoded.mode != final_mode else []
        if decoded.size != (side, side):
            done.append(f"{decoded.size[0]}x{decoded.size[1]}->{side}x{side}")
        for what in done:
            conversions[what] += 1
            if len(converted[what]) < LISTED_FILES:
                converted[what].append(decoded.name)
    with_images: dict[str, set[str]] = defaultdict(set)
    for split, cls, _ in used:
        with_images[split].add(cls)
    empty = {split: sorted(folders[split] - with_images[split]) for split in _SPLIT_ORDER
             if folders.get(split, set()) - with_images[split]}
    return LoadReport(skipped=tuple(skipped),
                      original_sizes=dict(Counter(f"{d.size[0]}x{d.size[1]}" for _, _, d in used)),
                      original_modes=dict(Counter(d.mode for _, _, d in used)),
                      conversions=dict(conversions), converted=dict(converted), empty_classes=empty)


def _layout_notes(layout: Layout, splits: dict[str, ImageSplit]) -> list[str]:
    """What the folder layout was taken to be."""
    notes = [f"stepped into the single top-level folder {layout.prefix}"] if layout.prefix else []
    if not layout.splits:
        notes.append("no split folders: every class folder is training data")
    for split in ("val", "test"):
        if split in splits:
            label = "validation" if split == "val" else "test"
            notes.append(f"{label}: the {layout.folder_of(split)}/ folder ({len(splits[split])} images)")
    return notes


def _report_notes(report: LoadReport, folders: dict[str, set[str]], class_names: tuple[str, ...]) -> list[str]:
    """One line each for skipped files, conversions and class folders with no usable image."""
    notes = []
    if report.skipped:
        reasons = Counter(s.reason for s in report.skipped)
        summary = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        notes.append(f"skipped {len(report.skipped)} file(s): {summary} (see report.skipped)")
    if report.conversions:
        notes.append("converted: " + ", ".join(f"{k} x{n}" for k, n in sorted(report.conversions.items())))
    dropped = sorted(set().union(*folders.values()) - set(class_names))
    if dropped:
        notes.append(f"class folder(s) with no usable image in any split, left out: {', '.join(dropped)}")
    return notes
