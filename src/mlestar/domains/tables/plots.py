"""Stage-1 figures for tables, each one PNG rendered in memory and written atomically.

Not through :mod:`mlestar.evaluation.plots`: importing that package loads torch, which table runs never need.

Column and class names are drawn with math parsing off, so ``$x$`` shows as typed.
Every function writes its file even when there is nothing to draw (the figure says so),
so the stage's declared outputs always exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from mlestar.utils.io import atomic_write_bytes  # noqa: E402

MAX_GRID_COLUMNS = 30  # columns drawn in the distribution grid
GRID_WIDTH = 5  # panels per row
TOP_CATEGORIES = 10  # bars per categorical panel
MAX_BARS = 30  # bars in the correlation and importance plots
DPI = 80
_PLAIN = {"parse_math": False}


def _short(name: Any, limit: int = 24) -> str:
    text = str(name)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message_figure(message: str, path: Path) -> Path:
    """A small figure holding one line of text (nothing to draw)."""
    fig, ax = plt.subplots(figsize=(5.0, 1.0))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", **_PLAIN)
    return save_plot(fig, path)


def plot_column_grid(sample: Any, kinds: dict[str, str], path: Path, *, total_rows: int) -> Path:
    """Histograms (numbers, dates) and top-category bars (categories, booleans) for up to 30 columns of ``sample``."""
    names = [n for n, k in kinds.items() if k in ("numeric", "datetime", "categorical", "boolean")]
    if not names or len(sample) == 0:
        return message_figure("no columns to draw", path)
    shown = names[:MAX_GRID_COLUMNS]
    rows = -(-len(shown) // GRID_WIDTH)
    fig, axes = plt.subplots(rows, GRID_WIDTH, figsize=(GRID_WIDTH * 3.0, rows * 2.4 + 0.6), squeeze=False)
    for ax, name in zip(axes.flat, shown):
        _column_panel(ax, sample[name], kinds[name])
        ax.set_title(f"{_short(name)} ({kinds[name]})", fontsize=8, **_PLAIN)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    left_out = f"; first {len(shown)} of {len(names)} columns" if len(shown) < len(names) else ""
    fig.suptitle(f"column distributions ({len(sample):,} of {total_rows:,} rows{left_out})")
    # Fixed margins instead of tight layout: measuring 30 panels' text costs seconds, and the grid is regular.
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.04, top=1 - 0.8 / (rows * 2.4 + 0.6), wspace=0.55, hspace=0.6)
    return save_plot(fig, path, tight=False)


def save_plot(fig: Any, path: Path, *, tight: bool = True, dpi: int = DPI) -> Path:
    """Render ``fig`` to PNG bytes, close it, write them atomically; ``tight`` trims margins (a second draw)."""
    import io

    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    finally:
        plt.close(fig)
    return atomic_write_bytes(Path(path), buf.getvalue())


def _column_panel(ax: Any, series: Any, kind: str) -> None:
    from mlestar.domains.tables.probes import as_number

    ax.tick_params(labelsize=6)
    ax.locator_params(axis="x", nbins=4)
    if kind in ("categorical", "boolean"):
        counts = series.astype("str").value_counts(dropna=False).iloc[:TOP_CATEGORIES]
        ax.barh(np.arange(len(counts)), counts.to_numpy()[::-1], color="tab:blue")
        ax.set_yticks(np.arange(len(counts)), [_short(v, 12) for v in counts.index][::-1], **_PLAIN)
        return
    values = as_number(series, kind).to_numpy()
    values = values[np.isfinite(values)]
    ax.set_yticks([])
    if len(values):
        counts, edges = np.histogram(values, bins=40)
        ax.stairs(counts, edges, fill=True, color="tab:blue")  # one artist, not 40 bars: fast to draw


def plot_target(target: dict[str, Any], sample_values: np.ndarray, path: Path) -> Path:
    """Class counts per split (classification) or a histogram of the target (regression)."""
    if "class_counts" in target:
        names = [_short(n, 16) for n in target["class_names"]]
        fig, ax = plt.subplots(figsize=(min(max(5.0, 0.5 * len(names) + 3), 24.0), 3.5))
        x = np.arange(len(names))
        for offset, (split, counts) in zip((-0.27, 0.0, 0.27), target["class_counts"].items()):
            ax.bar(x + offset, counts, width=0.27, label=split)
        ax.set_xticks(x, names, rotation=45 if len(names) > 8 else 0, ha="right" if len(names) > 8 else "center")
        ax.set(ylabel="rows", title=f"class counts (imbalance ratio {target['imbalance_ratio']:.2f})")
        ax.legend()
        return save_plot(fig, path)
    fig, ax = plt.subplots(figsize=(6.0, 3.5))
    ax.hist(sample_values[np.isfinite(sample_values)], bins=50, color="tab:blue")
    ax.set(xlabel="target", ylabel="rows", title=f"target distribution (skewness {target['skew']:.2f})")
    return save_plot(fig, path)


def plot_bars(values: dict[str, float], path: Path, *, title: str, xlabel: str) -> Path:
    """Horizontal bars of the (up to 30) largest ``values``, largest on top."""
    top = sorted(values.items(), key=lambda item: -item[1])[:MAX_BARS]
    if not top:
        return message_figure(f"{title}: nothing to show", path)
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(top) + 1.2))
    ax.barh([_short(n) for n, _ in top][::-1], [v for _, v in top][::-1], color="tab:blue")
    ax.set_yticks(range(len(top)), [_short(n) for n, _ in top][::-1], fontsize=7, **_PLAIN)
    ax.set(xlabel=xlabel, title=title)
    return save_plot(fig, path)
