"""The Parquet candle store: ``<root>/<SYMBOL>/<TIMEFRAME>/year=YYYY/month=MM/part-<hash>.parquet``.

Partition files are immutable and named by their content hash; ``manifest.json`` lists the live ones.
A write creates new partition files first and then atomically replaces the manifest, so a write
that is killed half-way leaves the previous dataset exactly as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import polars as pl

from tradelab.atomic import TMP_PREFIX, atomic_write, atomic_write_text, locked
from tradelab.data.errors import ConflictError, DataError
from tradelab.data.manifest import MANIFEST, Manifest, Partition, Repair, SourceRecord, frame_hash, version_hash
from tradelab.data.schema import COLUMNS, REQUIRED, TS, TimeLike, check_symbol, conform, empty_bars, to_ms
from tradelab.settings import get_settings

ConflictPolicy = Literal["error", "keep", "replace"]
_VALUE_COLUMNS = [c for c in REQUIRED if c != TS]
#: Reads of a dataset that a concurrent write keeps replacing partitions of, before the error is raised.
_READ_ATTEMPTS = 5


@dataclass
class WriteResult:
    """What a write did. ``changed`` is False when the data was already stored (a no-op)."""

    manifest: Manifest
    changed: bool
    added_rows: int = 0
    rewritten_partitions: int = 0
    conflicts_resolved: int = 0
    notes: list[str] = field(default_factory=list)


class Store:
    """A folder of candle datasets, one per (symbol, timeframe).

    :param root: store folder; ``$TRADELAB_HOME/data`` when omitted.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else get_settings().data_dir

    def dataset_dir(self, symbol: str, timeframe: str = "1m") -> Path:
        """Folder of one dataset (it may not exist yet)."""
        return self.root / check_symbol(symbol) / timeframe

    def manifest(self, symbol: str, timeframe: str = "1m") -> Manifest | None:
        """The dataset's manifest, or None when the dataset does not exist."""
        path = self.dataset_dir(symbol, timeframe) / MANIFEST
        if not path.exists():
            return None
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))

    def require(self, symbol: str, timeframe: str = "1m") -> Manifest:
        """The dataset's manifest; a :class:`DataError` listing what exists when it does not."""
        manifest = self.manifest(symbol, timeframe)
        if manifest is None:
            known = ", ".join(f"{m.symbol}/{m.timeframe}" for m in self.datasets()) or "none"
            raise DataError(f"no dataset {symbol}/{timeframe} in {self.root} (datasets: {known})")
        return manifest

    def datasets(self) -> list[Manifest]:
        """Manifests of every dataset in the store, sorted by symbol then timeframe."""
        if not self.root.exists():
            return []
        found = [
            Manifest.model_validate_json(path.read_text(encoding="utf-8")) for path in self.root.glob(f"*/*/{MANIFEST}")
        ]
        return sorted(found, key=lambda m: (m.symbol, m.timeframe))

    def scan(
        self, symbol: str, timeframe: str = "1m", start: TimeLike | None = None, end: TimeLike | None = None
    ) -> pl.LazyFrame:
        """Lazy frame over ``[start, end)``; only the partitions that overlap the range are opened."""
        manifest = self.require(symbol, timeframe)
        lo = to_ms(start) if start is not None else None
        hi = to_ms(end) if end is not None else None
        folder = self.dataset_dir(symbol, timeframe)
        files = [
            folder / p.file
            for p in manifest.partitions
            if (hi is None or _ms(p.first_ts) < hi) and (lo is None or _ms(p.last_ts) >= lo)
        ]
        if not files:
            return empty_bars().lazy()
        lazy = pl.concat([pl.scan_parquet(f) for f in files], how="diagonal_relaxed")
        bounds = []
        if lo is not None:
            bounds.append(pl.col(TS) >= pl.lit(lo).cast(COLUMNS[TS]))
        if hi is not None:
            bounds.append(pl.col(TS) < pl.lit(hi).cast(COLUMNS[TS]))
        return lazy.filter(*bounds) if bounds else lazy

    def extends_version(self, symbol: str, timeframe: str, version: str, last_ts: datetime) -> bool:
        """Whether the stored bars up to ``last_ts`` (inclusive) are exactly version ``version``'s (a hash prefix).

        True when bars were only appended since that version: the hash of the stored bars cut at
        ``last_ts`` is recomputed (only the month holding ``last_ts`` is read) and compared with it.
        """
        manifest = self.require(symbol, timeframe)
        folder = self.dataset_dir(symbol, timeframe)
        hashes = [p.content_hash for p in manifest.partitions if p.last_ts <= last_ts]
        hashes += [
            frame_hash(pl.read_parquet(folder / p.file).filter(pl.col(TS) <= last_ts))
            for p in manifest.partitions
            if p.first_ts <= last_ts < p.last_ts
        ]
        return version_hash(hashes).startswith(version)

    def load(
        self, symbol: str, timeframe: str = "1m", start: TimeLike | None = None, end: TimeLike | None = None
    ) -> pl.DataFrame:
        """Bars of one dataset in ``[start, end)`` (UTC; ISO strings, datetimes or epoch ms), sorted by ``ts``."""
        return self.query(symbol, timeframe, lambda bars: bars, start, end)

    def query(
        self,
        symbol: str,
        timeframe: str,
        plan: Callable[[pl.LazyFrame], pl.LazyFrame],
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> pl.DataFrame:
        """``plan`` applied to :meth:`scan`'s lazy frame, collected.

        A write that lands meanwhile (a live stream writes every minute) may replace a partition between reading
        the manifest and reading the file: the read starts over from the new manifest.
        """
        for _ in range(_READ_ATTEMPTS - 1):
            try:
                return plan(self.scan(symbol, timeframe, start, end)).collect()
            except FileNotFoundError:
                continue
        return plan(self.scan(symbol, timeframe, start, end)).collect()

    def write(
        self,
        symbol: str,
        timeframe: str,
        bars: pl.DataFrame,
        *,
        sources: Sequence[SourceRecord] = (),
        on_conflict: ConflictPolicy = "error",
        replace: bool = False,
        repairs: Sequence[Repair] = (),
        derived_from: str | None = None,
    ) -> WriteResult:
        """Merge ``bars`` (canonical columns, unique ``ts``, any order) into a dataset, atomically.

        Identical bars already stored are skipped, so writing the same data twice is a no-op. A stored
        bar with the same ``ts`` but other values is a conflict: an error by default, or resolved by
        keeping the stored bar (``"keep"``) or taking the new one (``"replace"``), recorded as a repair.

        :param replace: drop every stored bar first (used by repairs and resampling).
        :return: what changed; ``changed`` is False when nothing was written.
        """
        bars = conform(bars)
        if not bars[TS].is_sorted():
            bars = bars.sort(TS)
        if (bars[TS] == bars[TS].shift(1)).any():
            raise DataError(f"bars for {symbol}/{timeframe} repeat a timestamp; collapse duplicates first", column=TS)
        folder = self.dataset_dir(symbol, timeframe)
        folder.mkdir(parents=True, exist_ok=True)
        with locked(folder):
            existing = self.manifest(symbol, timeframe)
            _collect_garbage(folder, existing)
            current = existing or Manifest(symbol=symbol, timeframe=timeframe)
            stored = {} if replace else {(p.year, p.month): p for p in current.partitions}
            result = WriteResult(manifest=current, changed=False)
            merged_parts: dict[tuple[int, int], pl.DataFrame] = {}
            for key, chunk in _by_month(bars):
                old = stored.get(key)
                if old is None:
                    merged_parts[key] = chunk
                    result.added_rows += chunk.height
                    continue
                old_bars = pl.read_parquet(folder / old.file)
                merged, conflicts = _merge(old_bars, chunk, on_conflict, symbol)
                result.conflicts_resolved += conflicts
                result.added_rows += merged.height - old_bars.height
                if frame_hash(merged) != old.content_hash:
                    merged_parts[key] = merged
            if not replace and not merged_parts:
                return result

            new_parts = dict(stored)
            # Partitions are independent: hash and compress them on all cores (both release the GIL).
            with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
                written = pool.map(lambda item: _write_partition(folder, *item[0], item[1]), merged_parts.items())
                new_parts.update({(p.year, p.month): p for p in written})
            result.rewritten_partitions = len(merged_parts)
            columns = [c for c in COLUMNS if c in set(current.columns) | set(bars.columns)]
            if replace:
                columns = list(bars.columns)
            updated = current.with_partitions(list(new_parts.values()), columns)
            if updated.content_hash == current.content_hash:
                return result
            now = datetime.now(UTC)
            repairs = list(repairs)
            if result.conflicts_resolved:
                repairs.append(
                    Repair(
                        kind="drop_conflicting_duplicates",
                        detail=f"on_conflict={on_conflict}",
                        rows=result.conflicts_resolved,
                        applied_at=now,
                    )
                )
            updated = updated.model_copy(
                update={
                    "sources": [*current.sources, *sources],
                    "repairs": [*current.repairs, *repairs],
                    "derived_from": derived_from or current.derived_from,
                }
            )
            atomic_write_text(folder / MANIFEST, updated.model_dump_json(indent=2))
            _collect_garbage(folder, updated)
            result.manifest = updated
            result.changed = True
            return result


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _by_month(bars: pl.DataFrame) -> Iterator[tuple[tuple[int, int], pl.DataFrame]]:
    """Zero-copy slices of sorted bars, one per calendar month."""
    months = bars.select(pl.col(TS).dt.year() * 100 + pl.col(TS).dt.month()).to_series()
    starts = (months != months.shift(1)).fill_null(True).arg_true().to_list()
    for start, stop in zip(starts, [*starts[1:], bars.height], strict=True):
        key = int(months[start])
        yield (key // 100, key % 100), bars.slice(start, stop - start)


def _merge(old: pl.DataFrame, new: pl.DataFrame, policy: ConflictPolicy, symbol: str) -> tuple[pl.DataFrame, int]:
    """Union of two sorted, unique frames; returns the merge and how many conflicting bars it resolved."""
    overlap = old.select(TS, *_VALUE_COLUMNS).join(new.select(TS, *_VALUE_COLUMNS), on=TS, suffix="_new")
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_new")) for c in _VALUE_COLUMNS)
    conflicts = overlap.filter(differs)
    if conflicts.height and policy == "error":
        first = conflicts.row(0, named=True)
        detail = ", ".join(
            f"{c} {first[c]} vs {first[f'{c}_new']}" for c in _VALUE_COLUMNS if first[c] != first[f"{c}_new"]
        )
        raise ConflictError(
            f"{conflicts.height} bar(s) conflict with the stored {symbol} data, first at {first[TS]} "
            f"(stored vs new: {detail}); pass --on-conflict keep or --on-conflict replace",
            ts=first[TS],
            column=TS,
        )
    if policy == "replace":
        parts = [old.join(new, on=TS, how="anti"), new]
    else:
        parts = [old, new.join(old, on=TS, how="anti")]
    merged = pl.concat(parts, how="diagonal_relaxed").sort(TS)
    return conform(merged), conflicts.height


def _write_partition(folder: Path, year: int, month: int, frame: pl.DataFrame) -> Partition:
    digest = frame_hash(frame)
    relative = f"year={year:04d}/month={month:02d}/part-{digest[:16]}.parquet"
    target = folder / relative
    if not target.exists():
        atomic_write(target, lambda p: frame.write_parquet(p, compression="zstd", compression_level=1, statistics=True))
    ts = frame[TS]
    return Partition(
        year=year,
        month=month,
        file=relative,
        rows=frame.height,
        first_ts=ts.min(),  # type: ignore[arg-type]
        last_ts=ts.max(),  # type: ignore[arg-type]
        content_hash=digest,
    )


def _collect_garbage(folder: Path, manifest: Manifest | None) -> None:
    """Remove temporary files of interrupted writes and, given the live manifest, unlisted partitions."""
    live = {p.file for p in manifest.partitions} if manifest else None
    for path in folder.glob("year=*/month=*/*"):
        relative = path.relative_to(folder).as_posix()
        if path.name.startswith(TMP_PREFIX) or (live is not None and relative not in live):
            path.unlink(missing_ok=True)
    for tmp in folder.glob(f"{TMP_PREFIX}*-{MANIFEST}"):  # only the store's own: a stream's status file is not
        tmp.unlink(missing_ok=True)
    for month_dir in sorted(folder.glob("year=*/month=*")) + sorted(folder.glob("year=*")):
        if month_dir.is_dir() and not any(month_dir.iterdir()):
            month_dir.rmdir()
