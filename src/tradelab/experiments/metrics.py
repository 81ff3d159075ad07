"""Performance metrics of a backtest or evaluation episode, from its equity curve and trade log.

Conventions (they match empyrical's, which the tests check against):

- ``equity`` holds the initial equity, then the equity at the close of each bar stepped, so a curve of
  ``bars + 1`` values has ``bars`` per-bar simple returns ``r[i] = equity[i + 1] / equity[i] - 1``.
- Annualisation assumes a 24/7 market (crypto): :func:`periods_per_year` bars a year, and a curve spans
  ``bars / periods_per_year`` years, ``bars`` counting the bar returns actually traded, never the calendar
  span from the first to the last timestamp.
- A hole in the data is not a bar: given the bars' times, a step between two bars further apart than the
  gap policy tolerates (:class:`~tradelab.data.gaps.GapPolicy`) is dropped, and the curve is chained over
  the steps that remain (:func:`traded_curve`). Otherwise the price move over a two-year hole would count
  as one minute's return and inflate the total and annual return, the Sharpe and the Calmar ratio.
- Annualised figures of a window shorter than :data:`SHORT_WINDOW_DAYS` are extrapolations of a few days
  (Calmar 8e6 on a week); :attr:`Metrics.window_days` lets every table mark them.
- Risk-free rate 0; standard deviations use ``ddof=1``.
- Bankruptcy is absorbing: from the first value ``<= 0`` on, equity is taken as 0 and returns as 0, so a
  ruined curve gives ``total_return = annual_return = -1`` and ``max_drawdown = 1``, never NaN.
- Ratios with a zero denominator follow the rules on :class:`Metrics`; ``inf`` is possible for ``sortino``,
  ``profit_factor``, ``annual_return`` and ``calmar``, NaN never.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from tradelab.data.gaps import GapPolicy, stretches
from tradelab.data.schema import timeframe_ms

#: Milliseconds in a 365-day year of a market that never closes.
YEAR_MS = 365 * 24 * 3600 * 1000
#: Below this per-bar dispersion (std or downside deviation) the returns are taken as constant.
MIN_DISPERSION = 1e-12
#: Annualised figures of a shorter window (in traded days) carry a caveat wherever they are shown.
SHORT_WINDOW_DAYS = 30.0
#: Annualised metrics: the ones :data:`SHORT_WINDOW_DAYS` qualifies.
ANNUALISED = ("annual_return", "annual_volatility", "sharpe", "sortino", "calmar", "turnover")


def periods_per_year(timeframe: str) -> float:
    """Bars a year of a 24/7 market: ``periods_per_year("1m") == 525_600``.

    :param timeframe: a bar length such as ``1m``, ``15m``, ``4h``, ``1d``.
    :raises DataError: for an invalid timeframe (see :func:`tradelab.data.schema.timeframe_ms`).
    """
    return YEAR_MS / timeframe_ms(timeframe)


@dataclass(frozen=True, slots=True)
class Metrics:
    """The performance of one equity curve. Returns are per-bar simple returns ``r``; ``P`` is the
    number of bars a year (:func:`periods_per_year`).

    :param total_return: ``equity[-1] / equity[0] - 1``.
    :param annual_return: CAGR, ``(equity[-1] / equity[0]) ** (P / bars) - 1``; -1 after bankruptcy; may
        overflow to ``inf`` on a short, strongly rising curve.
    :param annual_volatility: ``std(r, ddof=1) × √P``; 0 with a single bar.
    :param sharpe: ``mean(r) / std(r, ddof=1) × √P``; 0 when the std is 0 (constant returns).
    :param sortino: ``mean(r) / √mean(min(r, 0)²) × √P``, the downside deviation taken over all bars
        (empyrical's definition); without downside, ``inf`` when ``mean(r) > 0`` and 0 otherwise.
    :param calmar: ``annual_return / max_drawdown``; 0 when there is no drawdown.
    :param max_drawdown: largest fall from a running peak, a positive fraction (0.2 for -20%).
    :param max_drawdown_duration: longest run of bars spent below a previous peak (a curve that ends
        below its peak counts up to its end).
    :param win_rate: share of closed trades with ``net_pnl > 0``; 0 without closed trades.
    :param profit_factor: gross profit / gross loss of closed trades' ``net_pnl``; ``inf`` with wins but no
        losses; 0 without wins.
    :param exposure: share of bars with a nonzero position; 0 when no positions were given.
    :param turnover: annualised turnover, ``Σ |traded notional| / mean(equity) × P / bars``; 0 when no
        traded notional was given.
    :param fees: total fees paid, in quote currency.
    :param n_trades: closed trades.
    :param bars: bar returns traded (``len(equity) - 1`` less the steps across a gap).
    :param window_days: the traded bars in days (``bars / P × 365``); the annualised metrics of a window
        shorter than :data:`SHORT_WINDOW_DAYS` are flagged as extrapolations (:func:`short_window`).
    """

    total_return: float
    annual_return: float
    annual_volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_duration: int
    win_rate: float
    profit_factor: float
    exposure: float
    turnover: float
    fees: float
    n_trades: int
    bars: int
    window_days: float

    def as_dict(self) -> dict[str, float | int]:
        """The metrics by field name, as Python numbers.

        JSON-ready except that ``inf`` stays ``float("inf")`` (``json.dumps`` writes it as ``Infinity``);
        no value is ever NaN.
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}


def short_window(metrics: Mapping[str, Any]) -> bool:
    """Whether a metrics dict's annualised figures are extrapolated from under :data:`SHORT_WINDOW_DAYS` days.

    A dict without ``window_days`` (results written before it existed) is never flagged.
    """
    days = metrics.get("window_days")
    return isinstance(days, int | float) and days < SHORT_WINDOW_DAYS


def window_caveat(metrics: Mapping[str, Any]) -> str | None:
    """The caveat every table shows beside the annualised figures of a short window (:func:`short_window`), or None."""
    if not short_window(metrics):
        return None
    return (
        f"annualised from {metrics['window_days']:.1f} traded days (under {SHORT_WINDOW_DAYS:.0f}): "
        "an extrapolation of a few days, not a rate to expect"
    )


def traded_curve(
    equity: np.ndarray, ts: np.ndarray, *, timeframe: str, max_fill_bars: int = GapPolicy().max_fill_bars
) -> tuple[np.ndarray, np.ndarray]:
    """The equity curve chained over the steps actually traded, and which steps those are.

    A step whose two bars lie more than ``max_fill_bars`` missing bars apart crosses a gap the policy does
    not fill (:func:`~tradelab.data.gaps.stretches`): its return is left out and the curve continues from
    the next stretch as if the hole were not there.

    :param equity: the initial equity, then the equity at each bar (as :func:`compute_metrics` takes it).
    :param ts: the open time of the bar of each equity value, epoch ms (same length as ``equity``).
    :param timeframe: the bar length.
    :param max_fill_bars: the gap policy's tolerance, in missing bars.
    :return: ``(curve, kept)``: the chained curve (``kept.sum() + 1`` values, starting at ``equity[0]``) and a
        boolean per step of ``equity``.
    :raises ValueError: for ``ts`` of another length than ``equity``.
    """
    curve = _checked_curve(equity)
    times = np.asarray(ts, dtype=np.int64)
    if times.shape != curve.shape:
        raise ValueError(f"ts must hold one time per equity value ({curve.size}), got shape {times.shape}")
    kept = np.ones(curve.size - 1, dtype=bool)
    kept[stretches(times, timeframe_ms(timeframe), max_fill_bars)[1:, 0] - 1] = False
    if kept.all():
        return curve, kept
    growth = 1.0 + _simple_returns(curve)[kept]
    return curve[0] * np.concatenate(([1.0], np.cumprod(growth))), kept


def compute_metrics(
    equity: np.ndarray,
    *,
    timeframe: str,
    ts: np.ndarray | None = None,
    max_fill_bars: int = GapPolicy().max_fill_bars,
    positions: np.ndarray | None = None,
    traded_notional: np.ndarray | None = None,
    trades: Sequence[Mapping[str, Any]] = (),
    fees: float = 0.0,
) -> Metrics:
    """The :class:`Metrics` of an equity curve.

    :param equity: the initial equity, then the equity at each bar's close, in quote currency (>= 2 values).
    :param timeframe: the bar length (``1m``, ``1h``…), for annualisation.
    :param ts: the open time of the bar of each equity value, epoch ms; when given, steps across a gap longer
        than ``max_fill_bars`` are not traded bars and are left out (see :func:`traded_curve`).
    :param max_fill_bars: the gap policy's tolerance (``EnvConfig.gaps.max_fill_bars``).
    :param positions: the position after each bar (``len(equity) - 1`` values, any unit: only ``!= 0``
        counts), for :attr:`Metrics.exposure`.
    :param traded_notional: the notional traded at each bar (``len(equity) - 1`` values, quote currency),
        for :attr:`Metrics.turnover`.
    :param trades: the trade log, dicts with at least ``net_pnl`` and ``exit_time`` (None while open: open
        trades are left out of the trade metrics).
    :param fees: total fees paid, in quote currency (reported as is).
    :raises ValueError: for fewer than 2 equity values, a non-finite one, a first value ``<= 0``,
        ``ts`` / ``positions`` / ``traded_notional`` of the wrong length, or no step left between gaps.
    """
    steps = np.asarray(equity).size - 1
    if ts is None:
        curve, kept = _checked_curve(equity), np.ones(max(steps, 0), dtype=bool)
    else:
        curve, kept = traded_curve(equity, ts, timeframe=timeframe, max_fill_bars=max_fill_bars)
        if curve.size < 2:
            raise ValueError(f"no traded bar: each of the {steps} step(s) crosses a gap")
    bars = curve.size - 1
    periods = periods_per_year(timeframe)
    returns = _simple_returns(curve)
    max_drawdown = _max_drawdown(curve)
    annual_return = _cagr(curve, bars / periods)
    win_rate, profit_factor, n_trades = _trade_metrics(trades)
    return Metrics(
        total_return=float(curve[-1] / curve[0] - 1.0),
        annual_return=annual_return,
        annual_volatility=_std(returns) * math.sqrt(periods),
        sharpe=_sharpe(returns, periods),
        sortino=_sortino(returns, periods),
        calmar=annual_return / max_drawdown if max_drawdown > 0 else 0.0,
        max_drawdown=max_drawdown,
        max_drawdown_duration=_max_drawdown_duration(curve),
        win_rate=win_rate,
        profit_factor=profit_factor,
        exposure=_exposure(_per_bar(positions, kept, "positions")),
        turnover=_turnover(_per_bar(traded_notional, kept, "traded_notional"), curve, periods),
        fees=float(fees),
        n_trades=n_trades,
        bars=bars,
        window_days=bars / periods * 365.0,
    )


def _checked_curve(equity: np.ndarray) -> np.ndarray:
    """``equity`` as a float64 vector, validated, with everything from the first value ``<= 0`` on set to 0."""
    curve = np.asarray(equity, dtype=np.float64)
    if curve.ndim != 1 or curve.size < 2:
        raise ValueError(f"equity must be a 1-D curve of at least 2 values, got shape {curve.shape}")
    if not np.isfinite(curve).all():
        raise ValueError(f"equity must be finite; first bad value at index {int(np.argmin(np.isfinite(curve)))}")
    if curve[0] <= 0:
        raise ValueError(f"the initial equity must be positive, got {curve[0]}")
    solvent = np.logical_and.accumulate(curve > 0)
    return np.where(solvent, curve, 0.0)


def _per_bar(values: np.ndarray | None, kept: np.ndarray, name: str) -> np.ndarray | None:
    """``values`` (one per step) as a float64 vector over the ``kept`` steps (None stays None)."""
    if values is None:
        return None
    array = np.asarray(values, dtype=np.float64)
    if array.shape != kept.shape:
        raise ValueError(f"{name} must hold one value per bar (len(equity) - 1 = {kept.size}), got shape {array.shape}")
    return array[kept]


def _simple_returns(curve: np.ndarray) -> np.ndarray:
    """Per-bar simple returns of a checked curve; 0 after bankruptcy (no division by 0)."""
    previous = curve[:-1]
    growth = np.divide(curve[1:], previous, out=np.ones_like(previous), where=previous > 0)
    return growth - 1.0


def _std(returns: np.ndarray) -> float:
    """Sample standard deviation (``ddof=1``); 0 for a single return."""
    return float(returns.std(ddof=1)) if returns.size > 1 else 0.0


def _sharpe(returns: np.ndarray, periods: float) -> float:
    """Annualised Sharpe ratio, risk-free 0; 0 for constant returns."""
    std = _std(returns)
    return float(returns.mean() / std * math.sqrt(periods)) if std > MIN_DISPERSION else 0.0


def _sortino(returns: np.ndarray, periods: float) -> float:
    """Annualised Sortino ratio, target 0, downside deviation over all bars; ``inf`` / 0 without downside."""
    mean = float(returns.mean())
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside <= MIN_DISPERSION:
        return math.inf if mean > 0 else 0.0
    return mean / downside * math.sqrt(periods)


def _cagr(curve: np.ndarray, years: float) -> float:
    """Compound annual growth rate over ``years``; -1 after bankruptcy, ``inf`` if it overflows."""
    with np.errstate(over="ignore"):
        return float(np.power(curve[-1] / curve[0], 1.0 / years) - 1.0)


def _drawdowns(curve: np.ndarray) -> np.ndarray:
    """Fall from the running peak at each value, as a positive fraction (the peak is never 0)."""
    return 1.0 - curve / np.maximum.accumulate(curve)


def _max_drawdown(curve: np.ndarray) -> float:
    """Largest drawdown of the curve, a positive fraction."""
    return float(_drawdowns(curve).max())


def _max_drawdown_duration(curve: np.ndarray) -> int:
    """Longest run of consecutive values below the running peak."""
    below = np.concatenate(([0], (curve < np.maximum.accumulate(curve)).astype(np.int8), [0]))
    edges = np.diff(below)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) if starts.size else 0


def _trade_metrics(trades: Sequence[Mapping[str, Any]]) -> tuple[float, float, int]:
    """Win rate, profit factor and count of the closed trades."""
    pnl = np.array([t["net_pnl"] for t in trades if t["exit_time"] is not None], dtype=np.float64)
    if pnl.size == 0:
        return 0.0, 0.0, 0
    profit, loss = float(pnl[pnl > 0].sum()), float(-pnl[pnl < 0].sum())
    if loss > 0:
        profit_factor = profit / loss
    else:
        profit_factor = math.inf if profit > 0 else 0.0
    return float(np.mean(pnl > 0)), profit_factor, int(pnl.size)


def _exposure(positions: np.ndarray | None) -> float:
    """Share of bars with a nonzero position; 0 when not given."""
    return float(np.mean(positions != 0)) if positions is not None else 0.0


def _turnover(traded_notional: np.ndarray | None, curve: np.ndarray, periods: float) -> float:
    """Traded notional over mean equity, per year; 0 when not given."""
    if traded_notional is None:
        return 0.0
    return float(np.abs(traded_notional).sum() / curve.mean() * periods / traded_notional.size)
