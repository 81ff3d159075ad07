"""``decision_every``: a training step holds its order for k bars and adds up their rewards, and an evaluation
env stepped bar by bar (reading the action at every k-th bar) makes the very same fills and equity."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.env.envs import config, market
from tests.env.test_rewards import plugin  # noqa: F401 (a fixture)
from tradelab.env.market import EnvDataError
from tradelab.env.rewards import reward_registry
from tradelab.env.trading_env import TradingEnv
from tradelab.env.vec_env import TradingVecEnv

K = 5
SCHEMES = {
    "long_flat": {"kind": "discrete", "levels": [0.0, 1.0]},
    "three_levels": {"kind": "discrete", "levels": [-1.0, 0.0, 1.0]},
}


def _config(scheme: str, **overrides: object):  # type: ignore[no-untyped-def]
    return config(
        actions=SCHEMES[scheme],
        execution={"allow_short": True, "slippage_bps": 2.0},
        reward=[{"component": "log_return", "weight": 1.0}, {"component": "cost", "weight": 3.0}],
        decision_every=K,
        **overrides,
    )


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_k_bar_steps_equal_bar_by_bar_steps_reading_every_kth_action(scheme: str) -> None:
    env_config = _config(scheme, episode={"mode": "full"})
    decisions = np.random.default_rng(3).integers(0, len(SCHEMES[scheme]["levels"]), 2_000)
    held = TradingEnv(env_config, market=market())
    _, info = held.reset(seed=0)
    start = info["bar"]
    equity, rewards, done, step = [info["equity"]], [], False, 0
    while not done:
        _, reward, terminated, truncated, info = held.step(int(decisions[step]))
        equity.append(info["equity"])
        rewards.append(reward)
        done, step = terminated or truncated, step + 1
    trades = info["trades"]

    stepped = TradingEnv(env_config, market=market(), bar_by_bar=True)
    _, info = stepped.reset(seed=0)
    assert info["bar"] == start
    bar_equity, bar_rewards, done, bar = [info["equity"]], [], False, 0
    while not done:
        noise = bar % K != 0  # an action between decisions is never read: make it differ
        action = (int(decisions[bar // K]) + noise) % len(SCHEMES[scheme]["levels"])
        _, reward, terminated, truncated, info = stepped.step(action)
        bar_equity.append(info["equity"])
        bar_rewards.append(reward)
        done, bar = terminated or truncated, bar + 1

    assert bar == info["bar"] - start and step == -(-bar // K)  # the last step may be cut short by the end
    np.testing.assert_allclose(equity, bar_equity[::K] + ([bar_equity[-1]] if bar % K else []), rtol=1e-12)
    sums = np.add.reduceat(np.asarray(bar_rewards), np.arange(0, bar, K))
    np.testing.assert_allclose(rewards, sums, rtol=1e-9, atol=1e-15)
    assert len(trades) > 10 and trades == info["trades"]


def test_a_random_episode_of_n_decisions_covers_n_times_k_bars() -> None:
    venv = TradingVecEnv(_config("long_flat", episode={"length": 40}), 4, market=market())
    venv.reset(seed=1)
    starts = venv.core.start.copy()
    for _ in range(39):
        *_, terminated, truncated, _info = venv.step(np.ones(4, dtype=np.int64))
        assert not (terminated | truncated).any()
    *_, terminated, truncated, info = venv.step(np.ones(4, dtype=np.int64))
    assert truncated.all() and not terminated.any()
    assert (info["final_info"]["bar"] - starts == 40 * K).all()
    fills = [len(t) for t in info["final_info"]["trades"]]
    assert fills == [1, 1, 1, 1]  # one entry, then the held level keeps its units through 200 bars


@pytest.fixture
def python_reward(plugin: None) -> Iterator[None]:  # noqa: F811 (the imported fixture)
    reward_registry.cache_clear()
    yield
    reward_registry.cache_clear()


@pytest.mark.usefixtures("python_reward")
def test_a_python_reward_component_is_refused_with_k_bar_decisions() -> None:
    rewards = [{"component": "turnover", "weight": 1.0}]
    TradingEnv(config(reward=rewards), market=market())  # one bar a decision: fine
    with pytest.raises(EnvDataError, match="turnover are computed in Python once per step"):
        TradingEnv(config(reward=rewards, decision_every=K), market=market())
