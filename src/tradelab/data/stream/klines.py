"""Binance klines, from a websocket message or a REST row, checked and turned into canonical bars.

A websocket kline event looks like::

    {"e": "kline", "E": 1709251260001, "s": "BTCUSDT",
     "k": {"t": 1709251200000, "T": 1709251259999, "s": "BTCUSDT", "i": "1m", "o": "61130.01", "c": "61140.50",
           "h": "61150.00", "l": "61120.00", "v": "12.5", "n": 803, "x": true, "q": "764000.1", ...}}

and a REST row (``GET /api/v3/klines``) is the array
``[t, "o", "h", "l", "c", "v", T, "q", n, "V", "Q", "0"]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from tradelab.data.schema import COLUMNS, TS, conform

MINUTE_MS = 60_000
INTERVAL = "1m"


class MalformedKlineError(ValueError):
    """A message or row that is not a valid kline; ``reason`` names the field and what is wrong with it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Kline:
    """One checked 1-minute kline: times in epoch ms (``close_ms`` = ``open_ms`` + 59,999), prices as floats.

    :param closed: True for a final bar; an open minute's intermediate updates have False.
    :param event_ms: the exchange's event time (websocket messages only).
    """

    open_ms: int
    close_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    quote_volume: float
    closed: bool
    event_ms: int | None = None

    @property
    def values(self) -> tuple[float, float, float, float, float]:
        """The values the store compares to decide that two bars are the same: OHLC and volume."""
        return (self.open, self.high, self.low, self.close, self.volume)


def stream_name(symbol: str, interval: str = INTERVAL) -> str:
    """Binance's name of a kline stream: ``btcusdt@kline_1m``."""
    return f"{symbol.lower()}@kline_{interval}"


def parse_ws_message(raw: str | bytes, symbol: str, interval: str = INTERVAL) -> Kline:
    """Check one websocket message of the kline stream of ``symbol`` and return its kline.

    :raises MalformedKlineError: for bad JSON, a missing or non-numeric field, another symbol, event or
        interval, or inconsistent prices (high below low, ...).
    """
    try:
        message = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedKlineError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MalformedKlineError(f"expected a JSON object, got {type(message).__name__}")
    if _get(message, "e", "") != "kline":
        raise MalformedKlineError(f"field 'e': expected 'kline', got {message['e']!r}")
    k = _get(message, "k", "")
    if not isinstance(k, dict):
        raise MalformedKlineError(f"field 'k': expected an object, got {type(k).__name__}")
    for owner, prefix in ((message, ""), (k, "k.")):
        if _get(owner, "s", prefix) != symbol:
            raise MalformedKlineError(f"field '{prefix}s': expected symbol {symbol!r}, got {owner['s']!r}")
    if _get(k, "i", "k.") != interval:
        raise MalformedKlineError(f"field 'k.i': expected interval {interval!r}, got {k['i']!r}")
    closed = _get(k, "x", "k.")
    if not isinstance(closed, bool):
        raise MalformedKlineError(f"field 'k.x': expected true or false, got {closed!r}")
    return _kline(
        {name: _get(k, name, "k.") for name in ("t", "T", "o", "h", "l", "c", "v", "n", "q")},
        closed=closed,
        event_ms=_integer(_get(message, "E", ""), "E"),
        where="k.",
    )


def parse_rest_row(row: Any) -> Kline:
    """Check one row of ``GET /api/v3/klines`` (Binance's array format) and return it as a closed kline.

    :raises MalformedKlineError: for a short row or a bad field (named by its Binance key, e.g. ``row.o``).
    """
    if not isinstance(row, list) or len(row) < 9:
        raise MalformedKlineError(f"REST row: expected an array of at least 9 fields, got {str(row)[:80]!r}")
    fields = dict(zip(("t", "o", "h", "l", "c", "v", "T", "q", "n"), row, strict=False))
    return _kline(fields, closed=True, event_ms=None, where="row.")


def klines_frame(klines: Sequence[Kline]) -> pl.DataFrame:
    """Canonical bars (``ts open high low close volume trades quote_volume``) of closed klines."""
    frame = pl.DataFrame(
        {
            TS: [k.open_ms for k in klines],
            "open": [k.open for k in klines],
            "high": [k.high for k in klines],
            "low": [k.low for k in klines],
            "close": [k.close for k in klines],
            "volume": [k.volume for k in klines],
            "trades": [k.trades for k in klines],
            "quote_volume": [k.quote_volume for k in klines],
        },
        schema_overrides={TS: pl.Int64(), "trades": pl.Int64()},
    )
    return conform(frame.with_columns(pl.col(TS).cast(COLUMNS[TS])))


def _get(obj: dict[str, Any], key: str, prefix: str) -> Any:
    if key not in obj:
        raise MalformedKlineError(f"missing field '{prefix}{key}'")
    return obj[key]


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedKlineError(f"field '{name}': expected an integer, got {value!r}")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedKlineError(f"field '{name}': expected a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise MalformedKlineError(f"field '{name}': {value!r} is not a number") from None
    if not math.isfinite(number):
        raise MalformedKlineError(f"field '{name}': {value!r} is not finite")
    return number


def _kline(fields: dict[str, Any], *, closed: bool, event_ms: int | None, where: str) -> Kline:
    open_ms, close_ms = _integer(fields["t"], f"{where}t"), _integer(fields["T"], f"{where}T")
    if open_ms % MINUTE_MS:
        raise MalformedKlineError(f"field '{where}t': open time {open_ms} is not on a minute")
    if close_ms != open_ms + MINUTE_MS - 1:
        raise MalformedKlineError(f"field '{where}T': close time {close_ms} is not open time {open_ms} + 59999")
    o, h, low, c, v, q = (_number(fields[n], f"{where}{n}") for n in ("o", "h", "l", "c", "v", "q"))
    trades = _integer(fields["n"], f"{where}n")
    for name, price in (("o", o), ("h", h), ("l", low), ("c", c)):
        if price <= 0:
            raise MalformedKlineError(f"field '{where}{name}': price {price} is not positive")
    if v < 0 or q < 0 or trades < 0:
        raise MalformedKlineError(f"fields '{where}v', '{where}q', '{where}n': negative volume or trade count")
    if h < max(o, c, low) or low > min(o, c):
        raise MalformedKlineError(
            f"fields '{where}h', '{where}l': high {h} and low {low} do not bound open {o} and close {c}"
        )
    return Kline(open_ms, close_ms, o, h, low, c, v, trades, q, closed, event_ms)
