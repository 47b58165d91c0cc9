"""The in-memory dataset: uint8 image arrays plus integer labels, split three ways.

Images are kept as ``uint8`` arrays of shape ``(N, H, W, C)``: compact (all of
CIFAR-10 is 180 MB) and exactly what a JPEG or PNG decodes to. Conversion to
normalized float tensors happens once, on the training device, in
:mod:`mlestar.training`.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlestar.utils.io import sha256_bytes


@dataclass(frozen=True)
class ImageSplit:
    """One split: ``images`` is ``(N, H, W, C)`` uint8, ``labels`` is ``(N,)`` int64.

    ``paths`` names the source file of each image where there is one (empty
    for array-backed sources such as digits).
    """

    images: np.ndarray
    labels: np.ndarray
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C) uint8, got {self.images.shape} {self.images.dtype}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> ImageSplit:
        """Return the images at ``index`` (paths follow when present)."""
        paths = tuple(self.paths[i] for i in index) if self.paths else ()
        return ImageSplit(self.images[index], self.labels[index].astype(np.int64), paths)

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Images per class, length ``num_classes``."""
        return np.bincount(self.labels, minlength=num_classes)


@dataclass(frozen=True)
class Preprocessing:
    """The dataset's parameters of the one preprocessing path; saved in every bundle.

    :mod:`mlestar.data.preprocess` turns any image file into model input with
    them, in training and serving alike. ``mean`` and ``std`` are per channel
    on the 0..1 scale (pixel / 255).
    """

    image_size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict[str, object]:
        return {"image_size": self.image_size, "channels": self.channels,
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> Preprocessing:
        return cls(int(raw["image_size"]), int(raw["channels"]),  # type: ignore[arg-type]
                   tuple(raw["mean"]), tuple(raw["std"]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class SkippedFile:
    """A file left out while loading: ``reason`` is one of ``REASONS``."""

    path: str
    reason: str
    detail: str = ""

    REASONS = ("zero-byte", "truncated", "unreadable", "not an image")


LISTED_FILES = 50  # files named per conversion in a LoadReport; its count covers them all


@dataclass(frozen=True)
class LoadReport:
    """What a loader saw and did, for stage 1 to report.

    Attributes:
        skipped: files left out, with why.
        original_sizes: ``"WxH" -> count`` before conversion.
        original_modes: PIL mode (``"RGB"``, ``"L"``, ``"RGBA"``, ``"P"``) -> count.
        conversions: human-readable conversion -> count (``"RGBA->RGB"``, ``"28x28->32x32"``).
        converted: conversion -> the first :data:`LISTED_FILES` files it was applied to (the
            count is in ``conversions``), so a finding can name them; empty for array sources.
        empty_classes: class folders that held no usable image, per split.
        source: where the data came from (path, archive kind, cache hit or miss, seconds).
    """

    skipped: tuple[SkippedFile, ...] = ()
    original_sizes: dict[str, int] = field(default_factory=dict)
    original_modes: dict[str, int] = field(default_factory=dict)
    conversions: dict[str, int] = field(default_factory=dict)
    converted: dict[str, list[str]] = field(default_factory=dict)
    empty_classes: dict[str, list[str]] = field(default_factory=dict)
    source: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"skipped": [vars(s) for s in self.skipped], "original_sizes": self.original_sizes,
                "original_modes": self.original_modes, "conversions": self.conversions,
                "converted": self.converted, "empty_classes": self.empty_classes, "source": self.source}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LoadReport:
        """Inverse of :meth:`to_dict` (the decoded-image cache stores reports as JSON)."""
        return cls(skipped=tuple(SkippedFile(**s) for s in raw["skipped"]),
                   original_sizes=dict(raw["original_sizes"]), original_modes=dict(raw["original_modes"]),
                   conversions=dict(raw["conversions"]),
                   converted={k: list(v) for k, v in raw.get("converted", {}).items()}, empty_classes=dict(raw["empty_classes"]),
                   source=dict(raw["source"]))


@dataclass(frozen=True)
class ImageDataset:
    """Train, validation and test splits with class names and provenance.

    Attributes:
        name: source name ("digits", "cifar10", a folder name).
        class_names: label index -> class name.
        fingerprint: sha256 over the source's content; part of every cache key.
        notes: what the loader did that a user should know (splits made, conversions).
        report: files skipped, sizes and modes seen, conversions made.
    """

    name: str
    train: ImageSplit
    val: ImageSplit
    test: ImageSplit
    class_names: tuple[str, ...]
    fingerprint: str
    notes: tuple[str, ...] = field(default=())
    report: LoadReport = field(default_factory=LoadReport)

    def without_test(self) -> ImageDataset:
        """The same dataset with an empty test split, for stages that must not see it."""
        empty = ImageSplit(self.test.images[:0], self.test.labels[:0])
        return dataclasses.replace(self, test=empty)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of every image."""
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    @functools.cached_property
    def _channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self._compute_channel_stats()

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images on the 0..1 scale (computed once)."""
        return self._channel_stats

    def _compute_channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images on the 0..1 scale.

        Computed exactly from a 256-bin histogram per channel: converting all
        of CIFAR-10's 138 M values to float64 took seconds, counting them takes
        a fraction of that.
        """
        channels = self.train.images.shape[-1]
        flat = self.train.images.reshape(-1, channels)
        levels = np.arange(256, dtype=np.float64) / 255.0
        means, stds = [], []
        for c in range(channels):
            hist = np.bincount(flat[:, c], minlength=256).astype(np.float64)
            mean = float(hist @ levels / hist.sum())
            var = float(hist @ (levels - mean) ** 2 / hist.sum())
            means.append(mean)
            stds.append(max(var**0.5, 1e-3))  # a constant channel must not divide by zero
        return tuple(means), tuple(stds)

    def preprocessing(self) -> Preprocessing:
        """The normalization a model trained on this dataset expects."""
        mean, std = self.channel_stats()
        height, _, channels = self.image_shape
        return Preprocessing(image_size=height, channels=channels, mean=mean, std=std)


def fingerprint_arrays(*arrays: np.ndarray) -> str:
    """sha256 over the raw bytes and shapes of ``arrays``."""
    parts = b"".join(str(a.shape).encode() + np.ascontiguousarray(a).tobytes() for a in arrays)
    return sha256_bytes(parts)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into ``(keep, held_out)`` with ``fraction`` of each class held out.

    Every class with at least two images keeps one and holds out at least one,
    so no class vanishes from either side. Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    held: list[np.ndarray] = []
    for cls in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == cls))
        n_held = int(round(len(index) * fraction))
        n_held = min(max(n_held, 1), len(index) - 1) if len(index) >= 2 else 0
        held.append(index[:n_held])
        keep.append(index[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def split_hash(split: ImageSplit) -> str:
    """Content hash of one split: images and labels in order (what stage 1 records)."""
    return sha256_bytes(split.images.tobytes() + split.labels.astype(np.int64).tobytes())


def differing_splits(dataset: ImageDataset, expected: dict[str, str]) -> list[str]:
    """Names of the splits in ``expected`` (name -> :func:`split_hash`) whose content differs.

    An empty test split is skipped: it is masked for a stage that may not read it.
    The one check every consumer of stage 1's record makes (stages, DDP ranks,
    tuning workers); each raises its own error naming what to fix.
    """
    return [name for name, digest in expected.items()
            if not (name == "test" and len(dataset.test) == 0) and split_hash(getattr(dataset, name)) != digest]
