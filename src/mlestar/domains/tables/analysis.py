"""Stage 1 for tables: what the table holds, what is wrong with it, what to do about it.

:func:`analyze_table` runs every check on a :class:`TableDataset` and writes the
stage's files (see :data:`OUTPUTS`). The profile is over the *training rows*
(train and validation splits together); the test split is read only for the
drift check and for rows it shares with training.

Cheap checks see every row, vectorised: missing shares, duplicate rows and
columns (via pandas' per-column hashing), outlier counts, the target. The
expensive ones run on seeded samples and the report says so: the value
shares that decide near-constant columns and the IQR bounds (then counted
exactly on every row), mutual information, adversarial validation, the
single-column leakage probes and the plots (:mod:`.probes`, :mod:`.plots`).
A million rows by fifty columns takes well under half a minute on two cores.

Findings are ``{"grade", "check", "message", "count", "items"}`` dicts, most
severe first; ``blocking`` ones (a feature that alone predicts the target)
are for the caller to stop on, after the files are written.
"""

from __future__ import annotations

import functools
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mlestar.domains.tables import probes
from mlestar.domains.tables.dataset import SPLITS, TableDataset, dataset_record
from mlestar.domains.tables.findings import MAX_ITEMS, findings, recommend, stage_metrics
from mlestar.domains.tables.progress import Progress, StepCounter, silent

SAMPLE_ROWS = 50_000  # value shares, IQR bounds and plots are read off a sample this size
NEAR_CONSTANT_SHARE = 0.99  # one value in at least this share of rows: the column says almost nothing
EXACT_SHARE_FROM = 0.95  # a sampled top share above this is recounted on every row
IQR_FACTOR = 1.5
DRIFT_COLUMN_SHARE = 0.1  # columns with at least this share of the adversarial gain are named
DRIFT_MAX_COLUMNS = 5
LEAK_AUC = 0.99  # one column alone scoring this (ROC AUC) or LEAK_R2 (R^2) is a leak suspect
LEAK_R2 = 0.99
ID_AUC = 0.6  # an id-like column scoring this (or ID_R2, or |Spearman| ID_SPEARMAN) carries target information
ID_R2 = 0.1
ID_SPEARMAN = 0.3
OUTPUTS = ("analysis.json", "dataset.json", "recommendations.json", "report.md", "report.html", "report.json",
           "column_distributions.png", "target_distribution.png", "target_correlation.png",
           "adversarial_importance.png")
_PROBE_KINDS = ("numeric", "boolean", "datetime", "categorical")
STEPS_LABEL = "situation analysis: profile, duplicates, target, correlation, drift, leakage, plots, report"
STEPS = 8
DRIFT_LABEL = "situation analysis: drift check folds"
LEAKAGE_LABEL = "situation analysis: leakage probes (columns)"


@dataclass(frozen=True)
class TableAnalysis:
    """What :func:`analyze_table` computed: ``analysis.json``, recommendations, the dataset record,
    the stage metrics (catalog names; None where the task lacks one) and the findings."""

    analysis: dict[str, Any]
    recommendations: dict[str, Any]
    record: dict[str, Any]
    metrics: dict[str, float | None]

    @property
    def findings(self) -> list[dict[str, Any]]:
        """Graded findings, most severe first."""
        return self.analysis["findings"]

    @property
    def blocking(self) -> list[dict[str, Any]]:
        """Findings graded ``blocking``."""
        return [f for f in self.findings if f["grade"] == "blocking"]


@contextmanager
def timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall time of the block to ``seconds[name]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def training_rows(dataset: TableDataset) -> Any:
    """Train and validation splits as one frame (row numbers: train first, then validation)."""
    import pandas as pd

    return pd.concat([dataset.train, dataset.val], ignore_index=True)


def role_of(name: str, dataset: TableDataset) -> str:
    """``feature``, ``id``, ``drop``, ``time``, ``group`` (configured roles) or ``unused`` (text, inferred id)."""
    roles = dataset.roles
    if name in dataset.features:
        return "feature"
    for role, key in (("id", "id_columns"), ("drop", "drop_columns")):
        if name in (roles.get(key) or ()):
            return role
    for role, key in (("time", "time_column"), ("group", "group_column")):
        if roles.get(key) == name:
            return role
    return "id" if dataset.columns[name].kind == "id" else "unused"


# --- columns -----------------------------------------------------------------

def profile_columns(dataset: TableDataset, rows: Any, sample: Any) -> dict[str, dict[str, Any]]:
    """Per column: kind, role, missing share, distinct values, top-value share, constancy, IQR outliers.

    ``distinct`` is the loader's count over the whole file; ``top_share`` comes from ``sample``
    and is recounted on every row when it is above :data:`EXACT_SHARE_FROM` (where the
    near-constant verdict is decided).
    """
    names = list(dataset.columns)
    missing = rows[names].isna().sum() if names else {}
    n = max(len(rows), 1)
    out = {}
    for name in names:
        info = dataset.columns[name]
        share = _top_share(rows[name], sample[name])
        out[name] = {"kind": info.kind, "role": role_of(name, dataset), "missing": float(missing[name]) / n,
                     "missing_count": int(missing[name]), "distinct": int(info.distinct), "top_share": share,
                     "constant": share >= 1.0, "near_constant": NEAR_CONSTANT_SHARE <= share < 1.0}
        if info.kind == "numeric":
            out[name].update(_numeric_stats(rows[name], sample[name]))
    return out


def _top_share(full: Any, sample: Any) -> float:
    """Share of rows holding the most common value (missing counts as a value)."""
    if len(sample) == 0:
        return 1.0
    counts = sample.value_counts(dropna=False)
    share = float(counts.iloc[0]) / len(sample)
    if share < EXACT_SHARE_FROM or len(sample) == len(full):
        return share
    import pandas as pd

    top = counts.index[0]
    same = full.isna() if pd.isna(top) else full == top
    return float(same.sum()) / len(full)


def _numeric_stats(full: Any, sample: Any) -> dict[str, Any]:
    """min, max, mean, std on every row; IQR bounds from ``sample``, the outliers beyond them counted on every row."""
    values = full.to_numpy(dtype=np.float64)
    if not np.isfinite(values).any():
        return {"min": None, "max": None, "mean": None, "std": None, "outliers": 0, "iqr_bounds": None}
    q1, q3 = np.nanpercentile(sample.to_numpy(dtype=np.float64), [25, 75])
    low, high = q1 - IQR_FACTOR * (q3 - q1), q3 + IQR_FACTOR * (q3 - q1)
    return {"min": float(np.nanmin(values)), "max": float(np.nanmax(values)), "mean": float(np.nanmean(values)),
            "std": float(np.nanstd(values)), "outliers": int(((values < low) | (values > high)).sum()),
            "iqr_bounds": [float(low), float(high)]}


# --- duplicates ------------------------------------------------------------------

def column_hashes(frame: Any, columns: list[str]) -> dict[str, np.ndarray]:
    """pandas' uint64 hash of every value, per column (index ignored)."""
    import pandas as pd

    return {name: pd.util.hash_pandas_object(frame[name], index=False).to_numpy() for name in columns}


def row_hashes(hashes: dict[str, np.ndarray], length: int) -> np.ndarray:
    """One uint64 per row combining its columns' hashes (order-sensitive; collisions ~1e-19 per pair)."""
    combined = np.zeros(length, dtype=np.uint64)
    with np.errstate(over="ignore"):  # wrap-around multiplication is the point
        for values in hashes.values():
            combined = combined * np.uint64(0x100000001B3) ^ values
    return combined


def duplicate_rows(rows: np.ndarray) -> dict[str, Any]:
    """Rows (by :func:`row_hashes`) repeating an earlier row: count, share, their row numbers (up to 20)."""
    import pandas as pd

    repeated = pd.Series(rows).duplicated().to_numpy()
    count = int(repeated.sum())
    return {"count": count, "share": count / max(len(rows), 1),
            "rows": [int(i) for i in np.flatnonzero(repeated)[:MAX_ITEMS]]}


def duplicate_columns(frame: Any, hashes: dict[str, np.ndarray]) -> list[list[str]]:
    """``[duplicate, first]`` pairs of columns holding identical values; the first in column order is kept."""
    first: dict[tuple[int, int], list[str]] = {}
    pairs = []
    for name, values in hashes.items():
        key = (int(values.sum(dtype=np.uint64)), int(values[0]) if len(values) else 0)
        match = next((kept for kept in first.get(key, []) if frame[kept].equals(frame[name])), None)
        if match is None:
            first.setdefault(key, []).append(name)
        else:
            pairs.append([name, match])
    return pairs


def shared_with_test(train_rows: np.ndarray, test_rows: np.ndarray) -> dict[str, Any]:
    """Test rows identical (every column, target included) to some training row."""
    shared = np.isin(test_rows, train_rows)
    count = int(shared.sum())
    return {"count": count, "share": count / max(len(test_rows), 1),
            "rows": [int(i) for i in np.flatnonzero(shared)[:MAX_ITEMS]]}


# --- target -------------------------------------------------------------------

def target_summary(dataset: TableDataset) -> dict[str, Any]:
    """Class counts per split and imbalance ratio (classification), or the target's statistics (regression)."""
    import pandas as pd

    y = np.concatenate([dataset.train[dataset.target].to_numpy(), dataset.val[dataset.target].to_numpy()])
    if dataset.is_classification:
        k = len(dataset.class_names)
        counts = {s: np.bincount(dataset.split(s)[dataset.target].to_numpy(np.int64), minlength=k).tolist()
                  for s in SPLITS}
        train = np.bincount(y.astype(np.int64), minlength=k)
        return {"class_names": list(dataset.class_names), "class_counts": counts,
                "training_counts": train.tolist(), "imbalance_ratio": float(train.max() / max(train.min(), 1))}
    values = pd.Series(y, dtype="float64")
    return {"skew": float(values.skew()) if len(values) > 2 else 0.0, "min": float(values.min()),
            "max": float(values.max()), "mean": float(values.mean()), "std": float(values.std()),
            "median": float(values.median()), "non_negative": bool(values.min() >= 0)}


# --- model-based probes ------------------------------------------------------------

def probe_kinds(dataset: TableDataset, names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``{column: kind}`` of ``names`` whose kind a probe can use."""
    return {n: dataset.columns[n].kind for n in names if dataset.columns[n].kind in _PROBE_KINDS}


def leakage(dataset: TableDataset, scores: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Split single-column scores into suspects: ``leaks`` (any column at or above the leak
    threshold that is not id-like), ``informative_ids`` (id-like columns above the id thresholds).

    Each suspect is ``{"column", "score", "metric", "role", "spearman"}``.
    """
    leak_bar = LEAK_R2 if dataset.task == "regression" else LEAK_AUC
    id_bar = ID_R2 if dataset.task == "regression" else ID_AUC
    leaks, ids = [], []
    for name, entry in scores.items():
        role = role_of(name, dataset)
        suspect = {"column": name, "score": entry["score"], "metric": entry["metric"], "role": role,
                   "spearman": entry["spearman"]}
        if role == "id":
            strong_rank = entry["spearman"] is not None and abs(entry["spearman"]) >= ID_SPEARMAN
            if entry["score"] >= id_bar or strong_rank:
                ids.append(suspect)
        elif entry["score"] >= leak_bar:
            leaks.append(suspect)
    return {"leaks": leaks, "informative_ids": ids, "thresholds": {"leak": leak_bar, "id": id_bar,
                                                                   "id_spearman": ID_SPEARMAN}}


def run_probes(dataset: TableDataset, rows: Any, seed: int, n_jobs: int, seconds: dict[str, float], *,
               progress: Progress = silent, steps: StepCounter | None = None) -> dict[str, Any]:
    """Mutual information, adversarial validation and single-column scores, each on its own seeded sample.

    ``steps`` advances once per probe; ``progress`` gets the drift check's folds
    (:data:`DRIFT_LABEL`) and the leakage probe's columns (:data:`LEAKAGE_LABEL`).
    """
    advance = steps.advance if steps else (lambda: None)
    y_all = rows[dataset.target].to_numpy()
    with timed(seconds, "correlation"):
        mi_rows = probes.sample_rows(rows, probes.MI_SAMPLE_ROWS, seed)
        mi = probes.target_correlation(mi_rows, mi_rows[dataset.target].to_numpy(),
                                       probe_kinds(dataset, dataset.features), dataset.is_classification, seed)
    advance()
    with timed(seconds, "adversarial"):
        adversarial = probes.adversarial_validation(rows, dataset.test, probe_kinds(dataset, dataset.features),
                                                    seed=seed, n_jobs=n_jobs,
                                                    on_fold=functools.partial(progress, DRIFT_LABEL))
    advance()
    with timed(seconds, "leakage"):
        leak_rows = probes.sample_rows(rows, probes.LEAK_SAMPLE_ROWS, seed + 2)
        kinds = {n: i.kind for n, i in dataset.columns.items()}
        scores = probes.single_column_scores(leak_rows, leak_rows[dataset.target].to_numpy(), kinds, dataset.task,
                                             seed=seed, on_column=functools.partial(progress, LEAKAGE_LABEL))
    advance()
    return {"correlation": {"method": "mutual_information", "unit": "nats", "rows": len(mi_rows),
                            "sampled": len(mi_rows) < len(y_all), "scores": mi},
            "adversarial": {**adversarial, "top_columns": drift_columns(adversarial)},
            "leakage": {**leakage(dataset, scores), "rows": len(leak_rows), "sampled": len(leak_rows) < len(y_all),
                        "scores": scores}}


def drift_columns(adversarial: dict[str, Any]) -> list[str]:
    """Columns driving a drift verdict: the largest gain shares (>= 10%), at most five."""
    top = [n for n, share in adversarial["importance"].items() if share >= DRIFT_COLUMN_SHARE]
    return top[:DRIFT_MAX_COLUMNS] or list(adversarial["importance"])[:1]


# --- the whole analysis -----------------------------------------------------------

def find_duplicates(dataset: TableDataset, rows: Any) -> dict[str, Any]:
    """Duplicate training rows, identical columns (target excluded) and test rows found in training."""
    names = list(rows.columns)
    hashes = column_hashes(rows, names)
    train_rows = row_hashes(hashes, len(rows))
    test_rows = row_hashes(column_hashes(dataset.test, names), len(dataset.test))
    features = {n: h for n, h in hashes.items() if n != dataset.target}
    return {"rows": duplicate_rows(train_rows), "columns": duplicate_columns(rows, features),
            "test_in_train": shared_with_test(train_rows, test_rows)}


def missing_fraction(columns: dict[str, dict[str, Any]], features: tuple[str, ...], rows: int) -> float:
    """Missing cells among the feature columns over all their cells (0 without features or rows)."""
    cells = len(features) * rows
    return sum(columns[n]["missing_count"] for n in features) / cells if cells else 0.0


def analyze_table(dataset: TableDataset, out_dir: Path, *, seed: int = 0, n_jobs: int = 1,
                  sample_size: int = SAMPLE_ROWS, progress: Progress = silent) -> TableAnalysis:
    """Run every stage-1 check on ``dataset`` and write :data:`OUTPUTS` into ``out_dir``.

    ``seed`` fixes every sample and model; ``n_jobs`` is LightGBM's thread count for
    adversarial validation. Nothing is raised for blocking findings: the caller decides
    (the stage raises after the files are written). ``progress`` follows the checks
    (:data:`STEPS_LABEL`, from 0 to :data:`STEPS`) and, inside them, the drift folds and
    leakage columns (see :func:`run_probes`).
    """
    seconds: dict[str, float] = {}
    steps = StepCounter(progress, STEPS_LABEL, STEPS)
    with timed(seconds, "prepare"):
        rows = training_rows(dataset)
        sample = probes.sample_rows(rows, sample_size, seed)
    with timed(seconds, "columns"):
        columns = profile_columns(dataset, rows, sample)
    steps.advance()
    with timed(seconds, "duplicates"):
        duplicates = find_duplicates(dataset, rows)
    steps.advance()
    with timed(seconds, "target"):
        target = target_summary(dataset)
    steps.advance()
    analysis: dict[str, Any] = {
        "name": dataset.name, "task": dataset.task, "target_column": dataset.target, "rows": len(rows),
        "splits": {s: len(dataset.split(s)) for s in SPLITS}, "num_features": len(dataset.features),
        "missing_fraction": missing_fraction(columns, dataset.features, len(rows)),
        "columns": columns, "duplicates": duplicates, "target": target,
        **run_probes(dataset, rows, seed, n_jobs, seconds, progress=progress, steps=steps),
        "notes": list(dataset.notes), "seconds": seconds}
    analysis["samples"] = _samples(analysis, len(sample))
    analysis["findings"] = findings(analysis)
    recs = recommend(analysis)
    with timed(seconds, "record"):
        record = dataset_record(dataset)
    with timed(seconds, "plots"):
        write_plots(dataset, analysis, sample, out_dir)
    steps.advance()
    write_outputs(out_dir, analysis, recs, record)
    steps.finish()
    return TableAnalysis(analysis=analysis, recommendations=recs, record=record,
                         metrics=stage_metrics(analysis, dataset.is_classification, len(dataset.features)))


def _samples(analysis: dict[str, Any], profile_rows: int) -> dict[str, int]:
    adversarial = analysis["adversarial"]["rows"]
    return {"profile": profile_rows, "correlation": analysis["correlation"]["rows"],
            "leakage": analysis["leakage"]["rows"], "adversarial_train": adversarial["train"],
            "adversarial_test": adversarial["test"]}


def write_plots(dataset: TableDataset, analysis: dict[str, Any], sample: Any, out_dir: Path) -> None:
    """The four figures of :data:`OUTPUTS`."""
    from mlestar.domains.tables.plots import plot_bars, plot_column_grid, plot_target

    kinds = {n: c["kind"] for n, c in analysis["columns"].items() if c["role"] == "feature"}
    plot_column_grid(sample, kinds, out_dir / "column_distributions.png", total_rows=analysis["rows"])
    plot_target(analysis["target"], sample[dataset.target].to_numpy(np.float64), out_dir / "target_distribution.png")
    plot_bars(analysis["correlation"]["scores"], out_dir / "target_correlation.png",
              title="mutual information with the target", xlabel="nats")
    adv = analysis["adversarial"]
    title = f"adversarial validation (ROC AUC {adv['auc']:.3f})" if adv["auc"] is not None else "adversarial validation"
    plot_bars(adv["importance"], out_dir / "adversarial_importance.png", title=title, xlabel="share of gain")


def write_outputs(out_dir: Path, analysis: dict[str, Any], recs: dict[str, Any], record: dict[str, Any]) -> None:
    """``analysis.json``, ``dataset.json``, ``recommendations.json`` and the report three ways."""
    from mlestar.domains.tables.report import render_report
    from mlestar.utils.io import atomic_write_json
    from mlestar.utils.report import write_report

    atomic_write_json(out_dir / "analysis.json", analysis)
    atomic_write_json(out_dir / "dataset.json", record)
    atomic_write_json(out_dir / "recommendations.json", recs)
    write_report(out_dir, "report", f"Situation analysis: {analysis['name']}",
                 render_report(analysis["name"], analysis, recs),
                 {"findings": analysis["findings"], "recommendations": recs, "target": analysis["target"],
                  "adversarial_auc": analysis["adversarial"]["auc"], "missing_fraction": analysis["missing_fraction"]})
