"""Reading a table file (CSV, TSV, Parquet, JSON lines) into a pyarrow Table, or saying exactly why not.

Every refusal is a :class:`~mlestar.errors.DataError` that names the file,
the column or the row, and the fix: an empty file, ragged rows, text that is
not UTF-8, nested columns, a column that mixes numbers and text. pyarrow does
the parsing and the first type inference (numbers, booleans, ISO dates).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlestar.errors import DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
# A text column counts as numbers with stray text when at least this share of its values are numbers.
MIXED_NUMERIC_SHARE = 0.9


@dataclass(frozen=True)
class TableFiles:
    """The files of a table source: ``train`` and, when the folder has one, ``test``."""

    train: Path
    test: Path | None = None


def find_files(path: Path) -> TableFiles:
    """A table file, or a folder holding ``train.<ext>`` and optionally ``test.<ext>``.

    Raises:
        DataError: the path is missing, of an unknown format, or a folder without ``train.*``.
    """
    path = Path(path)
    if path.is_file():
        _format(path)
        return TableFiles(train=path)
    if not path.is_dir():
        raise DataError(f"table {path} does not exist", hint="set data.path to a .csv/.tsv/.parquet/.jsonl file "
                                                                "or a folder with train.csv (and test.csv)")
    train, test = _named(path, "train"), _named(path, "test")
    if train is None:
        raise DataError(f"folder {path} has no train.csv, train.parquet, train.tsv or train.jsonl",
                        hint="name the training table train.<ext>; an optional test.<ext> is the test split")
    return TableFiles(train=train, test=test)


def _named(folder: Path, stem: str) -> Path | None:
    found = sorted(p for p in folder.iterdir() if p.stem == stem and p.suffix.lower() in FORMATS)
    if len(found) > 1:
        raise DataError(f"folder {folder} has {len(found)} {stem} tables: {', '.join(p.name for p in found)}",
                        hint=f"keep one {stem}.<ext>")
    return found[0] if found else None


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown table format {path.suffix!r}",
                        hint=f"use one of {', '.join(sorted(FORMATS))}")
    return fmt


def read_table(path: Path, *, declared: frozenset[str] = frozenset()) -> Any:
    """The file as a ``pyarrow.Table``, checked: rows present, UTF-8 text, flat columns, no mixed columns.

    ``declared``: columns whose type the config states; they are not checked for mixed values.

    Raises:
        DataError: naming the file and, where there is one, the column and row at fault.
    """
    import pyarrow as pa

    path = Path(path)
    fmt = _format(path)
    if path.stat().st_size == 0:
        raise DataError(f"table {path} is empty (0 bytes)", hint="point data.path at the file with the data")
    try:
        table = _READERS[fmt](path)
    except pa.ArrowInvalid as exc:
        raise _parse_error(path, fmt, exc) from None
    if table.num_rows == 0:
        raise DataError(f"table {path} has column names but no rows", hint="point data.path at the file with the data")
    _check_nested(path, table)
    _check_utf8(path, table)
    _check_mixed(path, table, declared)
    return table


def _read_csv(path: Path, delimiter: str = ",") -> Any:
    import pyarrow.csv as csv

    ragged: list[Any] = []

    def on_invalid_row(row: Any) -> str:
        ragged.append(row)
        return "error"

    try:
        # An empty field is a missing value in text columns too (pyarrow's default keeps it as "").
        return csv.read_csv(path, parse_options=csv.ParseOptions(delimiter=delimiter,
                                                                 invalid_row_handler=on_invalid_row),
                            convert_options=csv.ConvertOptions(strings_can_be_null=True))
    except Exception:
        if ragged:
            row = ragged[0]
            where = f"line {row.number or _line_of(path, row.text)}"
            raise DataError(f"table {path}: {where} has {row.actual_columns} fields where the header has "
                            f"{row.expected_columns} ({row.text[:80]!r})",
                            hint="fix that row (a missing or extra separator, or an unquoted separator inside "
                                 "a value)") from None
        raise


def _line_of(path: Path, text: str) -> str:
    """The 1-based line of ``path`` that reads ``text`` (pyarrow does not count lines); '?' if not found."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if line.rstrip(b"\r\n").decode("utf-8", "replace") == text:
                return str(number)
    return "?"


def _read_parquet(path: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _read_jsonl(path: Path) -> Any:
    import pyarrow.json as pj

    return pj.read_json(path)


_READERS = {"csv": _read_csv, "tsv": lambda p: _read_csv(p, "\t"), "parquet": _read_parquet, "jsonl": _read_jsonl}


def _parse_error(path: Path, fmt: str, exc: Exception) -> DataError:
    message = str(exc)
    if "changed from" in message:  # JSON: "Column(/x) changed from number to string in row 3"
        return DataError(f"table {path}: {message.split('parse error: ')[-1]}",
                         hint="give that column one type in every row (numbers or text, not both)")
    if "Empty CSV" in message:
        return DataError(f"table {path} is empty", hint="point data.path at the file with the data")
    return DataError(f"table {path} cannot be read as {fmt}: {message}",
                     hint="check the file's format and its extension")


def _check_nested(path: Path, table: Any) -> None:
    import pyarrow.types as t

    nested = [f.name for f in table.schema if t.is_nested(f.type)]
    if nested:
        raise DataError(f"table {path}: column(s) {', '.join(map(repr, nested))} hold nested values "
                        "(lists, structs or maps), which a model cannot take as features",
                        hint="flatten them into plain columns, or list them in data.drop_columns")


def _check_utf8(path: Path, table: Any) -> None:
    import pyarrow.types as t

    for field in table.schema:
        if t.is_binary(field.type) or t.is_large_binary(field.type):
            column = table.column(field.name)
            bad = next((i for i, v in enumerate(column.to_pylist()) if v is not None and not _utf8(v)), None)
            raise DataError(f"table {path}: column {field.name!r} is not UTF-8 text"
                            + (f" (row {bad + 1}: {column[bad].as_py()[:40]!r})" if bad is not None else ""),
                            hint=f"re-save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 {path.name}")


def _utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# What float() reads as a number (Python's own grammar, minus digit underscores).
_NUMBER_RE = r"^[-+]?((\d+(\.\d*)?)|(\.\d+))([eE][-+]?\d+)?$|^[-+]?(inf|infinity|nan)$"


def _check_mixed(path: Path, table: Any, declared: frozenset[str]) -> None:
    """A text column whose values are nearly all numbers: stray text in a numeric column.

    Counted over distinct values with pyarrow (each tested once, weighted by its count), so a
    million-row column costs a value count, not a million ``float()`` calls.
    """
    import pyarrow.types as t

    for field in table.schema:
        if not t.is_string(field.type) or field.name in declared:
            continue
        present, strays, example = _stray_text(table.column(field.name))
        if present and strays and 1 - strays / present >= MIXED_NUMERIC_SHARE:
            raise DataError(f"table {path}: column {field.name!r} mixes numbers and text: {strays} of "
                            f"{present} values are not numbers (e.g. {example!r})",
                            hint=f"fix those values, mark them missing, or declare the column's type in "
                                 f"data.columns ({field.name}: categorical)")


def _stray_text(column: Any) -> tuple[int, int, str | None]:
    """``(non-blank values, values that are not numbers, the first such value)`` of a text column."""
    import pyarrow.compute as pc

    counts = pc.value_counts(column.drop_null())
    values, numbers = pc.utf8_trim_whitespace(counts.field("values")), counts.field("counts")
    blank = pc.equal(values, "")
    numeric = pc.match_substring_regex(values, _NUMBER_RE, ignore_case=True)
    stray = pc.and_(pc.invert(blank), pc.invert(numeric))
    present = int(pc.sum(pc.if_else(blank, 0, numbers)).as_py() or 0)
    strays = int(pc.sum(pc.if_else(stray, numbers, 0)).as_py() or 0)
    example = values.filter(stray)[0].as_py() if strays else None
    return present, strays, example
