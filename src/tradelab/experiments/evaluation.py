"""Playing a policy over one segment of the data, bar by bar, and the baselines every agent is shown beside.

An evaluation is one full pass (``episode.mode = "full"``) of a :class:`~tradelab.env.trading_env.TradingEnv`
over a segment, with the experiment's execution model: the same fills, fees and stops the agent trained
with. :func:`play` records the equity, position and traded notional at every bar, and the trades.

A segment cut by gaps (longer than the env config's ``gaps.max_fill_bars``) is played stretch by stretch,
each after its own warm-up, and chained into one pass whose returns never span a hole (see :func:`play`);
the agent and every baseline are played over the same stretches, so their metrics compare like with like.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from tradelab.data.gaps import GapPolicy
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

    A pass over several stretches (see :func:`play`) concatenates the stretches' series, each from its reset
    on. A later stretch's reset value is the equity carried over the gap, so the step into it (flagged by
    :attr:`stretch_starts`, and by the jump in ``ts`` that metrics given ``ts`` leave out) returns exactly 0:
    no return, fee or position spans a hole.

    :param name: the policy's name (``agent``, ``buy_and_hold`` …).
    :param ts: open time of each decision bar, epoch ms (int64).
    :param equity: equity marked at the last close, quote currency.
    :param position: position value as a signed fraction of equity.
    :param turnover: notional traded in the step that led to the bar (0 at the reset).
    :param trades: the trade log (see :meth:`~tradelab.env.trades.Trade.as_dict`), stretch after stretch; a
        trade still open at a stretch's end is listed open, marked at that stretch's last close.
    :param summaries: the env's episode summary of each stretch played.
    :param stretch_starts: int64 index of each stretch's reset value in the series (0 first); at an index
        ``i > 0`` a gap lies between ``ts[i - 1]`` and ``ts[i]``, and ``equity[i] == equity[i - 1]``.
    """

    name: str
    ts: np.ndarray
    equity: np.ndarray
    position: np.ndarray
    turnover: np.ndarray
    trades: list[dict[str, Any]]
    summaries: list[dict[str, Any]]
    stretch_starts: np.ndarray

    @property
    def fees(self) -> float:
        """Fees paid over the whole pass, quote currency."""
        return sum(float(summary["fees"]) for summary in self.summaries)

    def metrics(self, timeframe: str, max_fill_bars: int = GapPolicy().max_fill_bars) -> Metrics:
        """Performance metrics of the pass (see :func:`~tradelab.experiments.metrics.compute_metrics`).

        Bar ``k``'s return (``equity[k - 1] → equity[k]``) is earned with the position and the trades of step ``k``;
        a step across a gap longer than ``max_fill_bars`` (the env's ``gaps`` policy) is not a traded bar.
        """
        return compute_metrics(
            self.equity,
            timeframe=timeframe,
            ts=self.ts,
            max_fill_bars=max_fill_bars,
            positions=self.position[1:],
            traded_notional=self.turnover[1:],
            trades=self.trades,
            fees=self.fees,
        )

    def frame(self) -> pl.DataFrame:
        """The per-bar series as a frame (``ts`` as UTC datetimes), e.g. for Parquet; ``stretch_start`` marks
        each stretch's reset value (see :attr:`stretch_starts`)."""
        first = np.zeros(len(self.ts), dtype=bool)
        first[self.stretch_starts] = True
        series = {"ts": self.ts, "equity": self.equity, "position": self.position, "turnover": self.turnover}
        return pl.DataFrame({**series, "stretch_start": first}).with_columns(
            pl.from_epoch("ts", time_unit="ms").dt.replace_time_zone("UTC")
        )


def evaluation_env(config: EnvConfig, market: MarketData) -> TradingEnv:
    """A single env making full passes over ``market``'s segment (a stretch per reset) with ``config``'s
    execution model, one bar a step (a policy deciding every ``decision_every`` bars, its equity at every bar)."""
    episode = EpisodeConfig(mode="full", trade_log=True)
    return TradingEnv(config.model_copy(update={"episode": episode}), market=market, bar_by_bar=True)


def segment(market: MarketData, first_row: int, last_row: int) -> MarketData:
    """``market`` with episodes restricted to rows ``first_row … last_row`` (arrays shared, not copied)."""
    return dataclasses.replace(market, first_row=first_row, last_row=last_row)


def play(env: TradingEnv, policy: Policy, name: str, seed: int = 0) -> Episode:
    """Play ``policy`` over the env's segment once, stretch by stretch, chained into one :class:`Episode`.

    Each stretch of the segment (:attr:`~tradelab.env.core.TradingCore.stretches`) is one full-mode episode,
    from its first decision bar (after the stretch's own warm-up) to its last. The equity is carried over each
    gap: the next stretch starts flat with the equity the last one ended with, an open position marked at that
    stretch's last close without a fee, as at the end of any episode (the data has no later price to close it
    at). A terminated episode (bankruptcy, or ``risk.max_drawdown``, measured within a stretch) ends the pass.

    :param env: a full-pass env (:func:`evaluation_env`).
    :param policy: ``(observation, info) -> action``.
    :param name: what tables and files call the policy.
    :param seed: seeds the env (its first reset takes the first stretch) and its action space (the random
        baseline samples from it).
    """
    parts: list[Episode] = []
    options: dict[str, Any] | None = None
    for first, last in env.core.stretches.tolist():
        observation, info = env.reset(seed=None if parts else seed, options=options)
        if not parts:
            env.action_space.seed(seed)
        parts.append(_play_episode(env, policy, name, observation, info, last - first + 2))
        if parts[-1].summaries[0]["terminated"]:
            break
        options = {"initial_cash": float(parts[-1].equity[-1])}
    return _chained(parts)


def _play_episode(
    env: TradingEnv, policy: Policy, name: str, observation: Any, info: dict[str, Any], size: int
) -> Episode:
    """Play the episode the env was just reset into, of at most ``size - 1`` steps."""
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
    series = (ts[:n], equity[:n], position[:n], turnover[:n])
    return Episode(name, *series, info["trades"], [info["episode_summary"]], np.zeros(1, dtype=np.int64))


def _chained(parts: list[Episode]) -> Episode:
    """The stretches' passes as one (see :class:`Episode`)."""
    if len(parts) == 1:
        return parts[0]

    def chain(field: str) -> np.ndarray:
        return np.concatenate([getattr(part, field) for part in parts])

    return Episode(
        name=parts[0].name,
        ts=chain("ts"),
        equity=chain("equity"),
        position=chain("position"),
        turnover=chain("turnover"),
        trades=[trade for part in parts for trade in part.trades],
        summaries=[part.summaries[0] for part in parts],
        stretch_starts=np.cumsum([0, *(len(part.ts) for part in parts[:-1])]).astype(np.int64),
    )


def play_baselines(env: TradingEnv, seed: int = 0) -> dict[str, Episode]:
    """Every baseline of :data:`BASELINES` over the env's segment."""
    return {name: play(env, factory(env), name, seed) for name, factory in BASELINES.items()}
