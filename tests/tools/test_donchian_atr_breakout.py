"""The manifest tool ``tools/donchian_atr_breakout`` against values worked out by hand on real BTC candles.

The rule is written up in ``docs/tools/donchian-atr-breakout.md``.
"""

from __future__ import annotations

import gzip
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tradelab.tools.base import Bars, Tool
from tradelab.tools.errors import ToolError
from tradelab.tools.registry import Registry

TOOLS_DIR = Path(__file__).resolve().parents[2] / "tools"
JUSTINBOMBER = "btc/binance_BTC_USDT-1m_2023-04-05_2023-05-05__justinbomber.json.gz"
ANDRESCIANCIO = "btc/binance_BTC_USDT-1m_2023-03-16_2023-05-01__andresciancio.json.gz"
NAN = np.nan


@pytest.fixture(scope="module")
def tool() -> Tool:
    """The tool as the registry loads it from the repository's ``tools/`` folder."""
    registry = Registry(TOOLS_DIR, talib=False, entry_points=False)
    assert registry.warnings == []
    return registry.get("donchian_atr_breakout")


def _bars(shared_data: Path, name: str, start: str, end: str) -> Bars:
    """Bars of a freqtrade JSON file (rows ``[open_ms, o, h, l, c, v]``) with ``start <= open < end`` (UTC)."""
    first, stop = (int(datetime.fromisoformat(t).replace(tzinfo=UTC).timestamp() * 1000) for t in (start, end))
    with gzip.open(shared_data / name, "rt", encoding="utf-8") as f:
        rows = np.array([r for r in json.load(f) if first <= r[0] < stop], dtype=np.float64)
    columns = dict(zip(("open", "high", "low", "close", "volume"), rows[:, 1:].T, strict=True))
    return Bars({"ts": rows[:, 0].astype(np.int64), **{k: np.ascontiguousarray(v) for k, v in columns.items()}})


def _with(bars: Bars, column: str, bar: int, value: float) -> Bars:
    """A copy of ``bars`` with one value changed."""
    columns = {k: v.copy() for k, v in bars.items()}
    columns[column][bar] = value
    return Bars(columns)


@pytest.fixture
def snippet(shared_data: Path) -> Bars:
    """BTC/USDT 1m, 2023-04-11 01:32-02:07 UTC: the 36 minutes in which BTC first traded above 30,000 since
    June 2022."""
    bars = _bars(shared_data, JUSTINBOMBER, "2023-04-11T01:32", "2023-04-11T02:08")
    assert bars.n == 36
    # The bars the hand-worked numbers below were read from.
    assert (bars["high"][0], bars["low"][0], bars["close"][0]) == (29862.00, 29841.72, 29862.00)
    assert (bars["high"][20], bars["low"][20], bars["close"][20]) == (30100.00, 29980.01, 30043.87)
    assert (bars["high"][35], bars["low"][35], bars["close"][35]) == (30250.75, 30174.90, 30248.65)
    return bars


SMALL = {"channel": 5, "atr_period": 3, "min_atr_pct": 0.0005}

# Worked out by hand from the snippet with channel=5, atr_period=3 (warm-up max(5, 3) = 5 bars: 0-4).
#   upper_t = max(high of bars t-5 .. t-1), lower_t = min(low of bars t-5 .. t-1); the signal compares close_t.
#   TR_t = max(H_t - L_t, |H_t - C_t-1|, |L_t - C_t-1|). Every bar here opens at the previous close, so
#   H - L wins each time; e.g. bar 3: max(29883.30 - 29876.19, |29883.30 - 29878.65|, |29876.19 - 29878.65|)
#   = max(7.11, 4.65, 2.46) = 7.11.
#   ATR (Wilder, as TA-Lib seeds it): ATR_3 = (TR_1 + TR_2 + TR_3) / 3 = (10.69 + 32.39 + 7.11) / 3 = 16.73,
#   then ATR_t = (2 * ATR_t-1 + TR_t) / 3: ATR_4 = (2 * 16.73 + 12.84) / 3 = 15.433333.
#   Filter: ATR_t / close_t >= 0.0005; the smallest after the warm-up is bar 5's 18.148889 / 29863.62 = 0.000608.
ATR_BEFORE_WARMUP = {3: 16.73, 4: 15.433333}
EXPECTED = [
    # bar, upper,   lower,    ATR,        signal    TR; ATR = (2 * previous + TR) / 3; why the signal
    (5, 29890.00, 29841.72, 18.148889, 0),  # 23.58; (2 * 15.433333 + 23.58) / 3; highs 0-4 29862.00,
    #                                         29865.65, 29890.00, 29883.30, 29877.46 -> 29890.00
    (6, 29890.00, 29844.06, 22.475926, 0),  # 31.13
    (7, 29890.00, 29844.06, 27.683951, 0),  # 38.10; high 29905.09 pierces 29890.00 but closes 29883.75: no
    (8, 29905.09, 29844.06, 31.365967, 0),  # 38.73
    (9, 29905.09, 29844.06, 29.427311, 0),  # 25.55
    (10, 29905.09, 29844.06, 25.408208, 0),  # 17.37
    (11, 29905.09, 29846.25, 22.308805, 0),  # 16.11; high 29905.07, two cents short of the channel
    (12, 29905.09, 29851.58, 24.759203, 1),  # 29.66; highs 7-11 29905.09, 29900.00, 29877.13, 29894.49,
    #                                          29905.07 -> 29905.09 < close 29908.06; 24.759203 / 29908.06 = 0.00083
    (13, 29918.62, 29851.58, 30.856136, 0),  # 43.05; close 29917.88 < 29918.62 (bar 12's high)
    (14, 29932.01, 29851.58, 25.780757, 0),  # 15.63
    (15, 29932.01, 29877.12, 21.757171, 0),  # 13.71
    (16, 29932.01, 29888.96, 20.148114, 1),  # 16.93; close 29933.62 > 29932.01 by 1.61; 20.148114 / 29933.62
    #                                          = 0.000673
    (17, 29935.34, 29888.96, 31.562076, 1),  # 54.39; close 29964.38 > 29935.34 (bar 16's high)
    (18, 29988.00, 29888.96, 33.408051, 0),  # 37.10; high 30000.00 but close 29976.97 < 29988.00
    (19, 30000.00, 29908.63, 31.558701, 0),  # 27.86; high 30000.00 again, equal to the channel; close 29984.76
    (20, 30000.00, 29910.54, 61.035800, 1),  # 119.99; highs 15-19 29924.25, 29935.34, 29988.00, 30000.00,
    #                                          30000.00 -> 30000.00 < close 30043.87
    (21, 30100.00, 29918.41, 131.213867, 1),  # 271.57; close 30199.44 > 30100.00 (bar 20's high)
    (22, 30308.23, 29933.61, 103.959245, 0),  # 49.45
    (23, 30308.23, 29962.90, 94.212830, 0),  # 74.72
    (24, 30308.23, 29972.14, 80.315220, 0),  # 52.52
    (25, 30308.23, 29980.01, 67.096813, 0),  # 40.66
    (26, 30308.23, 30036.66, 59.491209, 0),  # 44.28
    (27, 30210.00, 30100.00, 54.657473, 0),  # 44.99; bar 21's 30308.23 has left the channel
    (28, 30210.00, 30100.00, 51.188315, 0),  # 44.25; high 30210.00 equals the channel, close 30170.00
    (29, 30210.00, 30100.00, 48.238877, 0),  # 42.34
    (30, 30210.00, 30142.13, 44.469251, 0),  # 36.93
    (31, 30210.00, 30155.00, 44.312834, -1),  # 44.00; lows 26-30 30165.72, 30155.01, 30165.75, 30155.00,
    #                                           30160.87 -> 30155.00 > close 30133.61; 44.312834 / 30133.61 = 0.00147
    (32, 30210.00, 30124.01, 36.641889, 0),  # 21.30
    (33, 30210.00, 30118.76, 46.167926, 0),  # 65.22
    (34, 30197.80, 30118.76, 41.088618, 0),  # 30.93
    (35, 30197.80, 30118.76, 52.675745, 1),  # 75.85; close 30248.65 > 30197.80 (bar 30's high)
]
SIGNAL = np.array([NAN] * 5 + [row[4] for row in EXPECTED])
BREAKOUT_BAR, SHORT_BAR, QUIET_BREAKOUT_BAR = 20, 31, 16


@pytest.mark.realdata
def test_hand_worked_channel_atr_and_signal_on_the_30k_breakout(tool: Tool, snippet: Bars) -> None:
    out = tool.run(snippet, SMALL)
    assert list(out) == ["signal", "upper", "lower", "atr_pct"]
    np.testing.assert_array_equal(out["signal"], SIGNAL)
    np.testing.assert_array_equal(out["upper"], [NAN] * 5 + [row[1] for row in EXPECTED])
    np.testing.assert_array_equal(out["lower"], [NAN] * 5 + [row[2] for row in EXPECTED])
    atr = [NAN] * 3 + list(ATR_BEFORE_WARMUP.values()) + [row[3] for row in EXPECTED]
    np.testing.assert_allclose(out["atr_pct"], np.array(atr) / snippet["close"], rtol=1e-7)


@pytest.mark.realdata
def test_the_volatility_filter_suppresses_the_quiet_breakout(tool: Tool, snippet: Bars) -> None:
    # Bar 16 breaks out with ATR / close = 20.148114 / 29933.62 = 0.000673 < 0.0007; the other breakouts have
    # 0.00083 (bar 12) and more, so they stay.
    out = tool.run(snippet, {**SMALL, "min_atr_pct": 0.0007})
    expected = SIGNAL.copy()
    expected[QUIET_BREAKOUT_BAR] = 0.0
    np.testing.assert_array_equal(out["signal"], expected)
    # Turning the filter off changes nothing here: every bar after the warm-up is above 0.0005.
    np.testing.assert_array_equal(tool.run(snippet, {**SMALL, "min_atr_pct": 0.0})["signal"], SIGNAL)


@pytest.mark.realdata
def test_allow_short_false_zeroes_only_the_short(tool: Tool, snippet: Bars) -> None:
    out = tool.run(snippet, {**SMALL, "allow_short": False})
    expected = SIGNAL.copy()
    expected[SHORT_BAR] = 0.0
    np.testing.assert_array_equal(out["signal"], expected)
    np.testing.assert_array_equal(out["lower"], tool.run(snippet, SMALL)["lower"])


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("bar", "close", "signal"),
    [
        (BREAKOUT_BAR, 30000.00, 0.0),
        (BREAKOUT_BAR, 30000.01, 1.0),
        (SHORT_BAR, 30155.00, 0.0),
        (SHORT_BAR, 30154.99, -1.0),
    ],
)
def test_a_close_equal_to_the_channel_is_not_a_breakout(
    tool: Tool, snippet: Bars, bar: int, close: float, signal: float
) -> None:
    # Bar 20's upper is 30000.00 (the equal highs of bars 18 and 19), bar 31's lower 30155.00 (bar 29's low); each
    # bar's range (29980.01-30100.00, 30124.01-30168.01) holds both closes. TR_t uses close_t-1, not close_t, so the
    # filter does not move (ATR / close = 0.0020 and 0.0015).
    out = tool.run(_with(snippet, "close", bar, close), SMALL)
    assert (out["upper"][bar], out["lower"][bar]) == (EXPECTED[bar - 5][1], EXPECTED[bar - 5][2])
    expected = SIGNAL.copy()
    expected[bar] = signal
    np.testing.assert_array_equal(out["signal"], expected)


@pytest.mark.realdata
def test_a_bar_without_volume_never_signals(tool: Tool, snippet: Bars) -> None:
    out = tool.run(_with(snippet, "volume", BREAKOUT_BAR, 0.0), SMALL)
    expected = SIGNAL.copy()
    expected[BREAKOUT_BAR] = 0.0
    np.testing.assert_array_equal(out["signal"], expected)


@pytest.mark.realdata
def test_stale_bars_then_an_outage(tool: Tool, shared_data: Path) -> None:
    # 2023-03-24: 72 zero-volume bars 11:28-12:39 repeat the close 28080.00, then Binance's outage leaves no bar
    # until 14:00. With the defaults (channel 20, ATR 14, 0.0003):
    bars = _bars(shared_data, ANDRESCIANCIO, "2023-03-24T10:00", "2023-03-24T15:00")
    out = tool.run(bars, {})
    stale = np.flatnonzero(bars["volume"] == 0)
    assert len(stale) == 72 and np.all(bars["close"][stale] == 28080.00)
    assert np.all(out["signal"][stale] == 0.0)
    # The first bar after the gap (14:00, H 28079.99, L 27901.06, C 27925.59) is the next bar, not 80 minutes
    # later: its channel is 20 stale bars, upper = lower = 28080.00, and its close is below it. Its TR is
    # |27901.06 - 28080.00| = 178.94, so ATR_t = (13 * ATR_t-1 + 178.94) / 14 >= 12.78, and
    # ATR / close >= 12.78 / 27925.59 = 0.000458 passes the 0.0003 filter: a short.
    after = int(stale[-1]) + 1
    assert bars["ts"][after] - bars["ts"][after - 1] == 81 * 60_000
    assert (out["upper"][after], out["lower"][after]) == (28080.00, 28080.00)
    assert out["atr_pct"][after] >= 178.94 / 14 / 27925.59
    assert out["signal"][after] == -1.0


@pytest.mark.realdata
@pytest.mark.parametrize("t", [30, 150, 238])
def test_causal_perturbing_later_bars_leaves_earlier_outputs_identical(tool: Tool, shared_data: Path, t: int) -> None:
    bars = _bars(shared_data, JUSTINBOMBER, "2023-04-11T00:00", "2023-04-11T04:00")
    rng = np.random.default_rng(t)
    future = {k: v.copy() for k, v in bars.items()}
    for column in ("open", "high", "low", "close"):
        future[column][t + 1 :] *= rng.uniform(0.5, 1.5, bars.n - t - 1)
    prices = np.stack([future[c][t + 1 :] for c in ("open", "high", "low", "close")])
    future["high"][t + 1 :], future["low"][t + 1 :] = prices.max(axis=0), prices.min(axis=0)
    future["volume"][t + 1 :] = 0.0
    before, after = tool.run(bars), tool.run(Bars(future))
    for name in before:
        np.testing.assert_array_equal(after[name][: t + 1], before[name][: t + 1], err_msg=name)
        np.testing.assert_array_equal(tool.run(bars.head(t + 1))[name], before[name][: t + 1], err_msg=name)


@pytest.mark.realdata
@pytest.mark.parametrize(("channel", "atr_period"), [(20, 14), (5, 3), (3, 30), (2, 1)])
def test_warmup_is_exactly_where_every_output_is_defined(
    tool: Tool, shared_data: Path, channel: int, atr_period: int
) -> None:
    bars = _bars(shared_data, JUSTINBOMBER, "2023-04-11T00:00", "2023-04-12T00:00")
    params = tool.parse_params({"channel": channel, "atr_period": atr_period})
    warmup = tool.warmup(params)
    assert warmup == max(channel, atr_period)
    out = tool.run(bars, params)  # run() raises on NaN or inf after the warm-up
    assert np.isnan(out["signal"][:warmup]).all() and set(np.unique(out["signal"][warmup:])) == {-1.0, 0.0, 1.0}
    # The channel starts one bar after TA-Lib MAX's lookback (channel - 1); ATR at its lookback (atr_period).
    assert np.flatnonzero(np.isfinite(out["upper"]))[0] == channel
    assert np.flatnonzero(np.isfinite(out["lower"]))[0] == channel
    assert np.flatnonzero(np.isfinite(out["atr_pct"]))[0] == atr_period


@pytest.mark.realdata
@pytest.mark.parametrize("n", [0, 1, 14])
def test_series_shorter_than_every_lookback_is_all_nan(tool: Tool, snippet: Bars, n: int) -> None:
    out = tool.run(snippet.head(n), {})  # defaults: the channel needs 20 bars, the ATR 14
    assert all(len(v) == n and np.isnan(v).all() for v in out.values())


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"channel": 1}, "channel"),
        ({"atr_period": 0}, "atr_period"),
        ({"channel": 100_001}, "channel"),
        ({"min_atr_pct": -0.001}, "min_atr_pct"),
        ({"min_atr_pct": float("nan")}, "min_atr_pct"),
        ({"allow_short": "sometimes"}, "allow_short"),
        ({"chanel": 20}, "chanel"),
    ],
)
def test_invalid_params_name_the_field(tool: Tool, params: dict[str, object], field: str) -> None:
    with pytest.raises(ToolError, match=rf"^invalid parameters for tool donchian_atr_breakout: {field}: "):
        tool.parse_params(params)


def test_registered_from_its_manifest(tool: Tool) -> None:
    manifest = tomllib.loads((TOOLS_DIR / "donchian_atr_breakout" / "tool.toml").read_text(encoding="utf-8"))
    assert tool.origin == "manifest:donchian_atr_breakout"
    assert (tool.name, tool.version, tool.description) == (
        manifest["name"],
        manifest["version"],
        manifest["description"],
    )
    assert manifest["name"] == "donchian_atr_breakout" and manifest["version"] == "1.0.0"


def test_defaults_and_declared_outputs(tool: Tool) -> None:
    params = tool.parse_params()
    assert params.model_dump() == {"channel": 20, "atr_period": 14, "min_atr_pct": 0.0003, "allow_short": True}
    assert tool.warmup(params) == 20 and tool.causal
    assert tool.inputs == ("high", "low", "close", "volume")
    assert tool.outputs(params) == ["signal", "upper", "lower", "atr_pct"]
