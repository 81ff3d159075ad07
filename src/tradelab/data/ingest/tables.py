"""Reading a raw table with exact error locations (file, line, column) for every bad cell."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
import polars as pl

from tradelab.data.errors import DataError

LINE = "_line"
_SLICE = 1 << 22  # bytes compared at a time when counting: a small temporary array


@dataclass
class RawTable:
    """Columns parsed from one file, not yet checked.

    ``frame`` holds ``ts`` (integer epoch in an unknown unit, or a datetime) and the canonical value
    columns it has, plus ``_line``: where each row stands in the file (a line for text, a row for records).
    """

    frame: pl.DataFrame
    source: str
    unit: str


def read_csv_checked(
    data: bytes,
    *,
    source: str,
    has_header: bool,
    dtypes: dict[str, pl.DataType],
    first_line: int,
    names: list[str] | None = None,
    columns: list[int] | None = None,
) -> pl.DataFrame:
    """Read CSV bytes with ``dtypes``, adding a ``_line`` column (1-based line of each row in the file).

    Parsing is typed and fast; only when it fails is the file read again as text to name the exact
    line and column of the first bad cell.

    :param names: column names for a file without a header (all columns, in order).
    :param columns: indices of the columns to keep (the others are skipped while parsing).
    :raises DataError: empty file, header only, ragged rows, or a value that is not a number.
    """
    if not data or data.isspace():  # isspace stops at the first other byte; strip() would copy the file
        raise DataError("the file is empty", source=source)
    options = {"has_header": has_header, "new_columns": names, "columns": columns, "infer_schema_length": 0}
    try:
        frame = pl.read_csv(data, schema_overrides=dtypes, **options)  # type: ignore[arg-type]
    except pl.exceptions.PolarsError as exc:
        _locate_bad_cell(data, source, options, dtypes, first_line)
        raise csv_error(data, exc, source=source, separator=",", has_header=has_header) from exc
    if frame.height == 0:
        raise DataError("the file has a header but no rows", source=source)
    if names is not None and columns is not None:
        _check_field_counts(data, source=source, fields=len(names), lines=frame.height + has_header)
    return frame.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))


def _check_field_counts(data: bytes, *, source: str, fields: int, lines: int) -> None:
    """Every line has ``fields`` fields: polars ignores extra fields of the columns it skips, and a field
    too many or too few shifts the others, so count the separators (quick) and locate a ragged line (slow).
    """
    if _count(data, b",") != (fields - 1) * lines:
        ragged = ragged_line(data, source=source, separator=",", has_header=False)
        raise ragged or DataError(f"expected {fields} fields on every line", source=source)


def _count(data: bytes, byte: bytes) -> int:
    """How often ``byte`` occurs in ``data``: numpy over slices, several times faster than ``bytes.count``."""
    array, value = np.frombuffer(data, np.uint8), ord(byte)
    return sum(int(np.count_nonzero(array[i : i + _SLICE] == value)) for i in range(0, len(array), _SLICE))


def _locate_bad_cell(
    data: bytes, source: str, options: dict[str, object], dtypes: dict[str, pl.DataType], first_line: int
) -> None:
    try:
        text = pl.read_csv(data, **options)  # type: ignore[arg-type]
    except pl.exceptions.PolarsError as exc:
        raise csv_error(data, exc, source=source, separator=",", has_header=bool(options["has_header"])) from exc
    cast_checked(text, {c: t for c, t in dtypes.items() if c in text.columns}, source, first_line)


def csv_error(
    data: bytes, exc: pl.exceptions.PolarsError, *, source: str, separator: str, has_header: bool
) -> DataError:
    """Why polars could not parse CSV text: the first ragged line when there is one (polars does not say
    where), else polars' own first line.
    """
    ragged = ragged_line(data, source=source, separator=separator, has_header=has_header)
    return ragged or DataError(f"cannot parse CSV: {str(exc).splitlines()[0]}", source=source)


def ragged_line(data: bytes, *, source: str, separator: str, has_header: bool) -> DataError | None:
    """The first line whose number of fields differs from the first line's, as an error naming it; None if none."""
    rows = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""), delimiter=separator)
    try:
        width = len(next(rows, []))
        start = rows.line_num + 1
        for row in rows:
            if row and len(row) != width:
                first = "the header" if has_header else "the first line"
                spans = f"; a quoted field runs from here to line {rows.line_num}" if rows.line_num > start else ""
                return DataError(
                    f"{len(row)} fields where {first} has {width}: a stray or missing {separator!r}?{spans}",
                    source=source,
                    line=start,
                )
            start = rows.line_num + 1
    except csv.Error:  # e.g. a field over the csv module's size limit: the caller's message will do
        pass
    return None


def cast_checked(
    text: pl.DataFrame, dtypes: dict[str, pl.DataType], source: str, first_line: int, unit: str = "line"
) -> pl.DataFrame:
    """Cast text columns to ``dtypes``; the first cell that is not a number raises a located DataError.

    Empty cells become nulls (missing values are reported later, by the bar checks).
    """
    casts = {}
    for column, dtype in dtypes.items():
        raw = text[column]
        if raw.dtype == pl.String:
            raw = raw.str.strip_chars().replace("", None)
        cast = raw.cast(dtype, strict=False)
        bad = (cast.is_null() & raw.is_not_null()).arg_true()
        if bad.len():
            row = int(bad[0])
            kind = "an integer" if dtype.is_integer() else "a number"
            raise DataError(
                f"value {text[column][row]!r} is not {kind}",
                source=source,
                line=first_line + row,
                column=column,
                unit=unit,
            )
        casts[column] = cast
    return text.with_columns(**casts)
