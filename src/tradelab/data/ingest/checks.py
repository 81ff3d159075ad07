"""Hard checks on freshly read bars: every failure names the file, the line and the column."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from tradelab.data.errors import DataError
from tradelab.data.ingest.tables import LINE, RawTable
from tradelab.data.ingest.timestamps import TsUnit, epoch_to_ms
from tradelab.data.schema import COLUMNS, PRICE_COLUMNS, REQUIRED, TS, format_timeframe

_VALUES = [c for c in REQUIRED if c != TS]


@dataclass
class CheckedBars:
    """Bars that passed every hard check: canonical columns plus ``_line``, sorted by ``ts``."""

    frame: pl.DataFrame
    ts_unit: str


def check_bars(raw: RawTable, *, timeframe_ms: int, ts_unit: TsUnit | None = None, sort: bool = False) -> CheckedBars:
    """Turn a raw table into canonical bars, or raise a :class:`DataError` at the first bad cell.

    Checks, in order: required columns present and non-missing; timestamps converted to UTC
    milliseconds (unit detected per file unless given); prices finite and positive; volume finite and
    non-negative; OHLC consistent; timestamps on the timeframe grid; timestamps sorted (or sorted
    when ``sort``); bar spacing consistent with the timeframe (5-minute bars are not 1-minute bars).
    Duplicates are left for :func:`collapse_duplicates`, which sees every file of an ingest at once.
    """
    frame, source = raw.frame, raw.source
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"missing column '{missing[0]}'", source=source, column=missing[0])
    if frame.height == 0:
        raise DataError("no rows", source=source)
    for column in REQUIRED:
        _fail_first(raw, frame[column].is_null(), column, lambda _: "missing value")

    unit: str = "datetime"
    if frame[TS].dtype.is_numeric():
        ms, unit = epoch_to_ms(frame[TS], ts_unit, source=source, column=TS, lines=frame[LINE], line_unit=raw.unit)
        frame = frame.with_columns(ms.alias(TS))
    else:
        frame = frame.with_columns(pl.col(TS).dt.convert_time_zone("UTC").dt.epoch("ms"))
    raw = RawTable(frame=frame, source=source, unit=raw.unit)

    for column in _VALUES:
        values = frame[column]
        _fail_first(raw, ~values.is_finite(), column, lambda r, c=column: f"value {r[c]} is not finite")
    for column in PRICE_COLUMNS:
        _fail_first(raw, frame[column] <= 0, column, lambda r, c=column: f"price {r[c]} is not positive")
    _fail_first(raw, frame["volume"] < 0, "volume", lambda r: f"volume {r['volume']} is negative")
    _fail_first(raw, frame["high"] < frame["low"], "high", lambda r: f"high {r['high']} is below low {r['low']}")
    body_top = pl.max_horizontal("open", "close")
    body_bottom = pl.min_horizontal("open", "close")
    _fail_first(
        raw,
        frame.select(pl.col("high") < body_top).to_series(),
        "high",
        lambda r: f"high {r['high']} is below open {r['open']} or close {r['close']}",
    )
    _fail_first(
        raw,
        frame.select(pl.col("low") > body_bottom).to_series(),
        "low",
        lambda r: f"low {r['low']} is above open {r['open']} or close {r['close']}",
    )
    tf_name = format_timeframe(timeframe_ms)
    _fail_first(
        raw,
        frame[TS] % timeframe_ms != 0,
        TS,
        lambda r: (
            f"timestamp {_iso(r[TS])} is not aligned to the {tf_name} grid (bar open times are multiples of {tf_name})"
        ),
    )

    if sort:
        frame = frame.sort(TS, maintain_order=True)
    else:
        steps = frame[TS].diff()
        _fail_first(
            raw,
            steps < 0,
            TS,
            lambda r: f"timestamps are not sorted: {_iso(r[TS])} comes after a later bar; pass --sort to sort them",
        )
    _check_spacing(frame, source, timeframe_ms)
    frame = frame.with_columns(pl.col(TS).cast(COLUMNS[TS]))
    return CheckedBars(frame=frame, ts_unit=unit)


def collapse_duplicates(frame: pl.DataFrame, policy: str, names: list[str]) -> tuple[pl.DataFrame, int]:
    """Drop bars whose ``ts`` repeats: identical repeats silently, conflicting ones by ``policy``.

    ``frame`` holds the bars of all files of one ingest with ``_src`` (index into ``names``) and
    ``_line``. ``policy`` ``"error"`` raises at the first conflict naming both places, ``"keep"`` keeps
    the first occurrence, ``"replace"`` the last.

    :return: the unique bars sorted by ``ts`` and the number of identical repeats dropped.
    """
    frame = frame.sort(TS, "_src", "_line")
    repeat = (frame[TS] == frame[TS].shift(1)).fill_null(False)
    if not repeat.any():
        return frame, 0
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(1)) for c in _VALUES)
    flags = frame.select(repeat=repeat, same=same)
    conflict = (flags["repeat"] & ~flags["same"]).arg_true()
    if conflict.len() and policy == "error":
        i = int(conflict[0])
        prev, this = frame.row(i - 1, named=True), frame.row(i, named=True)
        detail = ", ".join(f"{c} {prev[c]} vs {this[c]}" for c in _VALUES if prev[c] != this[c])
        raise DataError(
            f"conflicting duplicate timestamp {this[TS]}: {names[prev['_src']]} line {prev['_line']} and "
            f"{names[this['_src']]} line {this['_line']} differ ({detail}); pass --on-conflict keep or replace",
            source=names[this["_src"]],
            line=this["_line"],
            column=TS,
        )
    identical = int((flags["repeat"] & flags["same"]).sum())
    unique = frame.unique(subset=TS, keep="last" if policy == "replace" else "first", maintain_order=True)
    return unique, identical


def _check_spacing(frame: pl.DataFrame, source: str, timeframe_ms: int) -> None:
    steps = frame[TS].diff().filter(frame[TS].diff() > 0)
    if steps.len() == 0:
        return
    smallest = int(steps.min())  # type: ignore[arg-type]
    if smallest > timeframe_ms:
        actual, wanted = format_timeframe(smallest), format_timeframe(timeframe_ms)
        raise DataError(
            f"no two bars are closer than {actual}, so these are not {wanted} bars; ingest with --timeframe {actual}",
            source=source,
            column=TS,
        )


def _fail_first(raw: RawTable, mask: pl.Series, column: str, describe: object) -> None:
    """Raise at the first row where ``mask`` is true; ``describe(row)`` says what is wrong with it."""
    hits = mask.fill_null(False).arg_true()
    if hits.len():
        row = raw.frame.row(int(hits[0]), named=True)
        raise DataError(
            describe(row),  # type: ignore[operator]
            source=raw.source,
            line=row[LINE],
            column=column,
            unit=raw.unit,
        )


def _iso(ms: int) -> str:
    return pl.Series([ms]).cast(pl.Datetime("ms", "UTC")).dt.to_string("%Y-%m-%d %H:%M:%S UTC")[0]
