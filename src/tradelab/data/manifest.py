"""The dataset manifest: what a dataset holds, where, and its content hash (the dataset version)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, Field

from tradelab.data.schema import SCHEMA_VERSION

MANIFEST = "manifest.json"


class Partition(BaseModel):
    """One immutable Parquet file holding one calendar month of bars."""

    year: int
    month: int
    file: str = Field(description="path relative to the dataset folder")
    rows: int
    first_ts: datetime
    last_ts: datetime
    content_hash: str


class SourceRecord(BaseModel):
    """A file that contributed bars, kept for provenance."""

    name: str
    sha256: str | None = Field(default=None, description="of the file's bytes; None for generated data")
    format: str
    rows: int
    ingested_at: datetime


class Repair(BaseModel):
    """An explicit change to the data that was not in any source (dropped duplicates, filled gaps)."""

    kind: Literal["drop_conflicting_duplicates", "fill_gaps"]
    detail: str
    rows: int
    applied_at: datetime


class Manifest(BaseModel):
    """``manifest.json`` of one ``<SYMBOL>/<TIMEFRAME>`` dataset. It is the only index of the dataset:
    readers open exactly the files it lists, so a file not listed (an interrupted write) is invisible.
    """

    schema_version: int = SCHEMA_VERSION
    symbol: str
    timeframe: str
    rows: int = 0
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    content_hash: str = ""
    columns: list[str] = Field(default_factory=list)
    partitions: list[Partition] = Field(default_factory=list)
    sources: list[SourceRecord] = Field(default_factory=list)
    repairs: list[Repair] = Field(default_factory=list)
    derived_from: str | None = Field(default=None, description="'<timeframe>@<content_hash>' when resampled")
    updated_at: datetime | None = None

    @property
    def version(self) -> str:
        """Short dataset version: the first 12 hex digits of the content hash."""
        return self.content_hash[:12]

    def with_partitions(self, partitions: list[Partition], columns: list[str]) -> Manifest:
        """A copy with ``partitions`` (sorted) and the totals and content hash recomputed from them."""
        parts = sorted(partitions, key=lambda p: (p.year, p.month))
        return self.model_copy(
            update={
                "partitions": parts,
                "columns": columns,
                "rows": sum(p.rows for p in parts),
                "first_ts": parts[0].first_ts if parts else None,
                "last_ts": parts[-1].last_ts if parts else None,
                "content_hash": version_hash([p.content_hash for p in parts]) if parts else "",
                "updated_at": datetime.now(UTC),
            }
        )


def version_hash(partition_hashes: list[str]) -> str:
    """A dataset's content hash from its partitions' hashes, in month order."""
    digest = hashlib.sha256(f"tradelab-v{SCHEMA_VERSION}".encode())
    for content_hash in partition_hashes:
        digest.update(content_hash.encode())
    return digest.hexdigest()


def frame_hash(bars: pl.DataFrame) -> str:
    """SHA-256 of a frame's column names, dtypes, validity and values (stable across library versions)."""
    digest = hashlib.sha256()
    for name in bars.columns:
        series = bars[name]
        digest.update(f"{name}:{series.dtype}".encode())
        if series.null_count():
            digest.update(series.is_null().to_numpy().tobytes())
            series = series.fill_null(strategy="zero") if series.dtype.is_numeric() else series.fill_null(False)
        digest.update(series.to_physical().to_numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
