"""Report figures, each written as one PNG.

Every function renders a matplotlib figure into memory, closes it, and writes
the bytes with :func:`mlestar.utils.io.atomic_write_bytes`, so a killed run
never leaves a half-written image and no figure outlives its call. Class
names are drawn as plain matplotlib text with math parsing off: a class named
``<script>`` or ``$x$`` shows exactly those characters, and a name can never
become markup in the HTML report that embeds the image.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mlestar.utils.io import atomic_write_bytes  # noqa: E402

_DPI = 100
_ANNOTATE_MAX_CLASSES = 20  # beyond this, cell numbers overlap and become unreadable
_TICK_LABEL_MAX_CLASSES = 60  # beyond this, tick labels are a solid smear
_MAX_FIG_INCHES = 24.0  # keeps a 1000-class plot to a few MB
_PLAIN = {"parse_math": False}  # text properties: show "$" literally, never mathtext


def save_figure(fig: Figure, path: Path, *, tight: bool = True) -> Path:
    """Render ``fig`` to PNG bytes, close it, and write them atomically (every mlestar plot goes here).

    ``tight`` crops the figure to what is drawn, which costs a second draw (matplotlib lays the
    figure out once to measure it); a figure laid out to fill its canvas passes ``False``.
    """
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight" if tight else None)
    finally:
        plt.close(fig)
    return atomic_write_bytes(Path(path), buf.getvalue())


_save = save_figure


def _side(num_items: int, per_item: float, minimum: float) -> float:
    """Figure side in inches growing with ``num_items``, capped at ``_MAX_FIG_INCHES``."""
    return float(min(max(minimum, per_item * num_items + 2.0), _MAX_FIG_INCHES))


def _short(name: str, limit: int = 18) -> str:
    """``name`` cut to ``limit`` characters with an ellipsis, for cramped titles."""
    name = str(name)
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _class_ticks(ax: Axes, class_names: list[str], *, axis: str) -> None:
    """Label ``axis`` ("x" or "y") with class names, or hide them if there are too many."""
    set_ticks = ax.set_xticks if axis == "x" else ax.set_yticks
    if len(class_names) > _TICK_LABEL_MAX_CLASSES:
        set_ticks([])
        return
    rotation = 90 if axis == "x" else 0  # vertical x labels never collide, whatever their length
    set_ticks(np.arange(len(class_names)), labels=[str(n) for n in class_names], rotation=rotation, **_PLAIN)


# --- confusion matrix ------------------------------------------------------


def plot_confusion_matrix(cm: np.ndarray, class_names: list[str], path: Path, normalize: bool = False) -> Path:
    """Heatmap of a confusion matrix (rows = true class, columns = predicted).

    With ``normalize`` each row is divided by its total, so a cell reads as
    "fraction of this true class predicted as that one" (an all-zero row stays
    zero). Cell values (counts, or fractions when normalized) are written in
    the cells when there are at most 20 classes. Returns ``path``.
    """
    values = _normalized(cm) if normalize else np.asarray(cm, dtype=np.float64)
    side = _side(len(class_names), 0.5, 4.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(values.max(), 1.0))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    _class_ticks(ax, class_names, axis="x")
    _class_ticks(ax, class_names, axis="y")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix" + (" (row-normalized)" if normalize else " (counts)"))
    if len(class_names) <= _ANNOTATE_MAX_CLASSES:
        _annotate_cells(ax, values, normalize)
    return _save(fig, path)


def _normalized(cm: np.ndarray) -> np.ndarray:
    """Rows divided by their sums; an empty row (class absent) stays all zero."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return cm / np.maximum(totals, 1.0)


def _annotate_cells(ax: Axes, values: np.ndarray, normalize: bool) -> None:
    """Write each cell's value, white on dark cells so it stays legible."""
    threshold = values.max() / 2.0 if values.size else 0.0
    for (row, col), value in np.ndenumerate(values):
        text = f"{value:.2f}" if normalize else f"{int(round(value))}"
        ax.text(col, row, text, ha="center", va="center", fontsize=8,
                color="white" if value > threshold else "black")


# --- class distribution ----------------------------------------------------


def plot_class_distribution(counts_by_split: dict[str, np.ndarray], class_names: list[str], path: Path) -> Path:
    """Grouped bar chart: for each class, one bar per split (``{"train": counts, ...}``).

    Each counts array has one entry per class, in label order. Returns ``path``.
    """
    splits = list(counts_by_split)
    width = 0.8 / max(len(splits), 1)  # the group of bars fills 80% of a class slot
    fig, ax = plt.subplots(figsize=(_side(len(class_names), 0.35, 6.0), 4.0))
    x = np.arange(len(class_names))
    for i, split in enumerate(splits):
        counts = np.asarray(counts_by_split[split])
        ax.bar(x + (i - (len(splits) - 1) / 2) * width, counts, width, label=split)
    _class_ticks(ax, class_names, axis="x")
    ax.set_ylabel("images")
    ax.set_title("images per class")
    if splits:
        legend = ax.legend()
        for text in legend.get_texts():
            text.set_parse_math(False)
    return _save(fig, path)


# --- sample grid -----------------------------------------------------------


def plot_sample_grid(images: np.ndarray, labels: np.ndarray, class_names: list[str], path: Path,
                     per_class: int = 8, seed: int = 0, *, max_classes: int = 32) -> Path:
    """A grid of example images: one row per class, up to ``per_class`` per row.

    ``images`` is ``(N, H, W, C)`` uint8 with ``C`` of 1 (drawn in gray), 3
    or 4. Images are picked at random with ``seed`` (same seed, same grid)
    and drawn with nearest-neighbour scaling so 8x8 digits stay crisp pixels
    rather than blurs. A class with no images gets an empty labelled row.
    Only the first ``max_classes`` classes (label order) get a row: a
    thousand-class grid would take minutes to draw and be unreadable.
    Returns ``path``.
    """
    images = _check_images(images)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    shown = list(class_names)[:max_classes]
    rows, cols = max(len(shown), 1), max(per_class, 1)
    # One mosaic drawn with one imshow: 80 separate axes took seconds to render on CIFAR-10.
    height, width, channels = images.shape[1:]
    gap = max(1, height // 8)
    mosaic = np.full((rows * (height + gap), cols * (width + gap), channels), 255, dtype=np.uint8)
    for cls in range(len(shown)):
        index = np.flatnonzero(labels == cls)
        chosen = rng.choice(index, size=min(per_class, len(index)), replace=False) if len(index) else index
        for col, i in enumerate(chosen):
            top, left = cls * (height + gap), col * (width + gap)
            mosaic[top:top + height, left:left + width] = images[i]
    fig, ax = plt.subplots(figsize=(min(cols * 1.0 + 1.5, _MAX_FIG_INCHES), min(rows * 1.0, _MAX_FIG_INCHES)))
    _show_image(ax, mosaic)
    ax.set_yticks([(r + 0.5) * (height + gap) for r in range(len(shown))])
    ax.set_yticklabels([_short(name) for name in shown], fontsize=9, **_PLAIN)
    ax.tick_params(axis="y", length=0)
    return _save(fig, path)


def _check_images(images: np.ndarray) -> np.ndarray:
    """Return ``images`` if it is ``(N, H, W, C)`` with ``C`` in 1, 3, 4; else raise ValueError."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"images must be (N, H, W, C) with C in 1, 3, 4; got {images.shape}")
    return images


def _show_image(ax: Axes, image: np.ndarray | None) -> None:
    """Draw one HWC image (or nothing) on ``ax`` with no ticks or frame."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if image is None:
        return
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")


# --- training curves -------------------------------------------------------


def plot_training_curves(history: list[dict[str, Any]], path: Path) -> Path:
    """Loss and accuracy per epoch (train and val), plus learning rate when logged.

    Each entry may hold ``epoch``, ``train_loss``, ``val_loss``,
    ``train_accuracy``, ``val_accuracy`` and ``lr``; missing or ``None``
    values are skipped (a run without validation still plots). Two panels,
    or three when any entry has ``lr``. Returns ``path``.

    Raises:
        ValueError: ``history`` is empty.
    """
    if not history:
        raise ValueError("no training history to plot")
    has_lr = any(entry.get("lr") is not None for entry in history)
    fig, axes = plt.subplots(1, 3 if has_lr else 2, figsize=(15.0 if has_lr else 10.0, 4.0), squeeze=False)
    _plot_series(axes[0][0], history, ["train_loss", "val_loss"], "loss")
    _plot_series(axes[0][1], history, ["train_accuracy", "val_accuracy"], "accuracy")
    if has_lr:
        _plot_series(axes[0][2], history, ["lr"], "learning rate")
    return _save(fig, path)


def _plot_series(ax: Axes, history: list[dict[str, Any]], keys: list[str], title: str) -> None:
    """One line per key against ``epoch`` (or the entry's position when absent)."""
    for key in keys:
        points = [(entry.get("epoch", i), entry[key]) for i, entry in enumerate(history)
                  if entry.get(key) is not None]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if len(points) < 30 else None, markersize=3, label=key)
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_lines():
        ax.legend()


# --- calibration -----------------------------------------------------------


def plot_reliability_diagram(bin_data: dict[str, Any], path: Path, note: str | None = None) -> Path:
    """Reliability diagram from :func:`~mlestar.evaluation.metrics.expected_calibration_error` bin data.

    Top panel: accuracy per confidence bin against the diagonal of perfect
    calibration, with the gap to each bin's mean confidence shaded. Bottom
    panel: how many samples fall in each bin. ``note`` (e.g. the temperature
    and the ECE before scaling) is a second title line. Returns ``path``.
    """
    edges = np.asarray(bin_data["edges"], dtype=np.float64)
    centers, widths = (edges[:-1] + edges[1:]) / 2.0, np.diff(edges)
    accuracy = _none_to_nan(bin_data["accuracy"])
    confidence = _none_to_nan(bin_data["confidence"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.0, 6.0), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    filled = ~np.isnan(accuracy)
    top.bar(centers[filled], accuracy[filled], widths[filled], edgecolor="black", label="accuracy")
    top.bar(centers[filled], (confidence - accuracy)[filled], widths[filled], bottom=accuracy[filled],
            color="red", alpha=0.3, label="gap to confidence")
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set(ylim=(0, 1), ylabel="accuracy")
    ece = bin_data.get("ece")
    top.set_title("reliability diagram" + (f" (ECE {ece:.3f})" if ece is not None else "")
                  + (f"\n{note}" if note else ""))
    top.legend(loc="upper left")
    bottom.bar(centers, bin_data["counts"], widths, color="gray", edgecolor="black")
    bottom.set(xlim=(0, 1), xlabel="confidence", ylabel="samples")
    return _save(fig, path)


def _none_to_nan(values: list[float | None]) -> np.ndarray:
    """Per-bin means with empty bins (``None``) as NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


# --- misclassified examples ------------------------------------------------


def plot_misclassified(images: np.ndarray, true: np.ndarray, pred: np.ndarray, confidence: np.ndarray,
                       class_names: list[str], path: Path, max_images: int = 32) -> Path:
    """Grid of wrong predictions, most confident mistake first.

    Each tile is titled ``true→pred (conf)``. At most ``max_images`` tiles,
    8 per row; with no mistakes the figure says so. ``images`` is
    ``(N, H, W, C)`` uint8 aligned with ``true``, ``pred`` and ``confidence``
    (the predicted class's probability). Returns ``path``.
    """
    images = _check_images(images)
    true, pred, confidence = np.asarray(true), np.asarray(pred), np.asarray(confidence, dtype=np.float64)
    wrong = np.flatnonzero(true != pred)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:max_images]
    if len(wrong) == 0:
        return _save(_message_figure("no misclassified images"), path)
    cols = min(8, len(wrong))
    # One mosaic in one axes that fills the canvas, titles as text in its bands: 32 axes of their own,
    # cropped by a second draw, took 3x as long (0.73 s against 0.24 s, benchmarks/stage5.py, 2-core CPU).
    mosaic, origins = _titled_mosaic(images[wrong], cols)
    fig = plt.figure(figsize=(cols * 1.8, cols * 1.8 * mosaic.shape[0] / mosaic.shape[1]))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    _show_image(ax, mosaic)
    width = images.shape[2]
    for (top, left), index in zip(origins, wrong):
        title = f"{_short(class_names[true[index]], 10)}→{_short(class_names[pred[index]], 10)}" \
                f" ({confidence[index]:.2f})"
        ax.text(left + width / 2, top - 1, title, ha="center", va="bottom", fontsize=7, **_PLAIN)
    return _save(fig, path, tight=False)


def _titled_mosaic(tiles: np.ndarray, cols: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``tiles`` (N, H, W, C) laid out ``cols`` per row on white, with a band above each for its title.

    Returns the mosaic and the (top, left) pixel of each tile in it.
    """
    count, height, width, channels = tiles.shape
    gap, band = max(1, width // 8), max(4, height * 3 // 10)  # band: one line of 7-point text at the tile's scale
    step_y, step_x = band + height + gap, width + gap
    rows = -(-count // cols)
    mosaic = np.full((rows * step_y, cols * step_x - gap, channels), 255, dtype=np.uint8)
    origins = [(band + (k // cols) * step_y, (k % cols) * step_x) for k in range(count)]
    for (top, left), tile in zip(origins, tiles):
        mosaic[top:top + height, left:left + width] = tile
    return mosaic, origins


def _message_figure(message: str) -> Figure:
    """A small figure holding one centred line of text."""
    fig, ax = plt.subplots(figsize=(4.0, 1.0))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", **_PLAIN)
    return fig


# --- data analysis (stage 1) -------------------------------------------------

_HISTOGRAM_SAMPLE = 5_000  # images: enough for smooth histograms, fast on any dataset size
_MEAN_GRID_COLUMNS = 10  # ten classes (CIFAR-10, digits) fit one row
_CHANNEL_STYLES = {  # channel count -> (name, colour) per channel
    1: (("gray", "gray"),),
    2: (("gray", "gray"), ("alpha", "black")),
    3: (("red", "tab:red"), ("green", "tab:green"), ("blue", "tab:blue")),
    4: (("red", "tab:red"), ("green", "tab:green"), ("blue", "tab:blue"), ("alpha", "black")),
}


def plot_channel_histograms(images: np.ndarray, path: Path, *, max_images: int = _HISTOGRAM_SAMPLE,
                            seed: int = 0) -> Path:
    """Histogram of pixel values (0..255) for each channel, as the fraction of pixels per value.

    ``images`` is ``(N, H, W, C)`` uint8 with ``C`` of 1 to 4. When there are
    more than ``max_images`` images a random sample of that many is used
    (same ``seed``, same sample) and the title says so. With no images the
    figure says so. Returns ``path``.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in _CHANNEL_STYLES:
        raise ValueError(f"images must be (N, H, W, C) with C in 1..4; got {images.shape}")
    if len(images) == 0:
        return _save(_message_figure("no images"), path)
    sample = _sample_images(images, max_images, seed)
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    for channel, (name, colour) in enumerate(_CHANNEL_STYLES[images.shape[-1]]):
        counts = np.bincount(sample[..., channel].ravel(), minlength=256)
        ax.plot(np.arange(256), counts / max(counts.sum(), 1), color=colour, label=name, linewidth=1.2)
    ax.set(xlim=(0, 255), xlabel="pixel value", ylabel="fraction of pixels")
    shown = f"random sample of {len(sample):,} of {len(images):,} images" if len(sample) < len(images) \
        else f"all {len(images):,} images"
    ax.set_title(f"pixel values per channel ({shown})")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _sample_images(images: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """``images`` itself when it has at most ``limit`` entries, else a seeded random subset in index order."""
    if len(images) <= limit:
        return images
    chosen = np.sort(np.random.default_rng(seed).choice(len(images), size=limit, replace=False))
    return images[chosen]


def plot_mean_images(images: np.ndarray, labels: np.ndarray, class_names: list[str], path: Path, *,
                     max_classes: int = 64) -> Path:
    """A grid of the mean image of each class, titled with the class name and image count.

    ``images`` is ``(N, H, W, C)`` uint8 (``C`` of 1, 3 or 4) aligned with
    integer ``labels``. A class without images gets an empty tile. Only the
    first ``max_classes`` classes are drawn (the title says when some are
    left out). Returns ``path``.
    """
    images, labels = _check_images(images), np.asarray(labels)
    shown = [str(name) for name in class_names][:max_classes]
    if not shown:
        return _save(_message_figure("no classes"), path)
    cols = min(_MEAN_GRID_COLUMNS, len(shown))
    rows = -(-len(shown) // cols)  # ceiling division
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.8 + 0.6), squeeze=False)
    for index, ax in enumerate(axes.flat):
        mean, count = _class_mean(images, labels, index) if index < len(shown) else (None, 0)
        _show_image(ax, mean)
        if index < len(shown):
            ax.set_title(f"{_short(shown[index], 14)} ({count})", fontsize=8, **_PLAIN)
    left_out = f" (first {len(shown)} of {len(class_names)} classes)" if len(shown) < len(class_names) else ""
    fig.suptitle("mean image per class" + left_out)
    return _save(fig, path)


def _class_mean(images: np.ndarray, labels: np.ndarray, cls: int) -> tuple[np.ndarray | None, int]:
    """``(mean image as uint8, image count)`` of class ``cls``; ``(None, 0)`` when it has no images."""
    members = images[labels == cls]
    if len(members) == 0:
        return None, 0
    mean = members.sum(axis=0, dtype=np.float64) / len(members)
    return np.round(mean).astype(np.uint8), len(members)
