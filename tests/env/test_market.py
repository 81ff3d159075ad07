"""MarketData: refusal of bad data and non-causal tools, store loading with version and split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.env.envs import FEATURES, config, frame
from tradelab.data.store import Store
from tradelab.env.market import EnvDataError, MarketData
from tradelab.env.trading_env import TradingEnv
from tradelab.tools.registry import Registry

FUTURE_TOOL = """
from typing import ClassVar
import numpy as np
from tradelab.tools.base import Tool

class Future(Tool):
    name: ClassVar[str] = "future_close"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "next bar's close"
    causal: ClassVar[bool] = False

    def warmup(self, params):
        return 0

    def compute(self, bars, params):
        return np.append(bars["close"][1:], bars["close"][-1])
"""


def test_refuses_bars_failing_hard_validation() -> None:
    bad = frame().with_columns(
        high=pl.when(pl.int_range(pl.len()) == 100).then(pl.col("low") - 1).otherwise(pl.col("high"))
    )
    with pytest.raises(EnvDataError, match=r"fails hard validation.*ohlc_inconsistent"):
        MarketData.from_frame(bad, config())


def test_refuses_non_causal_tools(tmp_path: Path) -> None:
    folder = tmp_path / "future"
    folder.mkdir()
    (folder / "tool.toml").write_text(
        'name = "future_close"\nversion = "1"\ndescription = "next bar\'s close"\n'
        'module = "future"\ncallable = "Future"\n'
    )
    (folder / "future.py").write_text(FUTURE_TOOL)
    registry = Registry(tmp_path, talib=False, entry_points=False)
    with pytest.raises(EnvDataError, match="future_close are not causal"):
        MarketData.from_frame(frame(), config(features=[*FEATURES, {"tool": "future_close"}]), registry=registry)


def test_from_store_checks_the_version_and_restricts_episodes_to_the_split(store: Store) -> None:
    store.write("SYN", "1m", frame())
    version = store.require("SYN", "1m").content_hash
    split = {"name": "val", "train": 0.6, "val": 0.2, "test": 0.2}
    market = MarketData.from_store(config(dataset={"symbol": "SYN", "version": version[:8], "split": split}), store)
    n = frame().height
    assert market.n_bars == n and (market.first_row, market.last_row) == (round(0.6 * n), round(0.8 * n) - 1)
    assert market.dataset == f"SYN/1m@{version[:12]}"  # the version, short, as the CLI shows it
    np.testing.assert_array_equal(market.close, frame()["close"].to_numpy())
    with pytest.raises(EnvDataError, match="config asks for beefbeef"):
        MarketData.from_store(config(dataset={"symbol": "SYN", "version": "beefbeef"}), store)


def test_too_short_for_an_episode() -> None:
    with pytest.raises(EnvDataError, match="the episode needs 5000"):
        TradingEnv(config(episode={"length": 5000}), market=MarketData.from_frame(frame(), config()))
