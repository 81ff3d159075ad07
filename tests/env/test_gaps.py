"""Gaps in the bars: episodes never step across one, features restart their warm-up after it, or the data is refused.

The frame is :func:`tests.env.envs.frame` with 200 bars cut out after row 1,199: stretch A holds rows
0..1,199, stretch B rows 1,200..2,679 of the cut frame. The light features warm up in 60 bars and the
window is 8, so a stretch's first decision bar is 67 bars after its first row.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.env.envs import FEATURES, config, frame
from tradelab.data.store import Store
from tradelab.env.market import EnvDataError, MarketData
from tradelab.env.trading_env import TradingEnv
from tradelab.env.vec_env import TradingVecEnv
from tradelab.tools.base import Tool
from tradelab.tools.features import FeaturePipeline

CUT, MISSING = 1200, 200
LEAD = 60 + 8 - 1  # warm-up + window - 1: first decision bar after a stretch's first row


def cut(first: int, missing: int) -> pl.DataFrame:
    """:func:`frame` without ``missing`` bars from row ``first`` on."""
    bars = frame()
    return pl.concat([bars.head(first), bars.slice(first + missing)])


@cache
def gapped() -> MarketData:
    return MarketData.from_frame(cut(CUT, MISSING), config())


def crossing(market: MarketData) -> np.ndarray:
    """Bars whose next bar lies across a gap longer than the default ``max_fill_bars`` (5)."""
    return np.flatnonzero(np.diff(market.ts) > 6 * 60_000)


def test_the_gap_cuts_the_bars_into_two_stretches() -> None:
    market = gapped()
    assert market.stretches.tolist() == [[0, CUT - 1], [CUT, market.n_bars - 1]]
    assert crossing(market).tolist() == [CUT - 1]


def test_random_episodes_never_step_across_the_gap_and_start_in_both_stretches() -> None:
    market = gapped()
    vec = TradingVecEnv(config(), 256, market=market)
    vec.reset(seed=1)
    length = config().episode.length
    starts = vec.core.start
    bad = crossing(market)
    flat = np.zeros((256, 1), dtype=np.int64)
    for _ in range(2 * length + 5):  # every env ends an episode and starts another (autoreset)
        assert not np.isin(vec.core.bar, bad).any()
        vec.step(flat)
    stretches = [[LEAD, CUT - 2], [CUT + LEAD, market.n_bars - 2]]  # first and last decision bars
    inside = [(starts >= first) & (starts + length - 1 <= last) for first, last in stretches]
    assert np.all(inside[0] | inside[1]) and inside[0].any() and inside[1].any()
    assert vec.core.stretches.tolist() == stretches


def test_random_starts_skip_a_stretch_too_short_for_an_episode_and_none_long_enough_is_an_error() -> None:
    market = MarketData.from_frame(cut(100, MISSING), config())  # stretch A: 100 bars, 32 decisions
    vec = TradingVecEnv(config(), 200, market=market)
    vec.reset(seed=3)
    assert vec.core.stretches.tolist() == [[100 + LEAD, market.n_bars - 2]]
    assert vec.core.start.min() >= 100 + LEAD
    with pytest.raises(EnvDataError, match=r"frame leaves at most 1412 decision bars in any of its 2 stretches"):
        TradingEnv(config(episode={"length": 1413}), market=gapped())


def test_full_mode_plays_one_stretch_per_reset_in_order_and_a_seed_restarts_at_the_first() -> None:
    market = gapped()
    env = TradingEnv(config(episode={"mode": "full"}), market=market)

    def decision_bars(seed: int | None) -> list[int]:
        _, info = env.reset(seed=seed)
        bars = []
        while True:
            bars.append(info["bar"])
            _, _, terminated, truncated, info = env.step(0)
            if terminated or truncated:
                return bars

    first, second, third = decision_bars(0), decision_bars(None), decision_bars(None)
    assert first == list(range(LEAD, CUT - 1)) and third == first
    assert second == list(range(CUT + LEAD, market.n_bars - 1))
    assert decision_bars(0) == first  # seeded: the first stretch again

    vec = TradingVecEnv(config(episode={"mode": "full"}), 2, market=market)
    vec.reset(seed=0)
    for _ in range(len(first)):  # the last step ends the first stretch; the autoreset takes the second
        assert not np.isin(vec.core.bar, crossing(market)).any()
        vec.step(np.zeros((2, 1), dtype=np.int64))
    assert vec.core.start.tolist() == [CUT + LEAD] * 2


def test_features_and_atr_after_the_gap_are_those_of_the_later_bars_alone() -> None:
    market = gapped()
    after = MarketData.from_frame(cut(CUT, MISSING).slice(CUT), config())
    before = MarketData.from_frame(cut(CUT, MISSING).head(CUT), config())
    values = market.features.values
    np.testing.assert_array_equal(values[CUT:], after.features.values)
    np.testing.assert_array_equal(values[:CUT], before.features.values)
    np.testing.assert_array_equal(market.atr_fraction[CUT:], after.atr_fraction)
    assert np.isnan(values[CUT : CUT + 60]).any(axis=1).all()  # warm-up again, as on the first rows
    assert np.isfinite(values[CUT + 60 :]).all() and np.isnan(market.atr_fraction[CUT : CUT + 14]).all()


def test_refuse_names_the_gap() -> None:
    with pytest.raises(EnvDataError, match=r"frame has 1 gap.*200 missing bars after 2024-01-01T19:59:00"):
        MarketData.from_frame(cut(CUT, MISSING), config(gaps={"on_gap": "refuse"}))


def test_a_gap_within_max_fill_bars_does_not_split() -> None:
    short = cut(CUT, 5)
    market = MarketData.from_frame(short, config())
    assert market.stretches.tolist() == [[0, short.height - 1]]
    np.testing.assert_array_equal(market.features.values, FeaturePipeline(FEATURES).compute(short).values)
    split = MarketData.from_frame(short, config(gaps={"max_fill_bars": 4}))
    assert split.stretches.tolist() == [[0, CUT - 1], [CUT, short.height - 1]]


def test_features_of_each_stretch_are_cached_under_the_dataset_version(
    store: Store, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write("SYN", "1m", cut(CUT, MISSING))
    first = MarketData.from_store(config(), store)
    runs = []
    run = Tool.run
    monkeypatch.setattr(Tool, "run", lambda self, *args: runs.append(self.name) or run(self, *args))
    again = MarketData.from_store(config(), store)
    assert runs == []  # every stretch's columns read from the cache
    np.testing.assert_array_equal(again.features.values, first.features.values)
    np.testing.assert_array_equal(first.features.values, gapped().features.values)
