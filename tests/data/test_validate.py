"""The validation report: each check finds what it should, hard errors vs warnings."""

from __future__ import annotations

import polars as pl
import pytest

from tests.bars import make_bars
from tradelab.data.store import Store
from tradelab.data.validate import validate_bars, validate_dataset


def _checks(bars: pl.DataFrame, **kw: float) -> dict[str, tuple[str, int]]:
    return {f.check: (f.severity, f.count) for f in validate_bars(bars, "1m", **kw).findings}


def test_clean_bars_have_no_findings() -> None:
    report = validate_bars(make_bars(1000))
    assert report.ok and report.findings == [] and report.coverage == 1.0 and report.expected_bars == 1000


def test_gaps_are_counted_measured_and_located() -> None:
    bars = make_bars(1000)
    holes = bars.filter(~pl.int_range(pl.len()).is_between(100, 109) & ~pl.int_range(pl.len()).is_between(500, 502))
    report = validate_bars(holes)
    assert report.ok
    assert (report.gaps.count, report.gaps.missing_bars) == (2, 13)
    assert report.gaps.longest is not None and report.gaps.longest.missing_bars == 10
    assert report.gaps.longest.start == bars["ts"][100] and report.gaps.longest.end == bars["ts"][109]
    assert report.expected_bars == 1000 and report.rows == 987


def test_duplicates_identical_are_warnings_conflicting_are_errors() -> None:
    bars = make_bars(100)
    conflicting = bars[10:12].with_columns(pl.col("volume") + 1)
    report = validate_bars(pl.concat([bars, bars[50:53], conflicting]).sort("ts"))
    assert (report.duplicates_identical, report.duplicates_conflicting) == (3, 2)
    checks = _checks(pl.concat([bars, bars[50:53], conflicting]).sort("ts"))
    assert checks["duplicates_identical"] == ("warning", 3)
    assert checks["duplicates_conflicting"] == ("error", 2)
    assert not report.ok


@pytest.mark.parametrize(
    "change, check",
    [
        (pl.col("high") * 0.5, "ohlc_inconsistent"),
        (pl.col("high") * -1, "non_positive_prices"),
    ],
)
def test_price_errors(change: pl.Expr, check: str) -> None:
    bars = make_bars(50)
    broken = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(change).otherwise(pl.col("high")).alias("high")
    )
    checks = _checks(broken)
    assert checks[check][0] == "error"


def test_negative_volume_misaligned_and_unsorted_timestamps_are_errors() -> None:
    bars = make_bars(50)
    assert _checks(bars.with_columns(volume=pl.col("volume") - 100))["negative_volume"] == ("error", 50)
    shifted = bars.with_columns(ts=pl.col("ts") + pl.duration(seconds=30))
    assert _checks(shifted)["misaligned_timestamps"] == ("error", 50)
    assert _checks(pl.concat([bars[10:], bars[:10]]))["unsorted_timestamps"] == ("error", 1)


def test_non_utc_timestamps_are_an_error() -> None:
    bars = make_bars(10).with_columns(pl.col("ts").dt.convert_time_zone("Europe/Paris"))
    assert _checks(bars)["non_utc_timestamps"][0] == "error"


def test_outliers_stale_runs_and_zero_volume_are_warnings() -> None:
    bars = make_bars(2000)
    spike = pl.int_range(pl.len()) == 1000
    bars = bars.with_columns(
        close=pl.when(spike).then(pl.col("close") * 1.2).otherwise(pl.col("close")),
        high=pl.when(spike).then(pl.col("close") * 1.2).otherwise(pl.col("high")),
    )
    flat = pl.int_range(pl.len()).is_between(1500, 1589)
    bars = bars.with_columns(
        close=pl.when(flat).then(pl.lit(100.0)).otherwise(pl.col("close")),
        open=pl.when(flat).then(pl.lit(100.0)).otherwise(pl.col("open")),
        high=pl.when(flat).then(pl.max_horizontal(pl.col("high"), pl.lit(100.0))).otherwise(pl.col("high")),
        low=pl.when(flat).then(pl.min_horizontal(pl.col("low"), pl.lit(100.0))).otherwise(pl.col("low")),
        volume=pl.when(flat).then(0.0).otherwise(pl.col("volume")),
    )
    report = validate_bars(bars, stale_run_bars=60)
    checks = {f.check: f for f in report.findings}
    assert report.ok
    assert checks["outliers"].severity == "warning" and checks["outliers"].count >= 1
    assert str(bars["ts"][1000].isoformat()) in checks["outliers"].examples
    assert checks["stale_runs"].count == 1 and checks["stale_runs"].examples[0] == bars["ts"][1500].isoformat()
    assert report.zero_volume_bars == 90


def test_report_serialises_with_ok_flag(store: Store) -> None:
    store.write("X", "1m", make_bars(100))
    report = validate_dataset(store, "X")
    data = report.model_dump(mode="json")
    assert data["ok"] is True and data["symbol"] == "X" and data["version"] == store.require("X").version


def test_coverage_and_the_longest_gap_lead_and_fail_only_past_the_callers_limits() -> None:
    bars = make_bars(3000)
    holes = bars.filter(~pl.int_range(pl.len()).is_between(100, 101) & ~pl.int_range(pl.len()).is_between(1000, 2499))
    report = validate_bars(holes)  # the env's call: no limits, a hole its gap policy handles is no error
    assert report.ok and [f.check for f in report.findings[:2]] == ["coverage", "gaps"]
    assert list(report.model_dump())[:5] == ["symbol", "timeframe", "version", "coverage", "gaps"]
    assert next(iter(report.model_dump()["gaps"])) == "longest"
    assert report.coverage == pytest.approx(1498 / 3000)
    longest = report.findings[1]
    assert "the longest: 1,500 bars from 2024-01-01T16:40:00+00:00 to 2024-01-02T17:39:00+00:00" in longest.message
    assert longest.examples[0] == "2024-01-01T16:40:00+00:00"

    limited = validate_bars(holes, min_coverage=0.49, max_gap_bars=1500)
    assert limited.ok and (limited.min_coverage, limited.max_gap_bars) == (0.49, 1500)
    strict = validate_bars(holes, min_coverage=0.9, max_gap_bars=1499)
    assert [(f.check, f.severity) for f in strict.errors] == [("coverage", "error"), ("gaps", "error")]
    assert "below the minimum 90%" in strict.errors[0].message
    assert "more than the maximum 1,499" in strict.errors[1].message
