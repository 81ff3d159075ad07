"""The numpy fast path of trained agents takes exactly the actions ``model.predict`` takes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from stable_baselines3 import DQN, PPO

from tests.env.envs import config, market
from tradelab.env.trading_env import TradingEnv
from tradelab.experiments import agents
from tradelab.experiments.agents import agent_policy

SCHEMES: dict[str, dict[str, Any]] = {
    "discrete": {"kind": "discrete", "levels": [0, 0.5, 1]},
    "multi_discrete": {"kind": "multi_discrete", "levels": [0, 1], "unit": "percent", "stop_levels": [None, 1]},
    "box": {"kind": "box", "low": 0, "high": 1},
}


@pytest.mark.parametrize(("algorithm", "scheme"), [(PPO, s) for s in SCHEMES] + [(DQN, "discrete")])
def test_numpy_actions_equal_model_predict(algorithm: type, scheme: str) -> None:
    env = TradingEnv(config(actions=SCHEMES[scheme]), market=market())
    model = algorithm("MlpPolicy", env, seed=0, device="cpu", policy_kwargs={"net_arch": [32, 32]})
    assert agents._numpy_layers(model) is not None  # the fast path is taken
    policy = agent_policy(model, env)
    rng = np.random.default_rng(0)
    observations = rng.normal(0.0, 2.0, (200, *env.observation_space.shape)).astype(np.float32)
    for observation in observations:
        expected, _ = model.predict(observation, deterministic=True)
        np.testing.assert_allclose(policy(observation, {}), expected, rtol=1e-5, atol=1e-6)
