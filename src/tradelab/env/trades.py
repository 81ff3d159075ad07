"""Trade logs: every fill recorded in arrays during the episode, grouped into round trips at its end.

The env's compiled step appends every fill to a :class:`FillBuffer` (one row per fill, per env), and
when an episode ends a :class:`TradeLog` replays that env's fills into trades: a trade
opens when the position leaves 0 (or reverses), collects the fees and realised PnL of every resize,
and closes when the position returns to 0 or reverses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tradelab.env.execution import Reason


@dataclass(slots=True)
class Trade:
    """One round trip; prices in quote currency, ``size`` in base units (largest absolute position held).

    :param side: +1 long, -1 short.
    :param entry_ts: open time of the bar the entry filled in, epoch ms.
    :param entry_price: size-weighted average entry price.
    :param units: signed position now (0 once closed).
    :param size: largest absolute position of the trade.
    :param fees: fees of the trade's fills (a reversal's fee is split by units between the two trades).
    :param pnl: realised price PnL, gross of fees.
    :param exit_ts: open time of the bar the exit filled in, epoch ms; None while open.
    :param exit_price: exit fill price; None while open.
    :param reason: what closed it: ``signal``, ``stop``, ``target``, ``liquidation``; ``open`` while open.
    """

    side: int
    entry_ts: int
    entry_price: float
    units: float
    size: float
    fees: float
    pnl: float = 0.0
    exit_ts: int | None = None
    exit_price: float | None = None
    reason: str = "open"

    def as_dict(self, mark: float | None = None) -> dict[str, Any]:
        """The trade as a JSON-ready dict; an open trade's ``pnl`` includes its PnL marked at ``mark``.

        :param mark: price to mark the open units at (the last close); ignored for a closed trade.
        :return: side, entry/exit time (epoch ms) and price, size, fees, pnl, net_pnl (pnl - fees), reason.
        """
        pnl = self.pnl
        if self.exit_ts is None and mark is not None:
            pnl += self.units * (mark - self.entry_price)
        return {
            "side": "long" if self.side > 0 else "short",
            "entry_time": self.entry_ts,
            "entry_price": self.entry_price,
            "exit_time": self.exit_ts,
            "exit_price": self.exit_price,
            "size": self.size,
            "fees": self.fees,
            "pnl": pnl,
            "net_pnl": pnl - self.fees,
            "reason": self.reason,
        }


class TradeLog:
    """The trades of one env's episode: the closed ones and the one open, if any."""

    __slots__ = ("closed", "open")

    def __init__(self) -> None:
        self.closed: list[Trade] = []
        self.open: Trade | None = None

    def clear(self) -> None:
        """Forget the episode."""
        self.closed.clear()
        self.open = None

    def fill(self, ts: int, units: float, price: float, fee: float, pnl: float, reason: int) -> None:
        """Account one fill.

        :param ts: open time of the bar it filled in, epoch ms.
        :param units: signed units traded; ``price`` the fill price; ``fee`` its fee; ``pnl`` the realised
            PnL of the units it closed (gross).
        :param reason: its :class:`~tradelab.env.execution.Reason` code.
        """
        trade = self.open
        if trade is None:
            self.open = _new_trade(ts, units, price, fee)
            return
        before = trade.units
        after = before + units
        if after * before > 0:  # resized, same side
            trade.fees += fee
            trade.pnl += pnl
            if abs(after) > abs(before):
                trade.entry_price = (before * trade.entry_price + units * price) / after
                trade.size = max(trade.size, abs(after))
            trade.units = after
            return
        closing = abs(before) / abs(units)  # share of the fill that closes (1 unless it reverses)
        trade.fees += fee * closing
        trade.pnl += pnl
        trade.units = 0.0
        trade.exit_ts, trade.exit_price = ts, price
        trade.reason = Reason(reason).name.lower()
        self.closed.append(trade)
        self.open = _new_trade(ts, after, price, fee * (1.0 - closing)) if after != 0 else None

    def as_dicts(self, mark: float) -> list[dict[str, Any]]:
        """Every trade as a dict (see :meth:`Trade.as_dict`), the open one last, marked at ``mark``."""
        trades = [*self.closed, *([self.open] if self.open is not None else [])]
        return [trade.as_dict(mark) for trade in trades]


def _new_trade(ts: int, units: float, price: float, fee: float) -> Trade:
    side = 1 if units > 0 else -1
    return Trade(side, ts, price, units, abs(units), fee)


class FillBuffer:
    """The fills of every env's current episode: a float64 ``(N, capacity, 6)`` log that doubles when it fills up.

    Row ``k`` of env ``i`` is its ``k``-th fill: open time of the bar (epoch ms), signed units, price, fee,
    realised PnL and :class:`~tradelab.env.execution.Reason` code (columns ``L_*`` of
    :mod:`tradelab.env.kernel`, which writes them).

    :param count: fills logged per env, ``(N,)`` float64 (a view the step kernel updates).
    :param capacity: fills per env before the log doubles.
    """

    def __init__(self, count: np.ndarray, capacity: int = 256) -> None:
        self.count = count
        self.log = np.zeros((len(count), capacity, 6))

    def clear(self, mask: np.ndarray) -> None:
        """Forget the fills of the envs in ``mask`` (a new episode)."""
        self.count[mask] = 0

    def grow(self) -> None:
        """Double the capacity, keeping every fill."""
        self.log = np.concatenate([self.log, np.zeros_like(self.log)], axis=1)

    def trades(self, index: int, mark: float) -> list[dict[str, Any]]:
        """Env ``index``'s episode as trades (see :meth:`Trade.as_dict`), the open one last, marked at ``mark``."""
        log = TradeLog()
        for ts, units, price, fee, pnl, reason in self.log[index, : int(self.count[index])].tolist():
            log.fill(int(ts), units, price, fee, pnl, int(reason))
        return log.as_dicts(mark)
