"""Binance public kline files (data.binance.vision): 12 columns, usually no header, CSV or ZIP.

Spot files switched ``open_time`` from milliseconds to microseconds on 2025-01-01, so the unit is
detected per file (see :mod:`tradelab.data.ingest.timestamps`).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Literal

import polars as pl

from tradelab.atomic import atomic_write
from tradelab.data.ingest.tables import RawTable, read_csv_checked
from tradelab.data.schema import TS

COLUMNS = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
    "ignore",
]
_DTYPES: dict[str, pl.DataType] = {
    "open_time": pl.Int64(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "quote_volume": pl.Float64(),
    "trades": pl.Int64(),
}


def looks_like_binance(first_line: str) -> bool:
    """True for a Binance kline row or header: 12 comma-separated fields, the first an integer or ``open_time``."""
    fields = first_line.strip().split(",")
    return len(fields) == len(COLUMNS) and (fields[0].isdigit() or fields[0].strip() == "open_time")


def read_binance(data: bytes, source: str) -> RawTable:
    """Parse kline CSV bytes into a raw table (``ts`` still in the file's own integer unit)."""
    has_header = not data[:1].isdigit()
    frame = read_csv_checked(
        data,
        source=source,
        has_header=has_header,
        names=COLUMNS,
        dtypes=_DTYPES,
        first_line=2 if has_header else 1,
        columns=[COLUMNS.index(name) for name in _DTYPES],
    )
    frame = frame.select(
        pl.col("open_time").alias(TS),
        "open",
        "high",
        "low",
        "close",
        "volume",
        "quote_volume",
        "trades",
        "_line",
    )
    return RawTable(frame=frame, source=source, unit="line")


def write_binance(
    bars: pl.DataFrame,
    path: Path,
    *,
    ts_unit: Literal["ms", "us"] = "ms",
    timeframe_ms: int = 60_000,
    header: bool = False,
) -> Path:
    """Write canonical bars as a Binance kline file: ``.csv``, or ``.zip`` holding one CSV (as Binance serves).

    Columns Binance has and the bars lack are derived the way Binance defines them where possible
    (``close_time`` = open time + bar length - 1) and zero otherwise (taker volumes, trades).

    :param ts_unit: ``"us"`` reproduces Binance spot files from 2025 on.
    :param header: write a header row, as Binance's futures files have (spot files have none).
    """
    scale = 1000 if ts_unit == "us" else 1
    open_ms = pl.col(TS).dt.epoch("ms")
    table = bars.select(
        (open_ms * scale).alias("open_time"),
        "open",
        "high",
        "low",
        "close",
        "volume",
        ((open_ms + timeframe_ms - 1) * scale).alias("close_time"),
        (pl.col("quote_volume") if "quote_volume" in bars.columns else pl.lit(0.0)).alias("quote_volume"),
        (pl.col("trades") if "trades" in bars.columns else pl.lit(0)).alias("trades"),
        pl.lit(0.0).alias("taker_buy_base_volume"),
        pl.lit(0.0).alias("taker_buy_quote_volume"),
        pl.lit(0).alias("ignore"),
    )
    if path.suffix == ".zip":
        buffer = io.BytesIO()
        table.write_csv(buffer, include_header=header)

        def write_zip(tmp: Path) -> None:
            # A fixed member date keeps the archive byte-identical for identical bars.
            member = zipfile.ZipInfo(path.with_suffix(".csv").name, date_time=(1980, 1, 1, 0, 0, 0))
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(member, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED)

        return atomic_write(path, write_zip)
    return atomic_write(path, lambda tmp: table.write_csv(tmp, include_header=header))
