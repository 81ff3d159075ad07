"""SB3VecEnv: SB3's env checker, step-for-step agreement with TradingVecEnv and TradingEnv, PPO and MaskablePPO."""

from __future__ import annotations

import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import VecMonitor

from tests.env.envs import config, market
from tradelab.env.config import EnvConfig
from tradelab.env.trading_env import TradingEnv
from tradelab.env.vec_env import TradingVecEnv
from tradelab.experiments.sb3_vec_env import STEP_INFO_KEYS, SB3VecEnv

SCHEMES = {
    "discrete": {"kind": "discrete", "levels": [-1, 0, 1]},
    "multi_discrete": {"kind": "multi_discrete", "levels": [-1, 0, 1], "unit": "percent", "stop_levels": [None, 0.05]},
    "box": {"kind": "box", "low": -1, "high": 1},
}


def scheme_config(scheme: str, **overrides: Any) -> EnvConfig:
    return config(actions=SCHEMES[scheme], execution={"allow_short": True}, **overrides)


def adapter(cfg: EnvConfig, n: int) -> SB3VecEnv:
    return SB3VecEnv(TradingVecEnv(cfg, n, market=market()))


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("observation", ["box", "dict"])
def test_sb3_check_env_passes(scheme: str, observation: str) -> None:
    env = TradingEnv(scheme_config(scheme, observation=observation), market=market())
    with warnings.catch_warnings():
        # SB3 suggests a custom policy for the dict observation's (window, features) market; that is by design
        warnings.filterwarnings("ignore", message=".*unconventional shape")
        check_env(env, warn=True)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("observation", ["box", "dict"])
def test_steps_match_the_trading_vec_env(scheme: str, observation: str) -> None:
    cfg = scheme_config(scheme, observation=observation, episode={"length": 7})
    env, raw = adapter(cfg, 3), TradingVecEnv(cfg, 3, market=market())
    env.seed(11)
    np.testing.assert_equal(env.reset(), raw.reset(seed=11)[0])
    raw.action_space.seed(0)
    for _ in range(25):
        actions = raw.action_space.sample()
        obs, rewards, dones, infos = env.step(actions)
        raw_obs, raw_rewards, terminated, truncated, raw_infos = raw.step(actions)
        np.testing.assert_equal(obs, raw_obs)
        assert rewards.dtype == np.float32 and dones.dtype == bool
        np.testing.assert_array_equal(rewards, raw_rewards.astype(np.float32))
        np.testing.assert_array_equal(dones, terminated | truncated)
        assert len(infos) == 3 and all(set(STEP_INFO_KEYS) <= set(info) for info in infos)
        for i in np.flatnonzero(dones):
            np.testing.assert_equal(infos[i]["terminal_observation"], raw_infos["final_obs"][i])
    assert env.observation_space == raw.single_observation_space and env.action_space == raw.single_action_space


def test_episode_ends_like_single_envs() -> None:
    """Env ``i`` seeded ``k + i`` gives a TradingEnv's infos, with SB3's terminal keys when done, step for step."""
    cfg = config(risk={"max_drawdown": 0.01}, episode={"length": 20})
    n, seed = 3, 5
    env, singles = adapter(cfg, n), [TradingEnv(cfg, market=market()) for _ in range(n)]
    env.seed(seed)
    observations = env.reset()
    for i, single in enumerate(singles):
        first, info = single.reset(seed=seed + i)
        np.testing.assert_array_equal(observations[i], first)
        assert env.reset_infos[i] == {key: info[key] for key in STEP_INFO_KEYS}
    actions = np.random.default_rng(0).integers(0, 2, size=(120, n))
    ends = {"terminated": 0, "truncated": 0}
    for step_actions in actions:
        observations, rewards, dones, infos = env.step(step_actions)
        for i, single in enumerate(singles):
            obs, reward, terminated, truncated, info = single.step(step_actions[i])
            assert rewards[i] == np.float32(reward) and dones[i] == (terminated or truncated)
            if dones[i]:
                ends["terminated" if terminated else "truncated"] += 1
                expected = {**info, "terminal_observation": obs, "TimeLimit.truncated": truncated and not terminated}
                np.testing.assert_equal(infos[i], expected)
                obs, info = single.reset()
                assert env.reset_infos[i] == {key: info[key] for key in STEP_INFO_KEYS}
            else:
                assert infos[i] == {key: info[key] for key in STEP_INFO_KEYS}
            np.testing.assert_array_equal(observations[i], obs)
    assert ends["terminated"] > 0 and ends["truncated"] > 0, ends


def test_attributes_and_methods() -> None:
    env = adapter(config(actions={"kind": "discrete", "levels": [0, 0.5, 1]}), 3)
    assert env.get_attr("config", indices=[0, 2]) == [env.venv.config] * 2
    assert env.has_attr("action_masks") and not env.has_attr("no_such_attribute")
    np.testing.assert_array_equal(np.stack(env.env_method("action_masks")), np.ones((3, 3), dtype=bool))
    assert len(env.env_method("action_masks", indices=1)) == 1
    env.set_attr("render_mode", "ansi")
    env.reset()
    assert len(env.env_method("render")) == 3 and env.env_method("render", indices=[2])[0].startswith("20")
    with pytest.raises(ValueError, match="shared"):
        env.set_attr("render_mode", None, indices=[0])
    with pytest.raises(NotImplementedError):
        env.env_method("step", 0)
    assert env.env_is_wrapped(VecMonitor) == [False] * 3
    env.close()


def test_ppo_learns_with_terminal_bootstrapping() -> None:
    env = VecMonitor(adapter(config(episode={"length": 32}), 4))
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(256)
    assert model.num_timesteps == 256 and len(model.ep_info_buffer) > 0  # episodes ended and were logged


def test_maskable_ppo_follows_the_action_masks() -> None:
    venv = TradingVecEnv(config(actions={"kind": "discrete", "levels": [0, 0.5, 1]}), 4, market=market())
    mask = np.array([[True, True, False]] * 4)
    venv.action_masks = lambda: mask  # forbid the last level, which the config itself allows
    model = MaskablePPO("MlpPolicy", SB3VecEnv(venv), n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(128)
    buffer = model.rollout_buffer
    assert model.num_timesteps == 128 and not (buffer.actions == 2).any()
    np.testing.assert_array_equal(buffer.action_masks.reshape(-1, 3), np.broadcast_to(mask[0], (32 * 4, 3)))


def test_layers_below_experiments_do_not_import_torch() -> None:
    code = "import sys, tradelab.cli, tradelab.env.vec_env; assert not {'torch', 'sb3_contrib'} & sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True)
