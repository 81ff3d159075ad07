"""Rewards as named, weighted components, computed for N envs at once.

The reward of a step is ``Σ weight × component``, each component a length-N float64 array over the
envs of a batch (N = 1 for the single env). Every component is also reported on its own (in ``info``),
so a run shows which part of the reward drove the agent.

Sign convention: a component is signed as it acts on the reward. Penalties (``drawdown``, ``cost``,
``holding``) return values ``<= 0`` and take positive weights; a larger weight means a harsher penalty.

Scaling: every built-in is unit-free (a fraction of equity or of the initial cash), so weights mean
the same on any instrument, price level and account size.

A plugin package adds components in the entry-point group ``tradelab.rewards``; each entry point loads
to a :class:`RewardComponent` subclass or an iterable of them. A component's name must be new: one that
is taken is skipped with a warning.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tradelab.env.jit import inline, jit
from tradelab.plugins import describe_entry_point, entry_point_objects, parse_params
from tradelab.tools.base import NoParams

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "tradelab.rewards"
#: Equity is floored at this fraction of the initial cash wherever it is a logarithm's argument or a
#: divisor, so a bankrupt env (equity <= 0) gives a large but finite reward: ``ln(1e-6) ≈ -13.8``.
EQUITY_FLOOR = 1e-6
#: Below this running variance the differential Sharpe ratio is undefined and reported as 0.
MIN_VARIANCE = 1e-12


class RewardError(ValueError):
    """A reward component is unknown, its parameters are invalid, or it broke the output contract."""


@dataclass(frozen=True, slots=True)
class RewardInputs:
    """What a step hands the reward components: float64 arrays of shape ``(N,)``, one value per env.

    The env may build one instance over its own state arrays and pass it every step; components must
    not write into these arrays.

    :param equity_prev: equity before the step (cash + position marked at the previous close), in quote currency.
    :param equity: equity after the step (marked at this bar's close), in quote currency.
    :param peak_equity: highest equity of the episode so far, this step's ``equity`` included, in quote currency.
    :param fees: fees charged during the step (slippage excluded: it already shows in the fill price), >= 0.
    :param units: position after the step, in base-currency units (negative when short).
    :param price: this bar's close, in quote currency per unit.
    :param initial_cash: equity at the start of the episode, in quote currency.
    :param traded_notional: ``|units traded| × fill price`` summed over the step's fills, in quote currency.
    """

    equity_prev: np.ndarray
    equity: np.ndarray
    peak_equity: np.ndarray
    fees: np.ndarray
    units: np.ndarray
    price: np.ndarray
    initial_cash: np.ndarray
    traded_notional: np.ndarray


class RewardComponent(ABC):
    """Base class of a reward component: one named term of the reward, computed for N envs at once.

    Subclasses set :attr:`name` (and :attr:`Params` when they take parameters) and implement
    :meth:`__call__`; a component with per-env state (running moments, counters) also overrides
    :meth:`reset`.

    :param n_envs: number of envs N the component serves.
    :param params: a :attr:`Params` instance, a mapping validated into one, or None for the defaults.
    :raises RewardError: naming the component and the invalid field.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: A pydantic model (``extra="forbid"``, frozen); its JSON Schema is what the UI shows.
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, n_envs: int, params: BaseModel | Mapping[str, Any] | None = None) -> None:
        self.n_envs = n_envs
        self.params = self.parse_params(params)
        #: Output array of shape ``(N,)`` a subclass may fill and return each call (overwritten by the next).
        self.out = np.zeros(n_envs, dtype=np.float64)

    @classmethod
    def parse_params(cls, params: BaseModel | Mapping[str, Any] | None = None) -> BaseModel:
        """Validate ``params`` (a mapping, a :attr:`Params` instance, or None for the defaults).

        :raises RewardError: naming the component and the invalid field.
        """
        return parse_params(cls.Params, params, RewardError, f"reward component {cls.name}")

    def reset(self, mask: np.ndarray) -> None:  # noqa: B027  # an optional hook, not abstract
        """Forget the per-env state of the envs where ``mask`` is True (called when they reset).

        Stateless components keep this default, which does nothing.

        :param mask: bool array of shape ``(N,)``.
        """

    @abstractmethod
    def __call__(self, step: RewardInputs) -> np.ndarray:
        """The component's value for each env this step.

        :param step: the step's inputs, arrays of shape ``(N,)``.
        :return: float64 array of shape ``(N,)``; it may be :attr:`out`, overwritten by the next call.
        """


# Kernel ids of the built-in components (BuiltinComponent.kernel_id); the env's step kernel computes them inline.
LOG_RETURN, PNL, DRAWDOWN, COST, HOLDING, DIFFERENTIAL_SHARPE = range(6)


@inline
def builtin_value(
    kind: int,
    eta: float,
    equity_prev: float,
    equity: float,
    peak_equity: float,
    fees: float,
    units: float,
    price: float,
    initial_cash: float,
    moments: np.ndarray,
    i: int,
    at: int,
) -> float:
    """One env's value of the built-in component ``kind`` (compiled; see each component's docstring).

    :param kind: a kernel id (``LOG_RETURN`` … ``DIFFERENTIAL_SHARPE``).
    :param eta: the differential Sharpe ratio's adaptation rate (ignored by the others).
    :param moments: a matrix holding the env's running moments ``A, B`` of the differential Sharpe ratio
        in row ``i``, columns ``at, at + 1``; updated in place by that component (ignored by the others).
    """
    floor = EQUITY_FLOOR * initial_cash
    if kind == PNL:
        return (equity - equity_prev) / initial_cash
    if kind == DRAWDOWN:
        return min(equity - equity_prev, 0.0) / peak_equity
    if kind == COST:
        return -(fees / max(equity_prev, floor))
    if kind == HOLDING:
        return -(abs(units) * price / max(equity, floor))
    r = np.log(max(equity, floor)) - np.log(max(equity_prev, floor))
    if kind == LOG_RETURN:
        return r
    a, b = moments[i, at], moments[i, at + 1]
    delta_a, delta_b = r - a, r * r - b
    variance = b - a * a
    moments[i, at], moments[i, at + 1] = a + eta * delta_a, b + eta * delta_b
    if variance > MIN_VARIANCE:
        return (b * delta_a - 0.5 * (a * delta_b)) / variance**1.5
    return 0.0


@jit
def _builtin_batch(kind: int, eta: float, inputs: np.ndarray, moments: np.ndarray, out: np.ndarray) -> None:
    x = inputs
    for i in range(out.shape[0]):
        out[i] = builtin_value(kind, eta, x[0, i], x[1, i], x[2, i], x[3, i], x[4, i], x[5, i], x[6, i], moments, i, 0)


class BuiltinComponent(RewardComponent):
    """A component the env's compiled step computes inline (by :attr:`kernel_id`), with no Python call per step.

    :meth:`__call__` runs the same compiled code over a batch, for use outside the env.
    """

    kernel_id: ClassVar[int]

    def __init__(self, n_envs: int, params: BaseModel | Mapping[str, Any] | None = None) -> None:
        super().__init__(n_envs, params)
        #: Per-env running state ``[A, B]`` (used by the differential Sharpe ratio only).
        self.moments = np.zeros((n_envs, 2), dtype=np.float64)

    @property
    def kernel_param(self) -> float:
        """The one parameter the compiled code reads (the differential Sharpe ratio's ``eta``; else 0)."""
        return 0.0

    def __call__(self, step: RewardInputs) -> np.ndarray:
        """The component's values, shape ``(N,)`` (see the class docstring for the units)."""
        inputs = np.stack([getattr(step, name) for name in _KERNEL_INPUTS]).astype(np.float64, copy=False)
        _builtin_batch(self.kernel_id, self.kernel_param, inputs, self.moments, self.out)
        return self.out


_KERNEL_INPUTS = ("equity_prev", "equity", "peak_equity", "fees", "units", "price", "initial_cash")


class LogReturn(BuiltinComponent):
    """Log return of equity over the step, ``ln(equity / equity_prev)``, in nepers (≈ fractional return).

    .. note::
        Both equities are floored at :data:`EQUITY_FLOOR` × initial cash, so a step into bankruptcy
        (equity <= 0) yields about ``ln(1e-6) ≈ -13.8`` instead of ``-inf`` or NaN.
    """

    name: ClassVar[str] = "log_return"
    description: ClassVar[str] = "Log return of equity over the step"
    kernel_id: ClassVar[int] = LOG_RETURN


class Pnl(BuiltinComponent):
    """Profit and loss of the step as a fraction of the initial cash, ``(equity - equity_prev) / initial_cash``.

    Dividing by the initial cash (not the current equity) keeps the reward linear in money made or
    lost, while making it unit-free: the same weight works for a 100 USDT and a 1 BTC account.
    """

    name: ClassVar[str] = "pnl"
    description: ClassVar[str] = "Change in equity over the step, as a fraction of the initial cash"
    kernel_id: ClassVar[int] = PNL


class DrawdownPenalty(BuiltinComponent):
    """Minus the increase in drawdown over the step, drawdown being ``1 - equity / peak_equity``.

    Values are ``<= 0``, in fractions of the peak equity: a step that deepens the drawdown is
    penalized by how much it deepened it; a step that recovers or makes a new peak scores 0 (the
    return components already reward it).

    .. note::
        With ``peak_equity`` the running peak including this step's equity, the peak only moves on a
        step that ends at a new peak (drawdown 0, nothing to penalize); on any other step it is the
        previous peak, so the increase is ``max(equity_prev - equity, 0) / peak_equity`` and the
        component needs no state.
    """

    name: ClassVar[str] = "drawdown"
    description: ClassVar[str] = "Minus the increase in drawdown from the peak (a penalty, <= 0)"
    kernel_id: ClassVar[int] = DRAWDOWN


class CostPenalty(BuiltinComponent):
    """Minus the fees of the step as a fraction of the equity before it, ``-fees / equity_prev`` (``<= 0``).

    Fees already lower the equity, so the return components count them once; this component counts
    them again, to discourage churning beyond what they cost. ``equity_prev`` is floored at
    :data:`EQUITY_FLOOR` × initial cash.
    """

    name: ClassVar[str] = "cost"
    description: ClassVar[str] = "Minus the fees of the step, as a fraction of equity (a penalty, <= 0)"
    kernel_id: ClassVar[int] = COST


class HoldingPenalty(BuiltinComponent):
    """Minus the exposure held through the bar, ``-|units| × price / equity``, charged every bar (``<= 0``).

    Summed over an episode it is the exposure-weighted time in the market, so a positive weight
    pushes the agent to hold positions only when they pay. ``equity`` is floored at
    :data:`EQUITY_FLOOR` × initial cash.
    """

    name: ClassVar[str] = "holding"
    description: ClassVar[str] = "Minus the position's exposure as a fraction of equity, per bar (a penalty, <= 0)"
    kernel_id: ClassVar[int] = HOLDING


class DifferentialSharpeParams(BaseModel):
    """Parameters of the differential Sharpe ratio."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eta: float = Field(
        0.01, gt=0.0, lt=1.0, description="Adaptation rate of the running moments (≈ 1 / their memory in bars)."
    )


class DifferentialSharpe(BuiltinComponent):
    """Moody & Saffell's differential Sharpe ratio of the step's log return ``R_t`` (unit-free).

    With exponential moving moments ``A`` (of ``R``) and ``B`` (of ``R²``) at adaptation rate ``η``::

        ΔA_t = R_t - A_{t-1}        ΔB_t = R_t² - B_{t-1}
        D_t  = (B_{t-1} ΔA_t - ½ A_{t-1} ΔB_t) / (B_{t-1} - A_{t-1}²)^{3/2}
        A_t  = A_{t-1} + η ΔA_t     B_t  = B_{t-1} + η ΔB_t

    ``D_t`` is the first-order effect of ``R_t`` on the running Sharpe ratio ``A / sqrt(B - A²)``.
    ``A`` and ``B`` start at 0 for each env and restart at 0 when it resets.

    .. note::
        While ``B_{t-1} - A_{t-1}²`` is at most :data:`MIN_VARIANCE` (at the start, and while every
        return so far was 0) ``D_t`` is undefined and reported as 0; the moments still update.
        Right after that start the variance estimate is tiny, so the first few values are large:
        two equal returns in a row from the start give ``D_2 = ±1 / (2 sqrt(η (1 - η)))`` (≈ 5 for
        ``η = 0.01``).
    """

    name: ClassVar[str] = "differential_sharpe"
    description: ClassVar[str] = "Differential Sharpe ratio of the log return (Moody & Saffell)"
    Params: ClassVar[type[BaseModel]] = DifferentialSharpeParams
    params: DifferentialSharpeParams
    kernel_id: ClassVar[int] = DIFFERENTIAL_SHARPE

    @property
    def kernel_param(self) -> float:
        """``eta``."""
        return self.params.eta

    @property
    def a(self) -> np.ndarray:
        """Running mean of the log return, per env (a view)."""
        return self.moments[:, 0]

    @property
    def b(self) -> np.ndarray:
        """Running mean of the squared log return, per env (a view)."""
        return self.moments[:, 1]

    def reset(self, mask: np.ndarray) -> None:
        """Restart the moments of the envs where ``mask`` is True.

        :param mask: bool array of shape ``(N,)``.
        """
        self.moments[mask] = 0.0


BUILTIN_COMPONENTS: tuple[type[RewardComponent], ...] = (
    LogReturn,
    Pnl,
    DrawdownPenalty,
    CostPenalty,
    HoldingPenalty,
    DifferentialSharpe,
)


class RewardRegistry:
    """Every reward component class found, by name (case-insensitive): built-ins, then entry points.

    A component whose name is taken, and an entry point that fails to load or is not a
    :class:`RewardComponent` subclass, is skipped with a warning; the rest still loads.

    :param entry_points: include the components of installed plugins (entry-point group ``tradelab.rewards``).
    """

    def __init__(self, *, entry_points: bool = True) -> None:
        self._components: dict[str, type[RewardComponent]] = {}
        #: Why each skipped component or entry point was skipped, in loading order (each also logged).
        self.warnings: list[str] = []
        for component in BUILTIN_COMPONENTS:
            self._add(component, "builtin")
        if entry_points:
            for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                self._load_entry_point(entry_point)

    def get(self, name: str) -> type[RewardComponent]:
        """The component class called ``name``, in any case.

        :raises RewardError: for an unknown name, suggesting the closest names (or listing all).
        """
        component = self._components.get(name.lower())
        if component is not None:
            return component
        close = difflib.get_close_matches(name.lower(), self._components, n=5, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(self._components)}"
        raise RewardError(f"unknown reward component {name!r}; {hint}")

    def names(self) -> list[str]:
        """Names of the components, in loading order."""
        return [component.name for component in self._components.values()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._components

    def __iter__(self) -> Iterator[type[RewardComponent]]:
        return iter(self._components.values())

    def __len__(self) -> int:
        return len(self._components)

    def _add(self, component: type[RewardComponent], origin: str) -> None:
        if not component.name:
            self._warn(f"reward component {component.__name__} from {origin} skipped: it has no name")
            return
        if component.name.lower() in self._components:
            self._warn(f"reward component {component.name} from {origin} skipped: the name is taken")
            return
        self._components[component.name.lower()] = component

    def _load_entry_point(self, entry_point: importlib.metadata.EntryPoint) -> None:
        origin, where = describe_entry_point(entry_point)
        try:
            targets = entry_point_objects(entry_point)
        except Exception as exc:  # a broken plugin must not take the registry down
            self._warn(f"{where} skipped: {type(exc).__name__}: {exc}")
            return
        for target in targets:
            if isinstance(target, type) and issubclass(target, RewardComponent):
                self._add(target, origin)
            else:
                self._warn(f"{where} skipped: {target!r} is not a RewardComponent subclass")

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        logger.warning("%s", message)


@cache
def reward_registry() -> RewardRegistry:
    """The reward registry of this process (built once): built-ins and installed plugins."""
    return RewardRegistry()


class RewardSpec(BaseModel):
    """One weighted term of the reward, as an experiment config writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    component: str = Field(description="Name of a reward component (built-in or from a plugin).")
    weight: float = Field(1.0, allow_inf_nan=False, description="Multiplier of the component in the reward.")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters of the component.")


#: The reward when a config names none: the log return of equity.
DEFAULT_REWARD: tuple[RewardSpec, ...] = (RewardSpec(component="log_return", weight=1.0),)


class RewardFunction:
    """The reward of N envs: ``Σ weight × component`` over the specs, with each component kept for ``info``.

    :param specs: the weighted components; None for :data:`DEFAULT_REWARD`.
    :param n_envs: number of envs N stepped together (1 for the single env).
    :param registry: where component names are looked up; None for :func:`reward_registry`.
    :raises RewardError: for no specs, an unknown or repeated component, or invalid parameters.

    .. note::
        The arrays :meth:`__call__` returns are preallocated and overwritten by the next call;
        copy what you keep (for example into a vector env's ``info``).
    """

    def __init__(
        self,
        specs: Sequence[RewardSpec | Mapping[str, Any]] | None = None,
        n_envs: int = 1,
        *,
        registry: RewardRegistry | None = None,
    ) -> None:
        registry = registry if registry is not None else reward_registry()
        self.specs = [RewardSpec.model_validate(s) for s in (DEFAULT_REWARD if specs is None else specs)]
        if not self.specs:
            raise RewardError("the reward needs at least one component")
        self.n_envs = n_envs
        self.components: list[RewardComponent] = []
        for spec in self.specs:
            component = registry.get(spec.component)(n_envs, spec.params)
            if any(c.name == component.name for c in self.components):
                raise RewardError(f"reward component {component.name} is listed twice; list each component once")
            self.components.append(component)
        self.weights = [spec.weight for spec in self.specs]
        self._total = np.zeros(n_envs, dtype=np.float64)
        self._scratch = np.zeros(n_envs, dtype=np.float64)
        self._parts = {c.name: np.zeros(n_envs, dtype=np.float64) for c in self.components}

    @property
    def names(self) -> list[str]:
        """Names of the components, in spec order (the keys of the parts)."""
        return list(self._parts)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Forget the per-env state of the components for the envs where ``mask`` is True.

        :param mask: bool array of shape ``(N,)``; None for every env.
        """
        mask = np.ones(self.n_envs, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        for component in self.components:
            component.reset(mask)

    def __call__(self, step: RewardInputs) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The reward of each env this step, and each component.

        :param step: the step's inputs, arrays of shape ``(N,)``.
        :return: the total reward, float64 of shape ``(N,)``, and component name -> its unweighted
            values, float64 of shape ``(N,)`` (both reused by the next call).
        :raises RewardError: when a component returns an array of another shape.
        """
        self._total.fill(0.0)
        for component, weight in zip(self.components, self.weights, strict=True):
            part = self._parts[component.name]
            np.copyto(part, self.values(component, step))
            np.multiply(part, weight, out=self._scratch)
            self._total += self._scratch
        return self._total, self._parts

    def values(self, component: RewardComponent, step: RewardInputs) -> np.ndarray:
        """``component``'s values for ``step``, checked to be one per env.

        :raises RewardError: when the component returns an array of another shape.
        """
        values = component(step)
        if np.shape(values) != (self.n_envs,):
            raise RewardError(
                f"reward component {component.name} returned shape {np.shape(values)}, expected ({self.n_envs},)"
            )
        return values
