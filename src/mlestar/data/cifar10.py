"""The ``cifar10`` source: the python-pickle release of CIFAR-10 (50,000 train, 10,000 test, 32x32 RGB).

Where it looks: ``data.path`` (a folder holding ``cifar-10-batches-py/``, or that
folder itself), else ``<cache root>/cifar10`` (see :func:`~mlestar.data.cache.cache_root`).

Why the batch files are read here and not through ``torchvision.datasets.CIFAR10``:
torchvision checks the md5 of every batch file (and of ``batches.meta``) each
time the dataset is constructed, even with ``download=False``, so it re-hashes
178 MB per load and refuses any other file in the same format (a subset, a
test fixture). The format is a plain pickle of ``{"data": uint8 (N, 3072),
"labels": [...]}`` per batch, row-major ``3 x 32 x 32``, read the same way.
torchvision is still what downloads the archive (``data.download: true``), and
it verifies the archive's md5 while doing so.

Pickle can run code: point ``data.path`` only at files you trust (the same
holds for torchvision's reader).
"""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from mlestar.config.schema import DataConfig
from mlestar.data.cache import cache_root
from mlestar.data.dataset import ImageDataset, ImageSplit, LoadReport
from mlestar.data.preprocess import conform
from mlestar.data.sources import Count, complete_splits, register_source
from mlestar.errors import DataError
from mlestar.utils.io import sha256_json

BATCH_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
_ALL_FILES = (*TRAIN_BATCHES, TEST_BATCH, META_FILE)
_FORMAT = 1  # bump when loading changes what the arrays hold


def batch_folder(config: DataConfig) -> Path:
    """The ``cifar-10-batches-py`` folder ``config`` points at (it may not exist yet)."""
    root = Path(config.path).expanduser() if config.path else cache_root(config) / "cifar10"
    return root if root.name == BATCH_FOLDER else root / BATCH_FOLDER


def _missing(folder: Path) -> list[str]:
    """Names of the batch files absent from ``folder``."""
    return [name for name in _ALL_FILES if not (folder / name).is_file()]


def ensure_present(config: DataConfig) -> Path:
    """Return the batch folder, downloading it first when allowed and needed.

    Raises:
        DataError: files are missing and ``data.download`` is false, or the download failed.
    """
    folder = batch_folder(config)
    missing = _missing(folder)
    if missing and config.download:
        _download(folder.parent)
        missing = _missing(folder)
    if missing:
        raise DataError(f"CIFAR-10 is not in {folder} (missing {', '.join(missing)})",
                        hint="set data.download: true when online, point data.path at a folder holding "
                             f"{BATCH_FOLDER}/, or use source: imagefolder for an image-folder copy")
    return folder


def _download(root: Path) -> None:
    """Download and unpack the official archive into ``root`` via torchvision (md5-checked)."""
    try:
        from torchvision.datasets import CIFAR10

        CIFAR10(root=str(root), train=True, download=True)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
        raise DataError(f"could not download CIFAR-10 into {root}: {exc}",
                        hint=f"check the network, or copy {BATCH_FOLDER}/ there by hand and set "
                             "data.download: false") from exc


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as ``(images (N, 32, 32, 3) uint8, labels (N,) int64)``.

    Raises:
        DataError: the file is not a CIFAR-10 batch.
    """
    entry = _unpickle(path)
    data = np.asarray(entry.get("data"))
    labels = np.asarray(entry.get("labels", entry.get("fine_labels", [])), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"{path} is not a CIFAR-10 batch (data {data.shape} {data.dtype}, {len(labels)} labels)",
                        hint="re-download it (data.download: true) after removing the folder")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def read_label_names(path: Path) -> tuple[str, ...]:
    """Class names from ``batches.meta``."""
    names = _unpickle(path).get("label_names")
    if not isinstance(names, list) or not names:
        raise DataError(f"{path} has no label_names list", hint="re-download CIFAR-10 (data.download: true)")
    return tuple(str(name) for name in names)


def _unpickle(path: Path) -> dict[str, Any]:
    """Load a python-2 era pickle (latin1 keeps the byte strings intact, as torchvision does)."""
    try:
        with open(path, "rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}", hint="re-download CIFAR-10 (data.download: true)") from exc
    if not isinstance(entry, dict):
        raise DataError(f"{path} is not a CIFAR-10 pickle (a {type(entry).__name__})",
                        hint="re-download CIFAR-10 (data.download: true)")
    return entry


def _fingerprint(config: DataConfig) -> str:
    """sha256 over batch file names and sizes (a stat, not 178 MB of hashing) plus conversion settings.

    Before a download the files are absent; the fingerprint then stands for
    "the official release", which the download verifies by md5.
    """
    folder = batch_folder(config)
    missing = _missing(folder)
    if missing and not config.download:
        ensure_present(config)  # raises the helpful error
    files = "official" if missing else [[name, (folder / name).stat().st_size] for name in _ALL_FILES]
    return sha256_json({"format": _FORMAT, "files": files, "image_size": config.image_size,
                        "channels": config.channels})


@register_source("cifar10", fingerprint=_fingerprint)
def load_cifar10(config: DataConfig, seed: int, *, progress: Count | None = None) -> ImageDataset:
    """CIFAR-10 with its own test split; validation is a stratified, seeded share of train.

    The batches are ready arrays, nothing is decoded: ``progress`` is not called.
    """
    folder = ensure_present(config)
    parts = [read_batch(folder / name) for name in TRAIN_BATCHES]
    train = ImageSplit(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    test = ImageSplit(*read_batch(folder / TEST_BATCH))
    class_names = read_label_names(folder / META_FILE)
    train, test, report = _convert(train, test, config)
    train, val, test, notes = complete_splits(train, None, test, config, seed)
    report.source.update({"kind": "cifar10", "path": str(folder)})
    return ImageDataset(name="cifar10", train=train, val=val, test=test, class_names=class_names,
                        fingerprint=_fingerprint(config), notes=tuple(notes), report=report)


def _convert(train: ImageSplit, test: ImageSplit, config: DataConfig) -> tuple[ImageSplit, ImageSplit, LoadReport]:
    """Apply ``data.image_size``/``data.channels`` when they differ from 32 and 3, and report it."""
    count = len(train) + len(test)
    side, channels = config.image_size or 32, config.channels or 3
    conversions: Counter[str] = Counter()
    if channels != 3:
        conversions["RGB->L"] = count
    if side != 32:
        conversions[f"32x32->{side}x{side}"] = count
    if conversions:
        train, test = (ImageSplit(np.stack([conform(img, side, channels) for img in split.images]), split.labels)
                       for split in (train, test))
    report = LoadReport(original_sizes={"32x32": count}, original_modes={"RGB": count},
                        conversions=dict(conversions))
    return train, test, report
