"""``stream.json``: what a streaming ingestor is doing, written atomically in its dataset's folder."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tradelab.atomic import atomic_write
from tradelab.data.store import Store
from tradelab.processes import pid_alive

STATUS_FILE = "stream.json"
ACTIVE_STATES = ("connecting", "backfilling", "streaming")

StreamState = Literal["connecting", "backfilling", "streaming", "stopped", "failed"]
log = logging.getLogger("tradelab.data.stream")


class StreamStatus(BaseModel):
    """The state and counters of one ``tradelab data stream`` process.

    Times are UTC. ``live`` is not stored: :func:`read_stream_status` computes it.
    """

    pid: int
    host: str
    state: StreamState
    symbol: str
    timeframe: str = "1m"
    ws_url: str
    rest_url: str
    last_bar_ts: datetime | None = Field(default=None, description="open time of the last stored bar")
    lag_s: float | None = Field(default=None, description="updated_at minus the close time of the last stored bar")
    bars_written: int = Field(default=0, description="bars this run added to the store (stream and backfill)")
    backfilled: int = Field(default=0, description="of bars_written, those fetched from the REST endpoint")
    updates: int = Field(default=0, description="intermediate (not closed) kline updates seen; never stored")
    duplicates: int = Field(default=0, description="repeats of the last stored bar, identical to it (no-ops)")
    out_of_order: int = Field(default=0, description="closed bars older than the last stored bar")
    conflicts: int = Field(default=0, description="closed bars that differ from the stored bar; the stored one is kept")
    malformed: int = Field(default=0, description="messages or REST rows rejected (see last_malformed)")
    reconnects: int = 0
    last_malformed: str | None = Field(default=None, description="reason the last malformed message was rejected")
    heartbeat_s: float = Field(default=5.0, description="the process rewrites this file at least this often")
    started_at: datetime
    updated_at: datetime
    error: str | None = Field(default=None, description="last connection error, or why the process failed")
    live: bool = Field(default=False, description="computed when read: pid alive and updated recently")


def status_path(store: Store, symbol: str, timeframe: str = "1m") -> Path:
    """Where the status of the stream into ``symbol/timeframe`` lives."""
    return store.dataset_dir(symbol, timeframe) / STATUS_FILE


def write_stream_status(store: Store, status: StreamStatus) -> None:
    """Atomically replace the status file (no fsync: it is rewritten every few seconds)."""
    text = status.model_dump_json(indent=2, exclude={"live"})
    path = status_path(store, status.symbol, status.timeframe)
    try:
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as exc:  # a concurrent store write may collect our temporary file; the next update retries
        log.warning("could not write %s: %s", path, exc)


def read_stream_status(
    store: Store, symbol: str, timeframe: str = "1m", *, now: datetime | None = None
) -> StreamStatus | None:
    """The last status the stream into ``symbol/timeframe`` wrote, or None when there is none.

    ``live`` is True when the state is active (connecting, backfilling, streaming), the file was
    updated within three heartbeats, and, on this host, the process ``pid`` still exists.

    .. note:: a process on another host cannot be checked; there only the update time counts.
    """
    path = status_path(store, symbol, timeframe)
    if not path.exists():
        return None
    status = StreamStatus.model_validate_json(path.read_text(encoding="utf-8"))
    age = ((now or datetime.now(UTC)) - status.updated_at).total_seconds()
    fresh = age <= 3 * status.heartbeat_s
    running = status.host != socket.gethostname() or pid_alive(status.pid)
    return status.model_copy(update={"live": status.state in ACTIVE_STATES and fresh and running})


def stream_statuses(store: Store) -> list[StreamStatus]:
    """The status of every stream into ``store``, by symbol and timeframe (a dataset without bars yet included)."""
    if not store.root.exists():
        return []
    folders = sorted(path.parent for path in store.root.glob(f"*/*/{STATUS_FILE}"))
    found = (read_stream_status(store, folder.parent.name, folder.name) for folder in folders)
    return [status for status in found if status is not None]
