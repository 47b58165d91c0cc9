"""Loading and splitting a table: test files, time order, whole groups, stratification, roles."""

from __future__ import annotations

import numpy as np
import pytest

from mlestar.domains.tables.dataset import load_table_dataset, table_fingerprint
from mlestar.errors import DataError
from tests.domains.tables.tables_helpers import mixed_frame, table_config, write_csv


def test_builtin_binary_split_is_stratified_and_complete() -> None:
    ds = load_table_dataset(table_config(dataset="breast_cancer").data, 0)
    sizes = [len(ds.train), len(ds.val), len(ds.test)]
    assert sum(sizes) == 569 and ds.task == "binary" and ds.class_names == ("0", "1")
    shares = [float(np.mean(ds.split(s)[ds.target])) for s in ("train", "val", "test")]
    assert max(shares) - min(shares) < 0.03  # the class balance is kept in every split


def test_time_column_puts_the_latest_rows_in_test(tmp_path) -> None:
    path = write_csv(mixed_frame(), tmp_path / "t.csv")
    ds = load_table_dataset(table_config(path=str(path), target="y", time_column="day").data, 0)
    assert ds.train["day"].max() < ds.val["day"].min() <= ds.val["day"].max() < ds.test["day"].min()
    assert "day" not in ds.features and ds.columns["day"].kind == "datetime"


def test_group_column_keeps_each_group_in_one_split(tmp_path) -> None:
    path = write_csv(mixed_frame(), tmp_path / "t.csv")
    ds = load_table_dataset(table_config(path=str(path), target="y", group_column="shop").data, 0)
    groups = [set(ds.split(s)["shop"]) for s in ("train", "val", "test")]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])


def test_folder_with_a_test_file_uses_it(tmp_path) -> None:
    frame = mixed_frame()
    write_csv(frame.iloc[:300], tmp_path / "train.csv")
    write_csv(frame.iloc[300:], tmp_path / "test.csv")
    ds = load_table_dataset(table_config(path=str(tmp_path), target="y", id_columns=["row_id"]).data, 0)
    assert len(ds.test) == 100 and len(ds.train) + len(ds.val) == 300
    assert "row_id" not in ds.features and "color" in ds.features


def test_roles_naming_missing_columns_are_refused(tmp_path) -> None:
    path = write_csv(mixed_frame(), tmp_path / "t.csv")
    with pytest.raises(DataError, match="'colour'.*did you mean 'color'"):
        load_table_dataset(table_config(path=str(path), target="y", drop_columns=["colour"]).data, 0)


def test_max_rows_samples_training_only(tmp_path) -> None:
    path = write_csv(mixed_frame(rows=600), tmp_path / "t.csv")
    ds = load_table_dataset(table_config(path=str(path), target="y", max_rows=100).data, 0)
    assert len(ds.train) == 100 and len(ds.test) == 120


def test_fingerprint_follows_the_file(tmp_path) -> None:
    path = write_csv(mixed_frame(), tmp_path / "t.csv")
    cfg = table_config(path=str(path), target="y").data
    before = table_fingerprint(cfg)
    write_csv(mixed_frame(seed=1), path)
    assert table_fingerprint(cfg) != before


def test_without_test_empties_only_test() -> None:
    ds = load_table_dataset(table_config(dataset="wine").data, 0)
    hidden = ds.without_test()
    assert len(hidden.test) == 0 and len(hidden.train) == len(ds.train) and ds.task == "multiclass"
