"""The Stable-Baselines3 view of the batched env: :class:`SB3VecEnv`, an SB3 ``VecEnv`` over one :class:`TradingVecEnv`.

SB3 algorithms (and sb3-contrib's, MaskablePPO included) train on it directly, with no per-env Python
objects in between: one step of the adapter is one batched numpy step of the :class:`TradingVecEnv`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from tradelab.env.vec_env import TradingVecEnv

#: Keys of the batched step infos copied into every env's info dict at every step (scalars: cheap to build).
STEP_INFO_KEYS = ("equity", "position", "drawdown", "fees", "fills", "bar", "ts")

#: Methods of :class:`TradingVecEnv` that answer for all envs at once with one row per env.
PER_ENV_METHODS = frozenset({"action_masks", "render"})


class SB3VecEnv(VecEnv):
    """Adapt a :class:`TradingVecEnv` (gymnasium's vector API) to SB3's ``VecEnv`` API.

    :param venv: the batched env; its single-env spaces become this VecEnv's spaces.

    Every step returns observations, rewards ``(N,)`` float32, dones ``(N,)`` bool (terminated or truncated)
    and one info dict per env. An env that is not done gets a small dict of :data:`STEP_INFO_KEYS`; an env
    whose episode ended gets the full info of its last step (with ``episode_summary`` and ``trades``) plus
    ``terminal_observation`` (its last observation) and ``TimeLimit.truncated`` (truncated and not
    terminated), and its returned observation is already the first one of its next episode: the
    :class:`TradingVecEnv`'s same-step autoreset is SB3's convention. :attr:`reset_infos` holds the
    (small) info of each env's latest reset.

    .. note::
        The N envs are one object, so :meth:`get_attr` returns the :class:`TradingVecEnv`'s attribute once
        per env, :meth:`set_attr` only sets attributes for all envs, and :meth:`env_method` only calls the
        batched methods of :data:`PER_ENV_METHODS` (``action_masks`` for MaskablePPO, ``render``), handing
        each env its row. SB3's :meth:`seed` applies at the next :meth:`reset`, as with any ``VecEnv``.
        Wrap in SB3's ``VecMonitor`` for the ``rollout/ep_rew_mean`` and ``ep_len_mean`` logs.
    """

    def __init__(self, venv: TradingVecEnv) -> None:
        self.venv = venv  # before super().__init__, which reads render_mode through get_attr
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        """Start a new episode in every env, with the seeds given to :meth:`seed` if any (used once).

        :return: the batch of first observations.
        """
        observations, infos = self.venv.reset(seed=self._seeds)
        self._reset_seeds()
        self.reset_infos = self._step_infos(infos)
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        """Keep the actions for :meth:`step_wait` (the batched step is synchronous).

        :param actions: one action per env, an element of the :class:`TradingVecEnv`'s ``action_space``.
        """
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Step every env with the actions of :meth:`step_async`; ended episodes restart in the same step.

        :return: observations, rewards ``(N,)`` float32, dones ``(N,)`` bool and N info dicts (see the class).
        """
        observations, reward, terminated, truncated, infos = self.venv.step(self._actions)
        dones = terminated | truncated
        env_infos = self._step_infos(infos)
        if dones.any():
            final_obs, final_info = infos["final_obs"], infos["final_info"]
            time_limit = truncated & ~terminated
            for i in np.flatnonzero(dones).tolist():
                self.reset_infos[i] = env_infos[i]  # the step's infos are the new episode's, after the autoreset
                info = _unbatch(final_info, i)
                info["terminal_observation"] = final_obs[i]
                info["TimeLimit.truncated"] = bool(time_limit[i])
                env_infos[i] = info
        return observations, reward.astype(np.float32), dones, env_infos

    def close(self) -> None:
        """Close the :class:`TradingVecEnv`."""
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The :class:`TradingVecEnv`'s attribute, once per env in ``indices`` (all envs share it).

        :param attr_name: the attribute's name.
        :param indices: the envs (all when None).
        :return: one value per env.
        :raises AttributeError: when the :class:`TradingVecEnv` has no such attribute.
        """
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the :class:`TradingVecEnv`, which all envs share.

        :param attr_name: the attribute's name.
        :param value: its new value.
        :param indices: the envs; must be all of them (None or every index).
        :raises ValueError: for a subset of the envs, which cannot hold an attribute of their own.
        """
        if sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError(f"{attr_name!r} is shared by all {self.num_envs} envs: set it for all or none")
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call a batched method of the :class:`TradingVecEnv` once and hand each env in ``indices`` its row.

        :param method_name: one of :data:`PER_ENV_METHODS` (``"action_masks"``: each env gets its mask).
        :param method_args: positional arguments of the method.
        :param indices: the envs (all when None).
        :param method_kwargs: keyword arguments of the method.
        :return: one result per env (None each when the method returned None, e.g. ``render`` without a mode).
        :raises NotImplementedError: for any other method, which has no per-env meaning here.
        """
        if method_name not in PER_ENV_METHODS:
            raise NotImplementedError(f"SB3VecEnv can only call {sorted(PER_ENV_METHODS)}, not {method_name!r}")
        rows: Sequence[Any] | None = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [None if rows is None else rows[i] for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """False for every env: no gymnasium wrapper sits between this adapter and the batched env."""
        return [False for _ in self._get_indices(indices)]

    def _step_infos(self, infos: dict[str, Any]) -> list[dict[str, Any]]:
        """One small info dict per env: the :data:`STEP_INFO_KEYS` of the batched infos, as Python scalars."""
        columns = [infos[key].tolist() for key in STEP_INFO_KEYS]
        return [dict(zip(STEP_INFO_KEYS, row, strict=True)) for row in zip(*columns, strict=True)]


def _unbatch(infos: dict[str, Any], index: int) -> dict[str, Any]:
    """Env ``index``'s entry of gymnasium batched infos: the keys its ``_key`` masks mark, nested dicts kept.

    :return: plain values (numpy scalars turned into Python ones; lists and other objects as they are).
    """
    out: dict[str, Any] = {}
    for key, value in infos.items():
        mask = infos.get(f"_{key}")
        if (key.startswith("_") and key[1:] in infos) or (mask is not None and not mask[index]):
            continue
        if isinstance(value, dict):
            out[key] = _unbatch(value, index)
        else:
            item = value[index]
            out[key] = item.item() if isinstance(item, np.generic) else item
    return out
