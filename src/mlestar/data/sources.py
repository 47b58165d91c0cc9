"""Registry of data sources, in the timm style: ``@register_source`` plus a factory.

A source turns a :class:`~mlestar.config.schema.DataConfig` into an
:class:`ImageDataset`. The validation split always comes from training data,
stratified and seeded; a test split is made the same way only when the
source has none, and that is recorded in ``ImageDataset.notes``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from mlestar.config.catalog import suggest
from mlestar.config.schema import DataConfig
from mlestar.data.dataset import ImageDataset, ImageSplit, fingerprint_arrays, stratified_split
from mlestar.errors import DataError

SourceFn = Callable[[DataConfig, int], ImageDataset]
_SOURCES: dict[str, SourceFn] = {}


def register_source(name: str) -> Callable[[SourceFn], SourceFn]:
    """Decorator: make ``fn(data_config, seed) -> ImageDataset`` available as ``name``."""

    def wrap(fn: SourceFn) -> SourceFn:
        _SOURCES[name] = fn
        return fn

    return wrap


def list_sources() -> list[str]:
    """Names of every registered source."""
    return sorted(_SOURCES)


def create_source(name: str) -> SourceFn:
    """Return the loader registered as ``name`` or raise :class:`DataError`."""
    if name not in _SOURCES:
        raise DataError(f"unknown data source {name!r}{suggest(name, list(_SOURCES))}",
                        hint=f"registered sources: {', '.join(list_sources())}")
    return _SOURCES[name]


def load_dataset(config: DataConfig, seed: int) -> ImageDataset:
    """Load the configured source and split it; the one entry point stages use."""
    return create_source(config.source)(config, seed)


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


@register_source("digits")
def load_digits(config: DataConfig, seed: int) -> ImageDataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes); no network needed.

    Pixel values 0..16 are scaled to 0..255 so every source shares one range.
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
