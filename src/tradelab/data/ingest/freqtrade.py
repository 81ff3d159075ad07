"""freqtrade JSON candles: ``[[open_time_ms, open, high, low, close, volume], ...]`` (``.json``/``.json.gz``)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from tradelab.data.errors import DataError
from tradelab.data.ingest.tables import LINE, RawTable
from tradelab.data.schema import TS

_FIELDS = [TS, "open", "high", "low", "close", "volume"]


def read_freqtrade(data: bytes, source: str) -> RawTable:
    """Parse freqtrade's JSON candle array; rows are numbered from 1 in errors.

    :raises DataError: invalid JSON, not an array of 6-element rows, or a value that is not a number.
    """
    if not data.strip():
        raise DataError("the file is empty", source=source)
    try:
        rows = json.loads(data)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", source=source) from None
    except RecursionError:  # arrays nested thousands deep: a hostile file, not candles
        raise DataError(
            "JSON nested too deeply: expected [[time, open, high, low, close, volume], ...] rows", source=source
        ) from None
    if not isinstance(rows, list):
        raise DataError("expected a JSON array of [time, open, high, low, close, volume] rows", source=source)
    if not rows:
        raise DataError("no rows", source=source)
    try:
        table = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError):
        _locate_bad_row(rows, source)
        raise
    if table.ndim != 2 or table.shape[1] != len(_FIELDS):
        _locate_bad_row(rows, source)
    frame = pl.DataFrame({name: table[:, i] for i, name in enumerate(_FIELDS)})
    frame = frame.with_columns(pl.col(TS).cast(pl.Int64)).with_row_index(LINE, offset=1)
    return RawTable(frame=frame.with_columns(pl.col(LINE).cast(pl.Int64)), source=source, unit="row")


def _locate_bad_row(rows: list[object], source: str) -> None:
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, list) or len(row) != len(_FIELDS):
            raise DataError(
                f"expected 6 fields [time, open, high, low, close, volume], got {row!r}",
                source=source,
                line=number,
                unit="row",
            )
        for name, value in zip(_FIELDS, row, strict=True):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DataError(f"value {value!r} is not a number", source=source, line=number, column=name, unit="row")
