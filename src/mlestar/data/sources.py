"""Registry of data sources, in the timm style: ``@register_source`` plus a factory.

A source turns a :class:`~mlestar.config.schema.DataConfig` into an
:class:`ImageDataset`. The validation split always comes from training data,
stratified and seeded; a test split is made the same way only when the
source has none, and that is recorded in ``ImageDataset.notes``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

import numpy as np

from mlestar.config.catalog import suggest
from mlestar.config.schema import DataConfig
from mlestar.data.dataset import ImageDataset, ImageSplit, fingerprint_arrays, stratified_split
from mlestar.errors import DataError
from mlestar.utils.io import sha256_file

Count = Callable[[int, int], None]  # progress of one piece of work: (done, total)
SourceFn = Callable[..., ImageDataset]  # (data_config, seed, *, progress: Count | None = None) -> ImageDataset
FingerprintFn = Callable[[DataConfig], str]
_SOURCES: dict[str, SourceFn] = {}
_FINGERPRINTS: dict[str, FingerprintFn] = {}


def register_source(name: str, *, fingerprint: FingerprintFn) -> Callable[[SourceFn], SourceFn]:
    """Decorator: make ``fn(data_config, seed, *, progress=None) -> ImageDataset`` available as ``name``.

    ``progress(done, total)``, when given, follows the files a source decodes; a source of
    ready arrays (digits, CIFAR-10 batches) has nothing to follow and ignores it.

    ``fingerprint(data_config)`` must be cheap (no decoding): the runner calls
    it on every run to decide whether stage 1 can be skipped.
    """

    def wrap(fn: SourceFn) -> SourceFn:
        _SOURCES[name] = fn
        _FINGERPRINTS[name] = fingerprint
        return fn

    return wrap


def data_fingerprint(config: DataConfig) -> str:
    """Cheap fingerprint of the configured source's content."""
    create_source(config.source)
    return _FINGERPRINTS[config.source](config)


def list_sources() -> list[str]:
    """Names of every registered source."""
    return sorted(_SOURCES)


def create_source(name: str) -> SourceFn:
    """Return the loader registered as ``name`` or raise :class:`DataError`."""
    if name not in _SOURCES:
        raise DataError(f"unknown data source {name!r}{suggest(name, list(_SOURCES))}",
                        hint=f"registered sources: {', '.join(list_sources())}")
    return _SOURCES[name]


def load_dataset(config: DataConfig, seed: int, *, progress: Count | None = None) -> ImageDataset:
    """Load the configured source and split it; the one entry point stages use.

    ``progress(done, total)`` follows the decoding of image files (``imagefolder``), when there is any.
    """
    return create_source(config.source)(config, seed, progress=progress)


def cap_per_class(split: ImageSplit, cap: int | None, seed: int) -> ImageSplit:
    """Keep at most ``cap`` images per class (seeded), for quick runs and tests."""
    if cap is None:
        return split
    rng = np.random.default_rng(seed)
    index = [rng.permutation(np.flatnonzero(split.labels == c))[:cap] for c in np.unique(split.labels)]
    return split.subset(np.sort(np.concatenate(index)))


def split_train_val_test(
    images: np.ndarray, labels: np.ndarray, config: DataConfig, seed: int
) -> tuple[ImageSplit, ImageSplit, ImageSplit, list[str]]:
    """Make stratified test, then validation, splits from one pool of images."""
    rest, test = stratified_split(labels, config.test_fraction, seed)
    train_idx, val_idx = stratified_split(labels[rest], config.val_fraction, seed + 1)
    pool = ImageSplit(images, labels.astype(np.int64))
    notes = [f"no test split in the source: held out a stratified {config.test_fraction:.0%} (seed {seed})"]
    return pool.subset(rest[train_idx]), pool.subset(rest[val_idx]), pool.subset(test), notes


def hold_out(split: ImageSplit, fraction: float, seed: int) -> tuple[ImageSplit, ImageSplit]:
    """Split ``split`` into ``(kept, held_out)``, holding out a stratified, seeded ``fraction``.

    Paths follow their images. Classes with one image stay on the kept side.
    """
    keep, held = stratified_split(split.labels, fraction, seed)
    return split.subset(keep), split.subset(held)


def complete_splits(
    train: ImageSplit, val: ImageSplit | None, test: ImageSplit | None, config: DataConfig, seed: int
) -> tuple[ImageSplit, ImageSplit, ImageSplit, list[str]]:
    """Fill in the splits a source lacks, then cap training images per class.

    Same order and seeds as :func:`split_train_val_test`: a missing test split
    is held out of train first (``seed``), then a missing validation split
    (``seed + 1``). Returns the three splits and a note for each thing done.
    """
    notes: list[str] = []
    if test is None:
        train, test = hold_out(train, config.test_fraction, seed)
        notes.append(f"no test split in the source: held out a stratified {config.test_fraction:.0%} "
                     f"of train (seed {seed})")
    if val is None:
        train, val = hold_out(train, config.val_fraction, seed + 1)
        notes.append(f"validation: a stratified {config.val_fraction:.0%} of train (seed {seed + 1})")
    if config.max_per_class is not None:
        train = cap_per_class(train, config.max_per_class, seed)
        notes.append(f"training capped at {config.max_per_class} images per class (data.max_per_class)")
    return train, val, test, notes


def _digits_fingerprint(config: DataConfig) -> str:
    """Hash scikit-learn's bundled digits file without importing scikit-learn (fast re-runs)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise DataError("scikit-learn is not installed; the digits source needs it", hint="pip install scikit-learn")
    return sha256_file(Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz")


@register_source("digits", fingerprint=_digits_fingerprint)
def load_digits(config: DataConfig, seed: int, *, progress: Count | None = None) -> ImageDataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes); no network needed.

    Pixel values 0..16 are scaled to 0..255 so every source shares one range. Nothing is
    decoded: ``progress`` is not called.
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    train, val, test, notes = split_train_val_test(images, labels, config, seed)
    notes.append(f"validation: a stratified {config.val_fraction:.0%} of train (seed {seed + 1})")
    return ImageDataset(
        name="digits",
        train=cap_per_class(train, config.max_per_class, seed),
        val=val,
        test=test,
        class_names=tuple(str(i) for i in range(10)),
        fingerprint=fingerprint_arrays(images, labels),
        notes=tuple(notes),
    )
