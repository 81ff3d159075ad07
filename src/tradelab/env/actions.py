"""Action spaces: what the agent chooses each bar, and how a batch of choices becomes orders.

Every action sets a *target position* as a signed fraction of equity (``-1`` all-in short, ``0``
flat, ``1`` all-in long, beyond ±1 with leverage); the execution layer trades towards it.
A :class:`MultiDiscreteActions` choice also sets a stop-loss and a take-profit distance.

Every config packs itself into a float64 vector (:attr:`_Actions.kernel_params`) that the env's
compiled step decodes with :func:`decode_action`, one env at a time; :meth:`_Actions.decode` runs
that same code over a batch from Python.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property
from itertools import pairwise
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tradelab.env.jit import inline, jit

#: Decoded actions: target position fraction, stop distance, take distance; float64 arrays of shape ``(N,)``.
Decoded = tuple[np.ndarray, np.ndarray, np.ndarray]

# Layout of an action config's kernel parameters: a header, then the level, stop and take tables.
A_KIND, A_ATR, A_LOW, A_HIGH, A_LEVELS, A_STOPS, A_TAKES = range(7)
_A_TABLES = 7
_DISCRETE, _MULTI_DISCRETE, _BOX = range(3)

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

    #: Numbers in one env's action (the columns of the ``(N, width)`` float64 batch the kernel reads).
    width: ClassVar[int] = 1

    @cached_property
    def kernel_params(self) -> np.ndarray:
        """The config as the float64 vector :func:`decode_action` reads (header ``A_*``, then tables), read-only."""
        params = np.array(self._kernel_header() + self._kernel_tables(), dtype=np.float64)
        params.flags.writeable = False
        return params

    @abstractmethod
    def _kernel_header(self) -> list[float]:
        """The values at ``A_KIND … A_TAKES``."""

    def _kernel_tables(self) -> list[float]:
        return []

    def decode(self, actions: Any, atr_fraction: np.ndarray | None = None) -> Decoded:
        """Target positions and stop/take distances of N actions (what the env's compiled step does per env).

        :param actions: N actions, a batch of :meth:`space` (one env's action is a batch of 1).
        :param atr_fraction: ATR / close of each env's bar, shape ``(N,)``; needed by stops in ATR units.
        :return: target fractions of equity, stop distances and take distances as fractions of the price
            (NaN for none); float64, shape ``(N,)``.
        :raises IndexError: for an index outside its dimension (discrete schemes).
        :raises ValueError: for a non-finite box action, or ATR units without ``atr_fraction``.
        """
        batch = np.asarray(actions, dtype=np.float64).reshape(-1, self.width)
        if atr_fraction is None:
            if self.kernel_params[A_ATR]:
                raise ValueError('decoding stop and take levels with unit="atr" needs atr_fraction')
            atr_fraction = np.ones(len(batch))
        out = np.empty((3, len(batch)))
        bad = _decode_batch(batch, np.asarray(atr_fraction, dtype=np.float64), self.kernel_params, out)
        if bad >= 0:
            self.raise_invalid(batch[bad], bad)
        return out[0], out[1], out[2]

    def raise_invalid(self, action: np.ndarray, index: int) -> None:
        """Raise the error for env ``index``'s invalid ``action`` (IndexError; ValueError for the box scheme)."""
        raise IndexError(f"action {action.tolist()} of env {index} is outside the action space {self.single_space()}")


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

    def _kernel_tables(self) -> list[float]:
        return list(self.levels)

    @property
    def max_level(self) -> float:
        """Highest target position, ``levels[-1]``."""
        return self.levels[-1]


class DiscreteActions(_LevelActions):
    """One of a few target positions: action ``i`` asks for ``levels[i]`` (a fraction of equity), no stop or target.

    The default ``[-1, 0, 1]`` is short / flat / long with all the equity.
    """

    kind: Literal["discrete"] = "discrete"

    def single_space(self) -> spaces.Discrete:
        """``Discrete(len(levels))``."""
        return spaces.Discrete(len(self.levels))

    def _kernel_header(self) -> list[float]:
        return [_DISCRETE, 0.0, self.min_level, self.max_level, len(self.levels), 0, 0]

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
    width: ClassVar[int] = 3
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

    def _kernel_header(self) -> list[float]:
        n = (len(self.levels), len(self.stop_levels), len(self.take_levels))
        return [_MULTI_DISCRETE, self.unit == "atr", self.min_level, self.max_level, *n]

    def _kernel_tables(self) -> list[float]:
        scale = 0.01 if self.unit == "percent" else 1.0  # percent of the price -> fraction of it
        distances = [np.nan if v is None else v * scale for v in (*self.stop_levels, *self.take_levels)]
        return [*self.levels, *distances]

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
    """A continuous target position in ``[low, high]`` (a fraction of equity); actions outside are clipped.

    No stops or targets: the stop and take distances decode to NaN.
    """

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

    def _kernel_header(self) -> list[float]:
        return [_BOX, 0.0, self.low, self.high, 0, 0, 0]

    def raise_invalid(self, action: np.ndarray, index: int) -> None:
        """Raise the ValueError for env ``index``'s non-finite ``action``.

        .. note::
            Finite actions outside ``[low, high]`` are clipped, not refused: policies with a Gaussian
            head (PPO, A2C) sample outside the bounds.
        """
        raise ValueError(f"action {action.tolist()} of env {index} is not finite")


#: An action config, told apart by its ``kind``; use it as a field type in a pydantic model.
ActionConfig = Annotated[DiscreteActions | MultiDiscreteActions | BoxActions, Field(discriminator="kind")]


def _level_mask(levels: tuple[float, ...], allow_short: bool) -> np.ndarray:
    """Which position levels are allowed: all, or the non-negative ones without shorting; shape ``(len(levels),)``.

    :raises ValueError: when that leaves none.
    """
    table = np.array(levels, dtype=np.float64)
    allowed = np.ones(table.shape, dtype=bool) if allow_short else table >= 0.0
    if not allowed.any():
        raise ValueError(f"every position level {list(levels)} is short, and shorting is not allowed")
    return allowed


@inline
def _index(value: float, n: float) -> int:
    """``value`` as an index into a table of ``n``; -1 when it is not a whole number in ``[0, n)``."""
    if value >= 0 and value < n and value == np.floor(value):
        return int(value)
    return -1


@inline
def decode_action(
    actions: np.ndarray, i: int, at: int, atr_fraction: float, p: np.ndarray
) -> tuple[float, float, float, bool]:
    """One env's action as (target fraction, stop distance, take distance, valid) (compiled).

    :param actions: a float64 matrix holding the action in row ``i``, columns ``at … at + width - 1``.
    :param atr_fraction: ATR / close of the decision bar (scales distances in ATR units).
    :param p: the config's :attr:`_Actions.kernel_params`.
    """
    nan = np.nan
    if p[A_KIND] == _BOX:
        x = actions[i, at]
        return min(max(x, p[A_LOW]), p[A_HIGH]), nan, nan, bool(np.isfinite(x))
    level = _index(actions[i, at], p[A_LEVELS])
    if level < 0:
        return nan, nan, nan, False
    target = p[_A_TABLES + level]
    if p[A_KIND] == _DISCRETE:
        return target, nan, nan, True
    stop, take = _index(actions[i, at + 1], p[A_STOPS]), _index(actions[i, at + 2], p[A_TAKES])
    if stop < 0 or take < 0:
        return nan, nan, nan, False
    tables = _A_TABLES + int(p[A_LEVELS])
    scale = atr_fraction if p[A_ATR] else 1.0
    return target, p[tables + stop] * scale, p[tables + int(p[A_STOPS]) + take] * scale, True


@jit
def _decode_batch(actions: np.ndarray, atr_fraction: np.ndarray, p: np.ndarray, out: np.ndarray) -> int:
    """Decode every row into ``out`` ``(3, N)``; the first invalid row's index, or -1."""
    for i in range(actions.shape[0]):
        target, stop, take, valid = decode_action(actions, i, 0, atr_fraction[i], p)
        if not valid:
            return i
        out[0, i], out[1, i], out[2, i] = target, stop, take
    return -1
