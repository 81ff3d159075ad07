"""Live kline streaming against the local fake exchange: real sockets on 127.0.0.1, every fault scripted."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from websockets.asyncio.client import connect

from tradelab.cli import app
from tradelab.data.store import Store
from tradelab.data.stream import (
    MalformedKlineError,
    StreamIngestor,
    StreamOptions,
    StreamStatus,
    parse_rest_row,
    parse_ws_message,
    read_stream_status,
    run_stream,
)
from tradelab.data.stream.replay import Faults, ReplayExchange, closed_bars, load_recording
from tradelab.data.stream.status import STATUS_FILE, write_stream_status

RECORDING = load_recording()
EXPECTED = closed_bars(RECORDING)  # 60 bars, 2024-03-01 00:00 to 00:59
CLOSED = [i for i, m in enumerate(RECORDING) if m["k"]["x"]]  # message indices of closed bars: 3, 7, 11, ...
SYMBOL = "BTCUSDT"


def options(ex: ReplayExchange, **kwargs: Any) -> StreamOptions:
    return StreamOptions(SYMBOL, ex.ws_url, ex.rest_url, backoff_s=0.01, heartbeat_s=0.2, **kwargs)


def stream(store: Store, ex: ReplayExchange, **kwargs: Any) -> StreamStatus:
    return asyncio.run(asyncio.wait_for(run_stream(options(ex, **kwargs), store), 20))


def assert_complete(store: Store) -> None:
    stored = store.load(SYMBOL)
    assert stored.select(EXPECTED.columns).equals(EXPECTED), "store differs from the recording's closed bars"


def test_parses_binance_messages_and_rows() -> None:
    kline = parse_ws_message(json.dumps(RECORDING[3]), SYMBOL)
    assert kline.closed and kline.open_ms == 1709251200000 and kline.close_ms == 1709251259999
    assert kline.values == (61000.0, 61010.07, 60907.13, 60949.13, 15.68076)
    assert not parse_ws_message(json.dumps(RECORDING[0]), SYMBOL).closed
    k = RECORDING[3]["k"]
    row = [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"], k["Q"], "0"]
    assert parse_rest_row(row).values == kline.values


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: "{not json", "not JSON"),
        (lambda m: m["k"].pop("c") and None, "missing field 'k.c'"),
        (lambda m: m.update(s="ETHUSDT"), "field 's': expected symbol 'BTCUSDT'"),
        (lambda m: m["k"].update(i="5m"), "field 'k.i': expected interval '1m'"),
        (lambda m: m["k"].update(o="61k"), "field 'k.o': '61k' is not a number"),
        (lambda m: m["k"].update(h="1.0"), "fields 'k.h', 'k.l': high 1.0 and low"),
        (lambda m: m["k"].update(t=m["k"]["t"] + 1), "field 'k.t': open time"),
        (lambda m: m["k"].update(x="yes"), "field 'k.x'"),
        (lambda m: m.update(e="trade"), "field 'e': expected 'kline'"),
    ],
)
def test_malformed_messages_name_the_field(change: Any, reason: str) -> None:
    message = json.loads(json.dumps(RECORDING[3]))
    text = change(message)
    with pytest.raises(MalformedKlineError, match=re.escape(reason)):
        parse_ws_message(text if isinstance(text, str) else json.dumps(message), SYMBOL)


def test_clean_stream_stores_only_closed_bars_with_lag_and_counters(store: Store) -> None:
    with ReplayExchange() as ex:
        status = stream(store, ex, max_bars=60)
        assert ex.stats.rest_requests == []  # the store was empty and the stream started at its first minute
    assert_complete(store)
    assert (status.state, status.bars_written, status.updates, status.backfilled) == ("stopped", 60, 180, 0)
    assert status.duplicates == status.out_of_order == status.malformed == status.reconnects == 0
    on_disk = StreamStatus.model_validate_json((store.dataset_dir(SYMBOL) / STATUS_FILE).read_text())
    assert on_disk.last_bar_ts == datetime(2024, 3, 1, 0, 59, tzinfo=UTC) and on_disk.bars_written == 60
    close = datetime(2024, 3, 1, 1, 0, tzinfo=UTC)
    assert on_disk.lag_s == pytest.approx((on_disk.updated_at - close).total_seconds(), abs=0.01)
    assert store.require(SYMBOL).sources[0].format == "binance-stream"


def test_updates_of_the_open_minute_are_never_stored(store: Store) -> None:
    async def run() -> StreamStatus:
        ingestor = StreamIngestor(store, options(ex))
        task = asyncio.create_task(ingestor.run())
        while not (ex.finished.is_set() and ingestor.status.updates == 6):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return ingestor.status

    with ReplayExchange(RECORDING[:7]) as ex:  # minute 0 closes, minute 1 gets three updates
        status = asyncio.run(asyncio.wait_for(run(), 20))
    assert status.state == "stopped" and status.bars_written == 1
    assert store.load(SYMBOL).select(EXPECTED.columns).equals(EXPECTED.head(1))


def test_disconnects_are_backfilled_from_rest(store: Store) -> None:
    faults = Faults(disconnect_after=frozenset({50, 130}), missed_on_disconnect=12, rest_errors=1)
    with ReplayExchange(faults=faults) as ex:
        status = stream(store, ex, max_bars=60)
        requests = ex.stats.rest_requests
        stats = ex.stats
    assert_complete(store)
    # a drop loses the minutes that closed while away (and maybe the message in flight); the 503 forces one more
    assert stats.drops == 2 and status.reconnects >= 2 and stats.connections == status.reconnects + 1
    assert status.backfilled >= 3 and "503" in (status.error or "")
    assert len(requests) >= 2 and all("endTime=" in r and "limit=1000" in r for r in requests)


def test_duplicates_and_out_of_order_bars_are_no_ops(store: Store) -> None:
    faults = Faults(duplicate=frozenset({CLOSED[2], CLOSED[20], 1}), delay=frozenset({CLOSED[5], CLOSED[40]}))
    with ReplayExchange(faults=faults) as ex:
        status = stream(store, ex, max_bars=60)
    assert_complete(store)
    assert status.duplicates == 2  # the repeated update (message 1) is just an update
    # a bar delayed past the next one leaves a gap, filled from REST; the late bar then is a no-op
    assert status.out_of_order == 2 and status.backfilled == 2 and status.conflicts == 0


def test_a_conflicting_repeat_keeps_the_stored_bar(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    changed = json.loads(json.dumps(RECORDING[CLOSED[9]]))
    changed["k"]["c"] = changed["k"]["o"]
    messages = [*RECORDING[: CLOSED[10] + 1], changed, *RECORDING[CLOSED[10] + 1 :]]
    with ReplayExchange(messages) as ex, caplog.at_level(logging.WARNING, "tradelab.data.stream"):
        status = stream(store, ex, max_bars=60)
    assert_complete(store)
    assert status.conflicts == 1 and status.out_of_order == 1 and status.duplicates == 0
    assert "2024-03-01T00:09Z differs from the stored one" in caplog.text


def test_malformed_messages_are_counted_logged_and_skipped(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    faults = Faults(malformed=frozenset(range(1, 240, 40)))  # the six kinds, in turn
    with ReplayExchange(faults=faults) as ex, caplog.at_level(logging.WARNING, "tradelab.data.stream"):
        status = stream(store, ex, max_bars=60)
    assert_complete(store)
    assert status.malformed == 6 and status.last_malformed and "high" in status.last_malformed
    for reason in ("not JSON", "missing field 'k.c'", "expected symbol", "expected interval", "not a number", "bound"):
        assert reason in caplog.text


def test_cancelled_between_writes_then_restart_continues(store: Store) -> None:
    async def run_until(bars: int) -> StreamStatus:
        ingestor = StreamIngestor(store, options(ex))
        task = asyncio.create_task(ingestor.run())
        while ingestor.status.bars_written < bars:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return ingestor.status

    with ReplayExchange(interval_s=0.001) as ex:
        first = asyncio.run(asyncio.wait_for(run_until(20), 20))
        kept = store.load(SYMBOL)
        assert first.state == "stopped" and read_stream_status(store, SYMBOL).state == "stopped"  # type: ignore[union-attr]
        assert kept.select(EXPECTED.columns).equals(EXPECTED.head(kept.height)) and kept.height >= 20
        second = stream(store, ex, until=datetime(2024, 3, 1, 1, 0, tzinfo=UTC))
    assert_complete(store)
    assert second.bars_written == 60 - kept.height


def test_a_client_that_connects_after_the_recording_ended_learns_the_clock_and_backfills(store: Store) -> None:
    async def drain(ex: ReplayExchange) -> None:  # another client plays the whole timeline first
        async with connect(f"{ex.ws_url}/{SYMBOL.lower()}@kline_1m", max_queue=None) as ws:
            while not ex.finished.is_set():
                async with asyncio.timeout(20):
                    await ws.recv()

    with ReplayExchange() as ex:
        asyncio.run(drain(ex))
        status = stream(store, ex, since=datetime(2024, 3, 1, tzinfo=UTC), until=datetime(2024, 3, 1, 1, 0, tzinfo=UTC))
    assert_complete(store)
    assert status.backfilled == 59 and status.bars_written == 60


def test_killed_process_leaves_the_store_intact_and_a_restart_fills_the_gap(store: Store) -> None:
    script = "import sys; from tradelab.data.cli import app; app(sys.argv[1:])"
    with ReplayExchange(interval_s=0.002) as ex:
        args = ["stream", "binance", "-s", SYMBOL, "--ws-url", ex.ws_url, "--rest-url", ex.rest_url]
        args += ["--store", str(store.root), "--backoff", "0.01", "--heartbeat", "0.2"]
        proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while (m := store.manifest(SYMBOL)) is None or m.rows < 15:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.01)
            live = read_stream_status(store, SYMBOL)
            assert live is not None and live.live and live.pid == proc.pid and live.state == "streaming"
            proc.send_signal(signal.SIGKILL)  # no cleanup at all, possibly in the middle of a write
        finally:
            proc.kill()
            proc.wait()
        kept = store.load(SYMBOL)
        assert kept.select(EXPECTED.columns).equals(EXPECTED.head(kept.height))
        dead = read_stream_status(store, SYMBOL)
        assert dead is not None and dead.state == "streaming" and not dead.live
        status = stream(store, ex, until=datetime(2024, 3, 1, 1, 0, tzinfo=UTC))
    assert_complete(store)
    assert status.bars_written == 60 - kept.height and status.backfilled > 0
    assert not list(store.root.rglob(".tmp-*"))


def test_status_reader_says_whether_the_stream_is_live(store: Store) -> None:
    assert read_stream_status(store, SYMBOL) is None
    now = datetime.now(UTC)
    status = StreamStatus(
        pid=os.getpid(), host=os.uname().nodename, state="streaming", symbol=SYMBOL, ws_url="ws://x", rest_url="http://x",
        heartbeat_s=1.0, started_at=now, updated_at=now,
    )  # fmt: skip
    write_stream_status(store, status)
    assert read_stream_status(store, SYMBOL).live  # type: ignore[union-attr]
    assert not read_stream_status(store, SYMBOL, now=now + timedelta(seconds=4)).live  # type: ignore[union-attr]
    write_stream_status(store, status.model_copy(update={"state": "stopped"}))
    assert not read_stream_status(store, SYMBOL).live  # type: ignore[union-attr]
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_stream_status(store, status.model_copy(update={"pid": int(gone.stdout)}))
    assert not read_stream_status(store, SYMBOL).live  # type: ignore[union-attr]
    assert "live" not in json.loads((store.dataset_dir(SYMBOL) / STATUS_FILE).read_text())


def test_cli_streams_from_the_replay_cli(home: Path) -> None:
    faults = ["--no-rebase", "--disconnect-every", "100", "--duplicate-every", "37", "--malformed-every", "53"]
    replay = subprocess.Popen(
        [sys.executable, "-m", "tradelab.cli", "data", "stream-replay", "--interval", "0", "--exit-when-done", *faults],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert replay.stdout is not None
        urls = re.search(r"on (ws://\S+) and (http://\S+)", replay.stdout.readline())
        assert urls, "the replay CLI did not print its URLs"
        stop = ["--until", "2024-03-01T01:00Z", "--backoff", "0.01"]
        result = CliRunner().invoke(
            app, ["data", "stream", "binance", "--symbol", "btcusdt", "--ws-url", urls[1], "--rest-url", urls[2], *stop]
        )
        output = " ".join(result.output.split())
        assert result.exit_code == 0, output
        assert "BTCUSDT stopped: last bar 2024-03-01 00:59 UTC" in output and "+60 bars" in output
        assert "2 reconnects" in output and "5 malformed" in output
        assert_complete(Store())
        assert replay.wait(10) == 0  # it exits by itself once played and the client left
    finally:
        replay.kill()
        replay.wait()
    assert CliRunner().invoke(app, ["data", "stream", "kraken", "--symbol", SYMBOL]).exit_code == 2


def _recording_sleep(delays: list[float], stop_after: int | None = None) -> Any:
    """An injected ``sleep`` that records each reconnect delay instead of waiting (cancels after ``stop_after``)."""

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        if stop_after is not None and len(delays) >= stop_after:
            raise asyncio.CancelledError

    return sleep


def test_the_reconnect_delay_starts_over_after_a_session_that_received_bars(store: Store) -> None:
    delays: list[float] = []
    faults = Faults(disconnect_after=frozenset({50, 90, 130, 170}), missed_on_disconnect=2)
    with ReplayExchange(faults=faults) as ex:
        healthy = StreamOptions(SYMBOL, ex.ws_url, ex.rest_url, backoff_s=2.0, heartbeat_s=0.2, max_bars=60)
        ingestor = StreamIngestor(store, healthy, sleep=_recording_sleep(delays))
        asyncio.run(asyncio.wait_for(ingestor.run(), 20))
    assert_complete(store)
    assert delays == [2.0] * 4  # every drop followed a healthy session: never 4, 8, 16


def test_the_reconnect_delay_doubles_while_no_session_succeeds(store: Store) -> None:
    delays: list[float] = []
    with ReplayExchange() as ex:
        unreachable = StreamOptions(SYMBOL, "ws://127.0.0.1:9", ex.rest_url, backoff_s=2.0, max_backoff_s=10.0)
    ingestor = StreamIngestor(store, unreachable, sleep=_recording_sleep(delays, stop_after=5))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(asyncio.wait_for(ingestor.run(), 20))
    assert delays == [2.0, 4.0, 8.0, 10.0, 10.0]
