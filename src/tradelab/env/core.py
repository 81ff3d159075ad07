"""The batched trading engine shared by the single env (``N = 1``) and the vector env.

:class:`TradingCore` steps N independent episodes over one :class:`~tradelab.env.market.MarketData`
as numpy arrays of length N: decode the actions, gather each env's execution bar, execute, score,
advance, observe. There is no Python loop over envs except where an episode resets (its random start)
or ends (its trade log), so one batch step costs about what one env step costs.

Timing. An env deciding at bar ``t`` sees features up to ``t``'s close; its order executes on bar
``t + 1`` (``fill="next_open"``) or on bar ``t`` (``fill="close"``), then it decides at ``t + 1``.
The last decision bar is the second-to-last bar of the usable range, so the execution bar and the
next observation always exist.

Episodes. In ``random`` mode an episode starts at a uniformly drawn bar (each env's own generator)
and lasts ``length`` decisions; in ``full`` mode it runs from the first to the last decision bar.
It is *truncated* when it runs out of decisions and *terminated* on bankruptcy or when the drawdown
exceeds ``risk.max_drawdown`` (a terminated step is never also reported truncated).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from tradelab.env.config import EnvConfig
from tradelab.env.execution import Accounts, BarView, StepEvents, execute_step
from tradelab.env.market import EnvDataError, MarketData
from tradelab.env.observation import ACCOUNT_FEATURES, ObservationBuilder
from tradelab.env.rewards import RewardFunction, RewardInputs
from tradelab.env.trades import FillBuffer

logger = logging.getLogger(__name__)


class TradingCore:
    """N trading episodes stepped as one numpy batch.

    :param market: the prepared bars and features.
    :param config: the env config.
    :param n_envs: N.
    :raises EnvDataError: when the usable range has no decision bar, or fewer than ``episode.length``.

    .. note::
        :meth:`step` and :meth:`observe` return buffers that the next call overwrites: copy what you keep.
    """

    def __init__(self, market: MarketData, config: EnvConfig, n_envs: int) -> None:
        self.market = market
        self.config = config
        self.n_envs = n_envs
        self.builder = ObservationBuilder(market.features.values, config.window, n_envs)
        #: First and last bar an env may decide at.
        self.first_bar = max(self.builder.first_bar(market.warmup), market.first_row)
        self.last_bar = market.last_row - 1
        usable = self.last_bar - self.first_bar + 1
        needed = config.episode.length if config.episode.mode == "random" else 1
        if usable < needed:
            raise EnvDataError(
                f"{market.dataset} leaves {max(usable, 0)} decision bars after a warm-up of {market.warmup} bars and a "
                f"window of {config.window} (rows {market.first_row}..{market.last_row}); the episode needs {needed}"
            )
        self.accounts = Accounts.new(n_envs, config.initial_cash)
        self.events = StepEvents.new(n_envs)
        self.reward = RewardFunction(config.reward, n_envs)
        #: Each reward component's value at the last step (0 right after a reset).
        self.reward_parts = {name: np.zeros(n_envs) for name in self.reward.names}
        # Per env: seed of its episode starts, episodes drawn since, and whether it was ever seeded.
        self._seed = np.zeros(n_envs, dtype=np.uint64)
        self._episodes = np.zeros(n_envs, dtype=np.uint64)
        self._seeded = np.zeros(n_envs, dtype=bool)
        #: Each env's decision bar, its episode's first and last decision bar, and its steps so far.
        self.bar = np.zeros(n_envs, dtype=np.int64)
        self.start = np.zeros(n_envs, dtype=np.int64)
        self.end = np.zeros(n_envs, dtype=np.int64)
        self.steps = np.zeros(n_envs, dtype=np.int64)
        self.episode_reward = np.zeros(n_envs)
        self.max_drawdown = np.zeros(n_envs)
        self.fills = FillBuffer(n_envs)
        self.terminated = np.zeros(n_envs, dtype=bool)
        self.truncated = np.zeros(n_envs, dtype=bool)
        zeros = [np.zeros(n_envs) for _ in range(5)]
        self._view = BarView(*zeros)
        self._exec_bar = np.zeros(n_envs, dtype=np.int64)
        self._atr = np.zeros(n_envs)
        self._equity_prev = np.zeros(n_envs)
        self._units_prev = np.zeros(n_envs)
        self._mark = np.zeros(n_envs)  # price the accounts were last marked at
        acc = self.accounts
        self._inputs = RewardInputs(
            equity_prev=self._equity_prev,
            equity=acc.equity,
            peak_equity=acc.peak_equity,
            fees=self.events.fees,
            units=acc.units,
            price=self._view.close,
            initial_cash=np.full(n_envs, config.initial_cash),
            traded_notional=self.events.turnover,
        )

    def seed(self, seeds: Sequence[int | None]) -> None:
        """Seed the episode starts of each env given an int; envs given None keep their state.

        Env ``i`` seeded with ``s`` draws the same starts as any other env seeded with ``s``, in any batch.
        """
        for i, seed in enumerate(seeds):
            if seed is not None:
                self._seed[i] = np.uint64(seed % 2**64)
                self._episodes[i] = 0
                self._seeded[i] = True

    def reset(self, mask: np.ndarray) -> np.ndarray:
        """Start a new episode in the envs of ``mask``; the others are untouched.

        :param mask: bool array ``(N,)``; an env never seeded is seeded from entropy first.
        :return: the ``(N, size)`` float32 observation buffer.
        """
        episode = self.config.episode
        if episode.mode == "random":
            fresh = mask & ~self._seeded
            if fresh.any():
                self._seed[fresh] = np.random.default_rng().integers(0, 2**63, fresh.sum(), dtype=np.uint64)
                self._seeded |= fresh
            # A counter-based draw (seed, episode number) -> start: vectorized, and the same for an env
            # whatever batch it is in. The top 53 bits make a uniform float in [0, 1).
            draws = _mix(_mix(self._seed[mask]) ^ self._episodes[mask])
            span = self.last_bar - self.first_bar - episode.length + 2
            offsets = ((draws >> np.uint64(11)).astype(np.float64) * 2.0**-53 * span).astype(np.int64)
            self._episodes[mask] += np.uint64(1)
            self.start[mask] = self.first_bar + offsets
            self.end[mask] = self.start[mask] + episode.length - 1
        else:
            self.start[mask], self.end[mask] = self.first_bar, self.last_bar
        self.fills.clear(mask)
        np.copyto(self.bar, self.start, where=mask)
        self.accounts.reset(mask, self.config.initial_cash)
        self.reward.reset(mask)
        for array in (self.steps, self.episode_reward, self.max_drawdown, *self.reward_parts.values()):
            np.copyto(array, 0, where=mask)
        np.copyto(self._mark, np.take(self.market.close, self.bar), where=mask)
        return self.observe()

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every env one bar.

        :param actions: a batch of N actions in the config's action space (decoded by ``config.actions``).
        :return: observations ``(N, size)`` float32, rewards ``(N,)`` float64, terminated and truncated ``(N,)``
            bool; buffers overwritten by the next call.
        """
        market, acc, view = self.market, self.accounts, self._view
        np.take(market.atr_fraction, self.bar, out=self._atr)
        target, stop, take = self.config.actions.decode(actions, self._atr)
        # The order is sent at the decision bar's close, so its volatility is known; it fills on the next bar.
        np.take(market.vol, self.bar, out=view.vol)
        np.add(self.bar, self.config.execution.fill == "next_open", out=self._exec_bar)
        for name in ("open", "high", "low", "close"):
            np.take(getattr(market, name), self._exec_bar, out=getattr(view, name))
        np.copyto(self._equity_prev, acc.equity)
        np.copyto(self._units_prev, acc.units)
        execute_step(acc, self.config.execution, target, stop, take, view, self.events)
        np.copyto(self._mark, view.close)
        if self.events.reason.any():
            self.fills.append(np.take(market.ts, self._exec_bar), self.events)
        reward, parts = self.reward(self._inputs)
        for name, part in parts.items():
            np.copyto(self.reward_parts[name], part)
        self.episode_reward += reward
        self.bar += 1
        self.steps += 1
        drawdown = self._drawdown()
        np.maximum(self.max_drawdown, drawdown, out=self.max_drawdown)
        np.copyto(self.terminated, acc.bankrupt)
        if self.config.risk.max_drawdown is not None:
            self.terminated |= drawdown > self.config.risk.max_drawdown
        np.greater(self.bar, self.end, out=self.truncated)
        self.truncated &= ~self.terminated
        return self.observe(), reward, self.terminated, self.truncated

    def observe(self) -> np.ndarray:
        """Build every env's observation at its decision bar (see :class:`ObservationBuilder`).

        :return: the ``(N, size)`` float32 buffer.
        """
        acc = self.accounts
        equity = np.maximum(acc.equity, 1e-12)  # a bankrupt account (equity 0) shows a zero position
        held = acc.units * self._mark
        unrealized = np.nan_to_num(acc.units * (self._mark - acc.entry_price))  # entry is NaN when flat
        buffer = self.builder.build(
            self.bar,
            held / equity,
            unrealized / equity,
            acc.equity / self.config.initial_cash - 1.0,
            self._drawdown(),
            acc.bars_in_position,
        )
        if self.config.clip is not None:
            np.clip(buffer, -self.config.clip, self.config.clip, out=buffer)
        return buffer

    def infos(self) -> dict[str, Any]:
        """Per-env state as new arrays of shape ``(N,)``, the reward's components under ``reward_parts``.

        :return: ``equity`` (quote currency), ``position`` (signed fraction of equity), ``units``, ``fees``
            (paid this episode), ``fills`` (fills this episode), ``drawdown``, ``bar`` (decision bar index),
            ``ts`` (its open time, epoch ms) and ``reward_parts`` (component name -> last step's value).
        """
        acc = self.accounts
        equity = acc.equity.copy()
        return {
            "equity": equity,
            "position": acc.units * self._mark / np.maximum(equity, 1e-12),
            "units": acc.units.copy(),
            "fees": acc.fees_paid.copy(),
            "fills": acc.trades.copy(),
            "drawdown": self._drawdown(),
            "bar": self.bar.copy(),
            "ts": np.take(self.market.ts, self.bar),
            "reward_parts": {name: part.copy() for name, part in self.reward_parts.items()},
        }

    def _drawdown(self) -> np.ndarray:
        acc = self.accounts
        return 1.0 - acc.equity / acc.peak_equity

    def episode_end(self, index: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Summary and trade log of env ``index``'s episode (call at its last step, before resetting it).

        :return: the summary (see the keys below) and the trades (see :meth:`Trade.as_dict`), the open one
            last, marked at the last close.
        """
        acc, market = self.accounts, self.market
        trades = self.fills.trades(index, float(self._mark[index]))
        equity = float(acc.equity[index])
        closed = [t for t in trades if t["exit_time"] is not None]
        summary = {
            "dataset": market.dataset,
            "start_time": int(market.ts[self.start[index]]),
            "end_time": int(market.ts[self.bar[index]]),
            "steps": int(self.steps[index]),
            "initial_cash": self.config.initial_cash,
            "final_equity": equity,
            "return": equity / self.config.initial_cash - 1.0,
            "max_drawdown": float(self.max_drawdown[index]),
            "fees": float(acc.fees_paid[index]),
            "realized_pnl": float(acc.realized_pnl[index]),
            "fills": int(acc.trades[index]),
            "trades": len(trades),
            "win_rate": sum(t["net_pnl"] > 0 for t in closed) / len(closed) if closed else 0.0,
            "reward": float(self.episode_reward[index]),
            "bankrupt": bool(acc.bankrupt[index]),
            "terminated": bool(self.terminated[index]),
            "truncated": bool(self.truncated[index]),
        }
        logger.debug("episode of env %d ended: %s", index, summary)
        return summary, trades


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays (wrapping arithmetic): a fast, well-spread integer hash."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def batch_seeds(seed: int | Sequence[int | None] | None, n_envs: int) -> list[int | None]:
    """Per-env seeds the gymnasium way: None for none, ``seed + i`` for an int, or one per env.

    :raises ValueError: for a sequence whose length is not ``n_envs``.
    """
    if seed is None or isinstance(seed, int):
        return [None if seed is None else seed + i for i in range(n_envs)]
    seeds = list(seed)
    if len(seeds) != n_envs:
        raise ValueError(f"got {len(seeds)} seeds for {n_envs} envs")
    return seeds


def observation_space(builder: ObservationBuilder, mode: str, clip: float | None = None) -> spaces.Space[Any]:
    """The observation space of one env: a flat float32 Box, or a Dict of the market window and the account.

    :param builder: the observation builder (its window, feature count and size).
    :param mode: ``box`` or ``dict``.
    :param clip: the bound of every value (see ``EnvConfig.clip``); unbounded when None.
    """
    bound = np.inf if clip is None else clip

    def box(*shape: int) -> spaces.Box:
        return spaces.Box(-bound, bound, shape=shape, dtype=np.float32)

    if mode == "box":
        return box(builder.size)
    return spaces.Dict({"market": box(builder.window, builder.n_features), "account": box(len(ACCOUNT_FEATURES))})


def split_observation(buffer: np.ndarray, builder: ObservationBuilder, mode: str) -> np.ndarray | dict[str, np.ndarray]:
    """A copy of a batch of flat observations ``(N, size)`` in the layout of :func:`observation_space`.

    :return: the ``(N, size)`` array (box), or ``{"market": (N, W, F), "account": (N, 5)}`` (dict).
    """
    if mode == "box":
        return buffer.copy()
    market = buffer[:, : builder.market_size].reshape(len(buffer), builder.window, builder.n_features)
    return {"market": market.copy(), "account": buffer[:, builder.market_size :].copy()}


def observation_row(observations: np.ndarray | dict[str, np.ndarray], index: int) -> Any:
    """Env ``index``'s observation out of a batch from :func:`split_observation` (a view, no copy)."""
    if isinstance(observations, np.ndarray):
        return observations[index]
    return {key: value[index] for key, value in observations.items()}


def env_info(infos: dict[str, Any], index: int) -> dict[str, Any]:
    """One env's entry of :meth:`TradingCore.infos`, as Python scalars (nested dicts kept)."""
    return {
        key: env_info(value, index) if isinstance(value, dict) else value[index].item() for key, value in infos.items()
    }


def render_line(core: TradingCore, index: int) -> str:
    """One text line on env ``index``: its decision bar's time and close, position, equity, drawdown and fills."""
    acc, bar = core.accounts, int(core.bar[index])
    when = np.datetime64(int(core.market.ts[bar]), "ms")
    position = acc.units[index] * core.market.close[bar] / max(acc.equity[index], 1e-12)
    return (
        f"{when} close={core.market.close[bar]:.2f} position={position:+.3f} equity={acc.equity[index]:.2f} "
        f"drawdown={1.0 - acc.equity[index] / acc.peak_equity[index]:.2%} fills={acc.trades[index]} "
        f"step={core.steps[index]}"
    )
