"""Plots of stage 4 and 6 for tables: learning curves, feature importance, the search history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlestar.domains.tables.plots import plt, save_plot as save_figure

TOP_FEATURES = 25  # bars in an importance plot


def plot_learning_curve(curve: dict[str, dict[str, list[float]]], path: Path, *,
                        best_iteration: int | None) -> Path:
    """Train and validation metric per boosting round, the kept round marked; a note when none."""
    fig, ax = plt.subplots(figsize=(7, 4))
    if not curve:
        ax.text(0.5, 0.5, "this learner trains without rounds: no learning curve", ha="center", va="center")
        ax.set_axis_off()
        return save_figure(fig, path)
    metric, values = next(iter(curve.items()))
    for split, series in values.items():
        ax.plot(range(1, len(series) + 1), series, label=split)
    if best_iteration:
        ax.axvline(best_iteration, color="grey", linestyle="--", label=f"kept: round {best_iteration}")
    ax.set(xlabel="boosting round", ylabel=metric, title=f"Learning curve ({metric})")
    ax.legend()
    return save_figure(fig, path)


def plot_importance(importance: dict[str, float], path: Path, *, title: str = "Permutation importance "
                                                                              "(validation)") -> Path:
    """Horizontal bars of the largest importances, largest on top."""
    items = list(importance.items())[:TOP_FEATURES][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(items) + 1.2))
    ax.barh([name for name, _ in items], [value for _, value in items], color="#4c72b0")
    ax.set(xlabel="drop in score when the column is shuffled", title=title)
    return save_figure(fig, path)


def plot_history(values: list[float | None], path: Path, *, metric: str, higher_is_better: bool) -> Path:
    """Each trial's validation score and the best so far."""
    fig, ax = plt.subplots(figsize=(7, 4))
    points = [(i + 1, v) for i, v in enumerate(values) if v is not None]
    best: list[Any] = []
    for _, v in points:
        best.append(v if not best else (max if higher_is_better else min)(best[-1], v))
    ax.scatter([i for i, _ in points], [v for _, v in points], s=14, label="trial")
    ax.plot([i for i, _ in points], best, color="C1", label="best so far")
    ax.set(xlabel="trial", ylabel=f"validation {metric}", title="Search history")
    ax.legend()
    return save_figure(fig, path)
