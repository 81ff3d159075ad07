"""The 2023 BTC files (merged) and the 2025 one in one dataset: evaluating the test split, which holds the end
of 2023 and all of 2025, never steps across the two-year hole."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.env.envs import FEATURES
from tradelab.cli import app
from tradelab.env.config import EnvConfig
from tradelab.env.market import MarketData
from tradelab.env.policies import hold
from tradelab.experiments.evaluation import evaluation_env, play

pytestmark = pytest.mark.realdata

FILES = (
    "btc/binance_BTC_USDT-1m_2023-03-16_2023-05-01__andresciancio.json.gz",
    "btc/binance_BTC_USDT-1m_2023-04-05_2023-05-05__justinbomber.json.gz",  # identical rows where they overlap
    "btc/binance_BTC_USDT-1m_2025-06-01_2025-07-01__xylotech.json.gz",
)


def year(ms: int) -> int:
    return datetime.fromtimestamp(ms / 1000, UTC).year


def test_a_chronological_evaluation_of_the_test_split_never_steps_across_the_hole(
    shared_data: Path, home: Path
) -> None:
    for name in FILES:
        result = CliRunner().invoke(app, ["data", "ingest", str(shared_data / name), "--symbol", "BTCUSDT"])
        assert result.exit_code == 0, result.output
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
