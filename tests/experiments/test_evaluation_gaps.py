"""Evaluating over a segment cut by a gap: every stretch is played after its own warm-up and chained into one
pass, the equity carried over the hole, and the baselines play the very same stretches."""

from __future__ import annotations

import numpy as np
import pytest

from tests.env.envs import config
from tests.env.test_gaps import CUT, LEAD, cut, gapped
from tradelab.env.market import MarketData
from tradelab.env.policies import hold, sma_crossover
from tradelab.experiments.evaluation import Episode, evaluation_env, play, play_baselines


def alone(first: int, rows: int | None) -> Episode:
    """Buy-and-hold over ``rows`` bars of the cut frame from row ``first``, as a dataset of its own."""
    bars = cut(CUT, 200).slice(first, rows)
    env = evaluation_env(config(), MarketData.from_frame(bars, config()))
    return play(env, hold(env), "buy_and_hold")


def test_a_pass_plays_every_stretch_and_carries_the_equity_over_the_gap() -> None:
    env = evaluation_env(config(), gapped())
    episode = play(env, hold(env), "buy_and_hold")
    n = CUT - 1 - LEAD + 1  # stretch A: its reset and a step per decision bar
    assert episode.stretch_starts.tolist() == [0, n] and len(episode.summaries) == 2
    steps = np.diff(episode.ts)
    assert (np.delete(steps, n - 1) == 60_000).all()  # every step within a stretch; the one into B is flagged
    assert episode.equity[n] == episode.equity[n - 1] and episode.position[n] == 0.0 and episode.turnover[n] == 0.0

    a, b = alone(0, CUT), alone(CUT, None)
    np.testing.assert_array_equal(episode.equity[:n], a.equity)
    np.testing.assert_allclose(episode.equity[n:], b.equity * a.equity[-1] / b.equity[0], rtol=1e-12)
    np.testing.assert_array_equal(episode.ts, np.concatenate([a.ts, b.ts]))
    assert episode.fees == pytest.approx(a.fees + b.fees * a.equity[-1] / b.equity[0], rel=1e-12)
    assert len(episode.trades) == 2  # bought in each stretch: nothing is held across the hole
    total = episode.metrics("1m").total_return
    assert total == pytest.approx((1 + a.metrics("1m").total_return) * (1 + b.metrics("1m").total_return) - 1)


def test_the_agent_and_every_baseline_play_the_same_stretches_with_indicators_per_stretch() -> None:
    env = evaluation_env(config(), gapped())
    episodes = {"agent": play(env, lambda _obs, _info: 1, "agent", seed=5), **play_baselines(env, seed=5)}
    for episode in episodes.values():
        np.testing.assert_array_equal(episode.ts, episodes["agent"].ts)
        np.testing.assert_array_equal(episode.stretch_starts, episodes["agent"].stretch_starts)
    n = int(episodes["agent"].stretch_starts[1])
    later = evaluation_env(config(), MarketData.from_frame(cut(CUT, 200).slice(CUT), config()))
    alone = play(later, sma_crossover(later), "sma_crossover")
    np.testing.assert_array_equal(episodes["sma_crossover"].position[n:] > 0, alone.position > 0)
