"""Hard checks on freshly read bars: every failure names the file, the line and the column."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    _apply_rules(raw, [_Rule(c, pl.col(c).is_null(), lambda _: "missing value") for c in REQUIRED])

    unit: str = "datetime"
    if frame[TS].dtype.is_numeric():
        ms, unit = epoch_to_ms(frame[TS], ts_unit, source=source, column=TS, lines=frame[LINE], line_unit=raw.unit)
        frame = frame.with_columns(ms.alias(TS))
    else:
        frame = frame.with_columns(pl.col(TS).dt.convert_time_zone("UTC").dt.epoch("ms"))
    if sort:
        frame = frame.sort(TS, maintain_order=True)
    raw = RawTable(frame=frame, source=source, unit=raw.unit)
    _apply_rules(raw, _value_rules(timeframe_ms, check_order=not sort))
    _check_spacing(frame, source, timeframe_ms)
    return CheckedBars(frame=frame.with_columns(pl.col(TS).cast(COLUMNS[TS])), ts_unit=unit)


@dataclass
class _Rule:
    """A hard check: rows where ``broken`` is true fail; ``describe(row)`` says why."""

    column: str
    broken: pl.Expr
    describe: Callable[[dict[str, Any]], str]


def _value_rules(timeframe_ms: int, *, check_order: bool) -> list[_Rule]:
    tf = format_timeframe(timeframe_ms)
    rules = [_Rule(c, ~pl.col(c).is_finite(), lambda r, c=c: f"value {r[c]} is not finite") for c in _VALUES]
    rules += [_Rule(c, pl.col(c) <= 0, lambda r, c=c: f"price {r[c]} is not positive") for c in PRICE_COLUMNS]
    rules += [
        _Rule("volume", pl.col("volume") < 0, lambda r: f"volume {r['volume']} is negative"),
        _Rule("high", pl.col("high") < pl.col("low"), lambda r: f"high {r['high']} is below low {r['low']}"),
        _Rule(
            "high",
            pl.col("high") < pl.max_horizontal("open", "close"),
            lambda r: f"high {r['high']} is below open {r['open']} or close {r['close']}",
        ),
        _Rule(
            "low",
            pl.col("low") > pl.min_horizontal("open", "close"),
            lambda r: f"low {r['low']} is above open {r['open']} or close {r['close']}",
        ),
        _Rule(
            TS,
            pl.col(TS) % timeframe_ms != 0,
            lambda r: f"timestamp {_iso(r[TS])} is not aligned to the {tf} grid (bar open times are multiples of {tf})",
        ),
    ]
    if check_order:
        rules.append(
            _Rule(
                TS,
                pl.col(TS) < pl.col(TS).shift(1),
                lambda r: f"timestamps are not sorted: {_iso(r[TS])} comes after a later bar; pass --sort to sort them",
            )
        )
    return rules


def _apply_rules(raw: RawTable, rules: list[_Rule]) -> None:
    """Evaluate every rule in one parallel pass; raise at the first row of the first rule that fails."""
    failed = raw.frame.select(rule.broken.fill_null(False).any().alias(str(i)) for i, rule in enumerate(rules)).row(0)
    for rule, fails in zip(rules, failed, strict=True):
        if fails:
            mask = raw.frame.select(rule.broken.fill_null(False)).to_series()
            row = raw.frame.row(int(mask.arg_true()[0]), named=True)
            raise DataError(rule.describe(row), source=raw.source, line=row[LINE], column=rule.column, unit=raw.unit)


def collapse_duplicates(frame: pl.DataFrame, policy: str, names: list[str]) -> tuple[pl.DataFrame, int, int]:
    """Drop bars whose ``ts`` repeats: identical repeats silently, conflicting ones by ``policy``.

    ``frame`` holds the bars of all files of one ingest with ``_src`` (index into ``names``) and
    ``_line``. ``policy`` ``"error"`` raises at the first conflict naming both places, ``"keep"`` keeps
    the first occurrence, ``"replace"`` the last.

    :return: the unique bars sorted by ``ts``, the number of identical repeats dropped, and the number
        of conflicting repeats resolved by ``policy``.
    """
    if not frame[TS].is_sorted():  # files arrive sorted; only their union may need sorting
        frame = frame.sort(TS, "_src", "_line")
    repeat = (frame[TS] == frame[TS].shift(1)).fill_null(False)
    if not repeat.any():
        return frame, 0, 0
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
    return unique, identical, conflict.len()


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


def _iso(ms: int) -> str:
    return pl.Series([ms]).cast(pl.Datetime("ms", "UTC")).dt.to_string("%Y-%m-%d %H:%M:%S UTC")[0]
