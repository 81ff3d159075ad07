"""The canonical bar: column names, dtypes, timeframes, symbols and time arguments."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import polars as pl

from tradelab.data.errors import DataError

SCHEMA_VERSION = 1

TS = "ts"
PRICE_COLUMNS = ("open", "high", "low", "close")
REQUIRED: dict[str, pl.DataType] = {
    TS: pl.Datetime("ms", "UTC"),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
}
OPTIONAL: dict[str, pl.DataType] = {
    "trades": pl.Int64(),
    "quote_volume": pl.Float64(),
    # True on bars inserted by the explicit gap-filling repair, never on real bars.
    "filled": pl.Boolean(),
}
COLUMNS: dict[str, pl.DataType] = {**REQUIRED, **OPTIONAL}

_TIMEFRAME = re.compile(r"^(\d+)([mhd])$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

TimeLike = str | date | datetime | int


def timeframe_ms(timeframe: str) -> int:
    """Length of one bar in milliseconds, for timeframes such as ``1m``, ``15m``, ``4h``, ``1d``.

    :raises DataError: for anything else (the store only holds minute multiples up to days).
    """
    match = _TIMEFRAME.match(timeframe)
    if not match or int(match.group(1)) == 0:
        raise DataError(
            f"invalid timeframe {timeframe!r}: use a positive count and a unit m, h or d (1m, 5m, 4h, 1d)",
            column="timeframe",
        )
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def format_timeframe(ms: int) -> str:
    """The shortest name of a bar length: ``300_000 -> "5m"``, ``3_600_000 -> "1h"``."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def check_symbol(symbol: str) -> str:
    """Return ``symbol`` if it is usable as a folder name (letters, digits, ``. _ -``)."""
    if not _SYMBOL.match(symbol):
        raise DataError(
            f"invalid symbol {symbol!r}: use letters, digits, '.', '_' or '-' (e.g. BTCUSDT, BTC-USD)",
            column="symbol",
        )
    return symbol


def to_datetime(value: TimeLike) -> datetime:
    """Parse a user time argument (ISO date/datetime, ``YYYY-MM``, epoch ms, date) as an aware UTC datetime.

    Naive values are taken as UTC: the store has no other timezone.
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}", text):
        text += "-01"
    try:
        return to_datetime(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise DataError(f"cannot parse time {value!r}: use ISO 8601 such as 2024-03-01 or 2024-03-01T12:00Z") from None


def to_ms(value: TimeLike) -> int:
    """Epoch milliseconds of a user time argument (see :func:`to_datetime`)."""
    return int(to_datetime(value).timestamp() * 1000)


def empty_bars() -> pl.DataFrame:
    """A zero-row frame with the required canonical columns."""
    return pl.DataFrame(schema=REQUIRED)


def conform(bars: pl.DataFrame) -> pl.DataFrame:
    """Cast to canonical dtypes and order (required columns first, then the optional ones present).

    :raises DataError: when a required column is missing or unknown columns are present.
    """
    missing = [c for c in REQUIRED if c not in bars.columns]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)}", column=missing[0])
    unknown = [c for c in bars.columns if c not in COLUMNS]
    if unknown:
        raise DataError(f"unknown column(s) {', '.join(unknown)} (canonical: {', '.join(COLUMNS)})")
    return bars.select(pl.col(name).cast(dtype) for name, dtype in COLUMNS.items() if name in bars.columns)
