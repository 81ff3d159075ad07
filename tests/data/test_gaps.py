"""The gap policy's stretches: tolerated gaps join, longer ones cut, refuse names the gap."""

from __future__ import annotations

import numpy as np
import pytest

from tradelab.data.gaps import GapError, GapPolicy, check_gaps, stretches

MIN = 60_000


def _ts(*minutes: int) -> np.ndarray:
    return np.array(minutes, dtype=np.int64) * MIN


def test_contiguous_bars_are_one_stretch() -> None:
    assert stretches(_ts(0, 1, 2, 3), MIN, 0).tolist() == [[0, 3]]


def test_a_gap_within_the_tolerance_joins_and_a_longer_one_cuts() -> None:
    ts = _ts(0, 1, 4, 5, 20, 21)  # 2 bars missing after row 1, 14 after row 3
    assert stretches(ts, MIN, 2).tolist() == [[0, 3], [4, 5]]
    assert stretches(ts, MIN, 1).tolist() == [[0, 1], [2, 3], [4, 5]]
    assert stretches(ts, MIN, 14).tolist() == [[0, 5]]


def test_no_bars_no_stretch() -> None:
    assert stretches(_ts(), MIN, 5).shape == (0, 2)


def test_refuse_names_the_first_gap_and_split_returns_the_stretches() -> None:
    ts = _ts(0, 1, 30, 31)
    with pytest.raises(GapError, match=r"28 missing bars after 1970-01-01T00:01:00\+00:00"):
        check_gaps(ts, MIN, GapPolicy(max_fill_bars=5, on_gap="refuse"), "BTC/1m")
    assert check_gaps(ts, MIN, GapPolicy(max_fill_bars=5), "BTC/1m").tolist() == [[0, 1], [2, 3]]
