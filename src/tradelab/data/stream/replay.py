"""A local fake of Binance's kline stream and REST klines endpoint, replaying recorded messages with faults.

One port on 127.0.0.1 serves both ``ws://…/ws/<symbol>@kline_1m`` and ``GET http://…/api/v3/klines``.
The recording is played once, as one timeline shared by all connections (like the real exchange,
time goes on while a client is away; one that connects after the end gets the last message, the
current kline). The exchange clock is the event time ``E`` of the latest
message played; REST answers with each minute's state as of that clock, so a closed minute comes
back final and the open minute comes back partial, as Binance does.

Scripted faults, by index of a recorded message (0-based):

- ``disconnect_after``: drop the connection (no close frame) after sending it; the next
  ``missed_on_disconnect`` messages pass while the client is away and must be backfilled;
- ``duplicate``: send it twice;
- ``delay``: send it late, after the next closed-bar message (out of order);
- ``malformed``: send a broken message before it (bad JSON, missing field, wrong symbol,
  wrong interval, non-numeric price, high below low, in turn);
- ``rest_errors``: the first N REST requests answer 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import polars as pl
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from tradelab.data.stream.klines import INTERVAL, MINUTE_MS, klines_frame, parse_ws_message, stream_name

# 60 minutes of BTCUSDT kline_1m messages (three updates and the closed bar per minute), from the synthetic generator
RECORDING = Path(__file__).with_name("btcusdt-1m.jsonl")


@dataclass(frozen=True)
class Faults:
    """Faults to inject, by recorded message index (see the module docstring)."""

    disconnect_after: frozenset[int] = frozenset()
    missed_on_disconnect: int = 8
    duplicate: frozenset[int] = frozenset()
    delay: frozenset[int] = frozenset()
    malformed: frozenset[int] = frozenset()
    rest_errors: int = 0

    @classmethod
    def every(
        cls,
        messages: int,
        *,
        disconnect: int = 0,
        duplicate: int = 0,
        out_of_order: int = 0,
        malformed: int = 0,
        missed_on_disconnect: int = 8,
    ) -> Faults:
        """Each fault every N messages (0: never) over a recording of ``messages`` messages."""

        def at(n: int, offset: int) -> frozenset[int]:
            return frozenset(range(offset, messages, n)) if n > 0 else frozenset()

        return cls(
            disconnect_after=at(disconnect, disconnect - 1),
            missed_on_disconnect=missed_on_disconnect,
            duplicate=at(duplicate, duplicate - 1),
            delay=at(out_of_order, out_of_order - 1),
            malformed=at(malformed, malformed // 2),
        )


@dataclass(frozen=True)
class _Step:
    kind: Literal["send", "drop", "tick"]
    text: str = ""
    event_ms: int = 0


@dataclass
class ReplayStats:
    """What the fake exchange did: connections accepted, connections dropped, REST requests (paths with query)."""

    connections: int = 0
    drops: int = 0
    rest_requests: list[str] = field(default_factory=list)


def load_recording(path: Path = RECORDING, *, shift_ms: int = 0) -> list[dict[str, Any]]:
    """The recorded messages of a JSONL file, with every time (``E``, ``k.t``, ``k.T``) moved by ``shift_ms``."""
    messages = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if shift_ms % MINUTE_MS:
        raise ValueError(f"shift_ms must be whole minutes, got {shift_ms}")
    for m in messages:
        m["E"] += shift_ms
        m["k"]["t"] += shift_ms
        m["k"]["T"] += shift_ms
    return messages


def closed_bars(messages: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """Canonical bars of the closed-bar messages of a recording: what a complete stream must store."""
    klines = [parse_ws_message(json.dumps(m), m["s"]) for m in messages if m["k"]["x"]]
    return klines_frame(sorted({k.open_ms: k for k in klines}.values(), key=lambda k: k.open_ms))


class ReplayExchange:
    """The fake exchange, run in a background thread; use it as a context manager.

    ``with ReplayExchange(faults=Faults(duplicate=frozenset({3}))) as ex:`` then stream from
    ``ex.ws_url`` and ``ex.rest_url``.

    :param messages: recorded messages (default: :data:`RECORDING`).
    :param interval_s: pause before each message sent (0: as fast as the client reads).
    :param port: 0 for an ephemeral port.
    """

    def __init__(
        self,
        messages: list[dict[str, Any]] | None = None,
        *,
        faults: Faults | None = None,
        interval_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.messages = messages if messages is not None else load_recording()
        self.symbol: str = self.messages[0]["s"]
        self.faults = faults or Faults()
        self.interval_s = interval_s
        self.host, self.port = host, port
        self.stats = ReplayStats()
        self.finished = threading.Event()
        """Set once every scheduled message was played."""
        self._steps = _schedule(self.messages, self.faults)
        self._position = 0
        self._clock = 0
        self._active: ServerConnection | None = None
        self._states = _minute_states(self.messages)
        self._rest_errors = self.faults.rest_errors
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def ws_url(self) -> str:
        """Websocket base URL; the client appends ``/<symbol>@kline_1m``."""
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def rest_url(self) -> str:
        """REST base URL (serves ``/api/v3/klines``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def done(self) -> bool:
        """True once every scheduled message was played and no client is connected."""
        return self.finished.is_set() and self._active is None

    def closed_bars(self) -> pl.DataFrame:
        """The recording's closed bars in canonical form."""
        return closed_bars(self.messages)

    def __enter__(self) -> ReplayExchange:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="replay-exchange", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None or not self._ready.is_set():
            raise RuntimeError(f"replay exchange did not start: {self._error}")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            server: Server
            async with serve(self._handle, self.host, self.port, process_request=self._http) as server:
                self.port = server.sockets[0].getsockname()[1]
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise

    async def _handle(self, ws: ServerConnection) -> None:
        """Play the schedule from where the timeline is to this connection (the newest one wins)."""
        self.stats.connections += 1
        self._active = ws
        try:
            await self._play(ws)
        finally:
            if self._position >= len(self._steps):
                self.finished.set()
            if self._active is ws:
                self._active = None

    async def _play(self, ws: ServerConnection) -> None:
        if self._position >= len(self._steps):  # the recording ended: like Binance, push the current kline
            with contextlib.suppress(ConnectionClosed):
                await ws.send(next(s.text for s in reversed(self._steps) if s.kind == "send"))
        while self._position < len(self._steps) and self._active is ws:
            step = self._steps[self._position]
            if step.kind == "send":
                await asyncio.sleep(self.interval_s)
                if self._active is not ws:
                    return
            self._position += 1
            self._clock = max(self._clock, step.event_ms)
            if step.kind == "drop":
                self.stats.drops += 1
                ws.transport.abort()  # like a network failure: no close frame
                return
            if step.kind == "send":
                try:
                    await ws.send(step.text)
                except ConnectionClosed:
                    return
        if self._position >= len(self._steps):
            self.finished.set()
        await ws.wait_closed()

    def _http(self, ws: ServerConnection, request: Request) -> Response | None:
        """Answer REST requests; let websocket upgrades of the recorded stream through."""
        url = urlsplit(request.path)
        if url.path == f"/ws/{stream_name(self.symbol)}":
            return None
        if url.path != "/api/v3/klines":
            return _json(ws, 404, {"code": -1, "msg": f"unknown path {url.path}"})
        self.stats.rest_requests.append(request.path)
        if self._rest_errors > 0:
            self._rest_errors -= 1
            return _json(ws, 503, {"code": -1003, "msg": "Service unavailable (scripted fault)."})
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if query.get("symbol") != self.symbol:
            return _json(ws, 400, {"code": -1121, "msg": "Invalid symbol."})
        if query.get("interval") != INTERVAL:
            return _json(ws, 400, {"code": -1120, "msg": "Invalid interval."})
        try:
            limit = int(query.get("limit", "500"))
            start = int(query.get("startTime", "0"))
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            return _json(ws, 400, {"code": -1100, "msg": "Illegal characters found in a parameter."})
        if not 1 <= limit <= 1000:
            return _json(ws, 400, {"code": -1130, "msg": "Invalid limit."})
        rows = []
        for open_ms, states in self._states.items():
            if open_ms < start or (end is not None and open_ms > end):
                continue
            known = [k for event_ms, k in states if event_ms <= self._clock]
            if known:
                rows.append(_rest_row(known[-1]))
        if "startTime" not in query:
            return _json(ws, 200, rows[-limit:])  # Binance: the most recent bars
        return _json(ws, 200, rows[:limit])


def _schedule(messages: list[dict[str, Any]], faults: Faults) -> list[_Step]:
    """The timeline: messages as sent, with the faults applied."""
    steps: list[_Step] = []
    late: list[_Step] = []
    away = 0  # messages still to pass while the client is disconnected
    for i, message in enumerate(messages):
        step = _Step("send", json.dumps(message, separators=(",", ":")), message["E"])
        if away:
            away -= 1
            steps.append(_Step("tick", event_ms=step.event_ms))
            continue
        if i in faults.malformed:
            steps.append(_Step("send", _malformed(message, len([j for j in faults.malformed if j < i])), step.event_ms))
        if i in faults.delay:
            late.append(step)
            continue
        steps.append(step)
        if i in faults.duplicate:
            steps.append(step)
        if message["k"]["x"]:
            steps.extend(late)
            late.clear()
        if i in faults.disconnect_after:
            steps.append(_Step("drop", event_ms=step.event_ms))
            away = faults.missed_on_disconnect
    return steps + late


def _malformed(message: dict[str, Any], n: int) -> str:
    """The ``n``-th kind of broken message (cycling), derived from a valid one."""
    broken = json.loads(json.dumps(message))
    k = broken["k"]
    k["x"] = True
    kind = n % 6
    if kind == 0:
        return json.dumps(broken, separators=(",", ":"))[:-7]  # truncated JSON
    if kind == 1:
        del k["c"]
    elif kind == 2:
        broken["s"] = k["s"] = "ETHUSDT"
    elif kind == 3:
        k["i"] = "5m"
    elif kind == 4:
        k["o"] = "61k"
    else:
        k["h"] = f"{float(k['l']) * 0.99:.8f}"
    return json.dumps(broken, separators=(",", ":"))


def _minute_states(messages: list[dict[str, Any]]) -> dict[int, list[tuple[int, dict[str, Any]]]]:
    """Each minute's recorded states as ``(event time, kline)``, in event order."""
    states: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for m in sorted(messages, key=lambda m: m["E"]):
        states.setdefault(m["k"]["t"], []).append((m["E"], m["k"]))
    return dict(sorted(states.items()))


def _rest_row(k: dict[str, Any]) -> list[Any]:
    return [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"], k["Q"], "0"]


def _json(ws: ServerConnection, status: int, body: object) -> Response:
    response = ws.respond(status, json.dumps(body, separators=(",", ":")))
    with contextlib.suppress(KeyError):
        del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response
