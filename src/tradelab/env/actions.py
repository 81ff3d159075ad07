"""Action spaces: what the agent chooses each bar, and how a batch of choices becomes orders.

Every action sets a *target position* as a signed fraction of equity (``-1`` all-in short, ``0``
flat, ``1`` all-in long, beyond ±1 with leverage); the execution layer trades towards it.
A :class:`MultiDiscreteActions` choice also sets a stop-loss and a take-profit distance.

All three configs decode N actions at once (N = 1 for the single env) through lookup tables, so
the vector env pays the same per-step cost as the single env, with no Python loop over envs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cache
from itertools import pairwise
from typing import Annotated, Any, Literal

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Decoded actions: target position fraction, stop distance, take distance; float64 arrays of shape ``(N,)``.
Decoded = tuple[np.ndarray, np.ndarray, np.ndarray]

_Level = Annotated[float, Field(allow_inf_nan=False)]
_Distance = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


class _Actions(BaseModel, ABC):
    """What every action config offers the envs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    @abstractmethod
    def min_level(self) -> float:
        """Lowest target position the config can ask for (the env refuses a negative one without shorting)."""

    @property
    @abstractmethod
    def max_level(self) -> float:
        """Highest target position the config can ask for (the env checks it against its leverage)."""

    @abstractmethod
    def single_space(self) -> spaces.Space[Any]:
        """The action space of one env."""

    def space(self, n_envs: int | None = None) -> spaces.Space[Any]:
        """The action space of one env, or of a batch of ``n_envs`` envs (gymnasium's ``batch_space``).

        :param n_envs: number of envs of a vector env; None for the single env.

        .. note::
            gymnasium batches ``Discrete(n)`` into ``MultiDiscrete([n] * n_envs)`` and ``MultiDiscrete``
            into an integer ``Box`` of shape ``(n_envs, 3)``; :meth:`decode` takes samples of either.
        """
        single = self.single_space()
        return single if n_envs is None else batch_space(single, n_envs)

    @abstractmethod
    def decode(self, actions: np.ndarray, atr_fraction: np.ndarray | None = None) -> Decoded:
        """Target positions and stop/take distances of N actions."""


def _check_ascending(values: tuple[float, ...], what: str) -> tuple[float, ...]:
    """``values`` if strictly ascending (sorted, no repeats), else a ValueError naming ``what``."""
    if any(b <= a for a, b in pairwise(values)):
        raise ValueError(f"{what} must be sorted ascending without repeats, got {list(values)}")
    return values


class _LevelActions(_Actions):
    """A config whose position is one of a few ``levels``."""

    levels: tuple[_Level, ...] = Field(
        (-1.0, 0.0, 1.0),
        min_length=1,
        description="Target positions, as signed fractions of equity, sorted ascending.",
    )

    @field_validator("levels")
    @classmethod
    def _ascending(cls, levels: tuple[float, ...]) -> tuple[float, ...]:
        return _check_ascending(levels, "levels")

    @property
    def min_level(self) -> float:
        """Lowest target position, ``levels[0]``."""
        return self.levels[0]

    @property
    def max_level(self) -> float:
        """Highest target position, ``levels[-1]``."""
        return self.levels[-1]


class DiscreteActions(_LevelActions):
    """One of a few target positions: action ``i`` asks for ``levels[i]`` (a fraction of equity).

    The default ``[-1, 0, 1]`` is short / flat / long with all the equity.
    """

    kind: Literal["discrete"] = "discrete"

    def single_space(self) -> spaces.Discrete:
        """``Discrete(len(levels))``."""
        return spaces.Discrete(len(self.levels))

    def decode(self, actions: np.ndarray, atr_fraction: np.ndarray | None = None) -> Decoded:
        """Target positions of N actions; no stops or targets.

        :param actions: level indices, shape ``(N,)`` (a scalar for one env).
        :param atr_fraction: unused (no stops).
        :return: target fractions of equity, and all-NaN stop and take distances; float64, shape ``(N,)``.
        :raises IndexError: for an index outside ``[0, len(levels))``.
        """
        target = np.take(_table(self.levels), np.atleast_1d(actions))
        nan = np.full(target.shape, np.nan)
        return target, nan, nan.copy()

    def action_masks(self, n_envs: int, allow_short: bool) -> np.ndarray:
        """Which actions each env may take, for sb3-contrib's MaskablePPO.

        :param n_envs: number of envs N.
        :param allow_short: False to mask out the negative levels.
        :return: bool array of shape ``(N, len(levels))``, True where allowed.
        :raises ValueError: when shorting is not allowed and every level is negative.
        """
        return np.tile(_level_mask(self.levels, allow_short), (n_envs, 1))


class MultiDiscreteActions(_LevelActions):
    """A target position, a stop-loss level and a take-profit level, chosen together.

    The action ``(i, j, k)`` asks for position ``levels[i]`` with a stop ``stop_levels[j]`` and a
    target ``take_levels[k]`` away from the price; ``None`` means no stop, or no target.
    Distances are fractions of the price: ``level × ATR / price`` with ``unit="atr"``,
    ``level / 100`` with ``unit="percent"``.
    """

    kind: Literal["multi_discrete"] = "multi_discrete"
    stop_levels: tuple[_Distance | None, ...] = Field(
        (None, 1.0, 2.0),
        min_length=1,
        description="Stop-loss distances in `unit`, sorted ascending; null (first, at most once) for no stop.",
    )
    take_levels: tuple[_Distance | None, ...] = Field(
        (None, 2.0, 4.0),
        min_length=1,
        description="Take-profit distances in `unit`, sorted ascending; null (first, at most once) for no target.",
    )
    unit: Literal["atr", "percent"] = Field(
        "atr", description="Unit of the stop and take levels: multiples of the ATR, or percent of the price."
    )

    @field_validator("stop_levels", "take_levels")
    @classmethod
    def _none_first_then_ascending(cls, levels: tuple[float | None, ...]) -> tuple[float | None, ...]:
        rest = levels[1:] if levels[0] is None else levels
        if None in rest:
            raise ValueError(f"null (no stop or target) may appear once, as the first level, got {list(levels)}")
        _check_ascending(tuple(level for level in rest if level is not None), "the levels")
        return levels

    @property
    def nvec(self) -> list[int]:
        """Choices per dimension: ``[len(levels), len(stop_levels), len(take_levels)]``."""
        return [len(self.levels), len(self.stop_levels), len(self.take_levels)]

    def single_space(self) -> spaces.MultiDiscrete:
        """``MultiDiscrete(nvec)``."""
        return spaces.MultiDiscrete(self.nvec)

    def decode(self, actions: np.ndarray, atr_fraction: np.ndarray | None = None) -> Decoded:
        """Target positions and stop/take distances of N actions.

        :param actions: index triples ``(level, stop, take)``, shape ``(N, 3)`` (``(3,)`` for one env).
        :param atr_fraction: ATR / close of each env's bar, shape ``(N,)``; needed with ``unit="atr"``.
            A NaN ATR (indicator warm-up) gives a NaN distance: no stop, or no target.
        :return: target fractions of equity, stop distances and take distances as fractions of the
            price (NaN for none); float64, shape ``(N,)``.
        :raises IndexError: for an index outside its dimension.
        :raises ValueError: for ``unit="atr"`` without ``atr_fraction``.
        """
        actions = np.atleast_2d(actions)
        scale = 0.01 if self.unit == "percent" else 1.0  # percent of the price -> fraction of it
        target = np.take(_table(self.levels), actions[:, 0])
        stop = np.take(_table(self.stop_levels, scale), actions[:, 1])
        take = np.take(_table(self.take_levels, scale), actions[:, 2])
        if self.unit == "atr":
            if atr_fraction is None:
                raise ValueError('decoding stop and take levels with unit="atr" needs atr_fraction')
            stop *= atr_fraction
            take *= atr_fraction
        return target, stop, take

    def action_masks(self, n_envs: int, allow_short: bool) -> np.ndarray:
        """Which choice of each dimension each env may take, for sb3-contrib's MaskablePPO.

        :param n_envs: number of envs N.
        :param allow_short: False to mask out the negative position levels (stops and targets stay allowed).
        :return: bool array of shape ``(N, sum(nvec))``: the level choices, then the stop choices, then
            the take choices, True where allowed (the flat layout MaskablePPO expects for MultiDiscrete).
        :raises ValueError: when shorting is not allowed and every level is negative.
        """
        row = np.ones(sum(self.nvec), dtype=bool)
        row[: len(self.levels)] = _level_mask(self.levels, allow_short)
        return np.tile(row, (n_envs, 1))


class BoxActions(_Actions):
    """A continuous target position in ``[low, high]`` (a fraction of equity); actions outside are clipped."""

    kind: Literal["box"] = "box"
    low: _Level = Field(-1.0, description="Lowest target position, as a signed fraction of equity.")
    high: _Level = Field(1.0, description="Highest target position, as a signed fraction of equity.")

    @model_validator(mode="after")
    def _low_below_high(self) -> BoxActions:
        if self.low >= self.high:
            raise ValueError(f"low must be below high, got low={self.low}, high={self.high}")
        return self

    @property
    def min_level(self) -> float:
        """Lowest target position, ``low``."""
        return self.low

    @property
    def max_level(self) -> float:
        """Highest target position, ``high``."""
        return self.high

    def single_space(self) -> spaces.Box:
        """``Box(low, high, shape=(1,), float32)``."""
        return spaces.Box(self.low, self.high, shape=(1,), dtype=np.float32)

    def decode(self, actions: np.ndarray, atr_fraction: np.ndarray | None = None) -> Decoded:
        """Target positions of N actions, clipped to ``[low, high]``; no stops or targets.

        :param actions: shape ``(N, 1)`` or ``(N,)`` (``(1,)`` for one env).
        :param atr_fraction: unused (no stops).
        :return: target fractions of equity, and all-NaN stop and take distances; float64, shape ``(N,)``.

        .. note::
            Policies with a Gaussian head (PPO, A2C) sample outside the bounds; clipping here keeps
            the position within them whatever the algorithm does.
        """
        target = np.clip(np.asarray(actions, dtype=np.float64).reshape(-1), self.low, self.high)
        nan = np.full(target.shape, np.nan)
        return target, nan, nan.copy()


#: An action config, told apart by its ``kind``; use it as a field type in a pydantic model.
ActionConfig = Annotated[DiscreteActions | MultiDiscreteActions | BoxActions, Field(discriminator="kind")]


@cache
def _table(values: tuple[float | None, ...], scale: float = 1.0) -> np.ndarray:
    """Read-only lookup table ``values × scale``, NaN for None; cached, as configs are immutable.

    .. note::
        The tables live here rather than on the (frozen) config so that configs compare and hash by
        their fields alone.
    """
    table = np.array([np.nan if v is None else v * scale for v in values], dtype=np.float64)
    table.flags.writeable = False
    return table


def _level_mask(levels: tuple[float, ...], allow_short: bool) -> np.ndarray:
    """Which position levels are allowed: all, or the non-negative ones without shorting; shape ``(len(levels),)``.

    :raises ValueError: when that leaves none.
    """
    table = _table(levels)
    allowed = np.ones(table.shape, dtype=bool) if allow_short else table >= 0.0
    if not allowed.any():
        raise ValueError(f"every position level {list(levels)} is short, and shorting is not allowed")
    return allowed
