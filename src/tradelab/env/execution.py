"""The execution model: how a target position becomes fills, fees, stops, liquidations and equity.

The logic is one compiled function per account, :func:`execute_account` (numba, see ADR 0005), that
the env's step kernel calls for each of its ``N`` accounts (``N = 1`` for the single env). From
Python, :func:`execute_step` advances an :class:`Accounts` batch through one bar the same way;
different accounts may be at different bars (:class:`BarView` holds each one's execution bar).

Timing. The agent decides on information up to bar ``t``'s close. With ``fill="next_open"`` (the
default) the env passes bar ``t + 1`` and the order fills at its open; with ``fill="close"`` (research
only, it peeks at the price it decided on) the env passes bar ``t`` and the order fills at its close.

Order of events inside the execution bar, for each account:

1. **Gap at the open.** A stop or target of the position carried into the bar that the open has
   already gone through fills at the open: a gapped stop at ``open`` less slippage (worse than the
   stop, taker fee); a gapped target at ``open`` itself (better than the target: a resting limit
   order fills at the first price at least as good as its limit; maker fee, no slippage).
   With ``fill="next_open"`` such an exit cancels this step's rebalance (the order was decided for
   a position that no longer exists; the agent sees the flat account at its next decision).
2. **Rebalance** (at the open with ``next_open``; after step 3, at the close, with ``close``). A
   *held* level keeps its units and does not trade (see "Held levels" below). Otherwise the
   position moves to ``target_fraction`` of equity with one market order: slippage against the
   trader (buys fill at ``price × (1 + slip)``, sells at ``price × (1 - slip)``), taker fee on the
   traded notional. Sizing includes the fee: the order is sized so that, valued at the fill price,
   ``position notional == target_fraction × (equity - fee)`` after the trade (see
   :func:`execute_step`). A reversal is one order that closes and opens (its fee is on the whole
   traded notional). Stop and target levels are set from the fill price when the position opens or
   changes direction; when it is only resized, the existing levels are kept and the entry price
   becomes the size-weighted average (unchanged when reducing).
3. **Inside the bar.** The stop and target are checked against the bar's low and high; when both
   are touched the stop fills first (pessimistic). A stop fills at ``stop`` less slippage (taker),
   a target at ``target`` (maker, no slippage). A position opened at this bar's close (``close``
   mode) is first checked on the next bar.
4. **Close.** Equity is marked at the close, ``equity = cash + units × close``. A position is
   liquidated when ``equity < maintenance_margin × |units × close|`` or ``equity <= 0``: closed at
   the close less slippage, taker fee. An account whose equity is then ``<= 0`` is bankrupt: its
   cash is set to 0 (no debt is carried), it never trades again until reset, and the env ends the
   episode. Peak equity and bars in position are updated.

Held levels. A position's fraction of equity drifts as the price moves, for every level but 0 and 1
(a short at -1 included); re-sizing it back at every bar would pay a fee and slippage at nearly every
bar, costs a trader who holds does not pay. So a target is *held*, and its rebalance does nothing,
when it equals the level of the account's last filled rebalance (``Accounts.level``, clipped; NaN
after a reset) **and** the position is still on that level's side (short for a negative level, flat
for 0). It trades when the level changes; when a stop, target or liquidation has closed the position
(a still-held nonzero level then re-enters at the next rebalance, like any target the position
differs from); or when ``ExecutionConfig.rebalance_band`` is set and the drift exceeds it,
``|units × price / equity - target| > rebalance_band`` at the rebalance price (``0``: re-size at every
bar whose price moved; None, the default: never). A level counts as held only once a rebalance to it
has filled: one skipped by ``min_trade_fraction`` is tried again at the next bar. A continuous (box)
action rarely repeats a level exactly, so it re-sizes whenever its target moves;
``min_trade_fraction`` filters the small moves.

Conventions: prices, cash and equity are in quote currency, ``units`` in base asset (negative when
short), fractions are plain fractions (``0.01`` = 1 %), every value is float64 (counters are whole
numbers, flags 0 or 1). Realised PnL is the price PnL of the units a fill closes, gross of fees
(fees are reported apart). After every step ``cash + units × close == equity`` for each account and
``fees_paid`` is the sum of the fees its fills were charged.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tradelab.env.jit import inline, jit

FloatArray = npt.NDArray[np.float64]

_BPS = 1e-4
# Trades smaller than this fraction of equity are float residue (e.g. holding a fully invested
# position leaves ~1e-13 of cash), never real orders.
_DUST = 1e-9

# Columns of an account row (``Accounts.state``); the env's state rows start with these.
CASH, UNITS, ENTRY, STOP, TARGET, EQUITY, PEAK, BARS_IN_POSITION, FEES_PAID, REALIZED_PNL, TRADES, BANKRUPT, LEVEL = (
    range(13)
)
ACCOUNT_FIELDS = (
    "cash",
    "units",
    "entry_price",
    "stop_price",
    "target_price",
    "equity",
    "peak_equity",
    "bars_in_position",
    "fees_paid",
    "realized_pnl",
    "trades",
    "bankrupt",
    "level",
)
# A step's events follow in the row: a (5, 5) matrix in row-major order; rows 0-3 one fill per Slot (columns
# FILL_*), row TOTALS the step's totals (columns TOTAL_*). event(row, column) is the state column of one entry.
FILL_UNITS, FILL_PRICE, FILL_FEE, FILL_PNL, FILL_REASON = range(5)
TOTALS = 4
TOTAL_FEES, TOTAL_PNL, TOTAL_TURNOVER, TOTAL_BANKRUPTED, TOTAL_OPENED = range(5)
EVENTS = len(ACCOUNT_FIELDS)
EVENTS_SIZE = 25
#: Columns of an account row: the account, then its step's events.
ACCOUNT_COLUMNS = EVENTS + EVENTS_SIZE
# The execution parameters, a float64 vector (ExecutionConfig.kernel_params).
N_EXECUTION_PARAMS = 11
(
    P_NEXT_OPEN, P_TAKER, P_MAKER, P_VOL_SLIPPAGE, P_SLIPPAGE, P_SLIPPAGE_MULT, P_LOW, P_HIGH, P_MARGIN, P_MIN_TRADE,
    P_BAND,
) = range(N_EXECUTION_PARAMS)  # fmt: skip


class LookAheadWarning(UserWarning):
    """A setting lets the simulation use a price the agent could not have traded at."""


class ExecutionConfig(BaseModel):
    """How orders fill and what they cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fill: Literal["next_open", "close"] = Field(
        "next_open",
        description="price an action fills at: the next bar's open, or (research only, peeks) the decision bar's close",
    )
    taker_fee_bps: float = Field(
        10.0, ge=0.0, le=1000.0, description="fee on market orders (rebalances, stops, liquidations), bps of notional"
    )
    maker_fee_bps: float = Field(
        2.0, ge=-100.0, le=1000.0, description="fee on take-profit limit orders, bps of notional (negative: rebate)"
    )
    slippage: Literal["fixed", "volatility"] = Field(
        "fixed", description="fixed bps, or a multiple of the bar's relative range (BarView.vol)"
    )
    slippage_bps: float = Field(1.0, ge=0.0, le=1000.0, description="slippage of market orders in bps (fixed mode)")
    slippage_vol_mult: float = Field(
        0.1,
        ge=0.0,
        le=10.0,
        description="volatility mode: slippage fraction = this × BarView.vol, the relative range (high - low) / close",
    )
    allow_short: bool = Field(False, description="allow negative target fractions")
    max_leverage: float = Field(
        1.0, ge=1.0, le=100.0, description="target fractions are clipped to [-max_leverage, max_leverage]"
    )
    maintenance_margin: float = Field(
        0.05,
        ge=0.0,
        lt=1.0,
        description="liquidate at the close when equity < this × |position notional at the close|",
    )
    min_trade_fraction: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="ignore rebalances smaller than this fraction of equity (going flat always fills)",
    )
    rebalance_band: float | None = Field(
        None,
        ge=0.0,
        description="re-size a held target level once |position notional / equity - level| exceeds this; "
        "null: never (a held level keeps its units), 0: at every bar whose price moved",
    )

    @model_validator(mode="after")
    def _check(self) -> ExecutionConfig:
        if self.max_leverage * self.taker_fee_bps * _BPS >= 0.5:
            raise ValueError("max_leverage × taker fee must stay below 50 % of equity")
        if self.fill == "close":
            warnings.warn(
                "fill='close' fills each action at the close of the bar it was decided on, a price the agent "
                "could not trade at: for research only",
                LookAheadWarning,
                stacklevel=2,
            )
        return self

    @cached_property
    def kernel_params(self) -> FloatArray:
        """The settings as the float64 vector :func:`execute_account` reads (indices ``P_*``), read-only."""
        params = np.zeros(N_EXECUTION_PARAMS)
        params[P_NEXT_OPEN] = self.fill == "next_open"
        params[P_TAKER] = self.taker_fee_bps * _BPS
        params[P_MAKER] = self.maker_fee_bps * _BPS
        params[P_VOL_SLIPPAGE] = self.slippage == "volatility"
        params[P_SLIPPAGE] = self.slippage_bps * _BPS
        params[P_SLIPPAGE_MULT] = self.slippage_vol_mult
        params[P_LOW] = -self.max_leverage if self.allow_short else 0.0
        params[P_HIGH] = self.max_leverage
        params[P_MARGIN] = self.maintenance_margin
        params[P_MIN_TRADE] = max(self.min_trade_fraction, _DUST)
        params[P_BAND] = np.inf if self.rebalance_band is None else self.rebalance_band
        params.flags.writeable = False
        return params


class Reason(IntEnum):
    """Why a fill happened (``StepEvents.reason``)."""

    NONE = 0
    SIGNAL = 1
    STOP = 2
    TARGET = 3
    LIQUIDATION = 4


class Slot(IntEnum):
    """Column of ``StepEvents`` per-fill arrays: at most one fill per slot per step."""

    OPEN_EXIT = 0  # stop or target gapped at the open (step 1)
    SIGNAL = 1  # the rebalance (step 2)
    BAR_EXIT = 2  # stop or target inside the bar (step 3)
    LIQUIDATION = 3  # liquidation at the close (step 4)


N_SLOTS = len(Slot)
# Plain ints for the compiled code.
_OPEN_EXIT, _SIGNAL_SLOT, _BAR_EXIT, _LIQUIDATION_SLOT = (int(slot) for slot in Slot)
_SIGNAL, _STOP, _TARGET, _LIQUIDATION = (int(r) for r in list(Reason)[1:])


@dataclass(slots=True)
class BarView:
    """The execution bar of each account (each account may be at its own bar).

    :param open: bar open, shape ``(N,)``, quote currency.
    :param high: bar high, ``(N,)``.
    :param low: bar low, ``(N,)``.
    :param close: bar close, ``(N,)``.
    :param vol: relative volatility for volatility slippage, ``(N,)``, a fraction of price; the env
        passes ``(high - low) / close`` of the decision bar (known when the order is sent). Unused
        with fixed slippage.
    """

    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    vol: FloatArray


class _View:
    """A named, documented view of one of an object's arrays: ``getattr(obj, array)[index]``."""

    def __init__(self, array: str, index: tuple[slice | int, ...], doc: str) -> None:
        self.array, self.index = array, index
        self.__doc__ = doc

    def __get__(self, obj: object, owner: type | None = None) -> FloatArray:
        return getattr(obj, self.array)[self.index]


def _column(index: int, doc: str) -> _View:
    """Column ``index`` of an :class:`Accounts`' state, ``(N,)``."""
    return _View("state", (slice(None), index), doc)


class Accounts:
    """``N`` trading accounts, one row each of a float64 matrix that :func:`execute_step` updates in place.

    :param state: matrix ``(N, k)``, ``k >= ACCOUNT_COLUMNS``; columns ``CASH … LEVEL`` are the account,
        then come the last step's events (the env keeps more columns after them). Every field below is a
        column view of it.
    """

    FIELDS = ACCOUNT_FIELDS
    cash = _column(CASH, "quote currency (negative when borrowing for leverage)")
    units = _column(UNITS, "signed position in base asset (negative: short)")
    entry_price = _column(ENTRY, "size-weighted average entry price; NaN when flat")
    stop_price = _column(STOP, "stop-loss level; NaN when none")
    target_price = _column(TARGET, "take-profit level; NaN when none")
    equity = _column(EQUITY, "cash + units × close at the last close")
    peak_equity = _column(PEAK, "highest equity at a close since reset")
    bars_in_position = _column(BARS_IN_POSITION, "steps the position has been held, the opening one counting 1")
    fees_paid = _column(FEES_PAID, "fees charged since reset")
    realized_pnl = _column(REALIZED_PNL, "price PnL of closed units since reset, gross of fees")
    trades = _column(TRADES, "fills since reset")
    bankrupt = _column(BANKRUPT, "1 when the account went bankrupt (frozen until reset), else 0")
    level = _column(LEVEL, "target fraction of the last filled rebalance, the level held; NaN before one since reset")

    def __init__(self, state: FloatArray) -> None:
        if state.ndim != 2 or state.shape[1] < ACCOUNT_COLUMNS or state.dtype != np.float64:
            raise ValueError(f"state must be a float64 (N, >= {ACCOUNT_COLUMNS}) matrix, got {state.shape}")
        self.state = state
        #: What the last step did to each account (a view of the state).
        self.events = StepEvents(state[:, EVENTS : EVENTS + EVENTS_SIZE].reshape(len(state), N_SLOTS + 1, 5))

    @classmethod
    def new(cls, n: int, initial_cash: float | FloatArray) -> Accounts:
        """``n`` flat accounts holding ``initial_cash`` each.

        :param n: number of accounts.
        :param initial_cash: starting cash, a scalar or an array of shape ``(n,)``.
        """
        accounts = cls(np.zeros((n, ACCOUNT_COLUMNS)))
        accounts.reset(np.ones(n, dtype=np.bool_), initial_cash)
        return accounts

    def reset(self, mask: npt.NDArray[np.bool_], initial_cash: float | FloatArray) -> None:
        """Reset the accounts in ``mask`` to flat with ``initial_cash``, in place; the others are untouched.

        :param mask: which accounts to reset, shape ``(N,)``.
        :param initial_cash: starting cash, a scalar or an array of shape ``(N,)`` (read where ``mask``).
        """
        rows = self.state[mask, :ACCOUNT_COLUMNS]
        rows[:] = 0.0
        rows[:, [ENTRY, STOP, TARGET, LEVEL]] = np.nan
        cash = np.asarray(initial_cash, dtype=np.float64)
        for column in (CASH, EQUITY, PEAK):
            rows[:, column] = cash if cash.ndim == 0 else cash[mask]
        self.state[mask, :ACCOUNT_COLUMNS] = rows


def _event(rows: slice | int, column: int, doc: str) -> _View:
    """Rows ``rows``, column ``column`` of every account's events matrix in a :class:`StepEvents`."""
    return _View("events", (slice(None), rows, column), doc)


_SLOTS = slice(0, N_SLOTS)


class StepEvents:
    """What one step did to each account (:attr:`Accounts.events`); overwritten by every step.

    :param events: tensor ``(N, 5, 5)``: for each account, rows 0-3 are one fill per :class:`Slot`
        (columns ``FILL_*``) and row 4 the step's totals (columns ``TOTAL_*``). A slot without a fill
        has reason 0, zero units, fee and PnL, and a NaN price. Every field below is a view of it.
    """

    FIELDS = ("units", "price", "fee", "pnl", "reason", "fees", "realized_pnl", "turnover", "bankrupted", "opened")
    units = _event(_SLOTS, FILL_UNITS, "signed units traded (positive: bought), (N, slots)")
    price = _event(_SLOTS, FILL_PRICE, "fill price, quote currency, (N, slots)")
    fee = _event(_SLOTS, FILL_FEE, "fee charged, quote currency, (N, slots)")
    pnl = _event(_SLOTS, FILL_PNL, "realised price PnL of the units the fill closed, gross of fees, (N, slots)")
    reason = _event(_SLOTS, FILL_REASON, "Reason code, (N, slots)")
    fees = _event(TOTALS, TOTAL_FEES, "total fee of the step, (N,)")
    realized_pnl = _event(TOTALS, TOTAL_PNL, "total realised PnL of the step, (N,)")
    turnover = _event(TOTALS, TOTAL_TURNOVER, "traded notional of the step, quote currency, (N,)")
    bankrupted = _event(TOTALS, TOTAL_BANKRUPTED, "1 where the account went bankrupt in this step, (N,)")
    opened = _event(TOTALS, TOTAL_OPENED, "1 where the rebalance opened or reversed a position, (N,)")

    def __init__(self, events: FloatArray) -> None:
        self.events = events


def execute_step(
    accounts: Accounts,
    cfg: ExecutionConfig,
    target_fraction: FloatArray,
    stop_distance: FloatArray,
    take_distance: FloatArray,
    bar: BarView,
) -> StepEvents:
    """Advance every account through its execution bar (see the module docstring and :func:`execute_account`).

    :param accounts: the accounts, updated in place.
    :param cfg: execution settings.
    :param target_fraction: desired position as a signed fraction of equity, ``(N,)``; finite.
    :param stop_distance: stop-loss distance from the entry fill price as a fraction of it, ``(N,)``; NaN: none.
    :param take_distance: take-profit distance from the entry fill price as a fraction of it, ``(N,)``; NaN: none.
    :param bar: each account's execution bar.
    :return: what happened (:attr:`Accounts.events`, overwritten by the next step).
    :raises ValueError: for a non-finite target.
    """
    if not np.isfinite(target_fraction).all():
        raise ValueError(f"target fractions must be finite, got {target_fraction}")
    inputs = np.stack([target_fraction, stop_distance, take_distance, bar.open, bar.high, bar.low, bar.close, bar.vol])
    _execute_batch(accounts.state, cfg.kernel_params, inputs)
    return accounts.events


@jit
def _execute_batch(state: FloatArray, params: FloatArray, x: FloatArray) -> None:
    for i in range(state.shape[0]):
        execute_account(state, i, params, x[0, i], x[1, i], x[2, i], x[3, i], x[4, i], x[5, i], x[6, i], x[7, i])


@inline
def event(row: int, column: int) -> int:
    """The state column of entry ``(row, column)`` of an account's events (compiled; constant-folded)."""
    return EVENTS + row * 5 + column


@inline
def execute_account(
    a: FloatArray,
    i: int,
    p: FloatArray,
    target: float,
    stop_distance: float,
    take_distance: float,
    open_: float,
    high: float,
    low: float,
    close: float,
    vol: float,
) -> None:
    """Advance account ``i`` (row ``i`` of ``a``) through its execution bar (compiled; order of events above).

    The rebalance is sized with the fee inside: valued at the fill price ``p``, with ``E`` the equity
    before the trade, ``y`` the position notional before and ``x`` after, the order solves
    ``x = f × (E - fee)`` with ``fee = taker × |x - y|``, that is ``x = f × (E + s × taker × y) / (1 + s
    × taker × f)`` for a buy (``s = +1``) or a sell (``s = -1``). Buying with all cash ``C`` thus gets
    ``C / ((1 + taker) × p)`` units and spends exactly ``C``.

    :param a: the state matrix (columns ``CASH … LEVEL``, then the events, which are overwritten).
    :param i: the account's row. The code indexes ``a[i, column]`` and makes no row views: in numba
        every view costs reference counting, which was a third of the step.
    :param p: :attr:`ExecutionConfig.kernel_params`.
    :param target: desired position as a signed fraction of equity, finite; clipped to
        ``[-max_leverage, max_leverage]`` (``[0, max_leverage]`` without shorting).
    :param stop_distance: stop distance from the entry fill as a fraction of it (NaN: none); read only
        when a position opens or reverses.
    :param take_distance: take-profit distance, likewise.
    :param open_: the execution bar's open (``high``, ``low``, ``close`` likewise).
    :param vol: the decision bar's relative range, for volatility slippage.

    .. note::
        A held level does not trade unless it drifted beyond ``rebalance_band`` (module docstring). A
        rebalance is also skipped when its notional at the undisturbed price (open or close, before
        slippage and fee) is below ``max(min_trade_fraction, 1e-9)`` of equity, unless it goes flat; so
        entering a target of 1 never trades the ~1e-13 of cash left over by the entry.

    .. note::
        Bankrupt accounts are frozen (nothing fills, equity stays 0) until :meth:`Accounts.reset`.
        An account whose equity at the rebalance price is ``<= 0`` can only go flat.
    """
    for column in range(EVENTS, EVENTS + EVENTS_SIZE):
        a[i, column] = 0.0
    for slot in range(N_SLOTS):
        a[i, event(slot, FILL_PRICE)] = np.nan
    active = a[i, BANKRUPT] == 0.0
    taker, maker = p[P_TAKER], p[P_MAKER]
    slip = p[P_SLIPPAGE_MULT] * vol if p[P_VOL_SLIPPAGE] else p[P_SLIPPAGE]
    target = min(max(target, p[P_LOW]), p[P_HIGH])
    gapped = _exit_at_levels(a, i, open_, open_, slip, taker, maker, _OPEN_EXIT)
    if p[P_NEXT_OPEN]:
        if active and not gapped:
            _rebalance(a, i, p, target, stop_distance, take_distance, open_, slip)
        _exit_at_levels(a, i, low, high, slip, taker, maker, _BAR_EXIT)
    else:
        _exit_at_levels(a, i, low, high, slip, taker, maker, _BAR_EXIT)
        if active:
            _rebalance(a, i, p, target, stop_distance, take_distance, close, slip)
    _mark_to_close(a, i, p, close, slip)


@inline
def _exit_at_levels(
    a: FloatArray,
    i: int,
    adverse_for_long: float,
    favourable_for_long: float,
    slip: float,
    taker: float,
    maker: float,
    slot: int,
) -> bool:
    """Close the position if the given prices reach its stop or target, the stop first; True when it exits.

    At the open both prices are the open, and the fill happens there (the gap); inside the bar they
    are the low and high, and the fill happens at the level.
    """
    side = np.sign(a[i, UNITS])
    if side == 0.0:
        return False
    adverse = adverse_for_long if side > 0 else favourable_for_long
    favourable = favourable_for_long if side > 0 else adverse_for_long
    # NaN levels (none set) compare False.
    stop_hit = side * (a[i, STOP] - adverse) >= 0
    target_hit = side * (favourable - a[i, TARGET]) >= 0
    at_open = slot == _OPEN_EXIT
    if stop_hit:
        price = adverse if at_open else a[i, STOP]
        _close_position(a, i, price * (1.0 - side * slip), taker, _STOP, slot)
    elif target_hit:
        # A gap fills at the open, which is beyond the level; inside the bar the level itself trades.
        _close_position(a, i, favourable if at_open else a[i, TARGET], maker, _TARGET, slot)
    return stop_hit or target_hit


@inline
def _close_position(a: FloatArray, i: int, price: float, fee_rate: float, reason: int, slot: int) -> None:
    """Sell (or buy back) the whole position at ``price``."""
    units = a[i, UNITS]
    traded = -units
    notional = abs(traded) * price
    fee = notional * fee_rate
    a[i, CASH] -= traded * price + fee
    _record(a, i, slot, traded, price, fee, units * (price - a[i, ENTRY]), notional, reason)
    a[i, UNITS] = 0.0
    a[i, ENTRY] = a[i, STOP] = a[i, TARGET] = np.nan


@inline
def _rebalance(
    a: FloatArray,
    i: int,
    p: FloatArray,
    target: float,
    stop_distance: float,
    take_distance: float,
    price: float,
    slip: float,
) -> None:
    """Move the position to ``target × equity`` with one market order at ``price``, unless the level is held."""
    units, cash, taker = a[i, UNITS], a[i, CASH], p[P_TAKER]
    equity = cash + units * price
    if not equity > 0:
        target = 0.0
    gap = target * equity - units * price  # notional to trade, before costs, at the undisturbed price
    drifted = abs(gap) > p[P_BAND] * equity  # band inf (none): never
    if target == a[i, LEVEL] and np.sign(units) == np.sign(target) and not drifted:
        return  # a held level keeps its units (a NaN level, none since reset, is never held)
    if gap == 0 or (abs(gap) < p[P_MIN_TRADE] * equity and target != 0):
        return
    side = np.sign(gap)  # +1 buy, -1 sell
    fill = price * (1.0 + side * slip)
    held = units * fill
    wanted = target * (cash + held + side * taker * held) / (1.0 + side * taker * target)
    new_units = wanted / fill
    traded = new_units - units
    if not side * traded > 0:  # slippage can flip a trade within a hair of nothing: dropped
        return
    notional = abs(traded) * fill
    fee = notional * taker
    old_side, new_side = np.sign(units), np.sign(new_units)
    pnl = 0.0
    if old_side * traded < 0:
        pnl = min(abs(traded), abs(units)) * old_side * (fill - a[i, ENTRY])
    a[i, CASH] = cash - (traded * fill + fee)
    _record(a, i, _SIGNAL_SLOT, traded, fill, fee, pnl, notional, _SIGNAL)
    if new_side == 0:
        a[i, ENTRY] = a[i, STOP] = a[i, TARGET] = np.nan
    elif new_side != old_side:  # opened or reversed: levels from this fill
        a[i, ENTRY] = fill
        a[i, STOP] = fill * (1.0 - new_side * stop_distance)
        a[i, TARGET] = fill * (1.0 + new_side * take_distance)
        a[i, event(TOTALS, TOTAL_OPENED)] = 1.0
    elif abs(new_units) > abs(units):  # added: size-weighted entry, levels kept
        a[i, ENTRY] = (units * a[i, ENTRY] + traded * fill) / new_units
    a[i, UNITS] = new_units
    a[i, LEVEL] = target


@inline
def _mark_to_close(a: FloatArray, i: int, p: FloatArray, close: float, slip: float) -> None:
    """Mark at the close, liquidate an under-margined position, flag bankruptcy, update the running stats."""
    notional = a[i, UNITS] * close
    equity = a[i, CASH] + notional
    if a[i, UNITS] != 0 and (equity < p[P_MARGIN] * abs(notional) or equity <= 0):
        side = np.sign(a[i, UNITS])
        _close_position(a, i, close * (1.0 - side * slip), p[P_TAKER], _LIQUIDATION, _LIQUIDATION_SLOT)
        equity = a[i, CASH] + a[i, UNITS] * close
    if equity <= 0 and a[i, BANKRUPT] == 0.0:
        a[i, CASH] = equity = 0.0
        a[i, BANKRUPT] = 1.0
        a[i, event(TOTALS, TOTAL_BANKRUPTED)] = 1.0
    a[i, EQUITY] = equity
    a[i, PEAK] = max(a[i, PEAK], equity)
    a[i, FEES_PAID] += a[i, event(TOTALS, TOTAL_FEES)]
    a[i, REALIZED_PNL] += a[i, event(TOTALS, TOTAL_PNL)]
    for slot in range(N_SLOTS):
        a[i, TRADES] += a[i, event(slot, FILL_REASON)] != 0
    if a[i, UNITS] == 0:
        a[i, BARS_IN_POSITION] = 0.0
    elif a[i, event(TOTALS, TOTAL_OPENED)]:
        a[i, BARS_IN_POSITION] = 1.0
    else:
        a[i, BARS_IN_POSITION] += 1.0


@inline
def _record(
    a: FloatArray,
    i: int,
    slot: int,
    traded: float,
    price: float,
    fee: float,
    pnl: float,
    notional: float,
    reason: int,
) -> None:
    """Write one slot's fill and add it to the step's totals."""
    a[i, event(slot, FILL_UNITS)] = traded
    a[i, event(slot, FILL_PRICE)] = price
    a[i, event(slot, FILL_FEE)] = fee
    a[i, event(slot, FILL_PNL)] = pnl
    a[i, event(slot, FILL_REASON)] = reason
    a[i, event(TOTALS, TOTAL_FEES)] += fee
    a[i, event(TOTALS, TOTAL_PNL)] += pnl
    a[i, event(TOTALS, TOTAL_TURNOVER)] += notional
