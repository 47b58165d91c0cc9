"""Results of a search as tables: the trials (CSV, JSON), parameter importance, best trial.

One row per trial of every study of the search (the main one, then the
focused one): state, value, feasibility, epochs trained, duration, worker and
the full parameters it trained with. Importances come from
``optuna.importance`` when enough trials finished, else from a rank
correlation that works with a handful (the method used is reported with them).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from mlestar.tuning.plots import plot_history, plot_importance
from mlestar.utils.io import atomic_write_json, atomic_write_text

MIN_TRIALS_FOR_OPTUNA_IMPORTANCE = 8  # fewer finished trials give optuna.importance too little to fit


def trial_rows(study: Any, label: str) -> list[dict[str, Any]]:
    """Rows of the trials table for one study (``label``: main or focus:<component>)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        worker = t.user_attrs.get("worker") or {}
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({"study": label, "number": t.number, "state": t.state.name, "value": t.value,
                     "feasible": t.user_attrs.get("feasible"), "violations": t.user_attrs.get("violations", []),
                     "epochs": len(t.intermediate_values), "seconds": seconds,
                     "worker": f"{worker.get('host', '?')}:{worker.get('pid', '?')}" if worker else "",
                     "params": t.user_attrs.get("plan_params", t.params), "drawn": t.params,
                     "error": t.user_attrs.get("error") or t.user_attrs.get("failed_because")})
    return rows


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The feasible complete trial with the highest value (earliest on ties), or None."""
    ok = [r for r in rows if r["state"] == "COMPLETE" and r["feasible"] is not False and r["value"] is not None
          and not r["error"]]
    return max(ok, key=lambda r: (r["value"], -r["number"]), default=None)


def trials_csv(rows: list[dict[str, Any]]) -> str:
    """The trials table as CSV: fixed columns, then one column per parameter (empty when not drawn)."""
    names = sorted({key for row in rows for key in row["params"]})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["study", "number", "state", "value", "feasible", "epochs", "seconds", "worker", *names])
    for r in rows:
        writer.writerow([r["study"], r["number"], r["state"], _num(r["value"]), _flag(r["feasible"]), r["epochs"],
                         _num(r["seconds"], 2), r["worker"], *[r["params"].get(n, "") for n in names]])
    return buf.getvalue()


def _num(value: float | None, digits: int = 6) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _flag(value: bool | None) -> str:
    return "" if value is None else str(bool(value)).lower()


def param_importances(study: Any, names: list[str]) -> tuple[str, dict[str, float]]:
    """``(method, {param: importance})``, importances summing to 1 (empty when nothing varied)."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("feasible", True)]
    if len(done) >= MIN_TRIALS_FOR_OPTUNA_IMPORTANCE:
        try:
            import optuna

            found = optuna.importance.get_param_importances(study, params=None)
            if found and all(math.isfinite(v) for v in found.values()):
                return "optuna.importance (default evaluator)", dict(found)
        except (ValueError, RuntimeError, ZeroDivisionError):
            pass  # a degenerate space (a parameter that never varied): fall back below
    method = f"|Spearman rank correlation| with val accuracy ({len(done)} trials; optuna.importance needs " \
             f"{MIN_TRIALS_FOR_OPTUNA_IMPORTANCE})" if len(done) < MIN_TRIALS_FOR_OPTUNA_IMPORTANCE else \
             "|Spearman rank correlation| with val accuracy (optuna.importance failed)"
    return method, rank_importances(done, names)


def rank_importances(trials: list[Any], names: list[str]) -> dict[str, float]:
    """Normalised |rank correlation| of each parameter with the value; categories ranked by their mean value."""
    raw = {}
    for name in names:
        pairs = [(t.params[name], t.value) for t in trials if name in t.params and t.value is not None]
        if len(pairs) >= 2:
            raw[name] = abs(_spearman([_encode(pairs, i) for i in range(len(pairs))], [v for _, v in pairs]))
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()} if total > 0 else {name: 0.0 for name in raw}


def _encode(pairs: list[tuple[Any, float]], index: int) -> float:
    """A numeric stand-in for a parameter value: itself, or its category's mean objective."""
    value = pairs[index][0]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    same = [v for p, v in pairs if p == value]
    return float(np.mean(same))


def _spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho (Pearson on average ranks); 0 when either side is constant."""
    rx, ry = _ranks(np.asarray(x)), _ranks(np.asarray(y))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(values: np.ndarray) -> np.ndarray:
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):  # ties share their average rank
        same = values == value
        ranks[same] = ranks[same].mean()
    return ranks


def write_results(rows: list[dict[str, Any]], out_dir: Path, importance: tuple[str, dict[str, float]],
                  baseline: float | None = None) -> None:
    """``trials.csv``, ``trials.json``, ``optimization_history.png`` and ``param_importance.png``."""
    atomic_write_text(out_dir / "trials.csv", trials_csv(rows))
    atomic_write_json(out_dir / "trials.json", rows)
    plot_history(rows, out_dir / "optimization_history.png", baseline=baseline)
    plot_importance(importance[1], importance[0], out_dir / "param_importance.png")
