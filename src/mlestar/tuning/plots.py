"""Search figures, each one PNG written atomically: history, parameter importance, ablation impact.

Every function draws with matplotlib's Agg backend into memory, closes the
figure and writes the bytes through :func:`mlestar.evaluation.plots.save_figure`.
With nothing to show (refinement disabled, no finished trial) the figure says
so in words rather than being left out, so the stage's outputs are always there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: servers and CI have no display

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.figure import Figure  # noqa: E402

from mlestar.evaluation.plots import save_figure  # noqa: E402

_STYLE = {"COMPLETE": ("tab:blue", "o", "complete"), "PRUNED": ("tab:gray", "x", "pruned"),
          "INFEASIBLE": ("tab:red", "s", "infeasible")}


_save = save_figure


def _message(path: Path, title: str, message: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, parse_math=False)
    return _save(fig, path)


def plot_history(rows: list[dict[str, Any]], path: Path, *, baseline: float | None = None) -> Path:
    """Validation accuracy per trial in completion order, the best feasible value so far, the baseline."""
    title = "Optimization history"
    done = [r for r in rows if r["state"] in ("COMPLETE", "PRUNED") and r["value"] is not None]
    if not done:
        return _message(path, title, "no finished trial")
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind, (color, marker, label) in _STYLE.items():
        points = [(i, r["value"]) for i, r in enumerate(done) if _kind(r) == kind]
        if points:
            ax.scatter(*zip(*points), c=color, marker=marker, label=label, zorder=3)
    best, line = float("-inf"), []
    for r in done:
        best = max(best, r["value"]) if _kind(r) == "COMPLETE" else best
        line.append(best if best > float("-inf") else float("nan"))
    ax.step(range(len(done)), line, where="post", color="tab:green", label="best feasible so far")
    if baseline is not None:
        ax.axhline(baseline, color="tab:orange", linestyle="--", label="stage 4 baseline")
    ax.set(xlabel="trial (completion order)", ylabel="validation accuracy", title=title)
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def _kind(row: dict[str, Any]) -> str:
    if row["feasible"] is False:
        return "INFEASIBLE"
    return "PRUNED" if row["state"] == "PRUNED" else "COMPLETE"


def plot_importance(importances: dict[str, float], method: str, path: Path) -> Path:
    """Horizontal bars of parameter importance, largest on top; the method in the caption."""
    title = "Parameter importance"
    if not importances:
        return _message(path, title, f"no parameter to rank ({method})")
    names = sorted(importances, key=importances.get)  # type: ignore[arg-type]
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(names) + 1.5))
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set(xlabel="importance (sums to 1)", title=title)
    ax.text(0, -0.25, method, transform=ax.transAxes, fontsize="small", va="top", parse_math=False)
    return _save(fig, path)


def plot_ablation(rows: list[dict[str, Any]], path: Path) -> Path:
    """Bars of validation accuracy lost when each component is switched off (positive: it helps)."""
    title = "Ablation: accuracy lost without each component"
    if not rows:
        return _message(path, title, "no ablation ran")
    rows = sorted(rows, key=lambda r: r["impact"])
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(rows) + 1.5))
    colors = ["tab:green" if r["impact"] > 0 else "tab:red" for r in rows]
    ax.barh([r["component"] for r in rows], [r["impact"] for r in rows], color=colors)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set(xlabel="best trial val accuracy minus ablated val accuracy", title=title)
    return _save(fig, path)
