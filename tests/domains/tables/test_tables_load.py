"""Table files load, or are refused with a message that names the file, the column or the row."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlestar.domains.tables.load import find_files, read_table
from mlestar.errors import DataError


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("name,text", [
    ("t.csv", "a,b,c\n1,x,true\n2,y,false\n"),
    ("t.tsv", "a\tb\tc\n1\tx\ttrue\n2\ty\tfalse\n"),
    ("t.jsonl", '{"a": 1, "b": "x", "c": true}\n{"a": 2, "b": "y", "c": false}\n'),
])
def test_text_formats_read_with_types(tmp_path: Path, name: str, text: str) -> None:
    table = read_table(write(tmp_path, name, text))
    assert table.column_names == ["a", "b", "c"] and table.num_rows == 2
    assert table.column("a").to_pylist() == [1, 2] and table.column("c").to_pylist() == [True, False]


def test_parquet_reads(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1.5, 2.5], "b": ["x", "y"]}), tmp_path / "t.parquet")
    assert read_table(tmp_path / "t.parquet").column("a").to_pylist() == [1.5, 2.5]


def test_a_folder_gives_train_and_test(tmp_path: Path) -> None:
    write(tmp_path, "train.csv", "a\n1\n")
    write(tmp_path, "test.csv", "a\n2\n")
    write(tmp_path, "notes.txt", "not a table")
    files = find_files(tmp_path)
    assert files.train.name == "train.csv" and files.test is not None and files.test.name == "test.csv"
    (tmp_path / "test.csv").unlink()
    assert find_files(tmp_path).test is None


@pytest.mark.parametrize("setup,message", [
    (lambda d: d, "has no train.csv"),
    (lambda d: write(d, "t.xlsx", "x"), "unknown table format '.xlsx'"),
    (lambda d: d / "missing.csv", "does not exist"),
])
def test_paths_that_are_not_tables_are_refused(tmp_path: Path, setup: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        find_files(setup(tmp_path))  # type: ignore[operator]


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"is empty \(0 bytes\)"):
        read_table(write(tmp_path, "t.csv", ""))
    with pytest.raises(DataError, match="has column names but no rows"):
        read_table(write(tmp_path, "h.csv", "a,b\n"))


def test_ragged_rows_name_the_row_and_the_counts(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 3 has 1 fields where the header has 2 \('3'\)") as info:
        read_table(write(tmp_path, "t.csv", "a,b\n1,2\n3\n4,5\n"))
    assert "separator" in (info.value.hint or "")


def test_text_that_is_not_utf8_names_the_column_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"column 'city' is not UTF-8 text \(row 2") as info:
        read_table(write(tmp_path, "t.csv", "n,city\n1,Paris\n2,Orl\xe9ans\n".encode("latin-1")))
    assert "iconv" in (info.value.hint or "")


def test_a_numeric_column_with_stray_text_is_mixed(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i * 1.5}\n" for i in range(30)) + "30,oops\n"
    with pytest.raises(DataError, match=r"column 'price' mixes numbers and text: 1 of 31 values .*'oops'") as info:
        read_table(write(tmp_path, "t.csv", "n,price\n" + rows))
    assert "data.columns (price: categorical)" in (info.value.hint or "")
    declared = read_table(tmp_path / "t.csv", declared=frozenset({"price"}))  # the user says it is text
    assert declared.num_rows == 31


def test_codes_that_mix_letters_and_digits_are_categories_not_mixed(tmp_path: Path) -> None:
    rows = "".join(f"{i},{'A' if i % 2 else ''}{i}\n" for i in range(30))
    assert read_table(write(tmp_path, "t.csv", "n,code\n" + rows)).num_rows == 30


def test_json_lines_with_a_column_of_two_types_name_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"Column\(/age\) changed from number to string"):
        read_table(write(tmp_path, "t.jsonl", '{"age": 31}\n{"age": "unknown"}\n'))


def test_nested_parquet_columns_are_refused_by_name(tmp_path: Path) -> None:
    nested = pa.table({"id": [1, 2], "tags": [["a"], ["b", "c"]], "geo": [{"lat": 1.0}, {"lat": 2.0}]})
    pq.write_table(nested, tmp_path / "t.parquet")
    with pytest.raises(DataError, match="column\\(s\\) 'tags', 'geo' hold nested values") as info:
        read_table(tmp_path / "t.parquet")
    assert "data.drop_columns" in (info.value.hint or "")
