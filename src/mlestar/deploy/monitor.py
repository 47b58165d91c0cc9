"""Drift monitoring: how far served inputs and predictions have moved from the training data.

The bundle's ``reference.json`` holds what stage 1 measured on the training
split: per-channel pixel mean and standard deviation (0..1 scale) and the
class frequencies. While serving, :class:`DriftMonitor` keeps running sums
of every input pixel, taken after the image is converted and resized to the
model's size and before normalization (so it is on the same scale as the
reference), and counts predicted classes.

The drift score is the sum of two terms, 0 when serving looks like training:

- input shift: the mean over channels of ``|mean_c - ref_mean_c| / ref_std_c``,
  how many training standard deviations each channel's average moved
  (0.5 on a channel means images are, on average, half a standard deviation
  brighter or darker there);
- class shift: the total variation distance ``0.5 * sum_k |p_k - ref_p_k|``
  between predicted-class and training-class frequencies, in [0, 1] (the
  share of predictions that would have to change class to match training).

Neither needs labels, so the score is an accuracy proxy: it rises when the
model sees inputs unlike its training data or predicts a different mix of
classes. Both terms are noisy over a few images (the class term's sampling
noise is about ``sqrt(K / n)`` for ``K`` classes after ``n`` predictions), so
read it over hundreds of requests.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DriftReference:
    """Training statistics the served traffic is compared with.

    Attributes:
        channel_mean, channel_std: per channel, 0..1 pixel scale, training split.
        class_frequencies: share of training images per class, in label order; sums to 1.
    """

    channel_mean: tuple[float, ...]
    channel_std: tuple[float, ...]
    class_frequencies: tuple[float, ...]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DriftReference:
        """Read ``reference.json``; ``ValueError`` when its fields are missing or inconsistent."""
        try:
            mean, std = tuple(map(float, raw["channel_mean"])), tuple(map(float, raw["channel_std"]))
            freqs = tuple(map(float, raw["class_frequencies"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"reference lacks or garbles a field: {exc}") from exc
        if len(mean) != len(std) or not mean or not freqs or min(std) <= 0:
            raise ValueError("reference needs one mean and one positive std per channel and class frequencies")
        return cls(mean, std, freqs)

    def to_dict(self) -> dict[str, Any]:
        return {"channel_mean": list(self.channel_mean), "channel_std": list(self.channel_std),
                "class_frequencies": list(self.class_frequencies)}


def reference_from_analysis(analysis: dict[str, Any]) -> DriftReference:
    """The drift reference from stage 1's ``analysis.json`` (training split statistics).

    Raises:
        ValueError: when the analysis lacks channel statistics or training class counts.
    """
    counts = np.asarray(analysis["class_counts"]["train"], dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("the training split has no images to take class frequencies from")
    # A constant training channel has std 0; keep the score finite the way normalization does.
    std = [max(float(s), 1e-3) for s in analysis["channel_std"]]
    return DriftReference(tuple(map(float, analysis["channel_mean"])), tuple(std),
                          tuple((counts / counts.sum()).tolist()))


class DriftMonitor:
    """Running input and prediction statistics, and their drift score against a reference.

    Thread-safe: requests observe from worker threads while ``/metrics``
    reads from the event loop. With no reference every statistic is still
    kept but the score is ``None``.
    """

    def __init__(self, channels: int, num_classes: int, reference: DriftReference | None = None) -> None:
        if reference is not None and (len(reference.channel_mean) != channels
                                      or len(reference.class_frequencies) != num_classes):
            raise ValueError(f"drift reference describes {len(reference.channel_mean)} channels and "
                             f"{len(reference.class_frequencies)} classes; the model has {channels} and {num_classes}")
        self.reference = reference
        self._lock = threading.Lock()
        self._images = 0
        self._pixels = 0
        self._sum = np.zeros(channels, dtype=np.float64)
        self._sum_sq = np.zeros(channels, dtype=np.float64)
        self._classes = np.zeros(num_classes, dtype=np.int64)

    def observe_inputs(self, pixels: np.ndarray) -> None:
        """Add a batch of un-normalized inputs, float ``(N, C, H, W)`` on the 0..1 scale."""
        flat = pixels.reshape(pixels.shape[0], pixels.shape[1], -1).astype(np.float64)
        sums, sums_sq = flat.sum(axis=(0, 2)), np.square(flat).sum(axis=(0, 2))
        with self._lock:
            self._images += pixels.shape[0]
            self._pixels += flat.shape[0] * flat.shape[2]
            self._sum += sums
            self._sum_sq += sums_sq

    def observe_predictions(self, indices: list[int] | np.ndarray) -> None:
        """Count predicted class indices."""
        counts = np.bincount(np.asarray(indices, dtype=np.int64), minlength=len(self._classes))
        with self._lock:
            self._classes += counts[: len(self._classes)]

    def snapshot(self) -> dict[str, Any]:
        """Current statistics and drift (see the module docstring for the formula).

        Returns:
            ``images``, ``predictions``, ``channel_mean``, ``channel_std``,
            ``class_frequencies`` (empty lists before any data), and
            ``input_shift``, ``class_shift``, ``score`` (``None`` without a
            reference or before any image and prediction).
        """
        with self._lock:
            images, pixels, sums, sums_sq = self._images, self._pixels, self._sum.copy(), self._sum_sq.copy()
            classes = self._classes.copy()
        mean = sums / pixels if pixels else None
        std = np.sqrt(np.maximum(sums_sq / pixels - mean**2, 0.0)) if mean is not None else None
        freqs = classes / classes.sum() if classes.sum() else None
        shifts = self._shifts(mean, freqs)
        return {"images": images, "predictions": int(classes.sum()),
                "channel_mean": [] if mean is None else mean.tolist(),
                "channel_std": [] if std is None else std.tolist(),
                "class_frequencies": [] if freqs is None else freqs.tolist(), **shifts}

    def score(self) -> float:
        """The drift score, ``nan`` when it cannot be computed yet (for a Prometheus gauge)."""
        value = self.snapshot()["score"]
        return float("nan") if value is None else float(value)

    def _shifts(self, mean: np.ndarray | None, freqs: np.ndarray | None) -> dict[str, float | None]:
        ref = self.reference
        if ref is None or mean is None or freqs is None:
            return {"input_shift": None, "class_shift": None, "score": None}
        input_shift = float(np.mean(np.abs(mean - np.asarray(ref.channel_mean)) / np.asarray(ref.channel_std)))
        class_shift = float(0.5 * np.abs(freqs - np.asarray(ref.class_frequencies)).sum())
        return {"input_shift": input_shift, "class_shift": class_shift, "score": input_shift + class_shift}
