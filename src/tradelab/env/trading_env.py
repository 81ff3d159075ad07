"""The single trading env: :class:`TradingEnv`, a :class:`gymnasium.Env` over one :class:`TradingCore`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from tradelab.data.store import Store
from tradelab.env.config import EnvConfig
from tradelab.env.core import OUT_REWARD, OUT_TERMINATED, OUT_TRUNCATED, TradingCore, observation_space, render_line
from tradelab.env.kernel import EPISODE_ENDED, OUTPUT
from tradelab.env.market import MarketData

_ALL = np.ones(1, dtype=bool)


class TradingEnv(gym.Env[Any, Any]):
    """Trade one instrument bar by bar: observe a window of features and the account, choose a target position.

    Registered as ``tradelab/Trading-v0``: ``gymnasium.make("tradelab/Trading-v0", config=...)``.

    :param config: the env config (or a mapping validated into one).
    :param render_mode: None or ``"ansi"`` (:meth:`render` returns a text line).
    :param market: prepared market data (e.g. :meth:`MarketData.from_frame`); loaded from the store when omitted.
    :param store: the store to load from when ``market`` is omitted; the default store when None.
    :param bar_by_bar: step one bar per call even with ``decision_every`` k > 1, reading the action only at
        each k-th bar and holding the order in between (the same fills as k-bar steps): evaluations record
        every bar's equity so.

    ``info`` at every reset and step holds ``equity``, ``position``, ``units``, ``fees``, ``fills``,
    ``drawdown``, ``bar``, ``ts`` and ``reward_parts`` (see :meth:`TradingCore.infos`); the step that
    ends an episode adds ``episode_summary`` and ``trades`` (see :meth:`TradingCore.episode_end`).

    .. note::
        An observation at bar ``t`` holds features of bars ``t - window + 1 … t`` and the account marked
        at the last close; the action fills on bar ``t + 1`` (its open, by default).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}

    def __init__(
        self,
        config: EnvConfig | Mapping[str, Any],
        render_mode: str | None = None,
        *,
        market: MarketData | None = None,
        store: Store | None = None,
        bar_by_bar: bool = False,
    ) -> None:
        self.config = EnvConfig.model_validate(config)
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.render_mode = render_mode
        market = market if market is not None else MarketData.from_store(self.config, store)
        self.core = TradingCore(market, self.config, 1, bar_by_bar=bar_by_bar)
        self.action_space = self.config.actions.space()
        self.observation_space = observation_space(self.core.builder, self.config.observation, self.config.clip)
        self._flat = self.config.observation == "box"
        self._obs = self.core.obs[0]  # the env's row of the observation buffer (a view)
        self._action = self.core.actions[0]  # its action (a view of the core's state)
        self._outputs = self.core.state[0, OUTPUT:]  # its output block (a view)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Start an episode; with ``seed``, its random start (and every later one) is reproducible.

        :param seed: seed of the episode starts; None keeps the current state (seeded from entropy at first).
            In full mode a seed restarts at the first stretch, and each later reset takes the next one.
        :param options: ``{"initial_cash": x}`` starts the episode with equity ``x`` instead of the config's
            ``initial_cash`` (an evaluation carries its equity from one stretch to the next so).
        :return: the first observation and the info.
        :raises ValueError: for an option other than ``initial_cash``.
        """
        options = options or {}
        if set(options) - {"initial_cash"}:
            raise ValueError(f"unknown reset option(s) {sorted(set(options) - {'initial_cash'})}: only initial_cash")
        super().reset(seed=seed)
        self.core.seed([seed])
        self.core.reset(_ALL, options.get("initial_cash"))
        return self._observation(), self.core.info(self.core.outputs(0))

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Act at the current bar; the order executes on the next bar, which becomes the decision bar.

        :param action: an element of :attr:`action_space`.
        :return: observation, reward, terminated (bankrupt or past ``risk.max_drawdown``), truncated (out of
            bars for this episode) and info.
        """
        # The hot path of the single env: every line here costs tens of nanoseconds, so nothing is looked
        # up twice (see bench/bench_env.py).
        core = self.core
        self._action[:] = action
        status = core.kernel(*core.kernel_args)  # core.advance(), inlined
        if status or core.python_parts:
            core.settle(status)
        out = self._outputs.tolist()
        info = core.info(out)
        obs = self._obs.copy() if self._flat else self._observation()
        if not status & EPISODE_ENDED:
            return obs, out[OUT_REWARD], False, False, info
        info["episode_summary"], info["trades"] = core.episode_end(0)
        return obs, out[OUT_REWARD], out[OUT_TERMINATED] != 0.0, out[OUT_TRUNCATED] != 0.0, info

    def render(self) -> str | None:
        """A text line on the current bar and account (``render_mode="ansi"``); None without a render mode."""
        return render_line(self.core, 0) if self.render_mode == "ansi" else None

    def action_masks(self) -> np.ndarray:
        """Allowed actions for sb3-contrib's MaskablePPO (see the action config's ``action_masks``).

        :return: bool array, ``(n,)`` for Discrete(n), ``(sum(nvec),)`` for MultiDiscrete.
        :raises TypeError: for the box scheme, which has nothing to mask.
        """
        actions = self.config.actions
        if actions.kind == "box":
            raise TypeError("the box action scheme has no action masks")
        return actions.action_masks(1, self.config.execution.allow_short)[0]

    def _observation(self) -> Any:
        if self._flat:
            return self._obs.copy()
        obs = self.core.obs
        market = self.core.builder.market_size
        return {"market": obs[0, :market].reshape(self.config.window, -1).copy(), "account": obs[0, market:].copy()}
