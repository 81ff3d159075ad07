"""Epoch timestamps of unknown unit: detect seconds, milliseconds, microseconds or nanoseconds per file."""

from __future__ import annotations

from typing import Literal

import polars as pl

from tradelab.data.errors import DataError

TsUnit = Literal["s", "ms", "us", "ns"]
# Units as multiples of one millisecond.
_PER_MS: dict[str, float] = {"s": 1e-3, "ms": 1.0, "us": 1e3, "ns": 1e6}
# Candles exist between these instants (2000-01-01 and 2100-01-01 UTC, in ms); one unit puts a file there.
_PLAUSIBLE_MS = (946_684_800_000, 4_102_444_800_000)


def detect_unit(values: pl.Series, *, source: str, column: str) -> TsUnit:
    """The one epoch unit that puts both the smallest and the largest value between 2000 and 2100.

    :raises DataError: when no unit (or more than one) fits, e.g. a file mixing units or row numbers.
    """
    lo, hi = values.min(), values.max()
    fits = [
        unit
        for unit, per_ms in _PER_MS.items()
        if _PLAUSIBLE_MS[0] <= lo / per_ms < _PLAUSIBLE_MS[1]  # type: ignore[operator]
        and _PLAUSIBLE_MS[0] <= hi / per_ms < _PLAUSIBLE_MS[1]  # type: ignore[operator]
    ]
    if len(fits) != 1:
        raise DataError(
            f"unknown timestamp unit: values from {lo} to {hi} are not seconds, milliseconds, microseconds "
            "or nanoseconds since 1970 between the years 2000 and 2100; pass --ts-unit",
            source=source,
            column=column,
        )
    return fits[0]  # type: ignore[return-value]


def epoch_to_ms(
    values: pl.Series, unit: TsUnit | None, *, source: str, column: str, lines: pl.Series, line_unit: str
) -> tuple[pl.Series, TsUnit]:
    """Convert epoch values (integers or floats) in ``unit`` (detected when None) to integer milliseconds.

    :return: the milliseconds and the unit used.
    :raises DataError: a value that is not a whole millisecond, naming its line.
    """
    unit = unit or detect_unit(values, source=source, column=column)
    per_ms = _PER_MS[unit]
    if per_ms >= 1 and values.dtype.is_integer():
        divisor = int(per_ms)
        ms = values // divisor
        exact = values % divisor == 0
    else:
        scaled = values.cast(pl.Float64) / per_ms
        ms = scaled.round().cast(pl.Int64)
        exact = (scaled - ms).abs() < 1e-6
    bad = (~exact).arg_true()
    if bad.len():
        row = int(bad[0])
        raise DataError(
            f"timestamp {values[row]} ({unit}) is not a whole millisecond",
            source=source,
            line=int(lines[row]),
            column=column,
            unit=line_unit,
        )
    return ms.cast(pl.Int64), unit
