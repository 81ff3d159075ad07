"""Starting and stopping a stream from the API: a real ``tradelab data stream`` process against the local fake
exchange, on SQLite and Postgres."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tradelab.data.store import Store
from tradelab.data.stream.replay import ReplayExchange
from tradelab.data.stream.status import read_stream_status
from tradelab.processes import pid_alive

Start = Callable[..., httpx.Response]


def _until(condition: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return result


@pytest.fixture
def start(client: TestClient, store: Store, home: Path) -> Iterator[Start]:
    """``POST /api/datasets/streams`` into ``store``; every process it started is killed at teardown."""
    client.app.state.store = store
    pids: set[int] = set()

    def post(**body: Any) -> httpx.Response:
        response = client.post("/api/datasets/streams", json=body)
        if response.status_code == 202:
            pids.add(response.json()["pid"])
        return response

    yield post
    pids |= {s.pid for s in (read_stream_status(store, p.parent.name) for p in store.root.glob("*/1m")) if s}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _until(lambda: not any(pid_alive(pid) for pid in pids))


def test_a_stream_starts_shows_live_and_stops(client: TestClient, start: Start, store: Store, home: Path) -> None:
    with ReplayExchange(interval_s=0.01) as ex:
        started = start(exchange="binance", symbol="btcusdt", ws_url=ex.ws_url, rest_url=ex.rest_url)
        assert started.status_code == 202, started.text
        body = started.json()
        assert body["status"]["pid"] == body["pid"] and body["status"]["symbol"] == "BTCUSDT"
        assert body["log"] == str(home / "logs" / "stream-BTCUSDT-1m.log") and Path(body["log"]).exists()

        def listed() -> dict[str, Any] | None:
            streams = client.get("/api/datasets/streams").json()
            return next((s for s in streams if s["symbol"] == "BTCUSDT" and s["last_bar_ts"]), None)

        live = _until(listed)
        assert live["live"] is True and live["state"] == "streaming" and live["pid"] == body["pid"]
        assert live["ws_url"] == ex.ws_url and store.load("BTCUSDT").height >= 1

        again = start(exchange="binance", symbol="BTCUSDT", ws_url=ex.ws_url, rest_url=ex.rest_url)
        assert again.status_code == 409 and f"pid {body['pid']}" in again.json()["detail"]

        stopped = client.delete("/api/datasets/streams/BTCUSDT/1m")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["state"] == "stopped" and stopped.json()["live"] is False
        assert not pid_alive(body["pid"])
    assert client.get("/api/datasets/streams").json()[0]["state"] == "stopped"
    assert client.delete("/api/datasets/streams/btcusdt/1m").status_code == 409  # not live any more


def test_unknown_streams_and_bad_requests_are_refused(client: TestClient, start: Start) -> None:
    assert client.delete("/api/datasets/streams/ETHUSDT/1m").status_code == 404
    bad = start(exchange="kraken", symbol="../etc", ws_url="http://x", since="yesterday")
    assert bad.status_code == 422
    locs = [e["loc"] for e in bad.json()["detail"]]
    assert locs == [["body", "exchange"], ["body", "symbol"], ["body", "ws_url"], ["body", "since"]]
    assert client.delete("/api/datasets/streams/-BTC/1m").json()["detail"][0]["loc"] == ["path", "symbol"]
    assert client.delete("/api/datasets/streams/BTCUSDT/5m").json()["detail"][0]["loc"] == ["path", "timeframe"]
