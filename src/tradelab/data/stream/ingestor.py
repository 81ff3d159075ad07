"""The streaming ingestor: closed 1-minute klines from a websocket into the store, gaps backfilled over REST.

One loop per connection: connect, wait for the first valid message (its open time is the exchange's
current minute), backfill every closed minute between the last stored bar and that minute from
REST, then store each closed bar as it arrives. A disconnect or a REST failure closes the
connection and the loop reconnects after an exponential backoff, which starts over after a
session that received bars.

Policy for closed bars (``t`` = open time, ``last`` = open time of the last stored bar):

- ``t == last + 1 minute``: stored.
- ``t > last + 1 minute``: the stream skipped minutes; they are backfilled from REST first.
- ``t <= last``: never overwrites. Identical to the stored bar: a no-op (a *duplicate* when
  ``t == last``). Different: a *conflict*, logged, the stored bar is kept. ``t < last`` also counts as
  *out of order*; a bar older than ``last`` that the store lacks fills its hole.

Intermediate updates (``k.x == false``) are counted and never stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import polars as pl
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidURI, WebSocketException

from tradelab.data.manifest import SourceRecord
from tradelab.data.schema import TS, to_ms
from tradelab.data.store import Store
from tradelab.data.stream.klines import (
    INTERVAL,
    MINUTE_MS,
    Kline,
    MalformedKlineError,
    klines_frame,
    parse_ws_message,
    stream_name,
)
from tradelab.data.stream.rest import fetch_klines
from tradelab.data.stream.status import StreamState, StreamStatus, write_stream_status

BINANCE_WS_URL = "wss://stream.binance.com:9443/ws"
BINANCE_REST_URL = "https://api.binance.com"
_RECENT_BARS = 1440  # stored bars kept in memory to judge repeats without reading the store
_UPDATE_EVERY_S = 1.0  # status rewrites for intermediate updates alone are throttled to this period

log = logging.getLogger("tradelab.data.stream")


@dataclass(frozen=True)
class StreamOptions:
    """What to stream and when to stop.

    :param ws_url: websocket base; the stream ``<symbol>@kline_1m`` is appended as a path segment.
    :param rest_url: REST base serving ``/api/v3/klines``.
    :param since: where to backfill from when the dataset is empty (None: start with the stream).
    :param max_bars: stop after this many bars were added (None: run until cancelled).
    :param until: stop once every bar opening before this time is stored (data time, not wall time).
    :param backoff_s: first reconnect delay; doubled after each failed attempt up to ``max_backoff_s``.
    :param heartbeat_s: rewrite the status file at least this often, messages or not.
    """

    symbol: str
    ws_url: str = BINANCE_WS_URL
    rest_url: str = BINANCE_REST_URL
    since: datetime | None = None
    max_bars: int | None = None
    until: datetime | None = None
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    heartbeat_s: float = 5.0
    open_timeout_s: float = 10.0


class StreamIngestor:
    """Runs one stream into ``store`` (dataset ``<symbol>/1m``) and keeps its :class:`StreamStatus` current.

    :param on_status: called after every status update (the CLI draws its live line with it).
    :param clock: wall clock in epoch seconds, used for the lag and the status times.
    :param sleep: waits out a reconnect delay (tests record the delays instead of waiting).
    """

    def __init__(
        self,
        store: Store,
        options: StreamOptions,
        *,
        on_status: Callable[[StreamStatus], None] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store, self.options, self.on_status, self.clock, self.sleep = store, options, on_status, clock, sleep
        self.symbol = options.symbol.upper()
        manifest = store.manifest(self.symbol, INTERVAL)
        self._last_ms = _ms(manifest.last_ts) if manifest and manifest.last_ts else None
        self._recent: OrderedDict[int, tuple[float, ...]] = OrderedDict()
        self._since_ms = to_ms(options.since) if options.since else None
        self._until_ms = to_ms(options.until) if options.until else None
        self._source_recorded = False
        self._past_until = False
        self._published_at = 0.0
        self._healthy = False  # the current session stored or judged a bar
        now = self._now()
        self.status = StreamStatus(
            pid=os.getpid(),
            host=socket.gethostname(),
            state="connecting",
            symbol=self.symbol,
            timeframe=INTERVAL,
            ws_url=options.ws_url,
            rest_url=options.rest_url,
            heartbeat_s=options.heartbeat_s,
            started_at=now,
            updated_at=now,
        )
        self._set_last(self._last_ms)

    @property
    def url(self) -> str:
        """The websocket URL of the kline stream."""
        return f"{self.options.ws_url.rstrip('/')}/{stream_name(self.symbol)}"

    async def run(self) -> StreamStatus:
        """Stream until ``max_bars`` or ``until`` is reached, reconnecting as needed; return the final status.

        Cancelling the task leaves the state ``stopped``; an unexpected error leaves it ``failed`` and is raised.
        """
        delay = self.options.backoff_s
        self._publish("connecting")
        try:
            async with httpx.AsyncClient(timeout=self.options.open_timeout_s) as http:
                while not self._done():
                    self._healthy = False
                    try:
                        await self._session(http)
                    except (OSError, TimeoutError, WebSocketException, httpx.HTTPError) as exc:
                        if isinstance(exc, InvalidURI):
                            raise
                        if self._healthy:  # a drop after bars flowed is not the exchange being down: start over
                            delay = self.options.backoff_s
                        self.status.error = f"{type(exc).__name__}: {exc}"
                        log.warning("stream %s: %s; reconnecting in %.1f s", self.url, self.status.error, delay)
                        self.status.reconnects += 1
                        self._publish("connecting")
                        await self.sleep(delay)
                        delay = min(2 * delay, self.options.max_backoff_s)
        except asyncio.CancelledError:
            self._publish("stopped")
            raise
        except Exception as exc:
            self.status.error = f"{type(exc).__name__}: {exc}"
            self._publish("failed")
            raise
        self._publish("stopped")
        return self.status

    async def _session(self, http: httpx.AsyncClient) -> None:
        """One connection, until done or an error; healthy once a bar is handled after the backfill."""
        self._publish("connecting")
        async with connect(self.url, open_timeout=self.options.open_timeout_s, max_queue=None) as ws:
            first = None
            while first is None:
                first = self._parse(await self._recv(ws))
            # the first message's minute is the exchange's current one: everything before it is closed
            await self._backfill(http, first.open_ms)
            self._publish("streaming")
            kline: Kline | None = first
            while not self._done():
                if kline is not None:
                    await self._handle(kline, http)
                    self._healthy = True
                if self._done():
                    break
                kline = self._parse(await self._recv(ws))

    async def _recv(self, ws: ClientConnection) -> str | bytes:
        """The next message; rewrites the status (lag grows) every heartbeat while none arrives."""
        while True:
            try:
                async with asyncio.timeout(self.options.heartbeat_s):
                    return await ws.recv()
            except TimeoutError:  # cancelling recv() loses no message
                self._publish()

    def _parse(self, raw: str | bytes) -> Kline | None:
        try:
            return parse_ws_message(raw, self.symbol)
        except MalformedKlineError as exc:
            self._malformed(exc.reason, raw)
            return None

    def _malformed(self, reason: str, raw: object = None) -> None:
        self.status.malformed += 1
        self.status.last_malformed = reason
        log.warning("malformed kline (%s)%s", reason, f": {str(raw)[:200]}" if raw is not None else "")
        self._publish()

    async def _handle(self, kline: Kline, http: httpx.AsyncClient) -> None:
        if not kline.closed:
            self.status.updates += 1
            if self.clock() - self._published_at >= _UPDATE_EVERY_S:
                self._publish()
            return
        if self._until_ms is not None and kline.open_ms >= self._until_ms:
            self._past_until = True  # the exchange moved past ``until``: stop even if its last minutes are missing
        last = self._last_ms
        if last is not None and kline.open_ms <= last:
            self._judge_repeat(kline, last)
            return
        if last is not None and kline.open_ms > last + MINUTE_MS:
            await self._backfill(http, kline.open_ms)
            self._publish("streaming")
        await self._write([kline])

    def _judge_repeat(self, kline: Kline, last: int) -> None:
        """A closed bar at or before the last stored one: a no-op, a conflict, or a late bar filling a hole."""
        if kline.open_ms < last:
            self.status.out_of_order += 1
        stored = self._stored_values(kline.open_ms)
        if stored is None:
            self._write_now([kline])
        elif stored == kline.values:
            self.status.duplicates += 1 if kline.open_ms == last else 0
        else:
            self.status.conflicts += 1
            log.warning(
                "bar %s differs from the stored one (stored %s, received %s); keeping the stored bar",
                _iso(kline.open_ms),
                stored,
                kline.values,
            )
        self._publish()

    def _stored_values(self, open_ms: int) -> tuple[float, ...] | None:
        if open_ms in self._recent:
            return self._recent[open_ms]
        rows = self.store.load(self.symbol, INTERVAL, open_ms, open_ms + 1)
        return rows.select("open", "high", "low", "close", "volume").row(0) if rows.height else None

    async def _backfill(self, http: httpx.AsyncClient, before_ms: int) -> None:
        """Store the closed bars from after the last stored one (or ``since``) up to ``before_ms`` (excluded)."""
        start = self._last_ms + MINUTE_MS if self._last_ms is not None else self._since_ms
        if start is None or start >= before_ms or self._done():
            return
        self._publish("backfilling")
        pages = fetch_klines(
            http, self.options.rest_url, self.symbol, start, before_ms - 1, on_malformed=self._malformed
        )
        async for page in pages:
            fresh = [k for k in page if self._last_ms is None or k.open_ms > self._last_ms]
            self.status.backfilled += await self._write(fresh)
            if self._done():
                break

    async def _write(self, klines: list[Kline]) -> int:
        """Store closed klines (trimmed to ``max_bars``/``until``) in one atomic write; returns bars added."""
        if self._until_ms is not None:
            klines = [k for k in klines if k.open_ms < self._until_ms]
        if self.options.max_bars is not None:
            klines = klines[: max(0, self.options.max_bars - self.status.bars_written)]
        if not klines:
            return 0
        frame = klines_frame(klines)
        # in a thread so pings keep flowing; the write itself is atomic, so a cancel or kill cannot tear it
        added = await asyncio.to_thread(self._store_frame, frame)
        self._after_write(klines, added)
        return added

    def _write_now(self, klines: list[Kline]) -> None:
        self._after_write(klines, self._store_frame(klines_frame(klines)))

    def _store_frame(self, frame: pl.DataFrame) -> int:
        sources = []
        if not self._source_recorded:  # one provenance record per run, not one per minute
            name = f"{self.url} from {frame[TS][0]:%Y-%m-%dT%H:%MZ}"
            sources = [
                SourceRecord(name=name, format="binance-stream", rows=frame.height, ingested_at=datetime.now(UTC))
            ]
        result = self.store.write(self.symbol, INTERVAL, frame, sources=sources, on_conflict="keep")
        self._source_recorded = self._source_recorded or result.changed
        return result.added_rows

    def _after_write(self, klines: list[Kline], added: int) -> None:
        for k in klines:
            self._recent[k.open_ms] = k.values
        while len(self._recent) > _RECENT_BARS:
            self._recent.popitem(last=False)
        self.status.bars_written += added
        newest = max(k.open_ms for k in klines)
        self._set_last(max(newest, self._last_ms) if self._last_ms is not None else newest)
        self._publish()

    def _set_last(self, open_ms: int | None) -> None:
        self._last_ms = open_ms
        self.status.last_bar_ts = datetime.fromtimestamp(open_ms / 1000, tz=UTC) if open_ms is not None else None

    def _done(self) -> bool:
        if self.options.max_bars is not None and self.status.bars_written >= self.options.max_bars:
            return True
        if self._until_ms is None:
            return False
        return self._past_until or (self._last_ms is not None and self._last_ms + MINUTE_MS >= self._until_ms)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    def _publish(self, state: StreamState | None = None) -> None:
        """Refresh lag and time, write the status file and tell ``on_status``."""
        if state is not None:
            self.status.state = state
        now = self.clock()
        self._published_at = now
        self.status.updated_at = datetime.fromtimestamp(now, tz=UTC)
        if self._last_ms is not None:
            self.status.lag_s = round(now - (self._last_ms + MINUTE_MS) / 1000, 3)
        write_stream_status(self.store, self.status)
        if self.on_status is not None:
            self.on_status(self.status)


async def run_stream(
    options: StreamOptions, store: Store | None = None, *, on_status: Callable[[StreamStatus], None] | None = None
) -> StreamStatus:
    """Stream ``options.symbol``'s closed 1-minute klines into ``store`` (the default store when None).

    :return: the final status (state ``stopped``) once ``max_bars`` or ``until`` is reached.
    """
    return await StreamIngestor(store or Store(), options, on_status=on_status).run()


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _iso(open_ms: int) -> str:
    return f"{datetime.fromtimestamp(open_ms / 1000, tz=UTC):%Y-%m-%dT%H:%MZ}"
