"""Playing a policy over one segment of the data, bar by bar, and the baselines every agent is shown beside.

An evaluation is one full pass (``episode.mode = "full"``) of a :class:`~tradelab.env.trading_env.TradingEnv`
over a segment, with the experiment's execution model: the same fills, fees and stops the agent trained
with. :func:`play` records the equity, position and traded notional at every bar, and the trades.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from tradelab.env.config import EnvConfig, EpisodeConfig
from tradelab.env.market import MarketData
from tradelab.env.policies import Policy, flat, hold, random_policy, sma_crossover
from tradelab.env.trading_env import TradingEnv
from tradelab.experiments.metrics import Metrics, compute_metrics

#: The baselines of every results table: name -> policy factory (the random one is seeded by the episode seed).
BASELINES: dict[str, Callable[[TradingEnv], Policy]] = {
    "buy_and_hold": hold,
    "flat": flat,
    "random": random_policy,
    "sma_crossover": sma_crossover,
}


@dataclass(frozen=True, slots=True)
class Episode:
    """One policy's pass over a segment: per-bar series from the reset (index 0) to the last step.

    :param name: the policy's name (``agent``, ``buy_and_hold`` …).
    :param ts: open time of each decision bar, epoch ms (int64).
    :param equity: equity marked at the last close, quote currency.
    :param position: position value as a signed fraction of equity.
    :param turnover: notional traded in the step that led to the bar (0 at the reset).
    :param trades: the trade log (see :meth:`~tradelab.env.trades.Trade.as_dict`).
    :param summary: the env's episode summary.
    """

    name: str
    ts: np.ndarray
    equity: np.ndarray
    position: np.ndarray
    turnover: np.ndarray
    trades: list[dict[str, Any]]
    summary: dict[str, Any]

    def metrics(self, timeframe: str) -> Metrics:
        """Performance metrics of the pass (see :func:`~tradelab.experiments.metrics.compute_metrics`).

        Bar ``k``'s return (``equity[k - 1] → equity[k]``) is earned with the position and the trades of step ``k``.
        """
        return compute_metrics(
            self.equity,
            timeframe=timeframe,
            positions=self.position[1:],
            traded_notional=self.turnover[1:],
            trades=self.trades,
            fees=float(self.summary["fees"]),
        )

    def frame(self) -> pl.DataFrame:
        """The per-bar series as a frame (``ts`` as UTC datetimes), e.g. for Parquet."""
        return pl.DataFrame(
            {"ts": self.ts, "equity": self.equity, "position": self.position, "turnover": self.turnover}
        ).with_columns(pl.from_epoch("ts", time_unit="ms").dt.replace_time_zone("UTC"))


def evaluation_env(config: EnvConfig, market: MarketData) -> TradingEnv:
    """A single env making one full pass over ``market``'s segment with ``config``'s execution model."""
    episode = EpisodeConfig(mode="full", trade_log=True)
    return TradingEnv(config.model_copy(update={"episode": episode}), market=market)


def segment(market: MarketData, first_row: int, last_row: int) -> MarketData:
    """``market`` with episodes restricted to rows ``first_row … last_row`` (arrays shared, not copied)."""
    return dataclasses.replace(market, first_row=first_row, last_row=last_row)


def play(env: TradingEnv, policy: Policy, name: str, seed: int = 0) -> Episode:
    """Play ``policy`` over the env's segment once, from its first decision bar to its last.

    :param env: a full-pass env (:func:`evaluation_env`).
    :param policy: ``(observation, info) -> action``.
    :param name: what tables and files call the policy.
    :param seed: seeds the env and its action space (the random baseline samples from it).
    """
    observation, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    size = env.core.last_bar - env.core.first_bar + 2
    ts, equity, position, turnover = np.zeros(size, np.int64), np.zeros(size), np.zeros(size), np.zeros(size)
    ts[0], equity[0], position[0] = info["ts"], info["equity"], info["position"]
    step, done = 0, False
    events = env.core.events
    while not done:
        observation, _reward, terminated, truncated, info = env.step(policy(observation, info))
        step += 1
        ts[step], equity[step], position[step] = info["ts"], info["equity"], info["position"]
        turnover[step] = events.turnover[0]
        done = terminated or truncated
    n = step + 1
    return Episode(name, ts[:n], equity[:n], position[:n], turnover[:n], info["trades"], info["episode_summary"])


def play_baselines(env: TradingEnv, seed: int = 0) -> dict[str, Episode]:
    """Every baseline of :data:`BASELINES` over the env's segment."""
    return {name: play(env, factory(env), name, seed) for name, factory in BASELINES.items()}


def metrics_table(episodes: Mapping[str, Episode], timeframe: str) -> dict[str, dict[str, float | int]]:
    """Policy name -> its metrics as a dict (see :meth:`Metrics.as_dict`)."""
    return {name: episode.metrics(timeframe).as_dict() for name, episode in episodes.items()}
