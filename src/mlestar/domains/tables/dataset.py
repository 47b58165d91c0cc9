"""A table source loaded and split: :class:`TableDataset`, the one object every table stage reads.

Loading goes file -> pyarrow (checked by :mod:`.load`) -> column kinds and task
(:mod:`.columns`) -> pandas frames split into train, validation and test.
Splits follow the config: a test file when the folder has one; otherwise the
latest rows by ``time_column``, whole groups by ``group_column``, or a seeded
random split, stratified by class for classification. Validation is carved
from train the same way (seed + 1).

The frames keep every column of the file (ids, groups and dropped columns
too, so stage 1 can check them); :attr:`TableDataset.features` names the
columns a model may use. Classification targets are stored as class indices
into :attr:`TableDataset.class_names` (sorted; for binary tasks the second is
the positive class), regression targets as float64.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mlestar.domains.tables.columns import ColumnInfo, TaskKind, check_target, column_kinds, infer_task
from mlestar.domains.tables.load import find_files, read_table
from mlestar.errors import DataError
from mlestar.utils.io import sha256_bytes, sha256_file, sha256_json

TARGET = "target"  # the target column of the builtin (scikit-learn) tables
SPLITS = ("train", "val", "test")
# Kinds a model gets as features; ``text`` and ``id`` columns are reported, never fed to a learner.
FEATURE_KINDS = ("numeric", "categorical", "boolean", "datetime")


@dataclass(frozen=True)
class TableDataset:
    """A table split three ways, with its column kinds and task.

    Attributes:
        name: file stem or builtin dataset name.
        task: ``binary``, ``multiclass`` or ``regression`` (declared or inferred).
        target: the target column.
        columns: kind of every column except the target.
        features: the columns a model may use (feature kinds, minus id, drop, time and group roles).
        class_names: classes in index order (empty for regression).
        train, val, test: pandas frames with every column; the target encoded (see module docstring).
        roles: ``id_columns``, ``drop_columns``, ``time_column``, ``group_column`` as configured.
        fingerprint: hash of the raw file(s).
        notes: one line per thing done while splitting.
    """

    name: str
    task: TaskKind
    target: str
    columns: dict[str, ColumnInfo]
    features: tuple[str, ...]
    class_names: tuple[str, ...]
    train: Any
    val: Any
    test: Any
    roles: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    notes: tuple[str, ...] = ()

    def split(self, name: str) -> Any:
        """The frame of split ``name`` (``train``, ``val`` or ``test``)."""
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def xy(self, name: str) -> tuple[Any, np.ndarray]:
        """``(features frame, target array)`` of split ``name``."""
        frame = self.split(name)
        return frame[list(self.features)], frame[self.target].to_numpy()

    def without_test(self) -> TableDataset:
        """The same dataset with an empty test split (for stages that must not see it)."""
        return replace(self, test=self.test.iloc[0:0])

    @property
    def is_classification(self) -> bool:
        """True for binary and multiclass tasks."""
        return self.task != "regression"


def table_fingerprint(data: Any) -> str:
    """Hash of the raw file(s) (or, for a builtin table, of the scikit-learn file that holds it)."""
    if data.dataset is not None:
        return sha256_json({"builtin": data.dataset, "sklearn": _sklearn_version()})
    files = find_files(Path(data.path))
    parts = {"train": sha256_file(files.train)}
    if files.test is not None:
        parts["test"] = sha256_file(files.test)
    return sha256_json(parts)


def _sklearn_version() -> str:
    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise DataError("scikit-learn is not installed; builtin tables need it", hint="pip install scikit-learn")
    from importlib.metadata import version

    return version("scikit-learn")


def load_table_dataset(data: Any, seed: int) -> TableDataset:
    """Load, type, check and split the configured table.

    Raises:
        DataError: an unreadable file, a bad target, a role naming a missing column, or a split that
            cannot be made (a time column that is not a time, too few groups).
    """
    train_raw, test_raw, name = _read_sources(data)
    target = data.target_name
    check_target(train_raw, target)
    _check_roles(train_raw, data)
    kinds = column_kinds(train_raw, data.columns)
    task: TaskKind = infer_task(train_raw, target, kinds[target].kind) if data.task == "auto" else data.task
    columns = {n: info for n, info in kinds.items() if n != target}
    features = _features(columns, data)
    train_frame = _to_pandas(train_raw, columns)
    test_frame = _to_pandas(test_raw, columns) if test_raw is not None else None
    class_names = _class_names(train_frame, target, task)
    train_frame = _encode_target(train_frame, target, task, class_names)
    if test_frame is not None:
        test_frame = _encode_target(_conform(test_frame, train_frame, target), target, task, class_names)
    splits, notes = make_splits(train_frame, test_frame, data, task, seed)
    return TableDataset(name=name, task=task, target=target, columns=columns, features=features,
                        class_names=class_names, train=splits[0], val=splits[1], test=splits[2],
                        roles=_roles(data), fingerprint=table_fingerprint(data), notes=tuple(notes))


def _read_sources(data: Any) -> tuple[Any, Any, str]:
    declared = frozenset(data.columns)
    if data.dataset is not None:
        return builtin_table(data.dataset), None, data.dataset
    files = find_files(Path(data.path))
    train = read_table(files.train, declared=declared)
    test = read_table(files.test, declared=declared) if files.test is not None else None
    return train, test, files.train.parent.name if files.test else files.train.stem


def builtin_table(name: str) -> Any:
    """A table scikit-learn ships, as a ``pyarrow.Table`` whose last column is ``target``."""
    import pyarrow as pa
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}")
    frame = loader(as_frame=True).frame
    frame.columns = [str(c) for c in frame.columns]
    return pa.Table.from_pandas(frame, preserve_index=False)


def _check_roles(table: Any, data: Any) -> None:
    named = [*data.id_columns, *data.drop_columns, data.time_column, data.group_column]
    for column in filter(None, named):
        if column not in table.column_names:
            import difflib

            close = difflib.get_close_matches(column, table.column_names, n=1)
            raise DataError(f"the config names column {column!r}, which the table does not have"
                            + (f"; did you mean {close[0]!r}?" if close else ""),
                            hint="fix data.id_columns, drop_columns, time_column or group_column")


def _features(columns: dict[str, ColumnInfo], data: Any) -> tuple[str, ...]:
    excluded = {*data.id_columns, *data.drop_columns, data.time_column, data.group_column}
    return tuple(n for n, info in columns.items() if n not in excluded and info.kind in FEATURE_KINDS)


def _roles(data: Any) -> dict[str, Any]:
    return {"id_columns": list(data.id_columns), "drop_columns": list(data.drop_columns),
            "time_column": data.time_column, "group_column": data.group_column}


def _to_pandas(table: Any, columns: dict[str, ColumnInfo]) -> Any:
    """pandas frame with numbers as float64, dates as UTC datetimes, and everything else as text
    (pandas ``str``, NaN for missing): one representation for every learner, ONNX and serving."""
    frame = table.to_pandas()
    for name, info in columns.items():
        if name not in frame:
            continue
        if info.kind in ("numeric", "boolean"):
            frame[name] = _as_float(frame[name], name)
        elif info.kind == "datetime":
            frame[name] = _as_datetime(frame[name], name)
        else:
            frame[name] = _as_text(frame[name])
    return frame


def _as_text(series: Any) -> Any:
    """Text labels; whole floats read as written (``3.0`` -> ``'3'``), missing stays missing."""
    if series.dtype.kind == "f" and bool((series.dropna() % 1 == 0).all()):
        series = series.astype("Int64")
    return series.astype("str")


def _as_float(series: Any, name: str) -> Any:
    import pandas as pd

    if series.dtype == object or str(series.dtype) in ("str", "string"):
        lowered = series.astype(str).str.strip().str.lower()
        mapped = lowered.map({"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "1": 1.0, "0": 0.0})
        if mapped.notna().sum() == series.notna().sum():
            return mapped.astype("float64")
    try:
        return pd.to_numeric(series, errors="raise").astype("float64")
    except (ValueError, TypeError) as exc:
        raise DataError(f"column {name!r} is declared numeric but holds values that are not numbers ({exc})",
                        hint=f"fix data.columns.{name}, or clean the column") from None


def _as_datetime(series: Any, name: str) -> Any:
    import pandas as pd

    try:
        return pd.to_datetime(series, errors="raise", utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"column {name!r} is a datetime column but holds values that are not dates ({exc})",
                        hint=f"fix data.columns.{name}, or clean the column") from None


def _class_names(frame: Any, target: str, task: TaskKind) -> tuple[str, ...]:
    if task == "regression":
        return ()
    values = frame[target].dropna().unique()
    return tuple(sorted((_label(v) for v in values), key=_label_order))


def _label(value: Any) -> str:
    """Class label as text: ``1.0`` -> ``'1'`` so integer labels read as written."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _label_order(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)  # numeric labels in numeric order: 0 < 1 < 10
    except ValueError:
        return (1, 0.0, label)


def _encode_target(frame: Any, target: str, task: TaskKind, class_names: tuple[str, ...]) -> Any:
    """Drop rows without a target; encode classes as indices, values as float64."""
    frame = frame[frame[target].notna()].reset_index(drop=True)
    if task == "regression":
        frame[target] = _as_float(frame[target], target)
        return frame
    index = {name: i for i, name in enumerate(class_names)}
    labels = {value: _label(value) for value in frame[target].unique()}  # once per class, not per row
    unknown = sorted({label for label in labels.values() if label not in index})
    if unknown:
        raise DataError(f"the test table has target classes the training table lacks: {unknown[:5]}",
                        hint="every test class must appear in training")
    frame[target] = frame[target].map({value: index[label] for value, label in labels.items()}).astype("int64")
    return frame


def _conform(test: Any, train: Any, target: str) -> Any:
    missing = [c for c in train.columns if c not in test.columns]
    if missing:
        raise DataError(f"the test table lacks column(s) of the training table: {', '.join(missing[:10])}",
                        hint="give test.<ext> the same columns as train.<ext>")
    return test[list(train.columns)]


def make_splits(train: Any, test: Any | None, data: Any, task: TaskKind,
                seed: int) -> tuple[tuple[Any, Any, Any], list[str]]:
    """``((train, val, test), notes)``: test from the file or held out, then validation from train."""
    notes: list[str] = []
    if test is None:
        train, test, note = hold_out(train, data.test_fraction, data, task, seed)
        notes.append(f"test: {note}")
    else:
        notes.append(f"test: the test file ({len(test)} rows)")
    train, val, note = hold_out(train, data.val_fraction, data, task, seed + 1)
    notes.append(f"validation: {note}")
    if data.max_rows is not None and len(train) > data.max_rows:
        train = train.sample(n=data.max_rows, random_state=seed).sort_index()
        notes.append(f"training sampled to {data.max_rows} rows (data.max_rows)")
    return (train.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True)), notes


def hold_out(frame: Any, fraction: float, data: Any, task: TaskKind, seed: int) -> tuple[Any, Any, str]:
    """``(kept, held_out, note)``: the latest rows, whole groups, or a seeded (stratified) sample."""
    if data.time_column:
        order = np.argsort(frame[data.time_column].to_numpy(), kind="stable")
        cut = len(frame) - max(1, int(round(fraction * len(frame))))
        return (frame.iloc[order[:cut]], frame.iloc[order[cut:]],
                f"the latest {fraction:.0%} of rows by {data.time_column!r}")
    if data.group_column:
        return _group_split(frame, fraction, data.group_column, seed)
    from sklearn.model_selection import train_test_split

    stratify = frame[data.target_name] if task != "regression" and _stratifiable(frame, data.target_name) else None
    kept, held = train_test_split(np.arange(len(frame)), test_size=fraction, random_state=seed, stratify=stratify)
    kind = "a stratified" if stratify is not None else "a random"
    return frame.iloc[np.sort(kept)], frame.iloc[np.sort(held)], f"{kind} {fraction:.0%} (seed {seed})"


def _stratifiable(frame: Any, target: str) -> bool:
    return int(frame[target].value_counts().min()) >= 2


def _group_split(frame: Any, fraction: float, column: str, seed: int) -> tuple[Any, Any, str]:
    from sklearn.model_selection import GroupShuffleSplit

    groups = frame[column].astype(str).to_numpy()
    if len(set(groups)) < 3:
        raise DataError(f"group column {column!r} has {len(set(groups))} group(s); whole-group splits need "
                        "at least 3", hint="choose a finer group column, or remove data.group_column")
    kept, held = next(GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(frame, groups=groups))
    return (frame.iloc[np.sort(kept)], frame.iloc[np.sort(held)],
            f"whole groups of {column!r}, about {fraction:.0%} of rows (seed {seed})")


def split_hash(frame: Any) -> str:
    """Content hash of one split frame: column names, then every row's values in order.

    What stage 1 records in ``dataset.json`` and later stages compare, so no stage
    trains on rows other than those analysed. Built on pandas' vectorised row hashing
    (:func:`pandas.util.hash_pandas_object`, index ignored): about a second per million
    rows of 50 columns.
    """
    import pandas as pd

    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    names = "\x1f".join(map(str, frame.columns)).encode("utf-8")
    return sha256_bytes(names + b"\x1e" + rows.tobytes())


def differing_splits(dataset: TableDataset, expected: dict[str, str]) -> list[str]:
    """Names of the splits in ``expected`` (name -> :func:`split_hash`) whose content differs.

    An empty test split is skipped: it is masked for a stage that may not read it.
    """
    return [name for name, digest in expected.items()
            if not (name == "test" and len(dataset.test) == 0) and split_hash(dataset.split(name)) != digest]


def dataset_record(dataset: TableDataset) -> dict[str, Any]:
    """What later stages need to know, and verify, about the table they train on (``dataset.json``)."""
    return {
        "name": dataset.name, "task": dataset.task, "target": dataset.target,
        "class_names": list(dataset.class_names), "features": list(dataset.features),
        "columns": {name: {"kind": info.kind, "missing": info.missing, "distinct": info.distinct}
                    for name, info in dataset.columns.items()},
        "roles": dict(dataset.roles),
        "splits": {name: {"size": len(dataset.split(name)), "hash": split_hash(dataset.split(name))}
                   for name in SPLITS},
        "fingerprint": dataset.fingerprint, "notes": list(dataset.notes),
    }
