"""Performance metrics: hand-worked tiny curves, trade and position metrics, bankruptcy, bad input, and an
independent check against empyrical-reloaded on a long random walk."""

from __future__ import annotations

import json
import math

import empyrical
import numpy as np
import pytest

from tradelab.experiments.metrics import Metrics, compute_metrics, periods_per_year, short_window

DAY = 365.0  # periods_per_year("1d")


def test_periods_per_year() -> None:
    assert periods_per_year("1m") == 525_600
    assert periods_per_year("15m") == 35_040
    assert periods_per_year("4h") == 2_190
    assert periods_per_year("1d") == DAY
    with pytest.raises(ValueError, match="invalid timeframe"):
        periods_per_year("1w")


def test_hand_computed_curve() -> None:
    # equity 100 → 110 → 99 → 121: 3 bars, returns r = [0.1, -0.1, 22/99 = 2/9].
    m = compute_metrics(np.array([100.0, 110.0, 99.0, 121.0]), timeframe="1d")
    assert m.bars == 3
    assert m.total_return == pytest.approx(0.21)  # 121 / 100 - 1
    # CAGR over 3 / 365 years: 1.21 ** (365 / 3) - 1.
    assert m.annual_return == pytest.approx(1.21 ** (DAY / 3) - 1, rel=1e-12)
    # mean(r) = (0.1 - 0.1 + 2/9) / 3 = 2/27; deviations 7/270, -47/270, 40/270 → squares sum 3858/270²,
    # / (3 - 1) → var = 1929/72900, std = √1929 / 270.
    std = math.sqrt(1929) / 270
    assert m.annual_volatility == pytest.approx(std * math.sqrt(DAY), rel=1e-12)
    # Sharpe per bar = (2/27) / (√1929 / 270) = 20 / √1929.
    assert m.sharpe == pytest.approx(20 / math.sqrt(1929) * math.sqrt(DAY), rel=1e-12)
    # downside deviation = √((0 + 0.01 + 0) / 3) = 0.1 / √3 over all 3 bars; Sortino per bar = (2/27) / (0.1 / √3).
    assert m.sortino == pytest.approx(20 * math.sqrt(3) / 27 * math.sqrt(DAY), rel=1e-12)
    # peaks 100, 110, 110, 121: worst fall 110 → 99 = 10%, one bar (99) under water.
    assert m.max_drawdown == pytest.approx(0.1)
    assert m.max_drawdown_duration == 1
    assert m.calmar == pytest.approx(m.annual_return / 0.1, rel=1e-12)
    # nothing about trades, positions or turnover was given
    assert (m.win_rate, m.profit_factor, m.n_trades, m.exposure, m.turnover, m.fees) == (0.0, 0.0, 0, 0.0, 0.0, 0.0)


def test_drawdown_duration_counts_the_longest_run_and_one_open_at_the_end() -> None:
    # peaks: 100 100 100 100 100 120 120 120 120
    # below:  -   x   x   -   x   -   x   x   x   → runs of 2, 1 and 3 (still under water at the end)
    # deepest: 100 → 80 = 20% (120 → 100 is only 1/6)
    m = compute_metrics(np.array([100.0, 90, 95, 100, 80, 120, 110, 105, 100]), timeframe="1h")
    assert m.max_drawdown_duration == 3
    assert m.max_drawdown == pytest.approx(0.2)
    # a new high ends a run: equal to the peak is not below it
    assert compute_metrics(np.array([100.0, 90, 100, 90, 100]), timeframe="1h").max_drawdown_duration == 1


def test_trade_metrics_count_closed_trades_only() -> None:
    trades = [
        {"net_pnl": 10.0, "exit_time": 1},
        {"net_pnl": -4.0, "exit_time": 2},
        {"net_pnl": 6.0, "exit_time": 3},
        {"net_pnl": -100.0, "exit_time": None},  # open: left out
    ]
    m = compute_metrics(np.array([100.0, 101.0]), timeframe="1m", trades=trades, fees=1.5)
    assert m.n_trades == 3
    assert m.win_rate == pytest.approx(2 / 3)
    assert m.profit_factor == pytest.approx((10 + 6) / 4)
    assert m.fees == 1.5


@pytest.mark.parametrize(
    ("pnls", "win_rate", "profit_factor"),
    [
        ([5.0, 0.0], 0.5, math.inf),  # wins, no losses (a flat trade is neither)
        ([-5.0, -1.0], 0.0, 0.0),  # losses only
        ([0.0], 0.0, 0.0),  # neither
        ([], 0.0, 0.0),  # no trades
    ],
)
def test_profit_factor_edges(pnls: list[float], win_rate: float, profit_factor: float) -> None:
    trades = [{"net_pnl": p, "exit_time": i} for i, p in enumerate(pnls)]
    m = compute_metrics(np.array([100.0, 100.0]), timeframe="1m", trades=trades)
    assert (m.win_rate, m.profit_factor, m.n_trades) == (win_rate, profit_factor, len(pnls))


def test_exposure_and_turnover() -> None:
    # 4 bars; a position on 2 of them → exposure 0.5.
    # |notional| sums to 0 + 100 + 150 + 50 = 300; mean equity (100+100+102+98+100)/5 = 100 → 3 equities in 4 bars;
    # 1h bars: 8760 a year → 3 × 8760 / 4 = 6570 a year.
    m = compute_metrics(
        np.array([100.0, 100.0, 102.0, 98.0, 100.0]),
        timeframe="1h",
        positions=np.array([0.0, 1.0, -0.5, 0.0]),
        traded_notional=np.array([0.0, 100.0, -150.0, 50.0]),
    )
    assert m.exposure == 0.5
    assert m.turnover == pytest.approx(6570.0)


@pytest.mark.parametrize("name", ["positions", "traded_notional"])
def test_per_bar_inputs_need_one_value_per_bar(name: str) -> None:
    with pytest.raises(ValueError, match=rf"{name} must hold one value per bar \(len\(equity\) - 1 = 2\)"):
        compute_metrics(np.array([100.0, 101.0, 102.0]), timeframe="1m", **{name: np.zeros(3)})


@pytest.mark.parametrize("curve", [[100.0, 50.0, 0.0, 0.0], [100.0, 50.0, -10.0, 5.0]])
def test_bankruptcy_is_absorbing_and_never_nan(curve: list[float]) -> None:
    # equity floored at 0 from the first value <= 0 on: [100, 50, 0, 0] → returns [-0.5, -1, 0]
    m = compute_metrics(np.array(curve), timeframe="1m")
    assert m.total_return == -1.0
    assert m.annual_return == -1.0
    assert m.max_drawdown == 1.0
    assert m.calmar == -1.0
    assert m.max_drawdown_duration == 3
    r = np.array([-0.5, -1.0, 0.0])
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(525_600))
    assert m.sortino == pytest.approx(r.mean() / math.sqrt(np.mean(r**2)) * math.sqrt(525_600))
    assert all(math.isfinite(v) for v in m.as_dict().values())


def test_flat_and_steady_curves() -> None:
    flat = compute_metrics(np.full(5, 100.0), timeframe="1m")
    assert (flat.sharpe, flat.sortino, flat.annual_volatility, flat.annual_return, flat.calmar) == (0, 0, 0, 0, 0)
    assert (flat.max_drawdown, flat.max_drawdown_duration) == (0.0, 0)
    # +1% every bar: no dispersion → Sharpe 0, no downside with a positive mean → Sortino inf
    steady = compute_metrics(100.0 * 1.01 ** np.arange(4), timeframe="1d")
    assert steady.sharpe == 0.0
    assert steady.sortino == math.inf
    assert steady.calmar == 0.0  # no drawdown
    # a single bar: a sample std needs 2 returns → volatility 0, not NaN
    one = compute_metrics(np.array([100.0, 90.0]), timeframe="1d")
    assert (one.bars, one.annual_volatility, one.sharpe) == (1, 0.0, 0.0)
    assert one.sortino == pytest.approx(-1.0 * math.sqrt(DAY))  # mean -0.1 / downside 0.1


@pytest.mark.parametrize(
    ("curve", "message"),
    [
        ([100.0], "at least 2 values"),
        ([[100.0, 101.0]], "1-D curve"),
        ([100.0, math.nan], "finite; first bad value at index 1"),
        ([100.0, math.inf, 1.0], "finite; first bad value at index 1"),
        ([0.0, 1.0], "initial equity must be positive"),
        ([-1.0, 1.0], "initial equity must be positive"),
    ],
)
def test_bad_equity(curve: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_metrics(np.array(curve), timeframe="1m")


def test_as_dict_is_json_ready() -> None:
    m = compute_metrics(
        np.array([100.0, 110.0, 99.0, 121.0]), timeframe="1d", trades=[{"net_pnl": 1.0, "exit_time": 5}]
    )
    d = m.as_dict()
    assert list(d) == list(Metrics.__dataclass_fields__)
    assert all(type(v) in (float, int) for v in d.values())
    assert (type(d["bars"]), type(d["n_trades"]), type(d["max_drawdown_duration"])) == (int, int, int)
    assert json.loads(json.dumps(d)) == d
    assert d["profit_factor"] == math.inf  # kept as inf; json writes Infinity and reads it back


def test_agrees_with_empyrical_on_a_random_walk() -> None:
    """empyrical-reloaded (requirements-dev.txt) as an independent reference, on 1m bars.

    Definitional mapping: empyrical takes the per-bar simple returns (not the curve) and anchors its
    drawdowns and CAGR at a starting value of 1, which is our ``equity[0]``; its ``annual_return`` spans
    ``len(returns) / annualization`` years, our ``bars / periods``; its ``max_drawdown`` is negative where
    ours is a positive fraction; its Sortino uses the downside deviation over all bars (like ours), with
    the annualisation ``mean × P / (dd × √P) = mean / dd × √P``.
    """
    rng = np.random.default_rng(7)
    steps = rng.normal(2e-5, 1e-3, 5_000)
    equity = 10_000.0 * np.concatenate(([1.0], np.cumprod(1.0 + steps)))
    returns = equity[1:] / equity[:-1] - 1.0  # from the curve both sides see
    periods = periods_per_year("1m")

    m = compute_metrics(equity, timeframe="1m")

    assert m.max_drawdown > 0.01  # the comparison must cover a real drawdown
    expected = {
        "sharpe": empyrical.sharpe_ratio(returns, annualization=periods),
        "sortino": empyrical.sortino_ratio(returns, annualization=periods),
        "annual_volatility": empyrical.annual_volatility(returns, annualization=periods),
        "max_drawdown": -empyrical.max_drawdown(returns),
        "annual_return": empyrical.annual_return(returns, annualization=periods),
        "calmar": empyrical.calmar_ratio(returns, annualization=periods),
    }
    for name, value in expected.items():
        assert getattr(m, name) == pytest.approx(value, rel=1e-9), name


def _walk(seed: int, bars: int, start: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.concatenate(([1.0], np.cumprod(1.0 + rng.normal(2e-5, 1e-3, bars))))


def test_a_hole_is_not_a_bar_and_inflates_nothing() -> None:
    """Two pieces 2 years apart, the price tripled over the hole: with the bar times, the step across the hole is
    dropped; the joined curve's annual return lies between the pieces' and its Calmar is not above the better
    one's. Without them, the hole's +200 % counts as one minute's return."""
    minute, hole = 60_000, 2 * 365 * 1440
    first, second = _walk(1, 2_000, 100.0), _walk(2, 3_000, 300.0)
    joined = np.concatenate([first, second * first[-1] / second[0] * 3.0])  # +200 % while no bar was stored
    ts = np.concatenate([np.arange(first.size), first.size + hole + np.arange(second.size)]) * minute
    pieces = [compute_metrics(first, timeframe="1m"), compute_metrics(second, timeframe="1m")]

    m = compute_metrics(joined, timeframe="1m", ts=ts)

    assert m.bars == pieces[0].bars + pieces[1].bars  # the step across the hole is not one
    assert m.total_return == pytest.approx((1 + pieces[0].total_return) * (1 + pieces[1].total_return) - 1)
    low, high = sorted(p.annual_return for p in pieces)
    assert low <= m.annual_return <= high
    assert m.max_drawdown >= max(p.max_drawdown for p in pieces) * (1 - 1e-12)
    assert m.calmar <= max(p.calmar for p in pieces) * (1 + 1e-12)
    assert m.window_days == pytest.approx(m.bars / 1440)
    inflated = compute_metrics(joined, timeframe="1m")  # no times: the hole is one bar
    assert inflated.total_return > 1.5 and inflated.annual_return > 1e6 * high


def test_a_gap_the_policy_fills_is_one_bar() -> None:
    equity = np.array([100.0, 101.0, 99.0, 102.0])
    ts = np.array([0, 1, 7, 8]) * 60_000  # 5 minutes missing between the 2nd and 3rd bar
    assert compute_metrics(equity, timeframe="1m", ts=ts, max_fill_bars=5).bars == 3
    cut = compute_metrics(equity, timeframe="1m", ts=ts, max_fill_bars=4, positions=np.array([1.0, 0.0, 1.0]))
    assert (cut.bars, cut.exposure) == (2, 1.0)  # the step 101 → 99 is dropped, with its (flat) position
    assert cut.total_return == pytest.approx(1.01 * 102 / 99 - 1)
    assert compute_metrics(equity, timeframe="1m", ts=ts) == compute_metrics(equity, timeframe="1m")
    with pytest.raises(ValueError, match="ts must hold one time per equity value"):
        compute_metrics(equity, timeframe="1m", ts=ts[:3])
    with pytest.raises(ValueError, match="no traded bar"):
        compute_metrics(equity[:2], timeframe="1m", ts=np.array([0, 60 * 60_000]))


def test_window_days_flags_annualised_figures_of_a_short_window() -> None:
    week = compute_metrics(_walk(3, 7 * 1440, 100.0), timeframe="1m").as_dict()
    quarter = compute_metrics(_walk(3, 90, 100.0), timeframe="1d").as_dict()
    assert week["window_days"] == pytest.approx(7.0) and short_window(week)
    assert quarter["window_days"] == pytest.approx(90.0) and not short_window(quarter)
    assert not short_window({"sharpe": 1.0})  # results written before window_days existed
