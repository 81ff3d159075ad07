"""``tradelab data``: bring candles in, check them, derive timeframes and splits."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ByteSize, TypeAdapter, ValidationError
from rich.console import Console
from rich.live import Live
from rich.table import Table

from tradelab.atomic import atomic_write_text
from tradelab.cli_errors import errors, reports_errors
from tradelab.compute.storage import SyncReport, pull_dataset, push_dataset
from tradelab.data.errors import DataError
from tradelab.data.ingest import Format, GenericOptions, IngestReport, ingest_files
from tradelab.data.ingest.binance import write_binance
from tradelab.data.ingest.download import BASE_URL, Market, download_binance
from tradelab.data.ingest.sources import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_UNPACKED_BYTES, SizeLimits
from tradelab.data.ingest.synth import generate_bars
from tradelab.data.ingest.timestamps import TsUnit
from tradelab.data.manifest import Manifest, SourceRecord
from tradelab.data.repair import repair_dataset
from tradelab.data.resample import resample_dataset
from tradelab.data.schema import timeframe_ms, to_datetime
from tradelab.data.splits import (
    MIN_SEGMENT_COVERAGE,
    SplitPlan,
    chronological_split,
    chronological_split_by_date,
    split_dataset,
    verify_plan,
)
from tradelab.data.splits import walk_forward as walk_forward_split
from tradelab.data.store import ConflictPolicy, Store
from tradelab.data.stream import (
    BINANCE_REST_URL,
    BINANCE_WS_URL,
    StreamIngestor,
    StreamOptions,
    StreamStatus,
)
from tradelab.data.stream.replay import RECORDING, Faults, ReplayExchange, load_recording
from tradelab.data.validate import ValidationReport, validate_dataset
from tradelab.settings import get_settings

app = typer.Typer(help="Ingest, validate, resample and split candle datasets.", no_args_is_help=True)
console = Console()

SymbolArg = Annotated[str, typer.Argument(help="Dataset symbol, e.g. BTCUSDT.")]
TimeframeOpt = Annotated[str, typer.Option("--timeframe", "-t", help="Bar length: 1m, 5m, 1h, 1d...")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
#: ``data validate``'s limits: fail below 90 % coverage and on a gap longer than a day (see its help).
DEFAULT_MIN_COVERAGE, DEFAULT_MAX_GAP = 0.9, "1d"


def _pairs(text: str | None, option: str) -> dict[str, str]:
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(p) != 2 for p in pairs):
        raise DataError(f"{option} takes NAME=COLUMN pairs separated by commas, got {text!r}", column=option)
    return {k.strip(): v.strip() for k, v in pairs}


def _byte_size(text: str | int) -> int:
    """``--max-file-size 500MB``: a byte count with an optional unit (KB, MiB, GB...)."""
    try:
        size = TypeAdapter(ByteSize).validate_python(text)
    except ValidationError:
        size = -1
    if size < 0:
        raise typer.BadParameter(f"{text!r} is not a size: give bytes (1000000) or a size with its unit (500MB, 2GiB)")
    return size


@app.command()
@reports_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files: Binance kline CSV/ZIP, freqtrade JSON, CSV, Parquet.")],
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="Dataset symbol, e.g. BTCUSDT.")],
    timeframe: TimeframeOpt = "1m",
    fmt: Annotated[Format, typer.Option("--format", "-f", help="File format; auto detects it.")] = "auto",
    on_conflict: Annotated[
        ConflictPolicy, typer.Option(help="A bar already stored with other values: error, keep it, or replace it.")
    ] = "error",
    columns: Annotated[str | None, typer.Option(help="Column mapping, e.g. ts=Timestamp,volume=Volume_(BTC).")] = None,
    names: Annotated[str | None, typer.Option(help="Comma-separated column names of a headerless CSV.")] = None,
    ts_unit: Annotated[TsUnit | None, typer.Option(help="Epoch unit of numeric timestamps (else detected).")] = None,
    ts_format: Annotated[str | None, typer.Option(help="strftime format of text timestamps (else inferred).")] = None,
    tz: Annotated[str | None, typer.Option(help="Timezone of naive timestamps, e.g. UTC.")] = None,
    delimiter: Annotated[str, typer.Option(help="CSV field separator.")] = ",",
    sort: Annotated[bool, typer.Option(help="Sort rows by time instead of refusing unsorted files.")] = False,
    max_file_size: Annotated[
        int,
        typer.Option(
            parser=_byte_size,
            metavar="SIZE",
            show_default="1GiB",
            help="Refuse a file larger than this (500MB, 2GiB...) before reading it.",
        ),
    ] = DEFAULT_MAX_FILE_BYTES,
    max_unpacked_size: Annotated[
        int,
        typer.Option(
            parser=_byte_size,
            metavar="SIZE",
            show_default="1GiB",
            help="Refuse a gzip or ZIP file that unpacks to more than this (as soon as it does), "
            "or a Parquet file whose rows take more.",
        ),
    ] = DEFAULT_MAX_UNPACKED_BYTES,
) -> None:
    """Check files and merge them into the store (atomic; re-ingesting the same data is a no-op)."""
    options = GenericOptions(
        columns=_pairs(columns, "--columns"),
        names=[n.strip() for n in names.split(",")] if names else None,
        ts_unit=ts_unit,
        ts_format=ts_format,
        tz=tz,
        delimiter=delimiter,
    )
    report = ingest_files(
        paths,
        symbol,
        timeframe,
        fmt=fmt,
        options=options,
        sort=sort,
        on_conflict=on_conflict,
        progress=True,
        limits=SizeLimits(file_bytes=max_file_size, unpacked_bytes=max_unpacked_size),
    )
    print_ingest(report)


def print_ingest(report: IngestReport) -> None:
    """Files read and what the store write did."""
    symbol, timeframe = report.symbol, report.timeframe
    table = Table("file", "format", "rows", "first bar (UTC)", "last bar (UTC)", "ts unit", title="Ingested files")
    for f in report.files:
        table.add_row(
            f.path.name,
            f.format,
            f"{f.rows:,}",
            f"{f.first_ts:%Y-%m-%d %H:%M}",
            f"{f.last_ts:%Y-%m-%d %H:%M}",
            f.ts_unit,
        )
    console.print(table)
    manifest = report.write.manifest
    if report.identical_duplicates:
        console.print(f"collapsed {report.identical_duplicates:,} identical repeated bars")
    if report.write.changed:
        console.print(
            f"[green]{symbol}/{timeframe}[/]: +{report.added_rows:,} bars, {manifest.rows:,} in total, "
            f"version {manifest.version}"
        )
    else:
        console.print(f"[yellow]{symbol}/{timeframe}[/]: already stored, nothing changed (version {manifest.version})")


@app.command()
@reports_errors
def validate(
    symbol: SymbolArg,
    timeframe: TimeframeOpt = "1m",
    as_json: JsonOpt = False,
    outlier_z: Annotated[float, typer.Option(help="Robust z-score of returns above which a bar is an outlier.")] = 12.0,
    stale_bars: Annotated[int, typer.Option(help="Identical closes in a row that make a stale run.")] = 60,
    min_coverage: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Fail when fewer than this fraction of the bars between the first and the last are stored "
            "(0: never). Below 90 %, more than one bar in ten is missing: a patchy feed, whose rolling features "
            "and returns describe the holes as much as the market. Not stricter: one normal maintenance window "
            "of a few hours already takes 5 % of a three-day sample.",
        ),
    ] = DEFAULT_MIN_COVERAGE,
    max_gap: Annotated[
        str,
        typer.Option(
            help="Fail on a gap longer than this: missing bars (1440) or a duration (90m, 6h, 1d); 'none': never. "
            "Exchange outages and maintenance last minutes to hours; a day or more missing means files joined "
            "across a hole or a broken download: split the dataset or fill the range.",
        ),
    ] = DEFAULT_MAX_GAP,
) -> None:
    """Report coverage and the longest gap first, then duplicates, OHLC problems, outliers and stale runs.

    Exit 1 on hard errors, on coverage below --min-coverage and on a gap longer than --max-gap.
    """
    report = validate_dataset(
        Store(),
        symbol,
        timeframe,
        outlier_z=outlier_z,
        stale_run_bars=stale_bars,
        min_coverage=min_coverage or None,
        max_gap_bars=gap_bars(max_gap, timeframe),
    )
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        print_report(report)
        for finding in report.errors:
            errors.print(f"[red]error:[/] {finding.check}: {finding.message}", highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


def gap_bars(text: str, timeframe: str) -> int | None:
    """``--max-gap`` in missing bars: a count as is, a duration (``6h``) in whole bars; None for ``none``."""
    text = text.strip().lower()
    if text == "none":
        return None
    if text.isdigit():
        return int(text)
    try:
        return timeframe_ms(text) // timeframe_ms(timeframe)
    except DataError:
        raise DataError(
            f"--max-gap {text!r}: give missing bars (1440), a duration (90m, 6h, 1d) or 'none'", column="max_gap"
        ) from None


def print_report(report: ValidationReport) -> None:
    """Human-readable validation report."""
    span = f"{report.first_ts:%Y-%m-%d %H:%M} → {report.last_ts:%Y-%m-%d %H:%M} UTC" if report.rows else "empty"
    console.print(
        f"[bold]{report.symbol}/{report.timeframe}[/] version {report.version}: {report.rows:,} bars, {span}, "
        f"coverage {report.coverage:.2%}"
    )
    if report.gaps.longest:
        g = report.gaps.longest
        console.print(f"longest gap: {g.missing_bars:,} bars from {g.start:%Y-%m-%d %H:%M} to {g.end:%Y-%m-%d %H:%M}")
    if not report.findings:
        console.print("[green]no findings[/]")
        return
    table = Table("severity", "check", "count", "detail", "first cases (UTC)")
    for f in report.findings:
        colour = "red" if f.severity == "error" else "yellow"
        table.add_row(f"[{colour}]{f.severity}[/]", f.check, f"{f.count:,}", f.message, "\n".join(f.examples[:3]))
    console.print(table)
    console.print(
        "[green]OK[/] (warnings only)" if report.ok else f"[red]FAILED[/]: {len(report.errors)} hard error(s)"
    )


@app.command()
@reports_errors
def download(
    source: Annotated[str, typer.Argument(help="Where from; only 'binance' (data.binance.vision) for now.")],
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="Binance symbol, e.g. BTCUSDT.")],
    start: Annotated[str, typer.Option(help="First month (2025-01) or day (2025-01-15), UTC.")],
    end: Annotated[str, typer.Option(help="Last month or day, inclusive; clipped to yesterday.")],
    market: Annotated[Market, typer.Option(help="spot, or um for USD-M futures.")] = "spot",
    timeframe: TimeframeOpt = "1m",
    base_url: Annotated[str, typer.Option(help="Mirror of data.binance.vision.")] = BASE_URL,
    ingest: Annotated[bool, typer.Option(help="Ingest the verified files into the store.")] = True,
) -> None:
    """Download Binance public kline ZIPs (checksums verified, resumable), then ingest them."""
    if source != "binance":
        raise DataError(f"unknown source {source!r}: only 'binance' is supported", column="source")
    paths = download_binance(symbol, start, end, market=market, interval=timeframe, base_url=base_url, progress=True)
    console.print(f"{len(paths)} verified file(s) in {paths[0].parent}")
    if ingest:
        print_ingest(ingest_files(paths, symbol.upper(), timeframe, fmt="binance", progress=True))


@app.command()
@reports_errors
def synth(
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="Dataset symbol.")] = "SYNTH-BTC",
    days: Annotated[float, typer.Option(help="Length of the sample in days.")] = 30.0,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bars.")] = 0,
    start: Annotated[str, typer.Option(help="Open time of the first bar (UTC).")] = "2024-01-01",
    out: Annotated[
        Path | None, typer.Option(help="Write a Binance kline file (.csv or .zip) instead of storing the bars.")
    ] = None,
) -> None:
    """Generate realistic synthetic 1-minute bars (volatility clustering, fat tails, seasonality, gaps)."""
    bars = generate_bars(days, seed=seed, start=start)
    if out is not None:
        write_binance(bars, out)
        console.print(f"wrote {bars.height:,} bars to {out}; ingest with: tradelab data ingest {out} --symbol {symbol}")
        return
    source = SourceRecord(
        name=f"synth(days={days:g}, seed={seed}, start={start})",
        format="synth",
        rows=bars.height,
        ingested_at=datetime.now(UTC),
    )
    result = Store().write(symbol, "1m", bars, sources=[source])
    manifest = result.manifest
    console.print(f"{symbol}/1m: {manifest.rows:,} bars, version {manifest.version}")


@app.command()
@reports_errors
def resample(
    symbol: SymbolArg,
    to: Annotated[str, typer.Option("--to", help="Target timeframe, a multiple of the source: 5m, 1h, 4h, 1d.")],
    source: Annotated[str, typer.Option("--from", help="Source timeframe.")] = "1m",
    drop_partial: Annotated[bool, typer.Option(help="Drop bars whose bucket is not complete.")] = False,
) -> None:
    """Aggregate a dataset to a coarser timeframe, stored as its own dataset (gaps stay gaps)."""
    result = resample_dataset(Store(), symbol, to, source=source, drop_partial=drop_partial)
    m = result.manifest
    state = "" if result.changed else " (unchanged)"
    console.print(
        f"{symbol}/{m.timeframe}: {m.rows:,} bars from {_when(m.first_ts)} to {_when(m.last_ts)} UTC, "
        f"version {m.version}, derived from {m.derived_from}{state}"
    )


@app.command()
@reports_errors
def split(
    symbol: SymbolArg,
    timeframe: TimeframeOpt = "1m",
    train: Annotated[float, typer.Option(help="Fraction of bars for training.")] = 0.7,
    val: Annotated[float, typer.Option(help="Fraction of bars for validation (0: none).")] = 0.15,
    test: Annotated[float, typer.Option(help="Fraction of bars for the test.")] = 0.15,
    val_start: Annotated[str | None, typer.Option(help="Split by date: first day of validation.")] = None,
    test_start: Annotated[str | None, typer.Option(help="Split by date: first day of the test.")] = None,
    end: Annotated[str | None, typer.Option(help="Split by date: end of the test (exclusive).")] = None,
    folds: Annotated[int, typer.Option(help="Walk-forward: number of folds (0: chronological split).")] = 0,
    test_bars: Annotated[int | None, typer.Option(help="Walk-forward: bars per test window.")] = None,
    train_bars: Annotated[
        int | None, typer.Option(help="Walk-forward: rolling train window (default expanding).")
    ] = None,
    val_bars: Annotated[int, typer.Option(help="Walk-forward: bars of validation before each test.")] = 0,
    warmup: Annotated[int, typer.Option(help="Indicator warm-up in bars that evaluation reads before a segment.")] = 0,
    horizon: Annotated[int, typer.Option(help="Bars after a step that its fill and reward read.")] = 1,
    embargo: Annotated[
        int | None, typer.Option(help="Bars left out between segments (default: warmup + horizon).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the plan as JSON.")] = None,
) -> None:
    """Print chronological or walk-forward splits with ranges and row counts, and verify them leak-free."""
    embargo_bars = warmup + horizon if embargo is None else embargo
    if folds:
        fraction = None if test_bars else test
        plan = split_dataset(
            Store(),
            symbol,
            timeframe,
            lambda ts: walk_forward_split(
                ts,
                n_folds=folds,
                test_bars=test_bars,
                test_fraction=fraction,
                train_bars=train_bars,
                val_bars=val_bars,
                embargo_bars=embargo_bars,
            ),
        )
    elif test_start:
        plan = split_dataset(
            Store(),
            symbol,
            timeframe,
            lambda ts: chronological_split_by_date(
                ts, val_start=val_start, test_start=test_start, end=end, embargo_bars=embargo_bars
            ),
        )
    else:
        plan = split_dataset(
            Store(),
            symbol,
            timeframe,
            lambda ts: chronological_split(ts, train=train, val=val, test=test, embargo_bars=embargo_bars),
        )
    print_plan(plan)
    if out is not None:
        atomic_write_text(out, plan.model_dump_json(indent=2))
        console.print(f"plan written to {out}")
    problems = verify_plan(plan, warmup_bars=warmup, horizon_bars=horizon)
    for problem in problems:
        errors.print(f"[red]unsafe:[/] {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    console.print(
        f"[green]verified[/]: no overlap, no leakage (warm-up {warmup} + horizon {horizon} bars), "
        f"no scored segment under {MIN_SEGMENT_COVERAGE:.0%} coverage"
    )


def print_plan(plan: SplitPlan) -> None:
    """The segments of a split plan as a table, with the gaps inside each (the longest: its missing bars)."""
    table = Table(title=f"{plan.dataset} {plan.kind}")
    table.add_column("segment", no_wrap=True)
    for header in ("start (UTC)", "end (UTC, excl.)", "bars", "rows", "gaps", "longest gap", "coverage"):
        table.add_column(header)
    for prefix, segments in plan.sequences():
        for s in segments:
            table.add_row(
                f"{prefix}{s.name}",
                _when(s.start),
                _when(s.end),
                f"{s.rows:,}",
                f"{s.first_row}..{s.last_row}",
                f"{s.gaps:,}",
                f"{s.longest_gap:,} from {_when(s.longest_gap_start)}" if s.gaps else "-",
                f"{s.coverage:.1%}",
            )
    console.print(table)
    console.print(f"embargo: {plan.embargo_bars} bars between segments; dataset has {plan.rows:,} bars")


@app.command("list")
def list_command() -> None:
    """List the datasets in the store."""
    store = Store()
    table = Table("symbol", "timeframe", "rows", "first bar (UTC)", "last bar (UTC)", "version", "derived from")
    for m in store.datasets():
        table.add_row(
            m.symbol, m.timeframe, f"{m.rows:,}", _when(m.first_ts), _when(m.last_ts), m.version, m.derived_from or ""
        )
    console.print(table if table.rows else f"no datasets in {store.root}")


@app.command()
@reports_errors
def info(
    symbol: SymbolArg,
    timeframe: TimeframeOpt = "1m",
    as_json: JsonOpt = False,
) -> None:
    """Show a dataset's manifest: span, version, partitions, sources and repairs."""
    manifest = Store().require(symbol, timeframe)
    if as_json:
        typer.echo(manifest.model_dump_json(indent=2))
        return
    print_manifest(manifest)


def print_manifest(m: Manifest) -> None:
    """Human-readable manifest summary."""
    console.print(
        f"[bold]{m.symbol}/{m.timeframe}[/] version {m.version} ({m.content_hash})\n"
        f"{m.rows:,} bars from {_when(m.first_ts)} to {_when(m.last_ts)} UTC; columns {', '.join(m.columns)}"
    )
    if m.derived_from:
        console.print(f"derived from {m.derived_from}")
    parts = Table("partition", "rows", "first bar", "last bar", title=f"{len(m.partitions)} partitions")
    for p in m.partitions:
        parts.add_row(p.file, f"{p.rows:,}", _when(p.first_ts), _when(p.last_ts))
    console.print(parts)
    if m.sources:
        sources = Table("source", "format", "rows", "sha256", "ingested", title="sources")
        for s in m.sources:
            sources.add_row(s.name, s.format, f"{s.rows:,}", (s.sha256 or "-")[:12], _when(s.ingested_at))
        console.print(sources)
    for r in m.repairs:
        console.print(f"repair {r.kind}: {r.detail}, {r.rows:,} rows, {_when(r.applied_at)}")


@app.command()
@reports_errors
def repair(
    symbol: SymbolArg,
    timeframe: TimeframeOpt = "1m",
    fill_gaps: Annotated[int, typer.Option(help="Forward-fill gaps of at most this many bars (flagged filled).")] = 0,
) -> None:
    """Apply an explicit repair to a stored dataset; it is recorded in the manifest."""
    if fill_gaps <= 0:
        raise DataError("choose a repair, e.g. --fill-gaps 5", column="fill_gaps")
    result = repair_dataset(Store(), symbol, timeframe, fill_gaps_up_to=fill_gaps)
    if not result.changed:
        console.print(
            f"{symbol}/{timeframe}: nothing to fill (no gap of at most {fill_gaps} bars); "
            f"version {result.manifest.version} unchanged"
        )
        return
    inserted = result.manifest.repairs[-1].rows
    console.print(f"{symbol}/{timeframe}: {inserted:,} bars filled, version {result.manifest.version}")


@app.command()
@reports_errors
def push(
    symbol: SymbolArg,
    timeframe: TimeframeOpt = "1m",
    to: Annotated[
        str | None, typer.Option("--to", help="Destination URL (s3://bucket/data, file:///...); <storage_url>/data.")
    ] = None,
) -> None:
    """Upload a dataset to object storage; only files that changed are transferred, the manifest last."""
    print_sync(push_dataset(symbol, timeframe, _sync_url(to, "--to"), progress=True))


@app.command()
@reports_errors
def pull(
    symbol: SymbolArg,
    timeframe: TimeframeOpt = "1m",
    source: Annotated[
        str | None, typer.Option("--from", help="Source URL (s3://bucket/data, file:///...); <storage_url>/data.")
    ] = None,
) -> None:
    """Download a dataset from object storage, verifying every file's SHA-256; a failed pull changes nothing."""
    print_sync(pull_dataset(symbol, timeframe, _sync_url(source, "--from"), progress=True))


def _sync_url(url: str | None, option: str) -> str:
    if url:
        return url
    storage_url = get_settings().storage_url
    if not storage_url:
        raise DataError(f"no storage URL: pass {option} URL or set TRADELAB_STORAGE_URL", column=option)
    return f"{storage_url.rstrip('/')}/data"


def print_sync(report: SyncReport) -> None:
    """One line: what a push or pull moved."""
    arrow = "→" if report.direction == "push" else "←"
    console.print(
        f"[green]{report.symbol}/{report.timeframe}[/] {arrow} {report.url}: {report.transferred} transferred, "
        f"{report.skipped} unchanged, {report.removed} removed, {report.nbytes:,} bytes, version {report.version}",
        highlight=False,
        soft_wrap=True,
    )


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value is not None else "-"


@app.command()
@reports_errors
def stream(
    exchange: Annotated[str, typer.Argument(help="Exchange; only 'binance' (its kline websocket format) for now.")],
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="Exchange symbol, e.g. BTCUSDT.")],
    ws_url: Annotated[str, typer.Option(help="Websocket base; '/<symbol>@kline_1m' is appended.")] = BINANCE_WS_URL,
    rest_url: Annotated[str, typer.Option(help="REST base serving /api/v3/klines, for backfill.")] = BINANCE_REST_URL,
    store_root: Annotated[
        Path | None, typer.Option("--store", help="Store folder (default: $TRADELAB_HOME/data).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Backfill from this time (UTC) when the dataset is empty; else start live.")
    ] = None,
    max_bars: Annotated[int | None, typer.Option(help="Stop after adding this many bars.")] = None,
    until: Annotated[
        str | None, typer.Option(help="Stop once every bar opening before this time (UTC, data time) is stored.")
    ] = None,
    backoff: Annotated[float, typer.Option(help="First reconnect delay in seconds (doubles up to 60).")] = 1.0,
    heartbeat: Annotated[float, typer.Option(help="Seconds between status file updates when idle.")] = 5.0,
) -> None:
    """Stream closed 1-minute klines into the store, backfilling missed minutes; status in <dataset>/stream.json."""
    if exchange != "binance":
        raise DataError(f"unknown exchange {exchange!r}: only 'binance' is supported", column="exchange")
    options = StreamOptions(
        symbol=symbol.upper(),
        ws_url=ws_url,
        rest_url=rest_url,
        since=to_datetime(since) if since else None,
        max_bars=max_bars,
        until=to_datetime(until) if until else None,
        backoff_s=backoff,
        max_backoff_s=max(60.0, backoff),
        heartbeat_s=heartbeat,
    )
    store = Store(store_root) if store_root is not None else Store()
    console.print(f"streaming {options.symbol} 1m klines from {ws_url} into {store.dataset_dir(options.symbol)}")
    ingestor = StreamIngestor(store, options)
    with Live(console=console, refresh_per_second=4, transient=True) as live:
        ingestor.on_status = lambda s: live.update(_stream_line(s))
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C or SIGTERM: state "stopped"
            asyncio.run(_until_terminated(ingestor))
    console.print(_stream_line(ingestor.status), highlight=False)


async def _until_terminated(ingestor: StreamIngestor) -> None:
    """Run the ingestor; SIGTERM (how a supervisor stops it) cancels it like Ctrl-C does."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await ingestor.run()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _stream_line(s: StreamStatus) -> str:
    last = f"{s.last_bar_ts:%Y-%m-%d %H:%M}" if s.last_bar_ts else "-"
    lag = f"{s.lag_s:,.1f} s" if s.lag_s is not None else "-"
    return (
        f"{s.symbol} {s.state}: last bar {last} UTC, lag {lag}, +{s.bars_written} bars ({s.backfilled} backfilled), "
        f"{s.duplicates} duplicates, {s.out_of_order} out of order, {s.conflicts} conflicts, "
        f"{s.malformed} malformed, {s.reconnects} reconnects"
    )


@app.command("stream-replay")
def stream_replay(
    file: Annotated[Path, typer.Option(help="Recorded kline messages, one JSON per line.")] = RECORDING,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 0,
    interval: Annotated[float, typer.Option(help="Seconds between messages.")] = 0.25,
    disconnect_every: Annotated[int, typer.Option(help="Drop the connection every N messages (0: never).")] = 0,
    missed: Annotated[int, typer.Option(help="Messages that pass while a dropped client is away.")] = 8,
    duplicate_every: Annotated[int, typer.Option(help="Send every N-th message twice (0: never).")] = 0,
    out_of_order_every: Annotated[int, typer.Option(help="Send every N-th message late (0: never).")] = 0,
    malformed_every: Annotated[int, typer.Option(help="Insert a malformed message every N (0: never).")] = 0,
    rebase: Annotated[bool, typer.Option(help="Move the recording so that its last bar closes now.")] = True,
    exit_when_done: Annotated[bool, typer.Option(help="Exit once all is played and the client left.")] = False,
) -> None:
    """Serve a local fake Binance (kline websocket + REST klines) replaying a recording with scripted faults."""
    messages = load_recording(file)
    if rebase:
        now_minute = int(time.time() * 1000) // 60_000 * 60_000
        messages = load_recording(file, shift_ms=now_minute - (messages[-1]["k"]["T"] + 1))
    faults = Faults.every(
        len(messages),
        disconnect=disconnect_every,
        duplicate=duplicate_every,
        out_of_order=out_of_order_every,
        malformed=malformed_every,
        missed_on_disconnect=missed,
    )
    with ReplayExchange(messages, faults=faults, interval_s=interval, host=host, port=port) as replay:
        typer.echo(f"replaying {len(messages)} {replay.symbol} messages on {replay.ws_url} and {replay.rest_url}")
        typer.echo(
            f"stream it with: tradelab data stream binance --symbol {replay.symbol} "
            f"--ws-url {replay.ws_url} --rest-url {replay.rest_url}"
        )
        try:
            while not (exit_when_done and replay.done):
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
