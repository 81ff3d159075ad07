"""The synthetic candle generator: schema, determinism, gaps, and the stylized facts of BTC minute data."""

import io
import zipfile
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tradelab.data.errors import DataError
from tradelab.data.ingest.binance import COLUMNS as BINANCE_COLUMNS
from tradelab.data.ingest.binance import write_binance
from tradelab.data.ingest.synth import ar1, generate_bars
from tradelab.data.schema import TS, conform

MINUTE_MS = 60_000


@pytest.fixture(scope="module")
def month() -> pl.DataFrame:
    """30 days from a Monday: enough for seasonality, weekends and fat tails."""
    return generate_bars(30, seed=7, start="2024-03-04")


@pytest.fixture(scope="module")
def abs_returns(month: pl.DataFrame) -> np.ndarray:
    return np.abs(np.log(month["close"] / month["open"]).to_numpy())


def autocorrelation(x: np.ndarray, lags: range) -> np.ndarray:
    x = x - x.mean()
    return np.array([np.mean(x[:-lag] * x[lag:]) for lag in lags]) / np.mean(x * x)


def test_ar1_matches_the_recursion() -> None:
    shocks = np.random.default_rng(0).standard_normal((3, 5000))
    phi = np.array([0.0, 0.9, 0.9995])
    expected = shocks.copy()
    for t in range(1, shocks.shape[1]):
        expected[:, t] += phi * expected[:, t - 1]
    np.testing.assert_allclose(ar1(shocks, phi), expected, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(ar1(shocks[2], 0.9995), expected[2], rtol=1e-11, atol=1e-11)


def test_frame_is_canonical_and_minute_aligned() -> None:
    bars = generate_bars(2, seed=1, start="2024-05-06T12:00")
    assert bars.schema == conform(bars).schema
    assert bars.columns == [TS, "open", "high", "low", "close", "volume", "trades", "quote_volume"]
    ts = bars[TS].dt.epoch("ms").to_numpy()
    assert bars[TS][0].isoformat() == "2024-05-06T12:00:00+00:00"
    assert np.all(np.diff(ts) > 0)
    assert np.all(ts % MINUTE_MS == 0)


def test_ohlc_consistent_positive_and_on_the_tick_grid() -> None:
    bars = generate_bars(3, seed=11, gaps=False)
    o, h, low, c, v = (bars[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    assert o[0] == 30_000.0
    np.testing.assert_array_equal(o[1:], c[:-1])
    assert np.all(h >= np.maximum(o, c))
    assert np.all(low <= np.minimum(o, c))
    assert np.all(low > 0) and np.all(v > 0)
    assert np.mean(h > np.maximum(o, c)) > 0.9  # wicks, not just bodies
    np.testing.assert_allclose(np.round(c * 100), c * 100, rtol=0, atol=1e-6)  # tick 0.01
    np.testing.assert_allclose(np.round(v * 1e5), v * 1e5, rtol=0, atol=1e-6)  # lot 0.00001


def test_range_scales_with_the_move(month: pl.DataFrame, abs_returns: np.ndarray) -> None:
    intrabar_range = ((month["high"] - month["low"]) / month["open"]).to_numpy()
    # for a Brownian bar the mean range is about twice the mean |close - open|
    assert 1.5 < intrabar_range.mean() / abs_returns.mean() < 3.0


def test_volatility_clusters_for_an_hour(abs_returns: np.ndarray) -> None:
    lags = range(1, 61)
    clustered = autocorrelation(abs_returns, lags)
    shuffled = autocorrelation(np.random.default_rng(0).permutation(abs_returns), lags)
    assert clustered.min() > 0.05
    assert clustered.min() > 3 * np.abs(shuffled).max()


def test_heavy_tails(abs_returns: np.ndarray, month: pl.DataFrame) -> None:
    r = np.log(month["close"] / month["open"]).to_numpy()
    excess_kurtosis = np.mean((r - r.mean()) ** 4) / r.var() ** 2 - 3
    assert excess_kurtosis > 3
    assert np.mean(abs_returns > 6 * r.std()) > 1e-4  # a normal law would give ~2e-9


def test_volatility_is_btc_like(abs_returns: np.ndarray) -> None:
    minute_vol = np.sqrt(np.mean(abs_returns**2))
    assert 4e-4 < minute_vol < 1.5e-3
    assert 0.3 < minute_vol * np.sqrt(365 * 1440) < 1.2


def test_intraday_and_weekly_seasonality(month: pl.DataFrame, abs_returns: np.ndarray) -> None:
    hour = month[TS].dt.hour().to_numpy()
    weekend = month[TS].dt.weekday().to_numpy() >= 6
    volume = month["volume"].to_numpy()
    busy, quiet = (hour >= 13) & (hour < 17), hour < 6
    assert abs_returns[busy].mean() > 1.3 * abs_returns[quiet].mean()
    assert volume[busy].mean() > 1.5 * volume[quiet].mean()
    assert abs_returns[weekend].mean() < 0.9 * abs_returns[~weekend].mean()
    assert volume[weekend].mean() < 0.9 * volume[~weekend].mean()


def test_volume_trades_and_quote_volume(month: pl.DataFrame, abs_returns: np.ndarray) -> None:
    volume = month["volume"].to_numpy()
    assert np.corrcoef(volume, abs_returns)[0, 1] > 0.3
    assert np.corrcoef(volume, month["trades"].to_numpy())[0, 1] > 0.7
    assert month["trades"].min() >= 1
    assert 5 < np.median(volume) < 60  # BTC a minute
    vwap = (month["quote_volume"] / month["volume"]).to_numpy()
    assert np.all(vwap >= month["low"].to_numpy() * (1 - 1e-12))
    assert np.all(vwap <= month["high"].to_numpy() * (1 + 1e-12))


def test_gaps_only_remove_bars() -> None:
    full = generate_bars(5, seed=3, gaps=False)
    gapped = generate_bars(5, seed=3)
    assert full.height == 5 * 1440
    assert np.all(np.diff(full[TS].dt.epoch("ms").to_numpy()) == MINUTE_MS)
    steps = np.diff(gapped[TS].dt.epoch("ms").to_numpy())
    assert np.any(steps >= 10 * MINUTE_MS)  # at least one maintenance-like run
    assert 0 < full.height - gapped.height < full.height // 10
    assert gapped.join(full, on=full.columns, how="anti").height == 0
    assert gapped[TS][0] == full[TS][0] and gapped[TS][-1] == full[TS][-1]


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    bars = generate_bars(2, seed=5)
    assert bars.equals(generate_bars(2, seed=5))
    other = generate_bars(2, seed=6, gaps=False)
    mine = generate_bars(2, seed=5, gaps=False)
    assert not mine["close"].equals(other["close"])
    r_mine, r_other = (np.log(b["close"] / b["open"]).to_numpy() for b in (mine, other))
    assert abs(np.corrcoef(r_mine, r_other)[0, 1]) < 0.1


def test_longer_sample_extends_shorter() -> None:
    short = generate_bars(2, seed=9, gaps=False)
    assert short.equals(generate_bars(3, seed=9, gaps=False).head(short.height))


def test_hourly_bars() -> None:
    bars = generate_bars(60, seed=2, timeframe_ms=3_600_000, gaps=False)
    assert bars.height == 60 * 24
    assert np.all(np.diff(bars[TS].dt.epoch("ms").to_numpy()) == 3_600_000)
    r = np.log(bars["close"] / bars["open"]).to_numpy()
    assert 0.3 < r.std() * np.sqrt(365 * 24) < 1.2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"days": 0},
        {"days": 1, "start_price": -1.0},
        {"days": 1, "timeframe_ms": 90_000},
        {"days": 1, "start": "2024-01-01T00:00:30"},
        {"days": 1, "start": "2024-01-01T00:05", "timeframe_ms": 3_600_000},
    ],
)
def test_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(DataError):
        generate_bars(seed=0, **kwargs)


def test_roundtrips_through_a_binance_zip(tmp_path) -> None:
    bars = generate_bars(1, seed=4)
    path = write_binance(bars, tmp_path / "BTCUSDT-1m-2024-01-01.zip")
    with zipfile.ZipFile(path) as archive:
        (name,) = archive.namelist()
        data = archive.read(name)
    assert name == "BTCUSDT-1m-2024-01-01.csv"
    table = pl.read_csv(io.BytesIO(data), has_header=False, new_columns=BINANCE_COLUMNS)
    assert table["open_time"].to_list() == bars[TS].dt.epoch("ms").to_list()
    for column in ("open", "high", "low", "close", "volume", "trades", "quote_volume"):
        assert table[column].to_list() == bars[column].to_list(), column


def test_a_year_without_gaps_has_every_minute() -> None:
    bars = generate_bars(365, seed=0, gaps=False)  # its speed is bench/bench_data.py's
    assert bars.height == 525_600
    assert bars["ts"].diff().drop_nulls().unique().to_list() == [timedelta(minutes=1)]
