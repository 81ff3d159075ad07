"""Small frames, configs and market data shared by the env tests."""

from __future__ import annotations

from functools import cache
from typing import Any

import polars as pl

from tradelab.data.ingest.synth import generate_bars
from tradelab.env.config import EnvConfig
from tradelab.env.market import MarketData

#: Light features (warm-up 60 bars) so each test builds its env in milliseconds.
FEATURES = [
    {"tool": "log_return", "as": "ret", "norm": "zscore", "norm_window": 60},
    {"tool": "zscore", "params": {"window": 30}},
    {"tool": "time_of_day"},
]


@cache
def frame() -> pl.DataFrame:
    """Two days of synthetic 1-minute bars without gaps (2,880 bars)."""
    return generate_bars(2, seed=7, gaps=False)


def config(**overrides: Any) -> EnvConfig:
    """An env config over :func:`frame` with the light features, a short window and 200-step episodes."""
    base: dict[str, Any] = {
        "dataset": {"symbol": "SYN"},
        "features": FEATURES,
        "window": 8,
        "episode": {"length": 200},
    }
    return EnvConfig.model_validate({**base, **overrides})


@cache
def market() -> MarketData:
    """Market data of :func:`frame` with the light features (any config with those features may use it)."""
    return MarketData.from_frame(frame(), config())
