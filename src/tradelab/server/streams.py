"""Start and stop ``tradelab data stream`` processes on this host, for the control plane.

A stream runs detached: in its own session, its output appended to
``$TRADELAB_HOME/logs/stream-<symbol>-<timeframe>.log``, so it outlives the request and a restart of the
server. Its ``stream.json`` (:func:`~tradelab.data.stream.read_stream_status`) is all the state there is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from tradelab.data.store import Store
from tradelab.data.stream.klines import INTERVAL
from tradelab.data.stream.status import StreamStatus, read_stream_status
from tradelab.processes import pid_alive
from tradelab.settings import get_settings

_POLL_S = 0.1
#: Serializes starts in this server, so two concurrent requests cannot both start the same stream.
_starting = threading.Lock()


class StreamConflictError(Exception):
    """The stream cannot be started or stopped in its current state."""


class NoStreamError(LookupError):
    """No stream ever ran into the dataset."""


def stream_log(symbol: str, timeframe: str = INTERVAL) -> Path:
    """Where a stream started by the control plane writes its output."""
    return get_settings().home / "logs" / f"stream-{symbol}-{timeframe}.log"


def start_stream(
    store: Store,
    exchange: str,
    symbol: str,
    *,
    ws_url: str | None = None,
    rest_url: str | None = None,
    since: datetime | None = None,
    wait_s: float = 5.0,
) -> tuple[int, StreamStatus | None]:
    """Spawn ``tradelab data stream`` into ``store`` (dataset ``symbol/1m``); return its pid and its first status,
    or None when it wrote none within ``wait_s`` (or exited first: see :func:`stream_log`).

    :raises StreamConflictError: when a live stream into the dataset exists already.
    """
    command = [sys.executable, "-m", "tradelab.cli", "data", "stream", exchange, f"--symbol={symbol}"]
    command.append(f"--store={store.root.resolve()}")
    command += [f"--{name}={value}" for name, value in (("ws-url", ws_url), ("rest-url", rest_url)) if value]
    if since is not None:
        command.append(f"--since={since.isoformat()}")
    log = stream_log(symbol)
    log.parent.mkdir(parents=True, exist_ok=True)
    with _starting:
        current = read_stream_status(store, symbol)
        if current is not None and current.live:
            raise StreamConflictError(f"{symbol}/{INTERVAL} is streamed already (pid {current.pid} on {current.host})")
        with log.open("ab") as output:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        # Reap it when it exits, so that no zombie keeps its pid looking alive (this sets ``returncode``).
        threading.Thread(target=process.wait, name=f"stream-{process.pid}", daemon=True).start()
        deadline = time.monotonic() + wait_s
        while True:
            status = read_stream_status(store, symbol)
            if status is not None and status.pid == process.pid:
                return process.pid, status
            if process.returncode is not None or time.monotonic() > deadline:
                return process.pid, None
            time.sleep(_POLL_S)


def stop_stream(store: Store, symbol: str, timeframe: str = INTERVAL, *, wait_s: float = 10.0) -> StreamStatus:
    """SIGTERM the live stream into ``symbol/timeframe`` (it stops cleanly: state ``stopped``) and wait up to
    ``wait_s`` for its process to end; return its status then (still active if it did not end in time).

    :raises NoStreamError: when no stream ever ran into the dataset.
    :raises StreamConflictError: when it is not live, or runs on another host.
    """
    status = read_stream_status(store, symbol, timeframe)
    if status is None:
        raise NoStreamError(f"no stream into {symbol}/{timeframe}")
    if not status.live:
        raise StreamConflictError(f"the stream into {symbol}/{timeframe} is not live (state {status.state})")
    if status.host != socket.gethostname():
        raise StreamConflictError(f"the stream into {symbol}/{timeframe} runs on another host, {status.host}")
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.kill(status.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while pid_alive(status.pid) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    return read_stream_status(store, symbol, timeframe) or status
