"""The execution model on hand-computed scenarios: every expected number is worked out in the comments.

Notation: ``C`` initial cash (10 000), ``r`` taker fee, ``m`` maker fee, ``s`` slippage (fractions).
A bar is ``(open, high, low, close)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.bars import make_bars
from tradelab.env.execution import (
    Accounts,
    BarView,
    ExecutionConfig,
    LookAheadWarning,
    Reason,
    Slot,
    StepEvents,
    execute_step,
)

C = 10_000.0
NAN = float("nan")
NO_COSTS = {"taker_fee_bps": 0.0, "maker_fee_bps": 0.0, "slippage_bps": 0.0}

Bar = tuple[float, float, float, float]


def _bar(bars: list[Bar], vol: list[float] | None = None) -> BarView:
    o, h, low, c = (np.array(column, dtype=np.float64) for column in zip(*bars, strict=True))
    return BarView(o, h, low, c, np.array(vol if vol is not None else [0.0] * len(bars)))


class Sim:
    """``N`` accounts stepped bar by bar, checking the accounting identities after every step."""

    def __init__(self, cfg: ExecutionConfig, n: int = 1, cash: float = C) -> None:
        self.cfg = cfg
        self.acc = Accounts.new(n, cash)
        self.fees = np.zeros(n)

    def step(
        self,
        bars: list[Bar],
        target: list[float],
        stop: list[float] | None = None,
        take: list[float] | None = None,
        vol: list[float] | None = None,
    ) -> StepEvents:
        n = len(bars)
        nans = [NAN] * n
        out = execute_step(
            self.acc,
            self.cfg,
            np.array(target, dtype=np.float64),
            np.array(stop or nans, dtype=np.float64),
            np.array(take or nans, dtype=np.float64),
            _bar(bars, vol),
        )
        close = np.array([b[3] for b in bars])
        # cash + units × close == equity, and fees_paid is the sum of the fees charged.
        np.testing.assert_allclose(self.acc.cash + self.acc.units * close, self.acc.equity, rtol=0, atol=1e-9)
        self.fees += out.fee.sum(axis=1)
        np.testing.assert_allclose(self.acc.fees_paid, self.fees, rtol=1e-15)
        return out


def _one(value: np.ndarray) -> float:
    return float(value[0])


def test_buy_at_next_open_with_fixed_slippage_and_taker_fee():
    # r = 0.001, s = 0.001; bar (100, 102, 99, 101); target 1 from C in cash.
    sim = Sim(ExecutionConfig(taker_fee_bps=10, slippage_bps=10))
    out = sim.step([(100, 102, 99, 101)], [1.0])
    # fill = 100 × (1 + s) = 100.1; notional x = C / (1 + r) = 9 990.00999…, so x + fee = C exactly.
    fill = 100 * 1.001
    units = C / (1.001 * fill)  # = 99.800 299 6…
    fee = 0.001 * C / 1.001  # = 9.990 009 99…
    assert _one(out.price[:, Slot.SIGNAL]) == pytest.approx(100.1, rel=1e-15)
    assert _one(out.units[:, Slot.SIGNAL]) == pytest.approx(units, rel=1e-14)
    assert _one(out.fee[:, Slot.SIGNAL]) == pytest.approx(fee, rel=1e-14)
    assert out.reason[0].tolist() == [0, Reason.SIGNAL, 0, 0]
    assert _one(sim.acc.cash) == pytest.approx(0.0, abs=1e-9)
    assert _one(sim.acc.entry_price) == pytest.approx(100.1, rel=1e-15)
    # equity at the close = units × 101 = 10 079.830 259 65…
    assert _one(sim.acc.equity) == pytest.approx(units * 101, rel=1e-14)
    assert _one(sim.acc.equity) == pytest.approx(10_079.830259650442, rel=1e-12)
    assert _one(sim.acc.bars_in_position) == 1
    assert _one(sim.acc.trades) == 1


def test_buy_and_hold_return_equals_fill_to_last_close_minus_entry_fee():
    # Buying with all cash spends C = x + r × x: x = C / (1 + r) at fill = open_1 × (1 + s).
    # Holding never trades again, so equity_T / C = close_T / (open_1 × (1 + s) × (1 + r)).
    sim = Sim(ExecutionConfig(taker_fee_bps=7.5, slippage_bps=3.0))
    bars = [
        (101.3, 104.0, 100.2, 103.7),
        (103.9, 107.1, 102.0, 106.4),
        (106.0, 106.5, 97.3, 98.1),
        (98.4, 99.9, 95, 99.05),
    ]
    for bar in bars:
        sim.step([bar], [1.0])
    expected = 99.05 / (101.3 * (1 + 3.0e-4) * (1 + 7.5e-4))
    assert _one(sim.acc.equity) / C == pytest.approx(expected, rel=1e-14)
    assert _one(sim.acc.trades) == 1  # the cash residue of holding (~1e-13) is not traded
    assert _one(sim.acc.bars_in_position) == 4


def test_sell_to_flat_realises_pnl_and_pays_the_fee():
    # r = 0.001, no slippage. Buy at 100: units u = C / (1.001 × 100), cash 0.
    sim = Sim(ExecutionConfig(taker_fee_bps=10, slippage_bps=0))
    sim.step([(100, 100, 100, 105)], [1.0])
    u = C / (1.001 * 100)  # 99.900 099 9…
    out = sim.step([(110, 112, 108, 111)], [0.0])
    # Sell all u at 110: realised PnL = u × (110 - 100) = 999.000 999…, fee = 0.001 × u × 110 = 10.989 010 98…
    assert _one(out.units[:, Slot.SIGNAL]) == -u
    assert _one(out.pnl[:, Slot.SIGNAL]) == pytest.approx(u * 10, rel=1e-14)
    assert _one(out.fee[:, Slot.SIGNAL]) == pytest.approx(u * 110 * 0.001, rel=1e-14)
    # cash = u × 110 × (1 - 0.001) = 10 978.021 97…; flat, so equity = cash.
    assert _one(sim.acc.cash) == pytest.approx(u * 110 * 0.999, rel=1e-14)
    assert _one(sim.acc.units) == 0.0
    assert np.isnan(_one(sim.acc.entry_price))
    assert _one(sim.acc.realized_pnl) == pytest.approx(u * 10, rel=1e-14)
    assert _one(sim.acc.bars_in_position) == 0
    # Both fees add up: 0.001 × C / 1.001 + 0.001 × u × 110.
    assert _one(sim.acc.fees_paid) == pytest.approx(0.001 * C / 1.001 + 0.001 * u * 110, rel=1e-14)


def _long_with_levels(cfg: ExecutionConfig) -> Sim:
    """100 units bought at 100 (``cfg`` has no taker fee and no slippage): stop 95, target 110."""
    sim = Sim(cfg)
    sim.step([(100, 101, 96, 98)], [1.0], [0.05], [0.10])  # low 96 > 95, high 101 < 110: nothing fires
    assert _one(sim.acc.stop_price) == pytest.approx(95.0, rel=1e-15)
    assert _one(sim.acc.target_price) == pytest.approx(110.0, rel=1e-15)
    return sim


def test_stop_hit_inside_the_bar_fills_at_the_stop_less_slippage():
    # r = 0, s = 0.001: the entry fills at 100.1, units = C / 100.1, stop = 100.1 × 0.95 = 95.095.
    sim = Sim(ExecutionConfig(taker_fee_bps=0, maker_fee_bps=0, slippage_bps=10))
    sim.step([(100, 101, 96, 98)], [1.0], [0.05], [NAN])
    u = C / 100.1
    assert _one(sim.acc.stop_price) == pytest.approx(95.095, rel=1e-15)
    # Next bar (97, 98, 94, 96): hold (no trade), low 94 <= 95.095, so the stop fills at 95.095 × 0.999.
    out = sim.step([(97, 98, 94, 96)], [1.0])
    stop_fill = 95.095 * 0.999  # 94.999 905
    assert out.reason[0].tolist() == [0, 0, Reason.STOP, 0]
    assert _one(out.price[:, Slot.BAR_EXIT]) == pytest.approx(stop_fill, rel=1e-14)
    assert _one(out.pnl[:, Slot.BAR_EXIT]) == pytest.approx(u * (stop_fill - 100.1), rel=1e-13)
    assert _one(sim.acc.units) == 0.0
    assert _one(sim.acc.equity) == pytest.approx(u * stop_fill, rel=1e-14)  # 9 490.500 4…
    assert np.isnan(_one(sim.acc.stop_price))


def test_target_hit_inside_the_bar_fills_at_the_target_with_the_maker_fee():
    # r = 0, m = 0.0002, s = 0.005. The entry fills at 100 × 1.005 = 100.5: u = C / 100.5 units, target
    # 100.5 × 1.1 = 110.55.
    sim = Sim(ExecutionConfig(taker_fee_bps=0, maker_fee_bps=2, slippage_bps=50))
    sim.step([(100, 101, 96, 98)], [1.0], [NAN], [0.10])
    u = C / 100.5
    out = sim.step([(105, 111, 104, 109)], [1.0])  # high 111 >= 110.55
    # Fills at 110.55 itself (no slippage): fee = 0.0002 × u × 110.55, PnL = u × 10.05 = 1 000 (= 0.1 × C).
    assert out.reason[0].tolist() == [0, 0, Reason.TARGET, 0]
    assert _one(out.price[:, Slot.BAR_EXIT]) == pytest.approx(110.55, rel=1e-15)
    assert _one(out.fee[:, Slot.BAR_EXIT]) == pytest.approx(0.0002 * u * 110.55, rel=1e-14)  # 2.2
    assert _one(out.pnl[:, Slot.BAR_EXIT]) == pytest.approx(1_000.0, rel=1e-13)
    # equity = u × 110.55 × (1 - 0.0002) = 11 000 × 0.9998 = 10 997.8.
    assert _one(sim.acc.equity) == pytest.approx(10_997.8, rel=1e-13)


def test_stop_wins_when_the_bar_touches_both():
    sim = _long_with_levels(ExecutionConfig(**NO_COSTS))
    out = sim.step([(100, 111, 94, 105)], [1.0])  # high 111 >= 110 and low 94 <= 95: the stop first
    # 100 units × 95 = 9 500.
    assert out.reason[0].tolist() == [0, 0, Reason.STOP, 0]
    assert _one(sim.acc.equity) == pytest.approx(9_500.0, rel=1e-15)


def test_gap_through_the_stop_fills_at_the_open_and_cancels_the_rebalance():
    # r = 0.001 on the exit, s = 0.001; the entry below has them too, so compute from its fill.
    sim = Sim(ExecutionConfig(taker_fee_bps=10, slippage_bps=10))
    sim.step([(100, 101, 96, 98)], [1.0], [0.05], [NAN])
    # fill 100.1, units u = C / (1.001 × 100.1), stop 100.1 × 0.95 = 95.095.
    u = C / (1.001 * 100.1)
    out = sim.step([(90, 99, 89, 97)], [1.0])  # opens at 90, below the stop
    # Exit at 90 × 0.999 = 89.91, fee 0.001 × u × 89.91; the target 1 is not re-bought.
    assert out.reason[0].tolist() == [Reason.STOP, 0, 0, 0]
    assert _one(out.price[:, Slot.OPEN_EXIT]) == pytest.approx(89.91, rel=1e-15)
    assert _one(sim.acc.units) == 0.0
    assert _one(sim.acc.equity) == pytest.approx(u * 89.91 * 0.999, rel=1e-14)


def test_gap_through_the_target_fills_at_the_better_open():
    sim = _long_with_levels(ExecutionConfig(taker_fee_bps=0, maker_fee_bps=2, slippage_bps=0))
    out = sim.step([(115, 116, 100, 101)], [1.0])  # opens at 115, above the 110 target
    # 100 × 115 = 11 500, maker fee 11 500 × 0.0002 = 2.3: equity 11 497.7 (the low 100 comes too late).
    assert out.reason[0].tolist() == [Reason.TARGET, 0, 0, 0]
    assert _one(out.price[:, Slot.OPEN_EXIT]) == 115.0
    assert _one(sim.acc.equity) == pytest.approx(11_497.7, rel=1e-14)


def test_short_profits_when_the_price_falls():
    # r = 0.001. Target -1 from cash: sell x = -C / (1 + r) at 100 (a sell solves x = f × (E - r × |x|)).
    sim = Sim(ExecutionConfig(taker_fee_bps=10, slippage_bps=0, allow_short=True))
    sim.step([(100, 101, 99, 100)], [-1.0])
    u = -C / (1.001 * 100)
    assert _one(sim.acc.units) == pytest.approx(u, rel=1e-15)
    # cash = C + C / 1.001 - 0.001 × C / 1.001 = C × (1 + 0.999 / 1.001) = 19 980.019 98…
    assert _one(sim.acc.cash) == pytest.approx(C * (1 + 0.999 / 1.001), rel=1e-14)
    # Next bar: the held -1 keeps its units, no trade. Close 90: equity = cash + u × 90
    # = C × (1 + 0.999 / 1.001 - 0.9 / 1.001) = C × (1 + 0.099 / 1.001).
    out = sim.step([(100, 101, 89, 90)], [-1.0])
    assert not out.reason.any()
    assert _one(sim.acc.equity) == pytest.approx(C * (1 + 0.099 / 1.001), rel=1e-14)  # 10 989.010 98…
    # Buy back at 90: realised PnL = |u| × (100 - 90) = 999.000 999…
    out = sim.step([(90, 91, 89, 90)], [0.0])
    assert _one(out.pnl[:, Slot.SIGNAL]) == pytest.approx(-u * 10, rel=1e-14)


def test_short_is_clipped_to_flat_without_allow_short():
    sim = Sim(ExecutionConfig(**NO_COSTS))
    out = sim.step([(100, 101, 99, 90)], [-1.0])
    assert not out.reason.any()
    assert _one(sim.acc.units) == 0.0
    assert _one(sim.acc.equity) == C


def test_leverage_doubles_the_pnl_and_is_clipped():
    # No costs. Target 3 is clipped to 2: 2C / 100 = 200 units, cash -C; close 110: -C + 200 × 110 = 12 000
    # (+20 %), twice the +10 % of target 1.
    levered = Sim(ExecutionConfig(**NO_COSTS, max_leverage=2.0))
    plain = Sim(ExecutionConfig(**NO_COSTS))
    levered.step([(100, 111, 99, 110)], [3.0])
    plain.step([(100, 111, 99, 110)], [1.0])
    assert _one(levered.acc.units) == 200.0
    assert _one(levered.acc.cash) == -C
    assert _one(levered.acc.equity) == 12_000.0
    assert _one(levered.acc.equity) - C == 2 * (_one(plain.acc.equity) - C)


def test_liquidation_at_the_close_under_leverage():
    # r = 0.001, no slippage, 2×, maintenance 5 %. Target 2: x = 2C / (1 + 2r) = 2C / 1.002 at 100;
    # cash = C - x × (1 + r) = C × (1 - 2.002 / 1.002) = -C / 1.002.
    cfg = ExecutionConfig(taker_fee_bps=10, slippage_bps=0, max_leverage=2.0, maintenance_margin=0.05)
    x = 2 * C / 1.002
    safe, liquidated = Sim(cfg), Sim(cfg)
    for sim in (safe, liquidated):
        sim.step([(100, 100, 99, 100)], [2.0])
    # The held target of 2 keeps its units: nothing trades.
    # Close 53: notional 1.06 × C / 1.002, equity 0.06 × C / 1.002 >= 0.05 × 1.06 × C / 1.002 = 0.053 × C / 1.002.
    out = safe.step([(100, 100, 53, 53)], [2.0])
    assert not out.reason.any()
    assert _one(safe.acc.equity) == pytest.approx(0.06 * C / 1.002, rel=1e-12)
    # Close 52: equity 0.04 × C / 1.002 < 0.052 × C / 1.002: sold at 52, fee 0.001 × 0.52 × x.
    out = liquidated.step([(100, 100, 52, 52)], [2.0])
    assert out.reason[0].tolist() == [0, 0, 0, Reason.LIQUIDATION]
    assert _one(out.price[:, Slot.LIQUIDATION]) == 52.0
    assert _one(out.fee[:, Slot.LIQUIDATION]) == pytest.approx(0.001 * 0.52 * x, rel=1e-14)
    # equity = 0.04 × C / 1.002 - 0.001 × 1.04 × C / 1.002 = 0.03896 × C / 1.002 = 388.822 35…
    assert _one(liquidated.acc.equity) == pytest.approx(0.03896 * C / 1.002, rel=1e-11)
    assert _one(liquidated.acc.units) == 0.0
    assert not liquidated.acc.bankrupt[0]


def test_bankruptcy_flattens_clamps_and_freezes():
    # No costs, 2×, no maintenance margin: 200 units at 100, cash -C. Close 45: equity -C + 9 000 = -1 000.
    sim = Sim(ExecutionConfig(**NO_COSTS, max_leverage=2.0, maintenance_margin=0.0))
    sim.step([(100, 100, 99, 100)], [2.0])
    out = sim.step([(100, 100, 45, 45)], [2.0])  # the held 2 keeps its units
    # Equity <= 0 liquidates (at 45, pnl 200 × -55 = -11 000), then the -1 000 of debt is written off.
    assert out.reason[0].tolist() == [0, 0, 0, Reason.LIQUIDATION]
    assert _one(out.pnl[:, Slot.LIQUIDATION]) == -11_000.0
    assert out.bankrupted[0]
    assert sim.acc.bankrupt[0]
    assert (_one(sim.acc.cash), _one(sim.acc.units), _one(sim.acc.equity)) == (0.0, 0.0, 0.0)
    # Frozen: a buy does nothing.
    out = sim.step([(50, 60, 40, 55)], [1.0])
    assert not out.reason.any()
    assert not out.bankrupted[0]
    assert _one(sim.acc.equity) == 0.0


def test_volatility_slippage_scales_with_the_relative_range():
    # slip = 0.1 × vol = 0.1 × 0.02 = 0.002: buy fills at 100 × 1.002 = 100.2; r = 0.001.
    sim = Sim(ExecutionConfig(taker_fee_bps=10, slippage="volatility", slippage_vol_mult=0.1))
    out = sim.step([(100, 101, 99, 100)], [1.0], vol=[0.02])
    assert _one(out.price[:, Slot.SIGNAL]) == pytest.approx(100.2, rel=1e-15)
    assert _one(sim.acc.units) == pytest.approx(C / (1.001 * 100.2), rel=1e-14)
    # Selling at vol 0.05: slip 0.005, fills at 100 × 0.995 = 99.5.
    out = sim.step([(100, 101, 99, 100)], [0.0], vol=[0.05])
    assert _one(out.price[:, Slot.SIGNAL]) == pytest.approx(99.5, rel=1e-15)


def test_min_trade_fraction_ignores_dust_but_always_lets_go_flat():
    # No costs: 100 units at 100, equity C. With min 5 %, moving to 0.98 (a 2 % = 200 trade) is ignored,
    # to 0.9 (a 1 000 sell) fills: 10 units; to 0 always fills.
    sim = Sim(ExecutionConfig(**NO_COSTS, min_trade_fraction=0.05))
    sim.step([(100, 100, 100, 100)], [1.0])
    out = sim.step([(100, 100, 100, 100)], [0.98])
    assert not out.reason.any()
    assert _one(sim.acc.units) == 100.0
    out = sim.step([(100, 100, 100, 100)], [0.9])
    assert _one(out.units[:, Slot.SIGNAL]) == pytest.approx(-10.0, rel=1e-14)
    sim.step([(100, 100, 100, 100)], [0.02])  # 90 -> 2 units: fills
    out = sim.step([(100, 100, 100, 100)], [0.0])  # 2 units = 2 % < 5 %, but flat always fills
    assert _one(out.units[:, Slot.SIGNAL]) == pytest.approx(-2.0, rel=1e-14)
    assert _one(sim.acc.units) == 0.0


def test_resizing_keeps_levels_and_averages_the_entry():
    # No costs. 50 units at 100 (target 0.5 of C), stop 90. Next open 120: equity 11 000, target 1 buys
    # 11 000 / 120 - 50 = 41.666… units; average entry (50 × 100 + 41.666… × 120) / 91.666… = 109.090 9…
    sim = Sim(ExecutionConfig(**NO_COSTS))
    sim.step([(100, 100, 100, 100)], [0.5], [0.1], [NAN])
    sim.step([(120, 120, 120, 120)], [1.0], [0.5], [NAN])
    units = 11_000 / 120
    assert _one(sim.acc.units) == pytest.approx(units, rel=1e-15)
    assert _one(sim.acc.entry_price) == pytest.approx((50 * 100 + (units - 50) * 120) / units, rel=1e-14)
    assert _one(sim.acc.stop_price) == pytest.approx(90.0, rel=1e-15)  # kept: the new 0.5 is not read
    assert _one(sim.acc.bars_in_position) == 2


def test_reversal_closes_and_opens_with_new_levels():
    # No costs, shorting. 100 units long at 100; open 110 with target -1: equity 11 000, sell 100 + 100 units;
    # realised 100 × 10 = 1 000; the short enters at 110 with stop 110 × 1.05 = 115.5.
    sim = Sim(ExecutionConfig(**NO_COSTS, allow_short=True))
    sim.step([(100, 100, 100, 100)], [1.0], [0.05], [NAN])
    out = sim.step([(110, 110, 110, 110)], [-1.0], [0.05], [0.1])
    assert _one(out.units[:, Slot.SIGNAL]) == pytest.approx(-200.0, rel=1e-15)
    assert _one(out.pnl[:, Slot.SIGNAL]) == pytest.approx(1_000.0, rel=1e-14)
    assert out.opened[0]
    assert _one(sim.acc.entry_price) == 110.0
    assert _one(sim.acc.stop_price) == pytest.approx(115.5, rel=1e-15)
    assert _one(sim.acc.target_price) == pytest.approx(99.0, rel=1e-15)
    assert _one(sim.acc.bars_in_position) == 1


def test_fill_at_close_warns_and_checks_stops_from_the_next_bar():
    with pytest.warns(LookAheadWarning):
        cfg = ExecutionConfig(**NO_COSTS, fill="close")
    sim = Sim(cfg)
    # Buys 100 units at the close 100; the bar's low 90 came before the entry, so the 95 stop is safe.
    out = sim.step([(98, 101, 90, 100)], [1.0], [0.05], [NAN])
    assert out.reason[0].tolist() == [0, Reason.SIGNAL, 0, 0]
    assert _one(out.price[:, Slot.SIGNAL]) == 100.0
    assert _one(sim.acc.units) == 100.0
    # Next bar's low 94 hits the stop (95, 100 units: equity 9 500); the close rebalance (target 1) then buys
    # again at 96: 9 500 / 96 units.
    out = sim.step([(99, 100, 94, 96)], [1.0])
    assert out.reason[0].tolist() == [0, Reason.SIGNAL, Reason.STOP, 0]
    assert _one(sim.acc.units) == pytest.approx(9_500 / 96, rel=1e-15)
    assert _one(sim.acc.equity) == pytest.approx(9_500.0, rel=1e-15)


def _walk(n: int) -> list[Bar]:
    """``n`` bars of a seeded random walk around 100 whose price moves at every bar (:func:`make_bars`)."""
    return list(make_bars(n, seed=3).select("open", "high", "low", "close").iter_rows())


@pytest.mark.parametrize("level", [-1.0, 0.5])
def test_a_held_level_pays_one_entry_fee_and_keeps_its_units(level: float):
    # r = 0.001, s = 0.0005. From cash C the entry at the first open p sells (level < 0) or buys with side
    # σ = sign(level): fill = p × (1 + σ s), notional x = level × C / (1 + |level| × r) (the sizing formula
    # with y = 0), fee r × |x|. Then the units never change: equity_t = C - x - fee + units × close_t.
    sim = Sim(ExecutionConfig(taker_fee_bps=10, slippage_bps=5, allow_short=True))
    bars = _walk(300)
    fill = bars[0][0] * (1 + np.sign(level) * 5e-4)
    x = level * C / (1 + abs(level) * 1e-3)
    fee = 1e-3 * abs(x)
    for bar in bars:
        sim.step([bar], [level])
        assert _one(sim.acc.units) == pytest.approx(x / fill, rel=1e-14)
        assert _one(sim.acc.equity) == pytest.approx(C - x - fee + x / fill * bar[3], rel=1e-12)
    assert _one(sim.acc.trades) == 1
    assert _one(sim.acc.fees_paid) == pytest.approx(fee, rel=1e-14)
    assert _one(sim.acc.level) == level


def test_a_changed_level_trades_and_the_new_level_is_then_held():
    # No costs, shorting. -1 at 100: -100 units. -0.5 at 110 (equity 20 000 - 11 000 = 9 000): buy back to
    # -4 500 / 110 = -40.909… units (cash 13 500). Held at 90 (fraction -3 681.8 / 9 818.2 = -0.375): no trade.
    sim = Sim(ExecutionConfig(**NO_COSTS, allow_short=True))
    sim.step([(100, 100, 100, 100)], [-1.0])
    out = sim.step([(110, 110, 110, 110)], [-0.5])
    assert _one(out.units[:, Slot.SIGNAL]) == pytest.approx(100 - 4_500 / 110, rel=1e-14)
    out = sim.step([(90, 90, 90, 90)], [-0.5])
    assert not out.reason.any()
    assert _one(sim.acc.units) == pytest.approx(-4_500 / 110, rel=1e-14)


def test_a_held_level_re_enters_after_a_stop():
    # No costs, shorting: -100 units at 100, cash 20 000, stop 105. The held -1 does not trade at the open
    # 101; the high 106 stops it out at 105 (equity 20 000 - 10 500 = 9 500). The still-held -1 is then a
    # target the flat position differs from: the next open re-enters, at 104, -9 500 / 104 units.
    sim = Sim(ExecutionConfig(**NO_COSTS, allow_short=True))
    sim.step([(100, 100, 100, 100)], [-1.0], [0.05])
    out = sim.step([(101, 106, 100, 104)], [-1.0])
    assert out.reason[0].tolist() == [0, 0, Reason.STOP, 0]
    out = sim.step([(104, 104, 104, 104)], [-1.0], [0.05])
    assert out.reason[0].tolist() == [0, Reason.SIGNAL, 0, 0]
    assert _one(sim.acc.units) == pytest.approx(-9_500 / 104, rel=1e-14)
    assert _one(sim.acc.stop_price) == pytest.approx(104 * 1.05, rel=1e-15)


@pytest.mark.parametrize(("band", "fills"), [(None, 1), (0.05, 2), (0.0, 4)])
def test_rebalance_band_re_sizes_a_held_level_only_once_exceeded(band: float | None, fills: int):
    # No costs, shorting, level -1: -100 units at 100, cash 20 000. Fraction of equity at each later open:
    # 102: -10 200 / 9 800 = -1.041 (drift 0.041); 103: -10 300 / 9 700 = -1.062 (0.062 > 0.05): re-sized to
    # -9 700 / 103 units, buying 600 / 103 back (realised 600 / 103 × -3); 101: -9 511.65 / 9 888.35 = -0.962
    # (0.038). A band of 0 re-sizes at every moved open, None never.
    sim = Sim(ExecutionConfig(**NO_COSTS, allow_short=True, rebalance_band=band))
    sim.step([(100, 100, 100, 100)], [-1.0])
    for price in (102, 103, 101):
        out = sim.step([(price, price, price, price)], [-1.0])
        if band == 0.05 and price == 103:
            assert _one(out.units[:, Slot.SIGNAL]) == pytest.approx(600 / 103, rel=1e-13)
            assert _one(out.pnl[:, Slot.SIGNAL]) == pytest.approx(-1_800 / 103, rel=1e-13)
            assert _one(sim.acc.entry_price) == 100.0  # reducing keeps the entry
    assert _one(sim.acc.trades) == fills
    if band == 0.05:
        assert _one(sim.acc.units) == pytest.approx(-9_700 / 103, rel=1e-14)
        assert _one(sim.acc.equity) == pytest.approx(19_400 - 9_700 / 103 * 101, rel=1e-14)


SCENARIOS: list[tuple[list[Bar], list[float], list[float]]] = [
    # (bars, targets, stop distances): a stop hit, a short, a levered long that is liquidated.
    ([(100, 101, 96, 98), (97, 98, 94, 96), (96, 97, 95, 96)], [1.0, 1.0, 0.5], [0.05, 0.05, NAN]),
    ([(50, 51, 49, 50), (49, 50, 44, 45), (45, 46, 40, 41)], [-1.0, -1.0, 0.0], [NAN, NAN, NAN]),
    ([(10, 10, 9, 10), (10, 10, 5.2, 5.2), (5, 7, 5, 5.5)], [2.0, 2.0, 2.0], [NAN, NAN, NAN]),
]


def test_batch_equals_each_account_alone_bit_for_bit():
    cfg = ExecutionConfig(taker_fee_bps=10, slippage_bps=5, allow_short=True, max_leverage=2.0)
    batch = Sim(cfg, n=len(SCENARIOS))
    alone = [Sim(cfg) for _ in SCENARIOS]
    reasons: list[set[int]] = [set() for _ in SCENARIOS]
    for t in range(3):
        batch_out = batch.step([s[0][t] for s in SCENARIOS], [s[1][t] for s in SCENARIOS], [s[2][t] for s in SCENARIOS])
        for seen, row in zip(reasons, batch_out.reason, strict=True):
            seen.update(row.tolist())
        for i, (sim, (bars, targets, stops)) in enumerate(zip(alone, SCENARIOS, strict=True)):
            out = sim.step([bars[t]], [targets[t]], [stops[t]])
            for name in StepEvents.FIELDS:
                np.testing.assert_array_equal(getattr(batch_out, name)[i], getattr(out, name)[0], err_msg=name)
    for i, sim in enumerate(alone):
        for name in Accounts.FIELDS:
            np.testing.assert_array_equal(getattr(batch.acc, name)[i], getattr(sim.acc, name)[0], err_msg=name)
    # The scenarios did what they say: stopped out, a profitable short, and the 2× long from 10 liquidated at
    # the 5.2 close (equity ≈ -1 + 2 × 0.52 = 0.04 of the initial cash, under 5 % of the 1.04 notional).
    assert Reason.STOP in reasons[0]
    assert batch.acc.equity[1] > C
    assert Reason.LIQUIDATION in reasons[2]


def test_reset_only_touches_masked_accounts():
    sim = Sim(ExecutionConfig(**NO_COSTS), n=3)
    sim.step([(100, 100, 100, 110)] * 3, [1.0, 1.0, 1.0], [0.05] * 3)
    before = {name: getattr(sim.acc, name).copy() for name in Accounts.FIELDS}
    sim.acc.reset(np.array([False, True, False]), 5_000.0)
    assert (_one(sim.acc.cash[1:]), _one(sim.acc.units[1:]), _one(sim.acc.equity[1:])) == (5_000.0, 0.0, 5_000.0)
    assert np.isnan(sim.acc.stop_price[1]) and sim.acc.bars_in_position[1] == 0 and sim.acc.trades[1] == 0
    assert np.isnan(sim.acc.level[1]) and sim.acc.level[0] == 1.0
    for name, array in before.items():
        np.testing.assert_array_equal(getattr(sim.acc, name)[[0, 2]], array[[0, 2]], err_msg=name)


def test_config_is_strict_and_bounded():
    with pytest.raises(ValueError, match="extra"):
        ExecutionConfig(fee_bps=1.0)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        ExecutionConfig(max_leverage=0.5)
    with pytest.raises(ValueError):
        ExecutionConfig(rebalance_band=-0.01)
    assert "taker_fee_bps" in ExecutionConfig.model_json_schema()["properties"]
