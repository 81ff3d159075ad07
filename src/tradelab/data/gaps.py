"""Gaps in a bar series and the one policy every layer applies to them.

A *gap* is a run of missing bars between two stored bars. Short gaps (an exchange hiccup of a few
minutes) are tolerated: bars on both sides are treated as consecutive. A gap longer than
:attr:`GapPolicy.max_fill_bars` cuts the series into *stretches*, and every layer honours the cut:
episodes never step across it, rolling features restart their warm-up after it, splits and folds
report it, and per-period metrics count only the bars actually traded. With ``on_gap="refuse"``
such a gap is an error instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field


class GapError(ValueError):
    """The data has a gap the policy refuses."""


class GapPolicy(BaseModel):
    """How a gap in the bars is handled (the env config's ``gaps``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_fill_bars: int = Field(
        5,
        ge=0,
        description="gaps of at most this many missing bars are tolerated (the bars on both sides count as "
        "consecutive); a longer gap splits the series",
    )
    on_gap: Literal["split", "refuse"] = Field(
        "split",
        description="split: a longer gap ends an episode and restarts feature warm-up after it; refuse: the data "
        "is refused with an error naming the gap",
    )


def stretches(ts_ms: npt.NDArray[np.int64], step_ms: int, max_fill_bars: int) -> npt.NDArray[np.int64]:
    """Row ranges ``(first, last)`` (inclusive) of the contiguous stretches of sorted bar open times.

    Two neighbouring bars belong to one stretch when at most ``max_fill_bars`` bars are missing between them.

    :param ts_ms: bar open times, epoch milliseconds, ascending.
    :param step_ms: the bar length in milliseconds.
    :param max_fill_bars: the longest tolerated gap, in missing bars.
    :return: an int64 array of shape ``(stretches, 2)``; empty for no bars.
    """
    ts = np.asarray(ts_ms, dtype=np.int64)
    if len(ts) == 0:
        return np.empty((0, 2), dtype=np.int64)
    missing = np.diff(ts) // step_ms - 1
    cuts = np.flatnonzero(missing > max_fill_bars) + 1  # first row of each stretch after the first
    firsts = np.concatenate([[0], cuts])
    lasts = np.concatenate([cuts - 1, [len(ts) - 1]])
    return np.column_stack([firsts, lasts]).astype(np.int64)


def check_gaps(ts_ms: npt.NDArray[np.int64], step_ms: int, policy: GapPolicy, what: str) -> npt.NDArray[np.int64]:
    """:func:`stretches` under ``policy``: with ``on_gap="refuse"``, a gap beyond the tolerance raises.

    :param what: names the data in the error (e.g. ``BTCUSDT/1m@abc123``).
    :raises GapError: naming the first refused gap, its length and where it is.
    """
    spans = stretches(ts_ms, step_ms, policy.max_fill_bars)
    if policy.on_gap == "refuse" and len(spans) > 1:
        before, after = int(ts_ms[spans[0, 1]]), int(ts_ms[spans[1, 0]])
        raise GapError(
            f"{what} has {len(spans) - 1} gap(s) longer than gaps.max_fill_bars={policy.max_fill_bars}; the first: "
            f"{(after - before) // step_ms - 1} missing bars after {_iso(before)} (next bar {_iso(after)}); "
            "gaps.on_gap is 'refuse' (use 'split' to trade the stretches apart, or choose a range without it)"
        )
    return spans


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()
