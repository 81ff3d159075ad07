"""Data-quality report for a bar frame or a stored dataset: hard errors and warnings, typed.

Hard errors (the env refuses such data): conflicting duplicates, OHLC inconsistencies, non-positive
prices, negative volume, misaligned or unsorted timestamps, a non-UTC timestamp column.
Warnings: gaps, identical duplicates, outliers, stale runs, zero-volume bars.

Coverage and the longest gap come first, in the report and in its findings: they say whether the data is
one market history at all. They are warnings unless the caller sets limits (``min_coverage``,
``max_gap_bars``), which make a breach an error. ``tradelab data validate`` sets them by default; the env
does not, since its gap policy (:mod:`tradelab.data.gaps`) already keeps episodes, features and metrics
off the holes, and it must not refuse data that policy handles.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import polars as pl
from pydantic import BaseModel, Field, computed_field

from tradelab.data.schema import PRICE_COLUMNS, TS, timeframe_ms
from tradelab.data.store import Store

Severity = Literal["error", "warning"]
_MAX_EXAMPLES = 5


class Gap(BaseModel):
    """A run of missing bars: ``start`` is the first missing bar's open time, ``end`` the last one's."""

    start: datetime
    end: datetime
    missing_bars: int


class GapSummary(BaseModel):
    """All gaps: the longest, how many, how many bars they miss in total, and the first 100 of them."""

    longest: Gap | None = None
    count: int = 0
    missing_bars: int = 0
    gaps: list[Gap] = Field(default_factory=list)


class Finding(BaseModel):
    """One check that found something."""

    check: str
    severity: Severity
    count: int
    message: str
    examples: list[str] = Field(default_factory=list, description="bar open times (UTC) of the first cases")


class ValidationReport(BaseModel):
    """What :func:`validate_bars` found. ``ok`` is False when any finding is an error."""

    symbol: str | None = None
    timeframe: str
    version: str | None = None
    coverage: float = Field(description="rows / bars expected between the first and the last bar")
    gaps: GapSummary
    min_coverage: float | None = Field(None, description="coverage below this is an error; None: no limit")
    max_gap_bars: int | None = Field(None, description="a gap of more missing bars is an error; None: no limit")
    rows: int
    first_ts: datetime | None
    last_ts: datetime | None
    expected_bars: int
    duplicates_identical: int
    duplicates_conflicting: int
    zero_volume_bars: int
    outlier_threshold: float
    stale_run_bars: int
    findings: list[Finding]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when no hard error was found."""
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        """The hard errors."""
        return [f for f in self.findings if f.severity == "error"]


def validate_bars(
    bars: pl.DataFrame,
    timeframe: str = "1m",
    *,
    outlier_z: float = 12.0,
    stale_run_bars: int = 60,
    symbol: str | None = None,
    version: str | None = None,
    min_coverage: float | None = None,
    max_gap_bars: int | None = None,
) -> ValidationReport:
    """Check a frame of canonical bars (any order, duplicates allowed) and report what is wrong.

    :param outlier_z: robust z-score (median/MAD of log returns) above which a return is an outlier.
    :param stale_run_bars: a run of at least this many bars with an identical close is stale.
    :param min_coverage: coverage (stored / expected bars) below this is an error, not a warning.
    :param max_gap_bars: a gap of more missing bars than this is an error, not a warning.
    """
    step = timeframe_ms(timeframe)
    findings: list[Finding] = []
    ts_type = bars.schema[TS]
    if not isinstance(ts_type, pl.Datetime) or ts_type.time_zone != "UTC":
        findings.append(_finding("non_utc_timestamps", "error", bars.height, f"ts is {ts_type}, not datetime in UTC"))
    frame = bars.with_columns(_ms=pl.col(TS).dt.epoch("ms"), _row=pl.int_range(pl.len()))

    unsorted = frame.filter(pl.col("_ms") < pl.col("_ms").shift(1))
    _add(findings, "unsorted_timestamps", "error", unsorted, "bars out of time order")
    frame = frame.sort("_ms", "_row")

    values = ["open", "high", "low", "close", "volume"]
    repeat = pl.col("_ms") == pl.col("_ms").shift(1)
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(1)) for c in values)
    dup_identical = frame.filter(repeat & same)
    dup_conflicting = frame.filter(repeat & ~same)
    _add(findings, "duplicates_conflicting", "error", dup_conflicting, "timestamps repeated with other values")
    _add(findings, "duplicates_identical", "warning", dup_identical, "timestamps repeated with identical values")
    frame = frame.unique("_ms", keep="first", maintain_order=True)

    body_top, body_bottom = pl.max_horizontal("open", "close"), pl.min_horizontal("open", "close")
    inconsistent = frame.filter(
        (pl.col("high") < pl.col("low")) | (pl.col("high") < body_top) | (pl.col("low") > body_bottom)
    )
    _add(findings, "ohlc_inconsistent", "error", inconsistent, "high below low/open/close or low above open/close")
    non_positive = frame.filter(pl.any_horizontal(pl.col(c) <= 0 for c in PRICE_COLUMNS))
    _add(findings, "non_positive_prices", "error", non_positive, "prices at or below zero")
    _add(findings, "negative_volume", "error", frame.filter(pl.col("volume") < 0), "negative volume")
    _add(
        findings,
        "misaligned_timestamps",
        "error",
        frame.filter(pl.col("_ms") % step != 0),
        f"not on the {timeframe} grid",
    )

    zero_volume = frame.filter(pl.col("volume") == 0)
    _add(findings, "zero_volume", "warning", zero_volume, "bars with zero volume")

    log_return = (pl.col("close") / pl.col("close").shift(1)).log()
    returns = frame.select(r=log_return)["r"]
    median = returns.median() or 0.0
    mad = (returns - median).abs().median() or 0.0
    if mad > 0:
        robust_z = frame.with_columns(_z=((log_return - median) / (1.4826 * mad)).abs())
        outliers = robust_z.filter(pl.col("_z") > outlier_z)
        _add(findings, "outliers", "warning", outliers, f"returns with robust z-score above {outlier_z:g}")

    runs = frame.with_columns(_run=pl.col("close").rle_id()).with_columns(_len=pl.len().over("_run"))
    stale = runs.filter(pl.col("_len") >= stale_run_bars).unique("_run", keep="first", maintain_order=True)
    _add(findings, "stale_runs", "warning", stale, f"runs of {stale_run_bars}+ bars with an identical close")

    first_ms, last_ms = (frame["_ms"].min(), frame["_ms"].max()) if frame.height else (None, None)
    expected = (last_ms - first_ms) // step + 1 if first_ms is not None else 0  # type: ignore[operator]
    coverage = frame.height / expected if expected else 0.0
    gaps = _gaps(frame, step)
    findings[:0] = _span_findings(frame.height, expected, coverage, gaps, min_coverage, max_gap_bars)
    return ValidationReport(
        symbol=symbol,
        timeframe=timeframe,
        version=version,
        rows=frame.height,
        coverage=coverage,
        gaps=gaps,
        min_coverage=min_coverage,
        max_gap_bars=max_gap_bars,
        first_ts=frame[TS].min() if frame.height else None,  # type: ignore[arg-type]
        last_ts=frame[TS].max() if frame.height else None,  # type: ignore[arg-type]
        expected_bars=expected,
        duplicates_identical=dup_identical.height,
        duplicates_conflicting=dup_conflicting.height,
        zero_volume_bars=zero_volume.height,
        outlier_threshold=outlier_z,
        stale_run_bars=stale_run_bars,
        findings=findings,
    )


def validate_dataset(
    store: Store, symbol: str, timeframe: str = "1m", **options: float | int | None
) -> ValidationReport:
    """:func:`validate_bars` over a stored dataset, labelled with its symbol and version."""
    manifest = store.require(symbol, timeframe)
    bars = store.load(symbol, timeframe)
    return validate_bars(bars, timeframe, symbol=symbol, version=manifest.version, **options)  # type: ignore[arg-type]


def _span_findings(
    rows: int, expected: int, coverage: float, gaps: GapSummary, min_coverage: float | None, max_gap_bars: int | None
) -> list[Finding]:
    """The coverage and gap findings, which lead the report: errors when they breach the caller's limits."""
    findings = []
    if gaps.longest:
        short = min_coverage is not None and coverage < min_coverage
        limit = f", below the minimum {min_coverage:.0%}" if short else ""
        findings.append(
            _finding(
                "coverage",
                "error" if short else "warning",
                expected - rows,
                f"coverage {coverage:.2%}: {rows:,} of {expected:,} bars between the first and the last{limit}",
            )
        )
        g = gaps.longest
        long = max_gap_bars is not None and g.missing_bars > max_gap_bars
        findings.append(
            _finding(
                "gaps",
                "error" if long else "warning",
                gaps.count,
                f"{gaps.count:,} gap(s), {gaps.missing_bars:,} missing bars; the longest: {g.missing_bars:,} bars "
                f"from {g.start.isoformat()} to {g.end.isoformat()}"
                + (f", more than the maximum {max_gap_bars:,}" if long else ""),
                [x.start.isoformat() for x in [g, *(x for x in gaps.gaps if x != g)][:_MAX_EXAMPLES]],
            )
        )
    return findings


def _gaps(frame: pl.DataFrame, step: int) -> GapSummary:
    jumps = frame.select(
        start=pl.col(TS).shift(1) + pl.duration(milliseconds=step),
        end=pl.col(TS) - pl.duration(milliseconds=step),
        missing=(pl.col("_ms") - pl.col("_ms").shift(1)) // step - 1,
    ).filter(pl.col("missing") > 0)
    if jumps.height == 0:
        return GapSummary()
    gaps = [Gap(start=s, end=e, missing_bars=m) for s, e, m in jumps.head(100).iter_rows()]
    longest_row = jumps.row(int(jumps["missing"].arg_max()), named=True)  # type: ignore[arg-type]
    return GapSummary(
        count=jumps.height,
        missing_bars=int(jumps["missing"].sum()),
        longest=Gap(start=longest_row["start"], end=longest_row["end"], missing_bars=longest_row["missing"]),
        gaps=gaps,
    )


def _add(findings: list[Finding], check: str, severity: Severity, hits: pl.DataFrame, what: str) -> None:
    if hits.height:
        examples = [t.isoformat() for t in hits[TS].head(_MAX_EXAMPLES)]
        findings.append(_finding(check, severity, hits.height, f"{hits.height} {what}", examples))


def _finding(check: str, severity: Severity, count: int, message: str, examples: list[str] | None = None) -> Finding:
    return Finding(check=check, severity=severity, count=count, message=message, examples=examples or [])
