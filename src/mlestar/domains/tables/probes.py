"""Model-based checks of stage 1 for tables, each on a seeded sample: target correlation, drift, leakage.

* :func:`target_correlation`: mutual information between each feature and the
  target (scikit-learn's ``mutual_info_classif`` / ``mutual_info_regression``,
  categorical columns as discrete), on at most :data:`MI_SAMPLE_ROWS` rows.
  Mutual information rather than Spearman: it sees categorical columns and
  non-monotone relations, which a rank correlation misses.
* :func:`adversarial_validation`: a small LightGBM classifier telling test rows
  from training rows; its cross-validated ROC AUC is the drift score (0.5: the
  splits look alike), its gain importances name the drifting columns.
* :func:`single_column_scores`: how well each column *alone* predicts the target,
  out of fold: a depth-limited tree for numbers and dates, a per-value lookup
  (smoothed class shares or means) for categories and string ids. ROC AUC for
  classification (one-vs-rest macro), R² for regression.

Every function takes the rows it should use and a seed; the same seed gives the
same numbers.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mlestar.domains.tables.progress import Count

MI_SAMPLE_ROWS = 5_000  # kNN mutual information costs ~0.2 s per 1000 rows for 40 columns
ADVERSARIAL_ROWS_PER_SIDE = 10_000  # training and test rows each, at most: AUC to about +-0.01
ADVERSARIAL_TREES = 50  # enough to find a shifted column; a forest of this size fits 50k rows in ~1 s
LEAK_SAMPLE_ROWS = 20_000
CV_FOLDS = 3
TREE_DEPTH = 8  # 256 leaves: a column equal to the target (up to noise) scores R^2 > 0.999
TREE_MIN_LEAF = 20  # at most: steadier scores on big samples; small ones need finer leaves to reach R^2 0.99
LOOKUP_SMOOTHING = 1.0  # pseudo-rows of the overall distribution added to each value's counts
NUMERIC_ID_SHARE = 0.95  # a string id column whose values are this much numbers is scored as numbers
_EPOCH = "1970-01-01"


def sample_rows(frame: Any, limit: int, seed: int) -> Any:
    """``frame`` itself when it has at most ``limit`` rows, else a seeded sample in row order."""
    if len(frame) <= limit:
        return frame
    chosen = np.sort(np.random.default_rng(seed).choice(len(frame), size=limit, replace=False))
    return frame.iloc[chosen]


def as_number(series: Any, kind: str) -> Any:
    """A float Series for a numeric, boolean or datetime column (dates as seconds since 1970, NaN missing)."""
    import pandas as pd

    if kind == "datetime":
        return (series - pd.Timestamp(_EPOCH, tz="UTC")).dt.total_seconds()
    return series.astype("float64")


def numeric_id(series: Any) -> Any | None:
    """The values of a string id column as floats when nearly all are numbers, else None."""
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce")
    present = int(series.notna().sum())
    return values.astype("float64") if present and values.notna().sum() >= NUMERIC_ID_SHARE * present else None


# --- mutual information ------------------------------------------------------

def target_correlation(frame: Any, target: np.ndarray, kinds: dict[str, str], classification: bool,
                       seed: int) -> dict[str, float]:
    """Mutual information (nats) of each column of ``kinds`` with ``target``, highest first.

    ``frame`` should already be a sample (see :data:`MI_SAMPLE_ROWS`): the kNN
    estimator grows with rows times columns. Missing numbers are filled with the
    median; categories and booleans are discrete codes (missing is a code).
    """
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    names = [n for n, k in kinds.items() if k in ("numeric", "boolean", "datetime", "categorical")]
    if not names or len(frame) < 10:
        return {}
    columns, discrete = [], []
    for name in names:
        values, is_discrete = _mi_column(frame[name], kinds[name])
        columns.append(values)
        discrete.append(is_discrete)
    estimate = mutual_info_classif if classification else mutual_info_regression
    scores = estimate(np.column_stack(columns), target, discrete_features=np.array(discrete), random_state=seed)
    return dict(sorted(((n, float(s)) for n, s in zip(names, scores)), key=lambda item: -item[1]))


def _mi_column(series: Any, kind: str) -> tuple[np.ndarray, bool]:
    import pandas as pd

    if kind in ("categorical", "boolean"):
        return pd.factorize(series)[0].astype(np.float64), True
    values = as_number(series, kind).to_numpy()
    fill = np.nanmedian(values) if np.isfinite(values).any() else 0.0
    return np.where(np.isnan(values), fill, values), False


# --- adversarial validation ----------------------------------------------------

def adversarial_validation(train: Any, test: Any, kinds: dict[str, str], *, seed: int, n_jobs: int = 1,
                           rows_per_side: int = ADVERSARIAL_ROWS_PER_SIDE, trees: int = ADVERSARIAL_TREES,
                           on_fold: Count | None = None) -> dict[str, Any]:
    """Cross-validated ROC AUC of LightGBM telling ``test`` rows (1) from ``train`` rows (0).

    Uses the columns of ``kinds`` (the features), at most ``rows_per_side`` rows of
    each side (seeded samples). Returns ``{"auc", "importance" (column -> share of
    total gain, highest first), "rows": {"train", "test"}, "sampled"}``; ``auc`` is
    None when either side has fewer than ``CV_FOLDS * 2`` rows or there are no columns.
    ``on_fold(done, CV_FOLDS)`` follows the folds, from 0 (not called when the check is skipped).
    """
    import pandas as pd

    left, right = sample_rows(train, rows_per_side, seed), sample_rows(test, rows_per_side, seed + 1)
    result: dict[str, Any] = {"auc": None, "importance": {}, "rows": {"train": len(left), "test": len(right)},
                              "sampled": len(left) < len(train) or len(right) < len(test)}
    if not kinds or min(len(left), len(right)) < 2 * CV_FOLDS:
        return result
    both = pd.concat([left[list(kinds)], right[list(kinds)]], ignore_index=True)
    features = lgbm_frame(both, kinds)
    is_test = np.r_[np.zeros(len(left), dtype=np.int64), np.ones(len(right), dtype=np.int64)]
    scores, gain = _adversarial_folds(features, is_test, seed, n_jobs, trees, on_fold)
    from sklearn.metrics import roc_auc_score

    total = float(gain.sum()) or 1.0
    result["auc"] = float(roc_auc_score(is_test, scores))
    result["importance"] = dict(sorted(((n, float(g) / total) for n, g in zip(kinds, gain)), key=lambda i: -i[1]))
    return result


def lgbm_frame(frame: Any, kinds: dict[str, str]) -> Any:
    """Columns LightGBM takes as they are: floats, and categories as pandas ``category``.

    Columns are renamed ``f0, f1, ...`` because LightGBM refuses some characters in names.
    """
    import pandas as pd

    out = {}
    for index, (name, kind) in enumerate(kinds.items()):
        series = frame[name]
        out[f"f{index}"] = series.astype("category") if kind == "categorical" else as_number(series, kind)
    return pd.DataFrame(out)


def _adversarial_folds(features: Any, is_test: np.ndarray, seed: int, n_jobs: int, trees: int,
                       on_fold: Count | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold test-probabilities and summed gain importance over :data:`CV_FOLDS` stratified folds."""
    import lightgbm as lgb
    from sklearn.model_selection import StratifiedKFold

    scores = np.zeros(len(is_test))
    gain = np.zeros(features.shape[1])
    report = on_fold or (lambda done, total: None)
    report(0, CV_FOLDS)
    folds = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed).split(features, is_test)
    for done, (fit_rows, held_rows) in enumerate(folds, 1):
        model = lgb.LGBMClassifier(n_estimators=trees, learning_rate=0.1, num_leaves=31, n_jobs=n_jobs,
                                   random_state=seed, importance_type="gain", verbose=-1)
        model.fit(features.iloc[fit_rows], is_test[fit_rows])
        scores[held_rows] = model.predict_proba(features.iloc[held_rows])[:, 1]
        gain += model.feature_importances_
        report(done, CV_FOLDS)
    return scores, gain


# --- single-column scores (leakage) --------------------------------------------

def single_column_scores(frame: Any, target: np.ndarray, kinds: dict[str, str], task: str, *,
                         seed: int, on_column: Count | None = None) -> dict[str, dict[str, Any]]:
    """Out-of-fold score of each column of ``kinds`` predicting ``target`` alone.

    ``frame`` should already be a sample (see :data:`LEAK_SAMPLE_ROWS`). Returns
    column -> ``{"score", "metric" ("roc_auc" | "r2"), "model" ("tree" | "lookup"),
    "spearman" (numeric ids, binary and regression tasks; else None)}``. Free-text
    columns are skipped (no single value predicts anything). ``on_column(done, len(kinds))``
    follows the columns, from 0 (not called when the sample is too small to score).
    """
    folds = _folds(target, task, seed)
    if folds is None:
        return {}
    report = on_column or (lambda done, total: None)
    report(0, len(kinds))
    out = {}
    for done, (name, kind) in enumerate(kinds.items(), 1):
        entry = _column_score(frame[name], kind, target, task, folds, seed)
        if entry is not None:
            out[name] = entry
        report(done, len(kinds))
    return out


def _folds(target: np.ndarray, task: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    from sklearn.model_selection import KFold, StratifiedKFold

    if len(target) < 2 * CV_FOLDS:
        return None
    if task == "regression":
        return list(KFold(CV_FOLDS, shuffle=True, random_state=seed).split(target))
    with warnings.catch_warnings():  # a class with fewer rows than folds: still usable, sklearn warns
        warnings.simplefilter("ignore", UserWarning)
        return list(StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed).split(target, target))


def _column_score(series: Any, kind: str, target: np.ndarray, task: str,
                  folds: list[tuple[np.ndarray, np.ndarray]], seed: int) -> dict[str, Any] | None:
    """Score of one column: numbers through a tree, values through a lookup; None for free text."""
    import pandas as pd

    numbers = None
    if kind in ("numeric", "boolean", "datetime"):
        numbers = as_number(series, kind).to_numpy()
    elif kind == "id":
        parsed = numeric_id(series)
        numbers = parsed.to_numpy() if parsed is not None else None
    elif kind != "categorical":
        return None
    if numbers is not None:
        pred = _oof(lambda a, b: _tree_predict(numbers, target, a, b, task, seed), target, task, folds)
        model = "tree"
    else:
        codes = pd.factorize(series)[0] + 1  # 0: missing, its own value
        pred = _oof(lambda a, b: _lookup_predict(codes, target, a, b, task), target, task, folds)
        model = "lookup"
    spearman = _spearman(numbers, target) if kind == "id" and numbers is not None and task != "multiclass" else None
    return {"score": _score(target, pred, task), "metric": "r2" if task == "regression" else "roc_auc",
            "model": model, "spearman": spearman}


def _oof(predict: Any, target: np.ndarray, task: str, folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Out-of-fold predictions: ``predict(fit_rows, held_rows)`` per fold, assembled in row order."""
    width = 1 if task == "regression" else int(target.max()) + 1
    out = np.zeros((len(target), width))
    for fit_rows, held_rows in folds:
        out[held_rows] = predict(fit_rows, held_rows).reshape(len(held_rows), width)
    return out[:, 0] if task == "regression" else out


def _tree_predict(x: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, held_rows: np.ndarray, task: str,
                  seed: int) -> np.ndarray:
    """Depth-limited tree on one column (NaN handled by the tree) -> predictions or class probabilities."""
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    column = x.reshape(-1, 1)
    # Overfitting only lowers an out-of-fold score, so small leaves cannot raise a false alarm.
    leaf = int(np.clip(len(fit_rows) // 1000, 1, TREE_MIN_LEAF))
    if task == "regression":
        tree = DecisionTreeRegressor(max_depth=TREE_DEPTH, min_samples_leaf=leaf, random_state=seed)
        return tree.fit(column[fit_rows], y[fit_rows]).predict(column[held_rows])
    clf = DecisionTreeClassifier(max_depth=TREE_DEPTH, min_samples_leaf=leaf, random_state=seed)
    clf.fit(column[fit_rows], y[fit_rows])
    probs = np.zeros((len(held_rows), int(y.max()) + 1))
    probs[:, clf.classes_.astype(np.int64)] = clf.predict_proba(column[held_rows])
    return probs


def _lookup_predict(codes: np.ndarray, y: np.ndarray, fit_rows: np.ndarray, held_rows: np.ndarray,
                    task: str) -> np.ndarray:
    """Per-value target mean (regression) or class shares, smoothed toward the overall ones.

    A value unseen in the fitting rows (every value of a unique id) predicts the overall mean or shares.
    """
    size = int(codes.max()) + 1
    fit_codes = codes[fit_rows]
    counts = np.bincount(fit_codes, minlength=size).astype(np.float64)[:, None]
    if task == "regression":
        sums = np.bincount(fit_codes, weights=y[fit_rows], minlength=size)[:, None]
        prior = np.array([y[fit_rows].mean()])
    else:
        classes = int(y.max()) + 1
        sums = np.zeros((size, classes))
        np.add.at(sums, (fit_codes, y[fit_rows].astype(np.int64)), 1.0)
        prior = np.bincount(y[fit_rows].astype(np.int64), minlength=classes) / len(fit_rows)
    table = (sums + LOOKUP_SMOOTHING * prior) / (counts + LOOKUP_SMOOTHING)
    return table[codes[held_rows]]


def _score(y: np.ndarray, pred: np.ndarray, task: str) -> float:
    """R² (regression) or ROC AUC: binary on the positive class, macro one-vs-rest over present classes."""
    from sklearn.metrics import r2_score, roc_auc_score

    if task == "regression":
        return float(r2_score(y, pred))
    if task == "binary":
        return float(roc_auc_score(y, pred[:, 1])) if len(np.unique(y)) == 2 else 0.5
    scores = [roc_auc_score(y == c, pred[:, c]) for c in range(pred.shape[1]) if 0 < (y == c).sum() < len(y)]
    return float(np.mean(scores)) if scores else 0.5


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman rank correlation over rows where ``x`` is present; None when either side is constant."""
    import pandas as pd

    present = ~np.isnan(x)
    if present.sum() < 3:
        return None
    ranks_x = pd.Series(x[present]).rank().to_numpy()
    ranks_y = pd.Series(y[present]).rank().to_numpy()
    if ranks_x.std() == 0 or ranks_y.std() == 0:
        return None
    return float(np.corrcoef(ranks_x, ranks_y)[0, 1])
