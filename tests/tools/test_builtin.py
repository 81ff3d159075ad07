"""The built-in tools and the exact rolling numerics under them, against plain references and hand values."""

import math
from datetime import UTC, datetime
from decimal import Decimal, localcontext

import numpy as np
import pytest

from tradelab.data.ingest.synth import generate_bars
from tradelab.tools import numeric
from tradelab.tools.base import Bars, Tool
from tradelab.tools.builtin import BUILTIN_TOOLS
from tradelab.tools.errors import ToolError
from tradelab.tools.lookahead import SCALES, perturb_after
from tradelab.tools.numeric import grouped_cumsum, rolling_mean_std, rolling_sum, rolling_zscore

MINUTE_MS = 60_000
TOOLS = {tool.name: tool for tool in BUILTIN_TOOLS}
# small windows cross many block boundaries on short series
SMALL_PARAMS = {
    "log_return": {"periods": 3},
    "realized_vol": {"window": 7, "annualize": True},
    "zscore": {"window": 7},
    "volume_zscore": {"window": 7},
}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def minute_bars(start: str, rows: list[tuple[float, float, float, float]], step_ms: int = MINUTE_MS) -> Bars:
    """Bars from ``(high, low, close, volume)`` rows, one every ``step_ms`` from ``start``."""
    high, low, close, volume = (np.array(column, dtype=np.float64) for column in zip(*rows, strict=True))
    ts = ms(start) + np.arange(len(rows), dtype=np.int64) * step_ms
    return Bars({"ts": ts, "open": close.copy(), "high": high, "low": low, "close": close, "volume": volume})


@pytest.fixture(scope="module")
def bars() -> Bars:
    """Three days of realistic 1-minute bars with gaps, from a Saturday evening, across two midnights."""
    return Bars.from_frame(generate_bars(3, seed=5, start="2024-03-09T20:00", gaps=True))


@pytest.fixture(scope="module")
def million() -> np.ndarray:
    """1,000,000 closes of BTC-like minute data (price level ~10^4, moves of ~10^-3)."""
    return Bars.from_frame(generate_bars(1_000_000 / 1440, seed=0, gaps=False))["close"]


def fsum_mean_std(window: np.ndarray) -> tuple[float, float]:
    """Mean and sample std of one window from exactly rounded sums (two passes)."""
    mean = math.fsum(window) / len(window)
    return mean, math.sqrt(math.fsum((window - mean) ** 2) / (len(window) - 1))


def cumsum_mean_std(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The textbook O(n) shortcut over global cumulative sums, whose error grows with the series."""
    first = np.concatenate(([0.0], np.cumsum(x)))
    second = np.concatenate(([0.0], np.cumsum(x * x)))
    mean = (first[window:] - first[:-window]) / window
    variance = (second[window:] - second[:-window] - window * mean**2) / (window - 1)
    pad = np.full(window - 1, np.nan)
    return np.concatenate((pad, mean)), np.concatenate((pad, np.sqrt(np.maximum(variance, 0.0))))


# --- numerics ---------------------------------------------------------------------------------------


def test_rolling_values_by_hand() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(rolling_sum(x, 2), [np.nan, 3, 5, 7, 9])
    mean, std = rolling_mean_std(x[:4], 3)
    np.testing.assert_array_equal(mean, [np.nan, np.nan, 2, 3])
    np.testing.assert_array_equal(std, [np.nan, np.nan, 1, 1])
    # [5, 5, 7]: mean 17/3, std sqrt(4/3), so 7 sits (4/3) / sqrt(4/3) = 2/sqrt(3) above
    z = rolling_zscore(np.array([1.0, 2.0, 3.0, 5.0, 5.0, 5.0, 7.0]), 3)
    expected = [np.nan, np.nan, 1, (5 / 3) / math.sqrt(7 / 3), (2 / 3) / math.sqrt(4 / 3), 0, 2 / math.sqrt(3)]
    np.testing.assert_allclose(z, expected, rtol=1e-15)


@pytest.mark.parametrize("window", [1, 2, 3, 7, 16])
def test_rolling_matches_direct_windows(window: int) -> None:
    rng = np.random.default_rng(window)
    for n in [0, 1, window - 1, window, window + 1, 2 * window, 2 * window + 1, 5 * window + 3, 101]:
        x = rng.normal(size=n)
        direct = [x[i - window + 1 : i + 1] for i in range(window - 1, len(x))]
        warm = np.full(min(window - 1, len(x)), np.nan)
        expected_sum = np.concatenate((warm, [w.sum() for w in direct]))
        np.testing.assert_allclose(rolling_sum(x, window), expected_sum, rtol=1e-13, atol=1e-14)
        if window < 2:
            continue
        mean, std = rolling_mean_std(x, window)
        z = rolling_zscore(x, window)
        expected_mean = np.concatenate((warm, [w.mean() for w in direct]))
        expected_std = np.concatenate((warm, [w.std(ddof=1) for w in direct]))
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(std, expected_std, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(z, (x - expected_mean) / expected_std, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("window", [120, 1440])
def test_exact_over_a_million_price_level_bars(million: np.ndarray, window: int) -> None:
    mean, std = rolling_mean_std(million, window)
    z = rolling_zscore(million, window)
    naive_mean, naive_std = cumsum_mean_std(million, window)
    ends = np.random.default_rng(window).choice(np.arange(window - 1, len(million)), 3000, replace=False)
    errors = []
    for i in ends:
        values = million[i - window + 1 : i + 1]
        ref_mean, ref_std = fsum_mean_std(values)
        ref_z = math.fsum(million[i] - values) / window / ref_std  # x - mean from exact differences
        errors.append(
            (
                abs(mean[i] - ref_mean) / ref_mean,
                abs(std[i] - ref_std) / ref_std,
                abs(z[i] - ref_z),
                abs(naive_mean[i] - ref_mean) / ref_mean,
                abs(naive_std[i] - ref_std) / ref_std,
            )
        )
    mean_err, std_err, z_err, naive_mean_err, naive_std_err = np.max(errors, axis=0)
    assert mean_err <= 1e-15 and std_err <= 1e-12 and z_err <= 1e-12
    # the cumulative-sum shortcut fails the same bounds by orders of magnitude
    assert naive_mean_err > 1e2 * mean_err and naive_mean_err > 1e-13
    assert naive_std_err > 1e-9


def test_variance_of_a_high_offset_series_loses_no_digits() -> None:
    # 30,000 bars at 1e9 moving by ~1: sums of squares are ~1e20 for a variance of ~1
    x = 1e9 + np.random.default_rng(3).normal(0, 1, 30_000).round(3)
    _, std = rolling_mean_std(x, 50)
    _, naive_std = cumsum_mean_std(x, 50)
    ref = np.array([x[i - 49 : i + 1].std(ddof=1) for i in range(49, len(x))])  # numpy centres first
    assert np.max(np.abs(std[49:] - ref) / ref) <= 1e-12
    assert np.max(np.abs(naive_std[49:] - ref) / ref) > 0.1


def test_flat_windows_have_std_and_zscore_zero() -> None:
    x = np.array([3.0, 1.0, 30_000.01, 30_000.01, 30_000.01, 30_000.01, 30_000.01, 30_000.02])
    mean, std = rolling_mean_std(x, 3)
    z = rolling_zscore(x, 3)
    np.testing.assert_array_equal(std[4:7], 0.0)
    np.testing.assert_array_equal(z[4:7], 0.0)
    np.testing.assert_array_equal(mean[4:7], 30_000.01)
    assert z[7] == pytest.approx(2 / math.sqrt(3), rel=1e-9)


def test_a_nan_input_makes_exactly_its_windows_nan() -> None:
    x = np.random.default_rng(0).normal(size=40)
    x[17] = np.nan
    nan_at = np.flatnonzero(np.isnan(rolling_zscore(x, 5)))
    np.testing.assert_array_equal(nan_at, [0, 1, 2, 3, *range(17, 22)])
    mean, std = rolling_mean_std(x, 5)
    np.testing.assert_array_equal(np.isnan(mean), np.isnan(std))
    np.testing.assert_array_equal(np.flatnonzero(np.isnan(rolling_sum(x, 5))), nan_at)


def test_chunking_does_not_change_a_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    x = 30_000 + np.cumsum(np.random.default_rng(4).normal(0, 5, 5000))
    before = [rolling_sum(x, 13), *rolling_mean_std(x, 13), rolling_zscore(x, 13)]
    monkeypatch.setattr(numeric, "_CHUNK", 40)  # three blocks per chunk
    after = [rolling_sum(x, 13), *rolling_mean_std(x, 13), rolling_zscore(x, 13)]
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


def test_rolling_windows_are_validated() -> None:
    with pytest.raises(ValueError, match="window must be >= 1"):
        rolling_sum(np.ones(3), 0)
    with pytest.raises(ValueError, match="window must be >= 2"):
        rolling_mean_std(np.ones(3), 1)


def test_grouped_cumsum_restarts_per_group() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(grouped_cumsum(values, np.array([7, 7, 8, 8, 8, 7])), [1, 3, 3, 7, 12, 6])
    packed = grouped_cumsum(values + 1j * values**2, np.array([0, 0, 0, 1, 1, 1]))
    np.testing.assert_array_equal(packed, [1 + 1j, 3 + 5j, 6 + 14j, 4 + 16j, 9 + 41j, 15 + 77j])
    assert grouped_cumsum(np.array([]), np.array([], dtype=np.int64)).shape == (0,)


def test_grouped_cumsum_is_a_sequential_sum_per_group() -> None:
    rng = np.random.default_rng(5)
    values = 30_000 + rng.normal(0, 100, 3000)
    keys = np.sort(rng.integers(0, 12, 3000))
    expected, total = [], 0.0
    for i, value in enumerate(values):
        total = value if i == 0 or keys[i] != keys[i - 1] else total + value
        expected.append(total)
    np.testing.assert_array_equal(grouped_cumsum(values, keys), expected)


# --- the tools ---------------------------------------------------------------------------------------


def test_the_builtin_tools() -> None:
    assert sorted(TOOLS) == sorted(
        ["log_return", "realized_vol", "zscore", "volume_zscore", "vwap_day", "time_of_day", "day_of_week"]
    )
    for tool in BUILTIN_TOOLS:
        assert isinstance(tool, Tool) and tool.version == "1" and tool.group == "tradelab" and tool.description
        for field in tool.params_schema().get("properties", {}).values():
            assert field["description"]


@pytest.mark.parametrize("name", sorted(TOOLS))
@pytest.mark.parametrize("params", ["default", "small"])
def test_warmup_is_exactly_the_nan_prefix(bars: Bars, name: str, params: str) -> None:
    tool = TOOLS[name]
    chosen = SMALL_PARAMS.get(name, {}) if params == "small" else {}
    warmup = tool.warmup(tool.parse_params(chosen))
    outputs = tool.run(bars, chosen)  # checks length and finiteness after the warm-up
    for values in outputs.values():
        assert np.isnan(values[:warmup]).all() and np.isfinite(values[warmup:]).all()


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("realized_vol", {"window": 1}, "window"),
        ("zscore", {"window": 1}, "window"),
        ("volume_zscore", {"window": 1}, "window"),
        ("log_return", {"periods": 0}, "periods"),
        ("zscore", {"windw": 20}, "windw"),
        ("vwap_day", {"window": 20}, "window"),
    ],
)
def test_invalid_params_name_the_field(bars: Bars, name: str, params: dict, field: str) -> None:
    with pytest.raises(ToolError, match=rf"tool {name}: {field}"):
        TOOLS[name].run(bars, params)


def test_log_return_by_hand() -> None:
    bars = minute_bars("2024-01-01", [(0, 0, c, 1) for c in (100.0, 110.0, 121.0, 100.0)])
    one = TOOLS["log_return"].run(bars)["log_return"]
    two = TOOLS["log_return"].run(bars, {"periods": 2})["log_return"]
    np.testing.assert_allclose(one, [np.nan, math.log(1.1), math.log(1.1), math.log(100 / 121)], rtol=1e-15)
    np.testing.assert_allclose(two, [np.nan, np.nan, math.log(1.21), math.log(100 / 110)], rtol=1e-15)


def test_log_return_is_exact_to_the_last_bits(bars: Bars) -> None:
    close = bars["close"]
    returns = TOOLS["log_return"].run(bars)["log_return"]
    with localcontext() as context:
        context.prec = 40
        exact = np.array([float((Decimal(close[i]) / Decimal(close[i - 1])).ln()) for i in range(1, bars.n)])
    moved = exact != 0
    np.testing.assert_array_equal(returns[1:][~moved], 0.0)  # stale closes
    assert np.max(np.abs(returns[1:][moved] - exact[moved]) / np.abs(exact[moved])) <= 4.5e-16  # 2 ulp
    # log of the rounded ratio loses ~1e-16 absolute: far more, relative to a one-tick move
    ratio = np.log(close[1:] / close[:-1])
    assert np.max(np.abs(ratio[moved] - exact[moved]) / np.abs(exact[moved])) > 1e-12


def test_realized_vol_matches_the_std_of_each_window(bars: Bars) -> None:
    returns = np.log(bars["close"][1:] / bars["close"][:-1])
    for window in (2, 60):
        vol = TOOLS["realized_vol"].run(bars, {"window": window})["realized_vol"]
        expected = [returns[i - window : i].std(ddof=1) for i in range(window, bars.n)]
        np.testing.assert_allclose(vol[window:], expected, rtol=1e-9, atol=1e-15)


def test_realized_vol_annualizes_by_the_smallest_spacing_so_far() -> None:
    def vol(bars: Bars, **params: object) -> np.ndarray:
        return TOOLS["realized_vol"].run(bars, params)["realized_vol"]

    rng = np.random.default_rng(6)
    gapless = minute_bars("2024-01-01", [(0, 0, c, 1) for c in 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 12)))])
    ratio = vol(gapless, window=3, annualize=True)[3:] / vol(gapless, window=3)[3:]
    np.testing.assert_allclose(ratio, math.sqrt(365 * 1440), rtol=1e-15)
    minutes = np.array([0, 20, 30, 40, 46, 52, 58, 64, 70, 76, 90, 96])  # spacings 20, 10, 10, 6, ..., 6, 14, 6
    gappy = Bars({**gapless, "ts": ms("2024-01-01") + minutes * MINUTE_MS})
    ratio = vol(gappy, window=2, annualize=True)[2:] / vol(gappy, window=2)[2:]
    # the smallest spacing so far: 10 minutes at bars 2 and 3, then 6 (the 14-minute gap changes nothing)
    np.testing.assert_allclose(ratio, np.sqrt(365 * 1440 / np.array([10, 10, 6, 6, 6, 6, 6, 6, 6, 6])), rtol=1e-15)


def test_zscores_match_each_window_and_are_zero_on_stale_runs(bars: Bars) -> None:
    columns = dict(bars)
    columns["close"] = columns["close"].copy()
    columns["close"][1000:1100] = columns["close"][999]  # a stale feed: 101 equal closes
    columns["volume"] = columns["volume"].copy()
    columns["volume"][2000:2050] = 0.0  # nobody traded for 50 minutes
    stale = Bars(columns)
    for name, column in (("zscore", "close"), ("volume_zscore", "volume")):
        x = stale[column]
        z = TOOLS[name].run(stale, {"window": 30})[name]
        windows = [x[i - 29 : i + 1] for i in range(29, stale.n)]
        flat = np.array([w.max() == w.min() for w in windows])
        spreads = np.array([w.std(ddof=1) for w in windows])
        centred = x[29:] - np.array([w.mean() for w in windows])
        np.testing.assert_allclose(z[29:][~flat], centred[~flat] / spreads[~flat], rtol=1e-9, atol=1e-9)
        np.testing.assert_array_equal(z[29:][flat], 0.0)
        assert flat.sum() == {"close": 72, "volume": 21}[column]  # the windows inside each stale run


def test_vwap_day_by_hand_across_midnight_and_a_zero_volume_start() -> None:
    # typical prices 10, 20 | 30, 40 on the next day | after a gap, 50, 52 (no volume yet), 54, 58
    rows = [(12, 9, 9, 1), (21, 19, 20, 3), (31, 29, 30, 2), (41, 39, 40, 2)]
    rows += [(51, 49, 50, 0), (53, 51, 52, 0), (55, 53, 54, 1), (59, 57, 58, 3)]
    bars = minute_bars("2024-01-01T23:58", rows)
    bars = Bars({**bars, "ts": bars["ts"] + np.repeat([0, 2 * 1440 * MINUTE_MS], 4)})
    vwap = TOOLS["vwap_day"].run(bars)["vwap_day"]
    expected = [10, (10 + 60) / 4, 30, (60 + 80) / 4, 50, 52, 54, (54 + 174) / 4]
    np.testing.assert_allclose(vwap, expected, rtol=1e-15)


def test_vwap_day_matches_a_loop(bars: Bars) -> None:
    columns = dict(bars)
    columns["volume"] = np.where(np.arange(bars.n) % 97 < 3, 0.0, bars["volume"])  # some untraded bars
    traded = Bars(columns)
    expected, pv, volume, day = [], 0.0, 0.0, None
    for ts, high, low, close, v in zip(*(traded[k] for k in ("ts", "high", "low", "close", "volume")), strict=True):
        if datetime.fromtimestamp(ts / 1000, UTC).date() != day:
            day, pv, volume = datetime.fromtimestamp(ts / 1000, UTC).date(), 0.0, 0.0
        typical = (high + low + close) / 3
        pv, volume = pv + typical * v, volume + v
        expected.append(pv / volume if volume > 0 else typical)
    np.testing.assert_allclose(TOOLS["vwap_day"].run(traded)["vwap_day"], expected, rtol=1e-13)


def test_time_of_day_by_hand() -> None:
    times = ["00:00", "06:00", "12:00", "18:00", "23:59"]
    out = TOOLS["time_of_day"].run(Bars({"ts": np.array([ms(f"2024-01-01T{t}") for t in times])}))
    np.testing.assert_allclose(out["sin"], [0, 1, 0, -1, -math.sin(2 * math.pi / 1440)], atol=1e-15)
    np.testing.assert_allclose(out["cos"], [1, 0, -1, 0, math.cos(2 * math.pi / 1440)], atol=1e-15)
    assert out["sin"][0] == 0 and out["cos"][0] == 1 and out["sin"][1] == 1


def test_day_of_week_by_hand_and_against_the_calendar(bars: Bars) -> None:
    # 2024-01-01 was a Monday, 2024-01-07 a Sunday, 1969-12-29 a Monday (before the epoch)
    days = np.array([ms("2024-01-01T00:00"), ms("2024-01-01T23:59"), ms("2024-01-07T12:00"), ms("1969-12-29")])
    out = TOOLS["day_of_week"].run(Bars({"ts": days}))
    np.testing.assert_allclose(out["sin"], [0, 0, math.sin(2 * math.pi * 6 / 7), 0], atol=1e-15)
    np.testing.assert_allclose(out["cos"], [1, 1, math.cos(2 * math.pi * 6 / 7), 1], atol=1e-15)
    weekdays = np.array([datetime.fromtimestamp(t / 1000, UTC).weekday() for t in bars["ts"]])
    minutes = (bars["ts"] // MINUTE_MS) % 1440
    week = TOOLS["day_of_week"].run(bars)
    day = TOOLS["time_of_day"].run(bars)
    np.testing.assert_allclose(week["sin"], np.sin(2 * np.pi * weekdays / 7), atol=1e-15)
    np.testing.assert_allclose(week["cos"], np.cos(2 * np.pi * weekdays / 7), atol=1e-15)
    np.testing.assert_allclose(day["sin"], np.sin(2 * np.pi * minutes / 1440), atol=1e-15)
    np.testing.assert_allclose(day["cos"], np.cos(2 * np.pi * minutes / 1440), atol=1e-15)


# --- causality ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TOOLS))
@pytest.mark.parametrize("params", ["default", "small"])
def test_no_look_ahead(name: str, params: str) -> None:
    """The outputs up to bar t are bit-identical after the guard's perturbations of every later bar, or dropping them.

    The cuts are picked by hand around the built-ins' warm-ups and windows (the guard spreads its own).
    """
    bars = Bars.from_frame(generate_bars(400 / 1440, seed=9, start="2024-01-07T22:00", gaps=False))
    tool, chosen = TOOLS[name], SMALL_PARAMS.get(name, {}) if params == "small" else {}
    full = tool.run(bars, chosen)
    for t in [0, 1, 5, 6, 7, 8, 13, 14, 20, 59, 60, 61, 119, 120, 121, 200, 239, 240, 241, 398]:
        perturbed = [tool.run(perturb_after(bars, t, seed=t, scale=scale), chosen) for scale in SCALES]
        for changed in (*perturbed, tool.run(bars.head(t + 1), chosen)):
            for output, values in full.items():
                assert np.array_equal(changed[output][: t + 1], values[: t + 1], equal_nan=True), (output, t)
