from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tradelab.data.errors import DataError
from tradelab.data.resample import resample_bars, resample_dataset
from tradelab.data.schema import conform
from tradelab.data.store import Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def bars_at(minutes: list[int], step: timedelta = timedelta(minutes=1), **extra: list) -> pl.DataFrame:
    """Bars at ``T0 + m * step`` with values that are easy to aggregate by hand: open = 100 + m."""
    m = np.asarray(minutes, dtype=float)
    return conform(
        pl.DataFrame(
            {
                "ts": [T0 + k * step for k in minutes],
                "open": 100 + m,
                "high": 101 + m + m % 3,
                "low": 99 + m - m % 2,
                "close": 100.5 + m,
                "volume": m + 1,
                **extra,
            }
        )
    )


def random_minute_bars(n: int, seed: int = 0, drop_every: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    minutes = [m for m in range(n) if not drop_every or m % drop_every]
    close = 100 + np.cumsum(rng.normal(0, 0.1, len(minutes)))
    open_ = np.concatenate([[100.0], close[:-1]])
    return conform(
        pl.DataFrame(
            {
                "ts": [T0 + timedelta(minutes=m) for m in minutes],
                "open": open_,
                "high": np.maximum(open_, close) + rng.uniform(0, 0.05, len(minutes)),
                "low": np.minimum(open_, close) - rng.uniform(0, 0.05, len(minutes)),
                "close": close,
                "volume": rng.integers(0, 1000, len(minutes)).astype(float),
                "trades": rng.integers(0, 50, len(minutes)),
            }
        )
    )


def test_five_minute_bars_by_hand():
    bars = bars_at(list(range(10)), trades=[1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    expected = conform(
        pl.DataFrame(
            {
                "ts": [T0, T0 + timedelta(minutes=5)],
                # open of minute 0 / 5; high max(101+m+m%3); low min(99+m-m%2); close of minute 4 / 9
                "open": [100.0, 105.0],
                "high": [106.0, 111.0],
                "low": [99.0, 103.0],
                "close": [104.5, 109.5],
                "volume": [15.0, 40.0],
                "trades": [15, 40],
            }
        )
    )
    assert_frame_equal(resample_bars(bars, "1m", "5m"), expected)
    # input order does not matter
    assert_frame_equal(resample_bars(bars.reverse(), "1m", "5m"), expected)


def test_buckets_are_epoch_aligned_and_labelled_by_open_time():
    hourly = bars_at(list(range(3, 30)), step=timedelta(hours=1))  # 03:00 on day 1 ... 05:00 on day 2
    four_hour = resample_bars(hourly, "1h", "4h")
    assert four_hour["ts"].to_list() == [T0 + timedelta(hours=h) for h in range(0, 29, 4)]
    # the first bucket only holds 03:00; the second holds 04:00 ... 07:00
    assert four_hour["open"].to_list()[:2] == [103.0, 104.0]
    assert four_hour["close"].to_list()[:2] == [103.5, 107.5]

    daily = resample_bars(bars_at(list(range(-2, 3))), "1m", "1d")  # 23:58 ... 00:02
    assert daily["ts"].to_list() == [T0 - timedelta(days=1), T0]
    assert daily["open"].to_list() == [98.0, 100.0]
    assert daily["close"].to_list() == [99.5, 102.5]


def test_gap_inside_a_bucket_keeps_the_partial_bar_unless_dropped():
    bars = bars_at([0, 1, 2, 3, 4, 5, 6, 8, 9])  # minute 7 missing
    kept = resample_bars(bars, "1m", "5m")
    assert kept.height == 2
    assert kept.drop("ts").row(1, named=True) == {
        "open": 105.0,
        "high": 111.0,
        "low": 103.0,
        "close": 109.5,
        "volume": 6.0 + 7.0 + 9.0 + 10.0,
    }
    dropped = resample_bars(bars, "1m", "5m", drop_partial=True)
    assert dropped["ts"].to_list() == [T0]


def test_gap_spanning_whole_buckets_invents_no_bar():
    bars = bars_at([0, 1, 2, 3, 4, 20, 21, 22, 23, 24, 25])
    resampled = resample_bars(bars, "1m", "5m")
    assert resampled["ts"].to_list() == [T0 + timedelta(minutes=m) for m in (0, 20, 25)]
    assert resample_bars(bars, "1m", "5m", drop_partial=True)["ts"].to_list() == [
        T0 + timedelta(minutes=m) for m in (0, 20)
    ]


def test_nulls_and_filled_flags():
    bars = bars_at(
        list(range(10)),
        trades=[1, None, 1, 1, 1, 1, 1, 1, 1, 1],
        filled=[False, False, False, False, False, False, False, True, False, False],
    )
    resampled = resample_bars(bars, "1m", "5m")
    assert resampled["trades"].to_list() == [None, 5]  # the first total is unknown
    assert resampled["filled"].to_list() == [False, True]
    assert resampled.columns == ["ts", "open", "high", "low", "close", "volume", "trades", "filled"]


@pytest.mark.parametrize(("source", "target"), [("5m", "7m"), ("5m", "5m"), ("1h", "30m"), ("1h", "90m")])
def test_target_must_be_a_larger_whole_multiple(source, target):
    with pytest.raises(DataError) as info:
        resample_bars(bars_at([0]), source, target)
    assert info.value.column == "target_timeframe"
    assert target in str(info.value)


def test_misaligned_or_duplicate_bars_are_refused():
    misaligned = bars_at([0, 1]).with_columns(pl.col("ts") + timedelta(seconds=30))
    with pytest.raises(DataError, match="aligned to 1m") as info:
        resample_bars(misaligned, "1m", "5m")
    assert info.value.column == "ts"
    with pytest.raises(DataError, match="duplicate"):
        resample_bars(pl.concat([bars_at([0, 1]), bars_at([1])]), "1m", "5m")


@pytest.mark.parametrize("target", ["5m", "15m", "1h", "4h", "1d"])
def test_totals_are_conserved(target):
    bars = random_minute_bars(3 * 24 * 60, drop_every=97)  # three days with scattered gaps
    resampled = resample_bars(bars, "1m", target)
    assert resampled["volume"].sum() == bars["volume"].sum()
    assert resampled["trades"].sum() == bars["trades"].sum()
    assert resampled["high"].max() == bars["high"].max()
    assert resampled["low"].min() == bars["low"].min()
    assert resampled["open"][0] == bars["open"][0]
    assert resampled["close"][-1] == bars["close"][-1]


def test_a_future_bar_does_not_change_earlier_bars():
    bars = random_minute_bars(6 * 60)
    before = resample_bars(bars, "1m", "1h")
    changed_at = 150  # minute 02:30, inside the 02:00 bucket
    changed = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == changed_at).then(pl.col(c) * 2).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close", "volume")
    )
    after = resample_bars(changed, "1m", "1h")
    assert_frame_equal(after.head(2), before.head(2))  # 00:00 and 01:00 end before 02:30
    assert after.row(2) != before.row(2)
    # the same with the future cut off entirely
    assert_frame_equal(resample_bars(bars.head(changed_at), "1m", "1h").head(2), before.head(2))


def test_resample_dataset_stores_a_derived_timeframe(tmp_path):
    store = Store(tmp_path)
    bars = random_minute_bars(2 * 24 * 60, drop_every=113)
    source = store.write("BTCUSDT", "1m", bars).manifest

    result = resample_dataset(store, "BTCUSDT", "60m")
    assert result.changed
    assert result.manifest.timeframe == "1h"
    assert result.manifest.derived_from == f"1m@{source.content_hash}"
    assert store.require("BTCUSDT", "1h").derived_from == f"1m@{source.content_hash}"
    assert_frame_equal(store.load("BTCUSDT", "1h"), resample_bars(bars, "1m", "1h"))

    # a timeframe can derive from another derived one; each hour holds a bar, so both days are full
    daily = resample_dataset(store, "BTCUSDT", "1d", source="1h", drop_partial=True)
    assert daily.manifest.derived_from == f"1h@{result.manifest.content_hash}"
    assert store.load("BTCUSDT", "1d")["volume"].to_list() == [
        bars.filter(pl.col("ts").dt.day() == day)["volume"].sum() for day in (1, 2)
    ]
    assert store.load("BTCUSDT", "1h").height == 48
