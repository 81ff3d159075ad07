"""The batched trading engine shared by the single env (``N = 1``) and the vector env.

:class:`TradingCore` steps N independent episodes over one :class:`~tradelab.env.market.MarketData`:
one call of the compiled :func:`~tradelab.env.kernel.step_batch` decodes the actions, executes, scores,
advances and observes every env. Python runs per step only for reward components from plugins, and
per env only where an episode resets (its random start) or ends (its trade log).

Timing. An env deciding at bar ``t`` sees features up to ``t``'s close; its order executes on bar
``t + 1`` (``fill="next_open"``) or on bar ``t`` (``fill="close"``), then it decides at ``t + 1``.
The last decision bar is the second-to-last bar of the usable range, so the execution bar and the
next observation always exist.

Episodes never step across a gap: each lies inside one stretch of the market data (see
:mod:`tradelab.env.market`), between the stretch's first decision bar (after its own feature warm-up and
window) and its second-to-last bar. In ``random`` mode an episode starts at a bar drawn uniformly among
every start that leaves ``length`` decisions in its stretch (each env's own generator); stretches too
short for that are never drawn. In ``full`` mode an episode is one pass over a stretch, and each env's
next reset continues with the next stretch (after the last, the first again; seeding an env restarts
at the first), so consecutive full resets cover the segment stretch by stretch. It is *truncated* when
it runs out of decisions and *terminated* on bankruptcy or when the drawdown exceeds
``risk.max_drawdown`` (a terminated step is never also reported truncated).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from tradelab.env import kernel as k
from tradelab.env.config import EnvConfig
from tradelab.env.execution import (
    ACCOUNT_COLUMNS,
    BANKRUPT,
    EQUITY,
    FEES_PAID,
    N_SLOTS,
    PEAK,
    REALIZED_PNL,
    TRADES,
    UNITS,
    Accounts,
)
from tradelab.env.jit import entry_point
from tradelab.env.market import EnvDataError, MarketData
from tradelab.env.observation import ACCOUNT_FEATURES, ObservationBuilder
from tradelab.env.rewards import BuiltinComponent, RewardFunction, RewardInputs
from tradelab.env.trades import FillBuffer

logger = logging.getLogger(__name__)

#: The per-step info of an env: key, state column, and whether the value is a whole number.
INFO_COLUMNS: tuple[tuple[str, int, bool], ...] = (
    ("equity", k.OUT_EQUITY, False),
    ("position", k.POSITION, False),
    ("units", k.OUT_UNITS, False),
    ("fees", k.OUT_FEES, False),
    ("fills", k.OUT_FILLS, True),
    ("drawdown", k.DRAWDOWN, False),
    ("bar", k.BAR, True),
    ("ts", k.TS, True),
)
# Offsets of the outputs in a row's output block (state[i, OUTPUT:]); TradingCore.info reads the block in
# this order, then the reward parts.
OUT_REWARD, OUT_TERMINATED, OUT_TRUNCATED = 0, 1, 2
_OUTPUT_ORDER = (
    k.REWARD, k.TERMINATED, k.TRUNCATED, k.OUT_EQUITY, k.POSITION, k.OUT_UNITS, k.OUT_FEES, k.OUT_FILLS, k.DRAWDOWN,
    k.BAR, k.TS,
)  # fmt: skip
assert tuple(range(k.OUTPUT, k.PARTS)) == _OUTPUT_ORDER, "TradingCore.info reads the output block in this order"


class TradingCore:
    """N trading episodes stepped by one compiled call (see :mod:`tradelab.env.kernel` for the state's columns).

    :param market: the prepared bars and features.
    :param config: the env config.
    :param n_envs: N.
    :param bar_by_bar: one bar per step even when ``decision_every`` > 1 (see :class:`TradingEnv`).
    :raises EnvDataError: when no stretch of the usable range has a decision bar (random mode: ``episode.length``).

    .. note::
        :meth:`step` and :meth:`observe` return buffers that the next call overwrites: copy what you keep.
    """

    def __init__(self, market: MarketData, config: EnvConfig, n_envs: int, *, bar_by_bar: bool = False) -> None:
        self.market = market
        self.config = config
        self.n_envs = n_envs
        self.builder = ObservationBuilder(market.features.values, config.window, n_envs, k.HOLDING_SCALE, config.clip)
        # A random episode's decisions each hold for decision_every bars; a full one needs a bar.
        needed = config.episode.length * config.decision_every if config.episode.mode == "random" else 1
        #: First and last decision bar (inclusive) of every stretch an episode may use, int64 ``(k, 2)``.
        self.stretches = _decision_ranges(market, self.builder.first_bar(market.warmup), needed, config.window)
        #: First and last bar an env may decide at (in some stretch).
        self.first_bar, self.last_bar = int(self.stretches[0, 0]), int(self.stretches[-1, 1])
        # Random starts: how many the stretches offer in all, and how many lie in the stretches before each.
        counts = self.stretches[:, 1] - self.stretches[:, 0] - needed + 2
        self._total_starts, self._starts_before = int(counts.sum()), np.cumsum(counts) - counts
        self.reward = RewardFunction(config.reward, n_envs)
        #: Every env's state, one row each (columns: :mod:`tradelab.env.kernel`).
        self.state = np.zeros((n_envs, k.PARTS + len(self.reward.names)))
        self.state[:, k.TRUNCATED] = 1.0  # not started: stepping before a reset is refused
        self._outputs = list(self.state[:, k.OUTPUT :])  # a view per env
        self.accounts = Accounts(self.state)
        self.events = self.accounts.events
        # A step of decision_every bars may fill N_SLOTS times a bar: the log always has room for two steps.
        self.fills = FillBuffer(self.state[:, k.FILLS], max(256, 2 * N_SLOTS * config.decision_every))
        self.params = k.kernel_params(config, self.reward.components, self.reward.weights, bar_by_bar)
        #: The actions of the next step, one row per env (a view of the state, written by :meth:`set_actions`).
        self.actions = self.state[:, k.ACTION : k.ACTION + config.actions.width]
        self.obs = self.builder.out
        self._part_names = tuple(self.reward.names)
        #: The reward components computed in Python after each step: (state column, component, weight).
        self.python_parts = [
            (k.PARTS + j, component, weight)
            for j, (component, weight) in enumerate(zip(self.reward.components, self.reward.weights, strict=True))
            if not isinstance(component, BuiltinComponent)
        ]
        if self.python_parts and config.decision_every > 1:
            raise EnvDataError(
                f"reward component(s) {', '.join(c.name for _, c, _ in self.python_parts)} are computed in Python "
                f"once per step and cannot add up the {config.decision_every} bars of a decision: use decision_every "
                "1 with them, or built-in components"
            )
        state = self.state
        self._inputs = RewardInputs(
            equity_prev=state[:, k.EQUITY_PREV],
            equity=state[:, EQUITY],
            peak_equity=state[:, PEAK],
            fees=self.events.fees,
            units=state[:, UNITS],
            price=state[:, k.MARK],
            initial_cash=np.full(n_envs, config.initial_cash),
            traded_notional=self.events.turnover,
        )
        # Per env: seed of its episode starts, episodes begun since (in full mode: the next stretch, modulo
        # their number), whether it was ever seeded, and the equity its episode started with.
        self._seed = np.zeros(n_envs, dtype=np.uint64)
        self._episodes = np.zeros(n_envs, dtype=np.uint64)
        self._seeded = np.zeros(n_envs, dtype=bool)
        self._initial = np.full(n_envs, config.initial_cash)
        self._bind()
        # Load the compiled code now (from numba's disk cache, or compile it), so reset and step don't wait.
        k.observe_batch(
            np.zeros(n_envs, dtype=bool), market.matrix, self.builder.features, self.state, self.params, self.obs
        )
        # The kernel's arguments keep their types for the core's life (a new log or buffer is allocated alike).
        #: The compiled step for this core's argument types (see :func:`~tradelab.env.jit.entry_point`).
        self.kernel = entry_point(k.step_batch, self.kernel_args)

    @property
    def bar(self) -> np.ndarray:
        """Each env's decision bar, int64 ``(N,)`` (a copy)."""
        return self.state[:, k.BAR].astype(np.int64)

    @property
    def start(self) -> np.ndarray:
        """Each env's first decision bar of its episode, int64 ``(N,)`` (a copy)."""
        return self.state[:, k.START].astype(np.int64)

    def seed(self, seeds: Sequence[int | None]) -> None:
        """Seed the episode starts of each env given an int; envs given None keep their state.

        Env ``i`` seeded with ``s`` draws the same starts as any other env seeded with ``s``, in any batch;
        in full mode, its next episode is the first stretch's.
        """
        for i, seed in enumerate(seeds):
            if seed is not None:
                self._seed[i] = np.uint64(seed % 2**64)
                self._episodes[i] = 0
                self._seeded[i] = True

    def reset(self, mask: np.ndarray, initial_cash: float | None = None) -> np.ndarray:
        """Start a new episode in the envs of ``mask``; the others are untouched.

        :param mask: bool array ``(N,)``; an env never seeded is seeded from entropy first.
        :param initial_cash: the episodes' starting equity; the config's ``initial_cash`` when None (an
            evaluation carries its equity from one stretch to the next with it).
        :return: the ``(N, size)`` float32 observation buffer.
        """
        episode, state = self.config.episode, self.state
        if episode.mode == "random":
            fresh = mask & ~self._seeded
            if fresh.any():
                self._seed[fresh] = np.random.default_rng().integers(0, 2**63, fresh.sum(), dtype=np.uint64)
                self._seeded |= fresh
            # A counter-based draw (seed, episode number) -> start: vectorized, and the same for an env
            # whatever batch it is in. The top 53 bits make a uniform float in [0, 1), which picks one of
            # all the stretches' starts.
            draws = _mix(_mix(self._seed[mask]) ^ self._episodes[mask])
            pick = ((draws >> np.uint64(11)).astype(np.float64) * 2.0**-53 * self._total_starts).astype(np.int64)
            stretch = np.searchsorted(self._starts_before, pick, side="right") - 1
            start = self.stretches[stretch, 0] + pick - self._starts_before[stretch]
            end = start + episode.length * self.config.decision_every - 1
        else:
            stretch = (self._episodes[mask] % np.uint64(len(self.stretches))).astype(np.int64)
            start, end = self.stretches[stretch, 0], self.stretches[stretch, 1]
        self._episodes[mask] += np.uint64(1)
        state[mask, ACCOUNT_COLUMNS:] = 0.0
        state[mask, k.START] = state[mask, k.BAR] = start
        state[mask, k.END] = end
        state[mask, k.MARK] = self.market.close[state[mask, k.BAR].astype(np.int64)]
        self._initial[mask] = self.config.initial_cash if initial_cash is None else initial_cash
        self.accounts.reset(mask, self._initial)
        self.reward.reset(mask)
        k.observe_batch(mask, self.market.matrix, self.builder.features, state, self.params, self.obs)
        return self.obs

    def set_actions(self, actions: Any) -> None:
        """Write a batch of N actions (an element of the config's batched action space) into :attr:`actions`."""
        self.actions[...] = np.reshape(actions, self.actions.shape)

    def advance(self) -> int:
        """Step every env with :attr:`actions` (see :func:`~tradelab.env.kernel.step_batch`).

        :return: the kernel's status bits (``EPISODE_ENDED``).
        :raises IndexError: for an action outside the action space (ValueError for a non-finite box action);
            no env is stepped then.
        :raises RuntimeError: for an env whose episode has ended, or that was never reset.
        """
        status = self.kernel(*self.kernel_args)  # TradingEnv.step repeats these three lines, inlined
        if status or self.python_parts:
            self.settle(status)
        return status

    def settle(self, status: int) -> None:
        """After the kernel: raise for an error status, grow the fill log, add the Python reward components.

        Needed when the status is not 0 or :attr:`python_parts` is not empty (see :meth:`advance`).
        """
        if status < 0:
            index = -1 - status
            if index >= self.n_envs:
                raise RuntimeError(f"env {index - self.n_envs}'s episode has ended or never started: reset it first")
            self.config.actions.raise_invalid(self.actions[index], index)
        if status & k.LOG_FULL:
            self.fills.grow()
            self._bind()
        for column, component, weight in self.python_parts:
            values = self.reward.values(component, self._inputs)
            self.state[:, column] = values
            self.state[:, k.REWARD] += weight * values
            self.state[:, k.EPISODE_REWARD] += weight * values

    def _bind(self) -> None:
        """Gather the kernel's arguments (again after the fill log or the observation buffer is replaced)."""
        self.kernel_args = (
            self.market.matrix,
            self.builder.features,
            self.state,
            self.fills.log,
            self.params,
            self.obs,
        )

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Advance every env one bar, writing the observations into a new buffer.

        :param actions: a batch of N actions in the config's action space.
        :return: new arrays: observations ``(N, size)`` float32 (also :attr:`obs` until the next step, so a
            :meth:`reset` of some envs writes into it), rewards ``(N,)`` float64, terminated and truncated
            ``(N,)`` bool.
        """
        self.set_actions(actions)
        self.obs = np.empty_like(self.obs)
        self._bind()
        self.advance()
        state = self.state
        return self.obs, state[:, k.REWARD].copy(), state[:, k.TERMINATED] != 0, state[:, k.TRUNCATED] != 0

    def observe(self) -> np.ndarray:
        """The ``(N, size)`` float32 observation buffer, as the last reset or step left it."""
        return self.obs

    def infos(self) -> dict[str, Any]:
        """Per-env state as new arrays of shape ``(N,)``, the reward's components under ``reward_parts``.

        :return: ``equity`` (quote currency), ``position`` (signed fraction of equity), ``units``, ``fees``
            (paid this episode), ``fills`` (fills this episode), ``drawdown``, ``bar`` (decision bar index),
            ``ts`` (its open time, epoch ms) and ``reward_parts`` (component name -> last step's value).
        """
        rows = self.state[:, k.OUT_EQUITY :].T.copy()  # one copy: info values and reward parts, one row each
        infos: dict[str, Any] = {
            key: rows[column - k.OUT_EQUITY].astype(np.int64) if whole else rows[column - k.OUT_EQUITY]
            for key, column, whole in INFO_COLUMNS
        }
        infos["reward_parts"] = dict(zip(self._part_names, rows[k.PARTS - k.OUT_EQUITY :], strict=True))
        return infos

    def outputs(self, index: int) -> list[float]:
        """Env ``index``'s output block (``state[index, OUTPUT:]``) as a list, for :meth:`info`.

        Offsets ``OUT_REWARD``, ``OUT_TERMINATED`` and ``OUT_TRUNCATED`` of this module index it.
        """
        return self._outputs[index].tolist()

    def info(self, out: list[float]) -> dict[str, Any]:
        """One env's info, the keys of :meth:`infos` as Python numbers, from its :meth:`outputs`.

        .. note::
            Written out key by key (not looped over :data:`INFO_COLUMNS`): it runs at every single-env step.
        """
        names = self._part_names
        return {  # literal offsets (checked against the kernel's layout at import): the fastest lookups
            "equity": out[3],
            "position": out[4],
            "units": out[5],
            "fees": out[6],
            "fills": int(out[7]),
            "drawdown": out[8],
            "bar": int(out[9]),
            "ts": int(out[10]),
            "reward_parts": {names[0]: out[11]} if len(names) == 1 else dict(zip(names, out[11:], strict=True)),
        }

    def episode_end(self, index: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Summary and trade log of env ``index``'s episode (call at its last step, before resetting it).

        :return: the summary (see the keys below) and the trades (see :meth:`Trade.as_dict`), the open one
            last, marked at the last close; without ``episode.trade_log`` no trades, and the summary's
            ``trades`` and ``win_rate`` are None.
        """
        row = self.state[index].tolist()
        logged = self.config.episode.trade_log
        trades = self.fills.trades(index, row[k.MARK]) if logged else []
        equity = row[EQUITY]
        closed = [t for t in trades if t["exit_time"] is not None]
        win_rate = sum(t["net_pnl"] > 0 for t in closed) / len(closed) if closed else 0.0
        ts = self.market.ts
        summary = {
            "dataset": self.market.dataset,
            "start_time": int(ts[int(row[k.START])]),
            "end_time": int(ts[int(row[k.BAR])]),
            "steps": int(row[k.STEPS]),
            "initial_cash": float(self._initial[index]),
            "final_equity": equity,
            "return": equity / self._initial[index] - 1.0,
            "max_drawdown": row[k.MAX_DRAWDOWN],
            "fees": row[FEES_PAID],
            "realized_pnl": row[REALIZED_PNL],
            "fills": int(row[TRADES]),
            "trades": len(trades) if logged else None,
            "win_rate": win_rate if logged else None,
            "reward": row[k.EPISODE_REWARD],
            "bankrupt": row[BANKRUPT] != 0.0,
            "terminated": row[k.TERMINATED] != 0.0,
            "truncated": row[k.TRUNCATED] != 0.0,
        }
        logger.debug("episode of env %d ended: %s", index, summary)
        return summary, trades


def _decision_ranges(market: MarketData, lead: int, needed: int, window: int) -> np.ndarray:
    """First and last decision bar of each stretch of ``market`` that leaves ``needed`` decisions in its segment.

    A stretch's first decision bar is ``lead`` bars after its first row (its own warm-up and window); its last
    is its second-to-last row, so the execution bar never lies across a gap.

    :raises EnvDataError: naming the data, its stretches and the longest one's decisions, when none is long enough.
    """
    spans = market.stretches
    first = np.maximum(spans[:, 0] + lead, market.first_row)
    last = np.minimum(spans[:, 1], market.last_row) - 1
    usable = last - first + 1
    keep = usable >= needed
    if not keep.any():
        cut = len(spans) > 1
        gaps = f" in any of its {len(spans)} stretches (cut at gaps beyond gaps.max_fill_bars)" if cut else ""
        raise EnvDataError(
            f"{market.dataset} leaves at most {max(int(usable.max()), 0)} decision bars{gaps} after a warm-up of "
            f"{market.warmup} bars and a window of {window} (rows {market.first_row}..{market.last_row}); the "
            f"episode needs {needed}"
        )
    return np.column_stack([first[keep], last[keep]]).astype(np.int64)


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


def render_line(core: TradingCore, index: int) -> str:
    """One text line on env ``index``: its decision bar's time and close, position, equity, drawdown and fills."""
    info = core.info(core.outputs(index))
    bar = info["bar"]
    return (
        f"{np.datetime64(info['ts'], 'ms')} close={core.market.close[bar]:.2f} position={info['position']:+.3f} "
        f"equity={info['equity']:.2f} drawdown={info['drawdown']:.2%} fills={info['fills']} "
        f"step={int(core.state[index, k.STEPS])}"
    )
