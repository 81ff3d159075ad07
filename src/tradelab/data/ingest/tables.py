"""Reading a raw table with exact error locations (file, line, column) for every bad cell."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tradelab.data.errors import DataError

LINE = "_line"


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
        raise DataError(f"cannot parse CSV: {str(exc).splitlines()[0]}", source=source) from exc
    if frame.height == 0:
        raise DataError("the file has a header but no rows", source=source)
    return frame.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))


def _locate_bad_cell(
    data: bytes, source: str, options: dict[str, object], dtypes: dict[str, pl.DataType], first_line: int
) -> None:
    try:
        text = pl.read_csv(data, **options)  # type: ignore[arg-type]
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"cannot parse CSV: {str(exc).splitlines()[0]}", source=source) from exc
    cast_checked(text, {c: t for c, t in dtypes.items() if c in text.columns}, source, first_line)


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
