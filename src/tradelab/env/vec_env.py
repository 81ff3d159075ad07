"""The natively batched env: :class:`TradingVecEnv`, N trading envs stepped as one numpy batch.

It follows gymnasium's :class:`~gymnasium.vector.VectorEnv` API with same-step autoreset
(``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``): an env whose episode ends in a step is
reset within that step; the step returns its first new observation, while the last observation and
info of the ended episode go to ``infos["final_obs"]`` and ``infos["final_info"]`` (masked by
``infos["_final_obs"]`` and ``infos["_final_info"]``), exactly as gymnasium's ``SyncVectorEnv`` of N
:class:`~tradelab.env.trading_env.TradingEnv` with ``autoreset_mode=SAME_STEP`` would, step for step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from tradelab.data.store import Store
from tradelab.env.config import EnvConfig
from tradelab.env.core import (
    TradingCore,
    batch_seeds,
    observation_row,
    observation_space,
    render_line,
    split_observation,
)
from tradelab.env.market import MarketData


class TradingVecEnv(VectorEnv[Any, Any, Any]):
    """``num_envs`` trading envs over the same market data, each with its own episodes and generator.

    :param config: the env config (or a mapping validated into one).
    :param num_envs: N.
    :param render_mode: None or ``"ansi"`` (:meth:`render` returns one text line per env).
    :param market: prepared market data; loaded from the store when omitted.
    :param store: the store to load from when ``market`` is omitted; the default store when None.

    ``infos`` holds the keys of :class:`TradingEnv`'s ``info`` as arrays of shape ``(N,)``, each with its
    ``_key`` mask (all True), plus ``final_obs`` / ``final_info`` for the envs whose episode ended.

    .. note::
        Env ``i`` reset with seed ``s`` steps exactly like a :class:`TradingEnv` reset with seed ``s``:
        ``reset(seed=k)`` seeds env ``i`` with ``k + i``, as gymnasium's vector envs do.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        config: EnvConfig | Mapping[str, Any],
        num_envs: int,
        render_mode: str | None = None,
        *,
        market: MarketData | None = None,
        store: Store | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.config = EnvConfig.model_validate(config)
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        market = market if market is not None else MarketData.from_store(self.config, store)
        self.num_envs = num_envs
        self.core = TradingCore(market, self.config, num_envs)
        self.single_action_space = self.config.actions.single_space()
        self.action_space = self.config.actions.space(num_envs)
        self.single_observation_space = observation_space(self.core.builder, self.config.observation, self.config.clip)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._all = np.ones(num_envs, dtype=bool)
        self._all.flags.writeable = False  # also every info key's "_key" mask: shared, so read-only

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start a new episode in every env.

        :param seed: None (keep each env's seed state; from entropy at first), an int ``k`` (env ``i``
            gets ``k + i``) or one seed per env.
        :param options: unused.
        :return: the batch of first observations and the infos.
        """
        if isinstance(seed, int):
            super().reset(seed=seed)
        self.core.seed(batch_seeds(seed, self.num_envs))
        buffer = self.core.reset(self._all)
        return split_observation(buffer, self.core.builder, self.config.observation), self._masked(self.core.infos())

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env; envs whose episode ends are reset in the same step (see the module docstring).

        :param actions: a batch of N actions (an element of :attr:`action_space`).
        :return: observations, rewards ``(N,)`` float64, terminated and truncated ``(N,)`` bool, infos.
        """
        core = self.core
        obs, reward, terminated, truncated = core.step(actions)
        done = terminated | truncated
        final: dict[str, Any] = {}
        if done.any():
            ended = np.flatnonzero(done)
            final_obs = split_observation(obs[ended], core.builder, self.config.observation)
            for row, i in enumerate(ended.tolist()):
                info = core.info(core.outputs(i))
                info["episode_summary"], info["trades"] = core.episode_end(i)
                final = self._add_info(final, {"final_obs": observation_row(final_obs, row), "final_info": info}, i)
            core.reset(done)  # writes the first observations of the new episodes into obs
        if self.config.observation == "dict":
            obs = split_observation(obs, core.builder, "dict")
        return obs, reward, terminated, truncated, {**final, **self._masked(core.infos())}

    def render(self) -> tuple[str, ...] | None:
        """One text line per env (``render_mode="ansi"``); None without a render mode."""
        if self.render_mode != "ansi":
            return None
        return tuple(render_line(self.core, i) for i in range(self.num_envs))

    def action_masks(self) -> np.ndarray:
        """Allowed actions of every env for sb3-contrib's MaskablePPO, shape ``(N, n)`` (see :class:`TradingEnv`).

        :raises TypeError: for the box scheme, which has nothing to mask.
        """
        actions = self.config.actions
        if actions.kind == "box":
            raise TypeError("the box action scheme has no action masks")
        return actions.action_masks(self.num_envs, self.config.execution.allow_short)

    def _masked(self, infos: dict[str, Any]) -> dict[str, Any]:
        """``infos`` with gymnasium's ``_key`` mask beside every key (nested dicts too), every env having it.

        The masks are one shared read-only array, so adding them is two dict updates, not an allocation per key.
        """
        infos.update({f"_{key}": self._all for key in infos})
        parts = infos["reward_parts"]
        parts.update({f"_{name}": self._all for name in parts})
        return infos
