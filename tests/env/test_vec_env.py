"""TradingVecEnv: step for step identical to N single envs (gymnasium's SyncVectorEnv, same-step autoreset)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.env.envs import config, market
from tradelab.env.config import EnvConfig
from tradelab.env.trading_env import TradingEnv
from tradelab.env.vec_env import TradingVecEnv

SCHEMES = [
    {"kind": "discrete", "levels": [-1, 0, 1]},
    {"kind": "multi_discrete", "levels": [-1, 0, 1], "unit": "percent", "stop_levels": [None, 0.05]},
    {"kind": "box", "low": -1, "high": 1},
]


def assert_same(actual: Any, expected: Any, where: str = "") -> None:
    """Exact equality through dicts, object arrays and numeric arrays (NaN equal to NaN)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), f"{where}: {set(actual) ^ set(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, tuple | list):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, np.ndarray) and expected.dtype == object:
        assert actual.shape == expected.shape, where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, np.ndarray):
        assert actual.dtype == expected.dtype, f"{where}: {actual.dtype} != {expected.dtype}"
        np.testing.assert_array_equal(actual, expected, err_msg=where)
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def pair(cfg: EnvConfig, n: int) -> tuple[TradingVecEnv, SyncVectorEnv]:
    vec = TradingVecEnv(cfg, n, market=market())
    sync = SyncVectorEnv(
        [lambda: TradingEnv(cfg, market=market()) for _ in range(n)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    return vec, sync


@settings(max_examples=25, deadline=None)
@given(
    scheme=st.sampled_from(SCHEMES),
    window=st.integers(1, 16),
    length=st.integers(1, 12),
    fee=st.sampled_from([0.0, 10.0, 50.0]),
    observation=st.sampled_from(["box", "dict"]),
    max_drawdown=st.sampled_from([None, 0.003]),
    n=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_vec_env_equals_single_envs(scheme, window, length, fee, observation, max_drawdown, n, seed) -> None:
    cfg = config(
        actions=scheme,
        window=window,
        episode={"length": length},
        execution={"allow_short": True, "taker_fee_bps": fee},
        observation=observation,
        risk={"max_drawdown": max_drawdown},
    )
    vec, sync = pair(cfg, n)
    assert_same(vec.reset(seed=seed), sync.reset(seed=seed), "reset")
    vec.action_space.seed(seed)
    ended = 0
    for step in range(3 * length + 2):  # several episodes per env: autoreset included
        actions = vec.action_space.sample()
        got, want = vec.step(actions), sync.step(actions)
        assert_same(got, want, f"step {step}")
        ended += int(np.sum(got[2] | got[3]))
    assert ended >= n


def test_metadata_spaces_and_render() -> None:
    vec = TradingVecEnv(config(), 3, render_mode="ansi", market=market())
    assert vec.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    observations, infos = vec.reset(seed=0)
    assert vec.observation_space.contains(observations) and infos["equity"].shape == (3,)
    assert len(vec.render()) == 3 and vec.action_masks().shape == (3, 2)


def test_reset_with_a_seed_per_env() -> None:
    vec = TradingVecEnv(config(), 2, market=market())
    _, infos = vec.reset(seed=[11, 11])
    assert infos["bar"][0] == infos["bar"][1]
    with pytest.raises(ValueError, match="3 seeds for 2 envs"):
        vec.reset(seed=[1, 2, 3])


def test_random_starts_are_uniform_over_the_usable_range_and_reproducible() -> None:
    env = TradingVecEnv(config(), 2000, market=market())
    env.reset(seed=123)
    core = env.core
    starts = core.start.copy()
    highest = core.last_bar - config().episode.length + 1  # the last start that leaves a full episode
    assert starts.min() >= core.first_bar and starts.max() <= highest
    span = highest - core.first_bar + 1
    # 2,000 uniform draws: every tenth of the range gets its share (200 expected; 3 sigma is about 40).
    counts = np.bincount((starts - core.first_bar) * 10 // span, minlength=10)
    assert counts.min() > 140 and counts.max() < 260
    env.reset(seed=123)
    assert np.array_equal(core.start, starts)
    env.reset()  # no seed: the next episode of every env, not a repeat
    assert (core.start != starts).mean() > 0.9
