"""Chronological train/val/test splits and walk-forward folds, and a verifier that proves them leak-free.

Splits are defined in bars, the rows of a dataset that exist (a gap in the data holds no bar), and
reported both as row ranges and as half-open UTC ranges ``[start, end)``. An embargo is a run of bars
between two segments that belongs to neither.

Leakage, as :func:`verify_plan` checks it: an agent that trained (or was selected) on a segment used
every bar of it plus the ``horizon_bars`` bars after its last one (the next bar fills its last action
and pays its last reward). Evaluating on a later segment reads the ``warmup_bars`` bars before the
segment's first bar to warm its indicators up. A plan leaks when these two windows meet, that is when
fewer than ``warmup_bars + horizon_bars`` bars lie strictly between an earlier segment and a later
one: the evaluation would then observe bars the agent learned from. A validation segment counts as
learned from, since models are selected on it before the test.

Gaps. Since segments are counted in bars, a segment may straddle a hole in the data: each reports the gaps
inside it (count, missing bars, the longest, coverage = bars / (bars + missing bars)). A scored segment
(validation or test) that is mostly hole is refused by :func:`verify_plan`: its figures would describe
a few bars on each side of the hole, neither period. A training segment is only reported: its episodes
stay inside stretches without gaps (:mod:`tradelab.data.gaps`), so a hole costs it calendar time, not
correctness.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, Field, model_validator

from tradelab.data.errors import DataError
from tradelab.data.gaps import stretches
from tradelab.data.schema import COLUMNS, TS, TimeLike, to_datetime
from tradelab.data.store import Store

_EPSILON = 1e-9
#: A scored segment with a lower coverage (bars / bars its time range should hold) is mostly hole: refused.
MIN_SEGMENT_COVERAGE = 0.5


class Segment(BaseModel):
    """A contiguous run of bars: rows ``first_row ... last_row`` of the dataset's sorted ``ts``.

    ``start`` is the open time of the first bar, ``end`` the close time of the last one (its open time
    plus the bar length), so loading ``[start, end)`` returns exactly the segment's bars.
    """

    name: str
    start: datetime
    end: datetime = Field(description="exclusive: close time of the last bar")
    rows: int
    first_row: int
    last_row: int
    gaps: int = Field(0, description="gaps between the segment's bars")
    missing_bars: int = Field(0, description="bars missing in those gaps")
    longest_gap: int = Field(0, description="missing bars of the longest gap")
    longest_gap_start: datetime | None = Field(None, description="open time of the longest gap's first missing bar")
    coverage: float = Field(1.0, description="rows / (rows + missing_bars)")

    def gap_summary(self) -> str:
        """The gaps in words, e.g. ``2 gaps, 1,092,187 missing bars, longest 1,092,107 from 2023-05-05T07:36``."""
        if not self.gaps:
            return "no gap"
        start = self.longest_gap_start.isoformat() if self.longest_gap_start else "?"
        return (
            f"{self.gaps:,} gap(s), {self.missing_bars:,} missing bars (coverage {self.coverage:.1%}), "
            f"longest {self.longest_gap:,} bars from {start}"
        )


class Fold(BaseModel):
    """One walk-forward step: train (and optionally validate) on the past, test on what follows."""

    index: int
    train: Segment
    val: Segment | None = None
    test: Segment

    @property
    def segments(self) -> list[Segment]:
        """``train``, ``val`` (when present) and ``test``, in time order."""
        return [s for s in (self.train, self.val, self.test) if s is not None]


class SplitPlan(BaseModel):
    """A split of one dataset; ``model_dump_json()`` / ``model_validate_json()`` round-trip it.

    A chronological plan has ``segments`` (train, optional val, test); a walk-forward plan has ``folds``.
    """

    kind: Literal["chronological", "walk_forward"]
    embargo_bars: int
    rows: int = Field(description="bars in the dataset the row indices refer to")
    dataset: str | None = Field(default=None, description="'<SYMBOL>/<TIMEFRAME>@<content hash>' when known")
    segments: list[Segment] = Field(default_factory=list)
    folds: list[Fold] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_layout(self) -> SplitPlan:
        if self.kind == "chronological" and (self.folds or not self.segments):
            raise ValueError("a chronological plan has segments and no folds")
        if self.kind == "walk_forward" and (self.segments or not self.folds):
            raise ValueError("a walk-forward plan has folds and no segments")
        return self

    def sequences(self) -> list[tuple[str, list[Segment]]]:
        """The plan's independent segment sequences with a label prefix: the segments of a chronological
        plan (prefix ``""``), or each fold's (prefix ``"fold <index> "``).
        """
        if self.kind == "chronological":
            return [("", self.segments)]
        return [(f"fold {fold.index} ", fold.segments) for fold in self.folds]


def chronological_split(
    ts: pl.Series, *, train: float = 0.7, val: float = 0.15, test: float = 0.15, embargo_bars: int = 0
) -> SplitPlan:
    """Split bars in time order by fractions of the rows.

    Segment boundaries fall at row ``round(n × cumulative fraction)`` (halves rounded up); the embargo
    is then removed from the start of ``val`` and ``test``. Fractions may sum to less than 1: the
    newest rows left over belong to no segment.

    :param ts: the dataset's bar open times, sorted and unique.
    :param train: fraction of rows for training, in (0, 1].
    :param val: fraction for validation, in [0, 1] (0: no validation segment).
    :param test: fraction for the test, in (0, 1].
    :param embargo_bars: bars dropped between consecutive segments.
    :return: a chronological plan.
    :raises DataError: invalid fractions (naming the field), or a segment left without bars.
    """
    fractions = _fraction("train", train), _fraction("val", val, allow_zero=True), _fraction("test", test)
    if sum(fractions) > 1 + _EPSILON:
        raise DataError(f"train + val + test = {sum(fractions):g} exceeds 1", column="test")
    ts, bar = _bar_times(ts)
    n = ts.len()
    cuts = [min(n, _round_half_up(n * f)) for f in (train, train + val, train + val + test)]
    parts = [("train", 0, cuts[0]), ("val", cuts[0], cuts[1]), ("test", cuts[1], cuts[2])]
    return _chronological(ts, bar, [p for p in parts if p[0] != "val" or val > 0], embargo_bars)


def chronological_split_by_date(
    ts: pl.Series,
    *,
    val_start: TimeLike | None = None,
    test_start: TimeLike,
    end: TimeLike | None = None,
    embargo_bars: int = 0,
) -> SplitPlan:
    """Split bars in time order at dates: train before ``val_start``, val up to ``test_start``, test
    up to ``end``. The embargo is removed from the start of ``val`` and ``test``.

    :param ts: the dataset's bar open times, sorted and unique.
    :param val_start: earliest bar open time of validation (UTC; ISO string, datetime or epoch ms);
        None for no validation segment.
    :param test_start: earliest bar open time of the test.
    :param end: exclusive bound on the test's bar open times; None for up to the last bar.
    :param embargo_bars: bars dropped between consecutive segments.
    :return: a chronological plan.
    :raises DataError: dates out of order (naming the field), or a segment without bars.
    """
    ts, bar = _bar_times(ts)
    bounds = [("val_start", val_start), ("test_start", test_start), ("end", end)]
    times = [(name, to_datetime(value)) for name, value in bounds if value is not None]
    for (earlier, a), (later, b) in itertools.pairwise(times):
        if b <= a:
            raise DataError(f"{later} {b.isoformat()} is not after {earlier} {a.isoformat()}", column=later)
    rows = {name: int(ts.search_sorted(when, side="left")) for name, when in times}
    parts = [("train", 0, rows.get("val_start", rows["test_start"]))]
    if "val_start" in rows:
        parts.append(("val", rows["val_start"], rows["test_start"]))
    parts.append(("test", rows["test_start"], rows.get("end", ts.len())))
    return _chronological(ts, bar, parts, embargo_bars)


def walk_forward(
    ts: pl.Series,
    *,
    n_folds: int,
    test_bars: int | None = None,
    test_fraction: float | None = None,
    train_bars: int | None = None,
    val_bars: int = 0,
    embargo_bars: int = 0,
) -> SplitPlan:
    """Walk-forward folds whose test windows tile the end of the series, oldest fold first.

    Before fold ``k``'s test window come ``embargo_bars`` unused bars, then (going back in time) the
    ``val_bars`` validation bars and ``embargo_bars`` more when validation is asked for, then the
    training bars: all of them from the first bar (an expanding window, ``train_bars=None``) or the
    last ``train_bars`` (a rolling window). Later folds train on earlier folds' test windows.

    :param ts: the dataset's bar open times, sorted and unique.
    :param n_folds: number of folds (test windows), >= 1.
    :param test_bars: bars per test window; give this or ``test_fraction``.
    :param test_fraction: share of all bars the test windows cover together; each window gets
        ``round(n × test_fraction / n_folds)`` bars.
    :param train_bars: bars per training window; None for an expanding window.
    :param val_bars: bars per validation window between train and test; 0 for none.
    :param embargo_bars: bars dropped before each test window (and before each validation window).
    :return: a walk-forward plan.
    :raises DataError: invalid counts (naming the field), or too few bars for the first fold.
    """
    ts, bar = _bar_times(ts)
    n = ts.len()
    n_folds = _count("n_folds", n_folds, 1)
    val_bars = _count("val_bars", val_bars, 0)
    gap = _count("embargo_bars", embargo_bars, 0)
    if train_bars is not None:
        _count("train_bars", train_bars, 1)
    if test_fraction is not None:
        if test_bars is not None:
            raise DataError("give test_bars or test_fraction, not both", column="test_fraction")
        test_bars = _round_half_up(n * _fraction("test_fraction", test_fraction) / n_folds)
        if test_bars == 0:
            raise DataError(f"test_fraction={test_fraction} leaves no bar per fold", column="test_fraction")
    elif test_bars is None:
        raise DataError("give test_bars or test_fraction", column="test_bars")
    size = _count("test_bars", test_bars, 1)

    folds = []
    for k in range(n_folds):
        test_first = n - (n_folds - k) * size
        val_first = test_first - gap - val_bars
        train_stop = val_first - gap if val_bars else test_first - gap
        train_first = 0 if train_bars is None else train_stop - train_bars
        if train_first < 0 or train_stop <= train_first:
            raise DataError(
                f"fold {k} has {max(train_stop, 0)} bar(s) left to train on, needs {train_bars or 1} ({n} bars "
                f"minus {n_folds} test window(s) of {size}, val_bars={val_bars} and embargo_bars={gap})",
                column="n_folds" if train_bars is None else "train_bars",
            )
        folds.append(
            Fold(
                index=k,
                train=_segment(ts, bar, "train", train_first, train_stop),
                val=_segment(ts, bar, "val", val_first, test_first - gap) if val_bars else None,
                test=_segment(ts, bar, "test", test_first, test_first + size),
            )
        )
    return SplitPlan(kind="walk_forward", embargo_bars=gap, rows=n, folds=folds)


def verify_plan(
    plan: SplitPlan, *, warmup_bars: int = 0, horizon_bars: int = 1, min_coverage: float = MIN_SEGMENT_COVERAGE
) -> list[str]:
    """Check a plan for overlap, order, leakage and holes (see the module docstring); an empty list means OK.

    Checks that (1) every segment holds bars and lies within the dataset, and the segments of each
    sequence are in order and pairwise disjoint, by rows and by time; (2) at least
    ``warmup_bars + horizon_bars`` bars lie strictly between each segment and every later one of the
    same sequence; (3) in a walk-forward plan, the test windows are in order and disjoint; (4) no
    validation or test segment has a coverage below ``min_coverage``.

    .. note::
        With the default ``horizon_bars=1`` a plan without embargo fails: the reward of the last
        training step reads the first evaluated bar.

    :param plan: the plan to check.
    :param warmup_bars: bars the observation's indicators read before the first evaluated bar.
    :param horizon_bars: bars after a step that its fill and reward read.
    :param min_coverage: the least coverage of a scored segment (0: no limit).
    :return: one message per problem, naming the segments and the bar counts.
    """
    need = _count("warmup_bars", warmup_bars, 0) + _count("horizon_bars", horizon_bars, 0)
    problems = []
    for prefix, segments in plan.sequences():
        labelled = [(f"{prefix}{s.name}", s) for s in segments]
        problems += [p for label, s in labelled for p in _segment_problems(label, s, plan.rows)]
        problems += [
            f"{_describe(label, s)} is mostly hole: {s.gap_summary()}; a scored segment needs a coverage "
            f">= {min_coverage:.0%} (choose a range on one side of the gap, or fewer or shorter windows)"
            for label, s in labelled
            if s.name != "train" and s.coverage < min_coverage
        ]
        for (a_label, a), (b_label, b) in itertools.combinations(labelled, 2):
            between = b.first_row - a.last_row - 1
            order = _order_problem(a_label, a, b_label, b)
            if order:
                problems.append(order)
            elif between < need:
                problems.append(
                    f"'{a_label}' leaks into '{b_label}': {between} bar(s) between them, need >= {need} "
                    f"(warmup {warmup_bars} + horizon {horizon_bars}); raise embargo_bars to {need}"
                )
    tests = [(f"fold {fold.index} test", fold.test) for fold in plan.folds]
    for (a_label, a), (b_label, b) in itertools.combinations(tests, 2):
        order = _order_problem(a_label, a, b_label, b)
        if order:
            problems.append(order)
    return problems


def check_plan(
    plan: SplitPlan, *, warmup_bars: int = 0, horizon_bars: int = 1, min_coverage: float = MIN_SEGMENT_COVERAGE
) -> SplitPlan:
    """:func:`verify_plan` that raises instead of returning the problems.

    :return: ``plan``, unchanged.
    :raises DataError: listing every problem.
    """
    problems = verify_plan(plan, warmup_bars=warmup_bars, horizon_bars=horizon_bars, min_coverage=min_coverage)
    if problems:
        raise DataError("unsafe split plan:\n  " + "\n  ".join(problems), column="splits")
    return plan


def split_dataset(store: Store, symbol: str, timeframe: str, splitter: Callable[[pl.Series], SplitPlan]) -> SplitPlan:
    """Split a stored dataset, reading only its ``ts`` column.

    Example: ``split_dataset(store, "BTCUSDT", "1h", partial(walk_forward, n_folds=5, test_bars=720))``.

    :param store: the candle store.
    :param symbol: dataset symbol.
    :param timeframe: dataset timeframe.
    :param splitter: one of this module's split functions, its keyword arguments bound.
    :return: the plan, its ``dataset`` set to ``"<SYMBOL>/<TIMEFRAME>@<content hash>"``.
    """
    content_hash = store.require(symbol, timeframe).content_hash
    ts = store.query(symbol, timeframe, lambda bars: bars.select(TS))[TS]
    return splitter(ts).model_copy(update={"dataset": f"{symbol}/{timeframe}@{content_hash}"})


def _chronological(ts: pl.Series, bar: timedelta, parts: list[tuple[str, int, int]], embargo_bars: int) -> SplitPlan:
    """A plan from nominal ``(name, first, stop)`` row ranges, the embargo cut from each later start."""
    gap = _count("embargo_bars", embargo_bars, 0)
    segments = [_segment(ts, bar, name, first + (gap if i else 0), stop) for i, (name, first, stop) in enumerate(parts)]
    return SplitPlan(kind="chronological", embargo_bars=gap, rows=ts.len(), segments=segments)


def _segment(ts: pl.Series, bar: timedelta, name: str, first: int, stop: int) -> Segment:
    """Rows ``[first, stop)`` as a segment with the gaps inside it; a :class:`DataError` naming it when that holds
    no bar."""
    if stop <= first:
        raise DataError(f"segment '{name}' would hold no bars (rows {first}..{stop - 1})", column=name)
    ms = ts.slice(first, stop - first).dt.epoch("ms").to_numpy()
    step = bar // timedelta(milliseconds=1)
    spans = stretches(ms, step, 0)  # every missing bar ends a stretch
    missing = (ms[spans[1:, 0]] - ms[spans[:-1, 1]]) // step - 1
    longest = int(np.argmax(missing)) if missing.size else None
    return Segment(
        name=name,
        start=ts[first],
        end=ts[stop - 1] + bar,
        rows=stop - first,
        first_row=first,
        last_row=stop - 1,
        gaps=int(missing.size),
        missing_bars=int(missing.sum()),
        longest_gap=int(missing[longest]) if longest is not None else 0,
        longest_gap_start=ts[first + int(spans[longest, 1])] + bar if longest is not None else None,
        coverage=(stop - first) / (stop - first + int(missing.sum())),
    )


def _describe(label: str, segment: Segment) -> str:
    return (
        f"'{label}' (rows {segment.first_row}..{segment.last_row}, "
        f"{segment.start.isoformat()} to {segment.end.isoformat()})"
    )


def _segment_problems(label: str, segment: Segment, dataset_rows: int) -> list[str]:
    problems = []
    span = segment.last_row - segment.first_row + 1
    if segment.rows <= 0 or span <= 0:
        problems.append(f"{_describe(label, segment)} is empty (rows={segment.rows})")
    elif segment.rows != span:
        problems.append(f"{_describe(label, segment)} says rows={segment.rows} but spans {span} rows")
    if segment.first_row < 0 or segment.last_row >= dataset_rows:
        problems.append(f"{_describe(label, segment)} lies outside the dataset's {dataset_rows} rows")
    if segment.end <= segment.start:
        problems.append(f"{_describe(label, segment)} does not end after it starts")
    return problems


def _order_problem(a_label: str, a: Segment, b_label: str, b: Segment) -> str | None:
    """Why ``b`` does not come strictly after ``a``, by rows and by time; None when it does."""
    shared = min(a.last_row, b.last_row) - max(a.first_row, b.first_row) + 1
    if shared > 0:
        return f"{_describe(a_label, a)} and {_describe(b_label, b)} overlap by {shared} bar(s)"
    if a.start < b.end and b.start < a.end:
        return f"{_describe(a_label, a)} and {_describe(b_label, b)} overlap in time"
    if b.first_row < a.first_row or b.start < a.start:
        return f"{_describe(b_label, b)} comes before {_describe(a_label, a)}"
    return None


def _bar_times(ts: pl.Series) -> tuple[pl.Series, timedelta]:
    """``ts`` checked and cast to UTC milliseconds (naive times taken as UTC), and the bar length: the
    smallest step between consecutive bars.
    """
    if not isinstance(ts.dtype, pl.Datetime) or ts.len() < 2:
        raise DataError(f"need at least 2 bar times to split, got {ts.len()} of type {ts.dtype}", column=TS)
    ts = ts.cast(COLUMNS[TS])
    step = ts.diff().min()
    if ts.null_count() or step <= timedelta(0):  # type: ignore[operator]
        raise DataError("bar times must be sorted, unique and not null", column=TS)
    return ts, step  # type: ignore[return-value]


def _fraction(name: str, value: float, *, allow_zero: bool = False) -> float:
    if not (0 <= value <= 1 if allow_zero else 0 < value <= 1):
        raise DataError(f"{name}={value} must be in {'[0, 1]' if allow_zero else '(0, 1]'}", column=name)
    return value


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _count(name: str, value: int, minimum: int) -> int:
    if value < minimum:
        raise DataError(f"{name}={value} must be >= {minimum}", column=name)
    return value
