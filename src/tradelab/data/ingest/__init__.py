"""Ingestion: raw files (Binance klines, freqtrade JSON, generic CSV/Parquet) -> checked canonical bars -> store.

Every file of one ingest is read and checked before anything is written, and the store write is
atomic: a bad file, a conflict or a crash leaves the stored dataset exactly as it was.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import polars as pl
from rich.progress import Progress

from tradelab.data.errors import ConflictError, DataError
from tradelab.data.ingest.binance import looks_like_binance, read_binance
from tradelab.data.ingest.checks import check_bars, collapse_duplicates
from tradelab.data.ingest.freqtrade import read_freqtrade
from tradelab.data.ingest.generic_csv import GenericOptions, read_generic
from tradelab.data.ingest.sources import SizeLimits, check_parquet_size, check_text, read_bytes
from tradelab.data.ingest.tables import LINE, RawTable
from tradelab.data.ingest.timestamps import TsUnit
from tradelab.data.manifest import Repair, SourceRecord
from tradelab.data.schema import TS, check_symbol, timeframe_ms
from tradelab.data.store import ConflictPolicy, Store, WriteResult

__all__ = ["FileReport", "GenericOptions", "IngestReport", "SizeLimits", "detect_format", "ingest_files", "read_file"]

Format = Literal["auto", "binance", "freqtrade", "csv", "parquet"]
log = logging.getLogger(__name__)


@dataclass
class FileReport:
    """What one file contributed."""

    path: Path
    sha256: str
    format: str
    rows: int
    ts_unit: str
    first_ts: datetime
    last_ts: datetime
    unit: str = "line"  # how errors locate a bar: "line" of a text file, "row" of records


@dataclass
class IngestReport:
    """Result of :func:`ingest_files`: per-file reports and the store write."""

    symbol: str
    timeframe: str
    files: list[FileReport]
    identical_duplicates: int
    write: WriteResult
    notes: list[str] = field(default_factory=list)

    @property
    def added_rows(self) -> int:
        """Bars that were not in the store before."""
        return self.write.added_rows


def detect_format(name: str, data: bytes) -> Format:
    """Tell the format from the (decompressed) name and the first line."""
    lower = name.lower()
    if lower.endswith(".json"):
        return "freqtrade"
    if lower.endswith((".parquet", ".pq")) or data[:4] == b"PAR1":
        return "parquet"
    first_line = data[:4096].split(b"\n", 1)[0].decode("utf-8", errors="replace")
    return "binance" if looks_like_binance(first_line) else "csv"


def read_file(
    path: Path,
    *,
    fmt: Format = "auto",
    timeframe: str = "1m",
    options: GenericOptions | None = None,
    sort: bool = False,
    limits: SizeLimits | None = None,
) -> tuple[pl.DataFrame, FileReport]:
    """Read and check one file; return canonical bars (with ``_line``) and a report.

    :raises DataError: naming the file, line and column of the first problem.
    """
    limits = limits or SizeLimits()
    content = read_bytes(path, limits)
    data, source = content.data, str(path)
    chosen = detect_format(content.name, data) if fmt == "auto" else fmt
    options = options or GenericOptions()
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(lambda: content.sha256)  # hashing releases the GIL: overlap it with parsing
        if chosen == "parquet":
            check_parquet_size(data, source, limits.unpacked_bytes)
        else:
            check_text(data, source)
        raw: RawTable
        if chosen == "binance":
            raw = read_binance(data, source)
        elif chosen == "freqtrade":
            raw = read_freqtrade(data, source)
        else:
            raw = read_generic(data, source, options, parquet=chosen == "parquet")
        checked = check_bars(raw, timeframe_ms=timeframe_ms(timeframe), ts_unit=options.ts_unit, sort=sort)
    frame = checked.frame
    report = FileReport(
        path=path,
        sha256=digest.result(),
        format=chosen,
        rows=frame.height,
        ts_unit=checked.ts_unit,
        first_ts=frame[TS].min(),  # type: ignore[arg-type]
        last_ts=frame[TS].max(),  # type: ignore[arg-type]
        unit=raw.unit,
    )
    return frame, report


def ingest_files(
    paths: Sequence[Path | str],
    symbol: str,
    timeframe: str = "1m",
    *,
    fmt: Format = "auto",
    options: GenericOptions | None = None,
    ts_unit: TsUnit | None = None,
    sort: bool = False,
    on_conflict: ConflictPolicy = "error",
    store: Store | None = None,
    progress: bool = False,
    limits: SizeLimits | None = None,
) -> IngestReport:
    """Read, check and merge files into the ``symbol``/``timeframe`` dataset in one atomic write.

    Identical repeated bars (within or across files, or already stored) collapse; a bar that repeats
    with other values is a conflict, handled by ``on_conflict`` (``error``, ``keep`` the first/stored,
    ``replace`` with the later/new).

    :param ts_unit: epoch unit of the timestamps; detected per file when None.
    :param limits: bytes a file may take on disk and unpacked (:class:`SizeLimits`' defaults when None).
    :return: per-file reports and what the store write did (``write.changed`` is False for a no-op).
    :raises DataError: on the first bad file, before anything is written.
    """
    check_symbol(symbol)
    timeframe_ms(timeframe)
    store = store or Store()
    if ts_unit is not None:
        options = (options or GenericOptions()).model_copy(update={"ts_unit": ts_unit})
    files = [Path(p) for p in paths]
    if not files:
        raise DataError("no files to ingest")
    frames: list[pl.DataFrame] = []
    reports: list[FileReport] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"ingest {symbol}/{timeframe}", total=len(files))
        for index, path in enumerate(files):
            frame, report = read_file(path, fmt=fmt, timeframe=timeframe, options=options, sort=sort, limits=limits)
            frames.append(frame.with_columns(pl.lit(index, pl.Int32).alias("_src")))
            reports.append(report)
            bar.advance(task)
    merged, identical, conflicting = collapse_duplicates(
        pl.concat(frames, how="diagonal_relaxed"), on_conflict, [str(p) for p in files]
    )
    bars = merged.drop(LINE, "_src")
    now = datetime.now(UTC)
    sources = [
        SourceRecord(
            name=r.path.name,
            sha256=r.sha256,
            format=r.format,
            rows=r.rows,
            ingested_at=now,
        )
        for r in reports
    ]
    repairs = [
        Repair(
            kind="drop_conflicting_duplicates",
            detail=f"within the ingested files, on_conflict={on_conflict}",
            rows=conflicting,
            applied_at=now,
        )
    ]
    try:
        result = store.write(
            symbol, timeframe, bars, sources=sources, on_conflict=on_conflict, repairs=repairs if conflicting else []
        )
    except ConflictError as exc:  # say which file and line brought the first conflicting bar
        where = merged.row(by_predicate=pl.col(TS) == exc.ts, named=True)
        report = reports[where["_src"]]
        raise ConflictError(
            exc.message, ts=exc.ts, source=report.path, line=where[LINE], column=exc.column, unit=report.unit
        ) from None
    if identical:
        log.info("dropped %d identical repeated bars", identical)
    return IngestReport(symbol=symbol, timeframe=timeframe, files=reports, identical_duplicates=identical, write=result)
