"""The 2023 BTC files (merged) and the 2025 one in one dataset: evaluating the test split, which holds the end
of 2023 and all of 2025, never steps across the two-year hole."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from tests.env.envs import FEATURES
from tradelab.env.config import EnvConfig
from tradelab.env.market import MarketData
from tradelab.env.policies import hold
from tradelab.experiments.evaluation import evaluation_env, play

pytestmark = pytest.mark.realdata


def year(ms: int) -> int:
    return datetime.fromtimestamp(ms / 1000, UTC).year


def test_a_chronological_evaluation_of_the_test_split_never_steps_across_the_hole(
    joined: str,
) -> None:
    split = {"name": "test", "train": 0.5, "val": 0.1, "test": 0.4}
    config = EnvConfig.model_validate(
        {"dataset": {"symbol": "BTCUSDT", "split": split}, "features": FEATURES, "window": 8}
    )
    market = MarketData.from_store(config)
    env = evaluation_env(config, market)
    episode = play(env, hold(env), "buy_and_hold")
    assert (np.diff(market.ts) > 6 * 60_000).sum() == 2  # the 80-minute outage of 2023 and the hole before 2025

    starts = episode.stretch_starts
    assert starts.size == 2 and year(episode.ts[starts[1] - 1]) == 2023 and year(episode.ts[starts[1]]) == 2025
    within = np.delete(np.diff(episode.ts), starts[1:] - 1)
    assert within.max() <= 6 * 60_000  # every step inside a stretch (gaps of up to 5 missing bars are filled)
    assert episode.equity[starts[1]] == episode.equity[starts[1] - 1]  # carried over the hole, no return across it
    assert int(episode.ts[-1]) == int(market.ts[-1])  # the pass reaches the last bar of 2025
    assert len(market.stretches) == 3
