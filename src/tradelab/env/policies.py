"""Simple rule-based policies that drive an env for demos, checks and as baselines.

A policy is a callable ``(observation, info) -> action`` for a :class:`~tradelab.env.trading_env.TradingEnv`.
Rules read the market arrays the env already holds, at the decision bar ``info["bar"]`` only; their
indicators are computed per stretch of bars (:meth:`~tradelab.env.market.MarketData.by_stretch`), like the
env's features, so a baseline never averages prices from both sides of a gap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import talib

from tradelab.env.actions import BoxActions, DiscreteActions, MultiDiscreteActions
from tradelab.env.trading_env import TradingEnv

Policy = Callable[[Any, dict[str, Any]], Any]


def level_action(env: TradingEnv, level: float) -> Any:
    """The action that targets the position level closest to ``level`` (a fraction of equity), no stop or target."""
    actions = env.config.actions
    if isinstance(actions, BoxActions):
        return np.array([np.clip(level, actions.low, actions.high)], dtype=np.float32)
    index = int(np.argmin(np.abs(np.asarray(actions.levels) - level)))
    if isinstance(actions, MultiDiscreteActions):
        return np.array([index, 0, 0], dtype=np.int64)  # the first stop/take choice
    assert isinstance(actions, DiscreteActions)
    return index


def sma_trend(env: TradingEnv, period: int = 240) -> Policy:
    """Long the highest level while the decision bar's close is above its ``period``-bar SMA, else flat (0).

    Causal: the SMA at bar ``t`` uses closes up to ``t``, the bar the agent decides on.
    """
    market = env.core.market
    close = market.close
    sma = market.by_stretch(lambda rows: talib.SMA(close[rows], timeperiod=period))
    long, flat = level_action(env, env.config.actions.max_level), level_action(env, 0.0)
    return lambda _obs, info: long if close[info["bar"]] > sma[info["bar"]] else flat


def sma_crossover(env: TradingEnv, fast: int = 60, slow: int = 240) -> Policy:
    """Long the highest level while the ``fast``-bar SMA of the close is above the ``slow``-bar one, else flat.

    Causal: both SMAs at bar ``t`` use closes up to ``t``.
    """
    market = env.core.market
    above = market.by_stretch(
        lambda rows: talib.SMA(market.close[rows], timeperiod=fast) > talib.SMA(market.close[rows], timeperiod=slow)
    )  # False during each stretch's warm-up
    long, flat = level_action(env, env.config.actions.max_level), level_action(env, 0.0)
    return lambda _obs, info: long if above[info["bar"]] else flat


def flat(env: TradingEnv) -> Policy:
    """Stay out of the market: the baseline that earns nothing and pays nothing."""
    action = level_action(env, 0.0)
    return lambda _obs, _info: action


def hold(env: TradingEnv) -> Policy:
    """Buy at the first decision and hold the highest level to the end."""
    action = level_action(env, env.config.actions.max_level)
    return lambda _obs, _info: action


def random_policy(env: TradingEnv) -> Policy:
    """Uniformly random actions from the env's (seeded) action space."""
    return lambda _obs, _info: env.action_space.sample()


POLICIES: dict[str, Callable[[TradingEnv], Policy]] = {
    "sma": sma_trend,
    "sma_crossover": sma_crossover,
    "hold": hold,
    "flat": flat,
    "random": random_policy,
}


def run_episode(
    env: TradingEnv, policy: Policy, seed: int | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Play one episode; return its summary and trade log (from the last step's ``info``)."""
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    while True:
        obs, _reward, terminated, truncated, info = env.step(policy(obs, info))
        if terminated or truncated:
            return info["episode_summary"], info["trades"]
