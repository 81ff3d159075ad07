"""The execution model: how a target position becomes fills, fees, stops, liquidations and equity.

Everything here is batched: an :class:`Accounts` holds ``N`` independent accounts as arrays of length
``N`` (``N = 1`` for the single env) and :func:`execute_step` advances all of them through one bar
at once, with no Python loop over accounts. Different accounts may be at different bars: the env
gathers each one's execution bar into a :class:`BarView`.

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
2. **Rebalance** (at the open with ``next_open``; after step 3, at the close, with ``close``). The
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

Conventions: prices, cash and equity are in quote currency, ``units`` in base asset (negative when
short), fractions are plain fractions (``0.01`` = 1 %), all arrays are float64 except the counters
(int64) and flags (bool). Realised PnL is the price PnL of the units a fill closes, gross of fees
(fees are reported apart). After every step ``cash + units × close == equity`` for each account and
``fees_paid`` is the sum of the fees its fills were charged.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_BPS = 1e-4
# Trades smaller than this fraction of equity are float residue (e.g. holding a fully invested
# position leaves ~1e-13 of cash), never real orders.
_DUST = 1e-9


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


@dataclass(slots=True)
class BarView:
    """The execution bar of each account, gathered by the env (each account may be at its own bar).

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


@dataclass(slots=True)
class Accounts:
    """``N`` trading accounts as arrays of shape ``(N,)``; :func:`execute_step` updates them in place.

    :param cash: quote currency (negative when borrowing for leverage).
    :param units: signed position in base asset (negative: short).
    :param entry_price: size-weighted average entry price; NaN when flat.
    :param stop_price: stop-loss level; NaN when none.
    :param target_price: take-profit level; NaN when none.
    :param equity: ``cash + units × close`` at the last close.
    :param peak_equity: highest equity at a close since reset.
    :param bars_in_position: steps the current position has been held, the opening step counting 1; 0 flat.
    :param fees_paid: fees charged since reset.
    :param realized_pnl: price PnL of closed units since reset, gross of fees.
    :param trades: fills since reset.
    :param bankrupt: the account went bankrupt and is frozen until reset.
    """

    cash: FloatArray
    units: FloatArray
    entry_price: FloatArray
    stop_price: FloatArray
    target_price: FloatArray
    equity: FloatArray
    peak_equity: FloatArray
    bars_in_position: IntArray
    fees_paid: FloatArray
    realized_pnl: FloatArray
    trades: IntArray
    bankrupt: BoolArray

    @classmethod
    def new(cls, n: int, initial_cash: float | FloatArray) -> Accounts:
        """``n`` flat accounts holding ``initial_cash`` each.

        :param n: number of accounts.
        :param initial_cash: starting cash, a scalar or an array of shape ``(n,)``.
        :return: the accounts.
        """
        accounts = cls(
            **{
                f.name: np.zeros(n, dtype=np.bool_ if f.name == "bankrupt" else np.float64)
                for f in fields(cls)
                if f.name not in ("bars_in_position", "trades")
            },
            bars_in_position=np.zeros(n, dtype=np.int64),
            trades=np.zeros(n, dtype=np.int64),
        )
        accounts.reset(np.ones(n, dtype=np.bool_), initial_cash)
        return accounts

    def reset(self, mask: BoolArray, initial_cash: float | FloatArray) -> None:
        """Reset the accounts in ``mask`` to flat with ``initial_cash``, in place; the others are untouched.

        :param mask: which accounts to reset, shape ``(N,)``.
        :param initial_cash: starting cash, a scalar or an array of shape ``(N,)`` (read where ``mask``).
        """
        for array in (self.cash, self.equity, self.peak_equity):
            np.copyto(array, initial_cash, where=mask)
        for array in (self.units, self.fees_paid, self.realized_pnl, self.bars_in_position, self.trades):
            np.copyto(array, 0, where=mask)
        for array in (self.entry_price, self.stop_price, self.target_price):
            np.copyto(array, np.nan, where=mask)
        np.copyto(self.bankrupt, False, where=mask)


@dataclass(slots=True)
class StepEvents:
    """What :func:`execute_step` did in one step; overwritten by every call (allocate once, reuse).

    Per-fill arrays have shape ``(N, N_SLOTS)``, one column per :class:`Slot`; a slot without a fill
    has ``reason == 0``, zero units, fee and PnL, and a NaN price.

    :param units: signed units traded (positive: bought).
    :param price: fill price, quote currency.
    :param fee: fee charged, quote currency.
    :param pnl: realised price PnL of the units the fill closed, gross of fees.
    :param reason: :class:`Reason` code (int8).
    :param fees: total fee of the step, ``(N,)``.
    :param realized_pnl: total realised PnL of the step, ``(N,)``.
    :param turnover: traded notional of the step, ``(N,)``, quote currency.
    :param bankrupted: the account went bankrupt in this step, ``(N,)``.
    :param opened: a position was opened or reversed by this step's rebalance, ``(N,)``.
    """

    units: FloatArray
    price: FloatArray
    fee: FloatArray
    pnl: FloatArray
    reason: npt.NDArray[np.int8]
    fees: FloatArray
    realized_pnl: FloatArray
    turnover: FloatArray
    bankrupted: BoolArray
    opened: BoolArray

    @classmethod
    def new(cls, n: int) -> StepEvents:
        """Buffers for ``n`` accounts.

        :param n: number of accounts.
        :return: zeroed buffers.
        """
        per_fill = {name: np.zeros((n, N_SLOTS)) for name in ("units", "price", "fee", "pnl")}
        return cls(
            **per_fill,
            reason=np.zeros((n, N_SLOTS), dtype=np.int8),
            fees=np.zeros(n),
            realized_pnl=np.zeros(n),
            turnover=np.zeros(n),
            bankrupted=np.zeros(n, dtype=np.bool_),
            opened=np.zeros(n, dtype=np.bool_),
        )

    def clear(self) -> None:
        """Forget the previous step."""
        for array in (self.units, self.fee, self.pnl, self.reason, self.fees, self.realized_pnl, self.turnover):
            array.fill(0)
        self.price.fill(np.nan)
        self.bankrupted.fill(False)
        self.opened.fill(False)


def execute_step(
    accounts: Accounts,
    cfg: ExecutionConfig,
    target_fraction: FloatArray,
    stop_distance: FloatArray,
    take_distance: FloatArray,
    bar: BarView,
    out: StepEvents,
) -> None:
    """Advance every account through its execution bar (see the module docstring for the order of events).

    The rebalance is sized with the fee inside: valued at the fill price ``p``, with ``E`` the equity
    before the trade, ``y`` the position notional before and ``x`` after, the order solves
    ``x = f × (E - fee)`` with ``fee = taker × |x - y|``, that is ``x = f × (E + s × taker × y) / (1 + s
    × taker × f)`` for a buy (``s = +1``) or a sell (``s = -1``). Buying with all cash ``C`` thus gets
    ``C / ((1 + taker) × p)`` units and spends exactly ``C``.

    :param accounts: the accounts, updated in place.
    :param cfg: execution settings.
    :param target_fraction: desired position as a signed fraction of equity, ``(N,)``; finite. Clipped
        to ``[-max_leverage, max_leverage]`` (``[0, max_leverage]`` without shorting).
    :param stop_distance: stop-loss distance from the entry fill price as a fraction of it, ``(N,)``;
        NaN: no stop. Read only where a position opens or reverses.
    :param take_distance: take-profit distance from the entry fill price as a fraction of it, ``(N,)``;
        NaN: no target. Read only where a position opens or reverses.
    :param bar: each account's execution bar: the bar after the decision with ``fill="next_open"``,
        the decision bar itself with ``fill="close"``.
    :param out: filled with what happened (cleared first).

    .. note::
        A rebalance is skipped when its notional at the undisturbed price (open or close, before slippage
        and fee) is below ``max(min_trade_fraction, 1e-9)`` of equity, unless it goes flat; so holding a
        target of 1 never trades the ~1e-13 of cash left over by the entry. A target other than 0 or 1
        (e.g. 0.5, or 2 with leverage) re-sizes the position at every bar whose price moved.

    .. note::
        Bankrupt accounts are frozen (nothing fills, equity stays 0) until :meth:`Accounts.reset`.
        An account whose equity at the rebalance price is ``<= 0`` can only go flat.
    """
    out.clear()
    active = ~accounts.bankrupt
    taker = cfg.taker_fee_bps * _BPS
    maker = cfg.maker_fee_bps * _BPS
    slip: float | FloatArray = cfg.slippage_bps * _BPS if cfg.slippage == "fixed" else cfg.slippage_vol_mult * bar.vol
    low_bound = -cfg.max_leverage if cfg.allow_short else 0.0
    target = np.clip(target_fraction, low_bound, cfg.max_leverage)

    gapped = _exit_at_levels(accounts, bar.open, bar.open, slip, taker, maker, Slot.OPEN_EXIT, out)
    if cfg.fill == "next_open":
        _rebalance(accounts, cfg, active & ~gapped, target, stop_distance, take_distance, bar.open, slip, taker, out)
        _exit_at_levels(accounts, bar.low, bar.high, slip, taker, maker, Slot.BAR_EXIT, out)
    else:
        _exit_at_levels(accounts, bar.low, bar.high, slip, taker, maker, Slot.BAR_EXIT, out)
        _rebalance(accounts, cfg, active, target, stop_distance, take_distance, bar.close, slip, taker, out)
    _mark_to_close(accounts, cfg, bar.close, slip, taker, out)


def _exit_at_levels(
    acc: Accounts,
    adverse_for_long: FloatArray,
    favourable_for_long: FloatArray,
    slip: float | FloatArray,
    taker: float,
    maker: float,
    slot: Slot,
    out: StepEvents,
) -> BoolArray:
    """Close positions whose stop or target the given prices reach; the stop wins when both do.

    At the open both price arguments are the open, and fills happen there (the gap); inside the bar
    they are the low and high, and fills happen at the levels.

    :return: which accounts exited, ``(N,)``.
    """
    side = np.sign(acc.units)
    long = side > 0
    adverse = np.where(long, adverse_for_long, favourable_for_long)
    favourable = np.where(long, favourable_for_long, adverse_for_long)
    # NaN levels (none set, or flat) compare False.
    stop_hit = side * (acc.stop_price - adverse) >= 0
    target_hit = (side * (favourable - acc.target_price) >= 0) & ~stop_hit
    if not (stop_hit.any() or target_hit.any()):
        return stop_hit
    at_open = slot == Slot.OPEN_EXIT
    # A gap fills at the open, which is beyond the level; inside the bar the level itself trades.
    stop_price = adverse if at_open else acc.stop_price
    target_price = favourable if at_open else acc.target_price
    price = np.where(stop_hit, stop_price * (1.0 - side * slip), target_price)
    fee_rate = np.where(stop_hit, taker, maker)
    reason = np.where(stop_hit, Reason.STOP, Reason.TARGET)
    exited = stop_hit | target_hit
    _close_positions(acc, exited, price, fee_rate, reason, slot, out)
    return exited


def _close_positions(
    acc: Accounts,
    mask: BoolArray,
    price: FloatArray,
    fee_rate: float | FloatArray,
    reason: Reason | npt.NDArray[np.int64],
    slot: Slot,
    out: StepEvents,
) -> None:
    """Sell (or buy back) the whole position of the accounts in ``mask`` at ``price``."""
    fill = np.where(mask, price, 0.0)
    traded = np.where(mask, -acc.units, 0.0)
    notional = np.abs(traded) * fill
    fee = notional * fee_rate
    pnl = np.where(mask, acc.units * (fill - acc.entry_price), 0.0)
    acc.cash -= traded * fill + fee
    _record(out, slot, mask, traded, price, fee, pnl, notional, reason)
    np.copyto(acc.units, 0.0, where=mask)
    for level in (acc.entry_price, acc.stop_price, acc.target_price):
        np.copyto(level, np.nan, where=mask)


def _rebalance(
    acc: Accounts,
    cfg: ExecutionConfig,
    active: BoolArray,
    target: FloatArray,
    stop_distance: FloatArray,
    take_distance: FloatArray,
    price: FloatArray,
    slip: float | FloatArray,
    taker: float,
    out: StepEvents,
) -> None:
    """Move each active account's position to ``target × equity`` with one market order at ``price``."""
    units = acc.units
    equity = acc.cash + units * price
    target = np.where(active & (equity > 0), target, 0.0)
    gap = target * equity - units * price  # notional to trade, before costs, at the undisturbed price
    wanted_trade = active & (gap != 0) & ((np.abs(gap) >= max(cfg.min_trade_fraction, _DUST) * equity) | (target == 0))
    if not wanted_trade.any():
        return
    side = np.sign(gap)  # +1 buy, -1 sell
    fill = price * (1.0 + side * slip)
    held = units * fill
    equity_at_fill = acc.cash + held
    wanted = target * (equity_at_fill + side * taker * held) / (1.0 + side * taker * target)
    new_units = wanted / fill
    traded = new_units - units
    # Slippage can flip the direction of a trade within a hair of nothing: such a trade is dropped.
    trade = wanted_trade & (side * traded > 0)
    traded = np.where(trade, traded, 0.0)
    new_units = np.where(trade, new_units, units)
    notional = np.abs(traded) * fill
    fee = notional * taker
    old_side = np.sign(units)
    new_side = np.sign(new_units)
    closed = np.where(old_side * traded < 0, np.minimum(np.abs(traded), np.abs(units)), 0.0)
    pnl = np.where(closed > 0, closed * old_side * (fill - acc.entry_price), 0.0)
    acc.cash -= traded * fill + fee
    _record(out, Slot.SIGNAL, trade, traded, fill, fee, pnl, notional, Reason.SIGNAL)

    opened = trade & (new_side != 0) & (new_side != old_side)
    added = trade & (new_side == old_side) & (np.abs(new_units) > np.abs(units))
    if added.any():
        average = (units * acc.entry_price + traded * fill) / np.where(added, new_units, 1.0)
        np.copyto(acc.entry_price, average, where=added)
    flat = new_side == 0
    np.copyto(acc.entry_price, fill, where=opened)
    np.copyto(acc.stop_price, fill * (1.0 - new_side * stop_distance), where=opened)
    np.copyto(acc.target_price, fill * (1.0 + new_side * take_distance), where=opened)
    for level in (acc.entry_price, acc.stop_price, acc.target_price):
        np.copyto(level, np.nan, where=flat)
    units[:] = new_units
    out.opened |= opened


def _mark_to_close(
    acc: Accounts, cfg: ExecutionConfig, close: FloatArray, slip: float | FloatArray, taker: float, out: StepEvents
) -> None:
    """Mark at the close, liquidate under-margined positions, flag bankruptcies, update the running stats."""
    notional = acc.units * close
    equity = acc.cash + notional
    liquidate = (acc.units != 0) & ((equity < cfg.maintenance_margin * np.abs(notional)) | (equity <= 0))
    if liquidate.any():
        side = np.sign(acc.units)
        _close_positions(acc, liquidate, close * (1.0 - side * slip), taker, Reason.LIQUIDATION, Slot.LIQUIDATION, out)
        equity = acc.cash + acc.units * close
    bankrupted = (equity <= 0) & ~acc.bankrupt
    if bankrupted.any():
        np.copyto(acc.cash, 0.0, where=bankrupted)
        np.copyto(equity, 0.0, where=bankrupted)
        acc.bankrupt |= bankrupted
        out.bankrupted[:] = bankrupted
    acc.equity[:] = equity
    np.maximum(acc.peak_equity, equity, out=acc.peak_equity)
    acc.fees_paid += out.fees
    acc.realized_pnl += out.realized_pnl
    acc.trades += np.count_nonzero(out.reason, axis=1)
    acc.bars_in_position += 1
    np.copyto(acc.bars_in_position, 1, where=out.opened)
    np.copyto(acc.bars_in_position, 0, where=acc.units == 0)


def _record(
    out: StepEvents,
    slot: Slot,
    mask: BoolArray,
    traded: FloatArray,
    price: FloatArray,
    fee: FloatArray,
    pnl: FloatArray,
    notional: FloatArray,
    reason: Reason | npt.NDArray[np.int64],
) -> None:
    """Write one slot's fills (``traded``, ``fee``, ``pnl`` and ``notional`` are already 0 off ``mask``)."""
    out.units[:, slot] = traded
    np.copyto(out.price[:, slot], price, where=mask)
    out.fee[:, slot] = fee
    out.pnl[:, slot] = pnl
    np.copyto(out.reason[:, slot], reason, where=mask)
    out.fees += fee
    out.realized_pnl += pnl
    out.turnover += notional
