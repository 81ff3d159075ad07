"""``tradelab data``: bring candles in, check them, derive timeframes and splits."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tradelab.data.errors import DataError
from tradelab.data.ingest import Format, GenericOptions, ingest_files
from tradelab.data.ingest.timestamps import TsUnit
from tradelab.data.manifest import Manifest
from tradelab.data.repair import repair_dataset
from tradelab.data.store import ConflictPolicy, Store
from tradelab.data.validate import ValidationReport, validate_dataset

app = typer.Typer(help="Ingest, validate, resample and split candle datasets.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

SymbolArg = Annotated[str, typer.Argument(help="Dataset symbol, e.g. BTCUSDT.")]
TimeframeOpt = Annotated[str, typer.Option("--timeframe", "-t", help="Bar length: 1m, 5m, 1h, 1d...")]


def reports_data_errors(command: F) -> F:
    """Turn a :class:`DataError` into a one-line red message and exit status 2 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DataError as exc:
            errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _pairs(text: str | None, option: str) -> dict[str, str]:
    if not text:
        return {}
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(p) != 2 for p in pairs):
        raise DataError(f"{option} takes NAME=COLUMN pairs separated by commas, got {text!r}", column=option)
    return {k.strip(): v.strip() for k, v in pairs}


@app.command()
@reports_data_errors
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
        paths, symbol, timeframe, fmt=fmt, options=options, sort=sort, on_conflict=on_conflict, progress=True
    )
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
@reports_data_errors
def validate(
    symbol: SymbolArg,
    timeframe: TimeframeOpt = "1m",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    outlier_z: Annotated[float, typer.Option(help="Robust z-score of returns above which a bar is an outlier.")] = 12.0,
    stale_bars: Annotated[int, typer.Option(help="Identical closes in a row that make a stale run.")] = 60,
) -> None:
    """Report gaps, duplicates, OHLC problems, outliers and stale runs; exit 1 on hard errors."""
    report = validate_dataset(Store(), symbol, timeframe, outlier_z=outlier_z, stale_run_bars=stale_bars)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        print_report(report)
    if not report.ok:
        raise typer.Exit(1)


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
@reports_data_errors
def info(
    symbol: SymbolArg,
    timeframe: TimeframeOpt = "1m",
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
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
            sources.add_row(s.name, s.format, f"{s.rows:,}", s.sha256[:12], _when(s.ingested_at))
        console.print(sources)
    for r in m.repairs:
        console.print(f"repair {r.kind}: {r.detail}, {r.rows:,} rows, {_when(r.applied_at)}")


@app.command()
@reports_data_errors
def repair(
    symbol: SymbolArg,
    timeframe: TimeframeOpt = "1m",
    fill_gaps: Annotated[int, typer.Option(help="Forward-fill gaps of at most this many bars (flagged filled).")] = 0,
) -> None:
    """Apply an explicit repair to a stored dataset; it is recorded in the manifest."""
    if fill_gaps <= 0:
        raise DataError("choose a repair, e.g. --fill-gaps 5", column="fill_gaps")
    result = repair_dataset(Store(), symbol, timeframe, fill_gaps_up_to=fill_gaps)
    inserted = result.manifest.repairs[-1].rows if result.changed else 0
    console.print(f"{symbol}/{timeframe}: {inserted:,} bars filled, version {result.manifest.version}")


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value is not None else "-"
