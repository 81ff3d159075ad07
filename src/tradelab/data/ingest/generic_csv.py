"""Generic CSV or Parquet candles (Bitstamp, Coinbase, Kraken, Kaggle-style exports) with a column mapping."""

from __future__ import annotations

import io

import polars as pl
from pydantic import BaseModel, Field

from tradelab.data.errors import DataError
from tradelab.data.ingest.tables import LINE, RawTable, cast_checked, csv_error
from tradelab.data.ingest.timestamps import TsUnit
from tradelab.data.schema import COLUMNS, OPTIONAL, TS

# Header names (lower-case) recognised without a mapping, per canonical column.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    TS: ("ts", "timestamp", "time", "date", "datetime", "open_time", "opentime", "unix", "date_time"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "volume_(btc)", "volume btc", "v", "base_volume"),
    "trades": ("trades", "count", "number_of_trades", "tradecount"),
    "quote_volume": ("quote_volume", "volume_(currency)", "quote_asset_volume", "volume usd", "volume_usd"),
}


class GenericOptions(BaseModel):
    """How to read a generic table.

    :param columns: canonical name -> column name in the file, for columns not found by their usual names.
    :param names: column names for a file without a header row.
    :param ts_unit: epoch unit of numeric timestamps; detected from the values when None.
    :param ts_format: strftime format of text timestamps; inferred when None.
    :param tz: timezone of naive timestamps (``UTC``, ``America/New_York``...); naive ones are refused without it.
    :param delimiter: CSV field separator.
    """

    columns: dict[str, str] = Field(default_factory=dict)
    names: list[str] | None = None
    ts_unit: TsUnit | None = None
    ts_format: str | None = None
    tz: str | None = None
    delimiter: str = ","


def read_generic(data: bytes, source: str, options: GenericOptions, *, parquet: bool) -> RawTable:
    """Read a generic CSV or Parquet table and map its columns to the canonical ones.

    :raises DataError: empty file, a required column that cannot be found, a bad value or timestamp.
    """
    if not data or data.isspace():  # isspace stops at the first other byte; strip() would copy the file
        raise DataError("the file is empty", source=source)
    if parquet:
        try:
            table = pl.read_parquet(io.BytesIO(data))
        except pl.exceptions.PolarsError as exc:
            raise DataError(f"cannot read Parquet: {str(exc).splitlines()[0]}", source=source) from exc
        first_line, unit = 1, "row"
    else:
        if len(options.delimiter.encode()) != 1:
            raise DataError(f"--delimiter {options.delimiter!r} is not one single-byte character", column="delimiter")
        try:
            table = pl.read_csv(
                data,
                has_header=options.names is None,
                new_columns=options.names,
                infer_schema_length=0,
                separator=options.delimiter,
            )
        except pl.exceptions.PolarsError as exc:
            raise csv_error(
                data, exc, source=source, separator=options.delimiter, has_header=options.names is None
            ) from exc
        first_line, unit = (1 if options.names else 2), "line"
    if table.height == 0:
        raise DataError("the file has a header but no rows", source=source)

    mapping = _map_columns(table.columns, options.columns, source)
    table = table.select(pl.col(found).alias(name) for name, found in mapping.items())
    table = table.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))
    value_types = {name: COLUMNS[name] for name in mapping if name != TS and table[name].dtype == pl.String}
    try:
        table = cast_checked(table, value_types, source, first_line, unit)
    except DataError as exc:  # name the column as the file calls it
        raise DataError(
            exc.message, source=source, line=exc.line, column=mapping[exc.column or TS], unit=unit
        ) from None
    table = table.with_columns(_parse_ts(table, options, source, mapping[TS], unit).alias(TS))
    return RawTable(frame=table, source=source, unit=unit)


def _map_columns(found: list[str], explicit: dict[str, str], source: str) -> dict[str, str]:
    unknown = [name for name in explicit if name not in COLUMNS]
    if unknown:
        raise DataError(
            f"unknown canonical column '{unknown[0]}' in --columns (use {', '.join(COLUMNS)})", source=source
        )
    lower = {name.strip().lower(): name for name in found}
    mapping: dict[str, str] = {}
    for name in COLUMNS:
        if name in explicit:
            if explicit[name] not in found:
                raise DataError(
                    f"column '{explicit[name]}' (mapped to {name}) is not in the file (columns: {_listing(found)})",
                    source=source,
                    column=explicit[name],
                )
            mapping[name] = explicit[name]
            continue
        match = next((lower[s] for s in _SYNONYMS.get(name, ()) if s in lower), None)
        if match is not None:
            mapping[name] = match
        elif name not in OPTIONAL:
            raise DataError(
                f"missing column '{name}' (columns: {_listing(found)}); map it with --columns {name}=NAME",
                source=source,
                column=name,
            )
    return mapping


def _listing(names: list[str], shown: int = 20) -> str:
    """The file's column names for a message: the first ``shown`` (a hostile header can hold millions)."""
    more = f", ... ({len(names):,} in all)" if len(names) > shown else ""
    return ", ".join(name[:40] for name in names[:shown]) + more


def _parse_ts(table: pl.DataFrame, options: GenericOptions, source: str, column: str, unit: str) -> pl.Series:
    """Timestamps as epoch numbers (unit resolved later) or as UTC-aware datetimes."""
    values = table[TS]
    if values.dtype.is_numeric():
        return values
    if isinstance(values.dtype, pl.Datetime):
        return _localize(values, table, options, source, column, unit)
    text = values.str.strip_chars()
    if options.ts_format is None:
        for numeric_type in (pl.Int64, pl.Float64):
            numeric = text.cast(numeric_type, strict=False)
            if numeric.null_count() == text.null_count():
                return numeric
    try:
        parsed = text.str.to_datetime(format=options.ts_format, time_unit="ms", strict=False)
        bad = (parsed.is_null() & text.is_not_null()).arg_true()
    except pl.exceptions.PolarsError:  # no format could be inferred from the first values
        parsed, bad = text, pl.Series([0])
    if bad.len():
        row = int(bad[0])
        hint = "--ts-format" if options.ts_format is None else f"--ts-format {options.ts_format!r}"
        raise DataError(
            f"cannot parse timestamp {values[row]!r}; pass {hint} (strftime) or --ts-unit for epoch numbers",
            source=source,
            line=int(table[LINE][row]),
            column=column,
            unit=unit,
        )
    return _localize(parsed, table, options, source, column, unit)


def _localize(
    parsed: pl.Series, table: pl.DataFrame, options: GenericOptions, source: str, column: str, unit: str
) -> pl.Series:
    """Naive datetimes in ``--tz`` as UTC; a local time that DST skips or repeats is refused at its line."""
    dtype = parsed.dtype
    assert isinstance(dtype, pl.Datetime)
    if dtype.time_zone is not None:
        return parsed.dt.convert_time_zone("UTC")
    if options.tz is None:
        raise DataError(
            f"timestamps have no timezone (e.g. {table[TS][0]!r}); pass --tz UTC if they are UTC, or their zone",
            source=source,
            column=column,
        )
    try:
        local = parsed.dt.replace_time_zone(options.tz, ambiguous="null", non_existent="null")
    except pl.exceptions.PolarsError as exc:  # an unknown zone
        raise DataError(
            f"cannot localise timestamps to {options.tz}: {str(exc).splitlines()[0]}",
            source=source,
            column=column,
        ) from exc
    bad = (local.is_null() & parsed.is_not_null()).arg_true()
    if bad.len():
        row = int(bad[0])
        repeated = parsed[row : row + 1].dt.replace_time_zone(options.tz, ambiguous="earliest", non_existent="null")
        what = "occurs twice (clocks go back)" if repeated.is_not_null().all() else "does not exist (clocks go forward)"
        raise DataError(
            f"local time '{table[TS][row]}' {what} in {options.tz}; give the times in UTC (--tz UTC) or with "
            "their UTC offset (e.g. 2024-11-03 01:30:00-0500 with --ts-format '%Y-%m-%d %H:%M:%S%z')",
            source=source,
            line=int(table[LINE][row]),
            column=column,
            unit=unit,
        )
    return local.dt.convert_time_zone("UTC")
