"""A local stand-in for data.binance.vision: serves kline ZIPs and their CHECKSUM files from a folder.

It answers ``Range`` requests with 206 Partial Content like the real site, records every request,
and injects the faults a real download meets: a connection dropped mid-file, 5xx/429 answers, a
wrong checksum.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

import polars as pl

from tradelab.data.ingest.binance import write_binance

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_MARKETS = {"spot": "data/spot", "um": "data/futures/um"}


@dataclass(frozen=True)
class Request:
    """One request the server answered: URL path, ``Range`` header (None when absent), status sent."""

    path: str
    range: str | None
    status: int


def publish_klines(
    root: Path,
    bars: pl.DataFrame,
    *,
    symbol: str,
    period: str,
    interval: str = "1m",
    market: Literal["spot", "um"] = "spot",
    ts_unit: Literal["ms", "us"] = "ms",
) -> str:
    """Write ``bars`` where data.binance.vision keeps them, with a ``.CHECKSUM`` file beside the ZIP.

    :param root: the folder the server serves.
    :param period: ``YYYY-MM`` for a monthly file, ``YYYY-MM-DD`` for a daily one.
    :param ts_unit: ``"us"`` for spot files from 2025 on.
    :return: the ZIP's URL path, e.g. ``/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2023-04.zip``.
    """
    kind = "monthly" if len(period) == len("YYYY-MM") else "daily"
    name = f"{symbol}-{interval}-{period}.zip"
    url_path = f"/{_MARKETS[market]}/{kind}/klines/{symbol}/{interval}/{name}"
    target = root / url_path.lstrip("/")
    write_binance(bars, target, ts_unit=ts_unit)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    target.with_name(f"{name}.CHECKSUM").write_text(f"{digest}  {name}\n")
    return url_path


class FakeBinanceVision:
    """A threaded HTTP server on 127.0.0.1 (a free port) serving ``root`` like data.binance.vision.

    Faults are keyed by URL path and used up as they fire. Use as a context manager.

    :param root: folder laid out like the site (see :func:`publish_klines`).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[Request] = []
        # Off: answer every request with the whole file (200), as a server without Range support does.
        self.honour_range = True
        self._drops: dict[str, int] = {}
        self._errors: dict[str, list[int]] = {}
        self._wrong_checksums: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, to pass as the downloader's ``base_url``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeBinanceVision:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def drop_after(self, path: str, n_bytes: int) -> None:
        """Close the connection after sending ``n_bytes`` of the body of the next GET of ``path``."""
        with self._lock:
            self._drops[path] = n_bytes

    def fail(self, path: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` GETs of ``path`` with ``status`` (e.g. 500, 429, 403)."""
        with self._lock:
            self._errors.setdefault(path, []).extend([status] * times)

    def wrong_checksum(self, path: str, times: int = 1) -> None:
        """Serve a CHECKSUM with a wrong hash for the ZIP at ``path``, the next ``times`` times."""
        with self._lock:
            self._wrong_checksums[f"{path}.CHECKSUM"] = times

    def requested(self, path: str) -> list[Request]:
        """The requests made so far for ``path``, in order."""
        return [r for r in self.requests if r.path == path]

    def _take(self, path: str) -> tuple[int | None, int | None, bool]:
        """Use up the faults set on ``path``: (error status, bytes before a drop, wrong checksum)."""
        with self._lock:
            errors = self._errors.get(path)
            status = errors.pop(0) if errors else None
            if status is not None:
                return status, None, False
            wrong = self._wrong_checksums.get(path, 0) > 0
            if wrong:
                self._wrong_checksums[path] -= 1
            return None, self._drops.pop(path, None), wrong


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeBinanceVision) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, delayed ACKs add ~40 ms to each request.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        fake = self.server.fake
        path = urlsplit(self.path).path
        status, body, headers, drop_after = self._answer(fake, path)
        # Recorded before the answer goes out, so a client that has its answer also sees the record.
        with fake._lock:
            fake.requests.append(Request(path, self.headers.get("Range"), status))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:drop_after])
        if drop_after is not None:
            self.close_connection = True

    def _answer(self, fake: FakeBinanceVision, path: str) -> tuple[int, bytes, dict[str, str], int | None]:
        """Status, body, headers, and the byte count after which to drop the connection (None: send all)."""
        error, drop_after, wrong_checksum = fake._take(path)
        if error is not None:
            return error, b"injected fault\n", {}, None
        file = (fake.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(fake.root.resolve()) or not file.is_file():
            return 404, b"<Error><Code>NoSuchKey</Code></Error>", {}, None
        body = file.read_bytes()
        if wrong_checksum:
            body = b"0" * 64 + body[64:]
        match = _RANGE.match(self.headers.get("Range", "")) if fake.honour_range else None
        if not match:
            return 200, body, {"Accept-Ranges": "bytes"}, drop_after
        first = int(match.group(1))
        last = min(int(match.group(2) or len(body) - 1), len(body) - 1)
        if first >= len(body):
            return 416, b"", {"Content-Range": f"bytes */{len(body)}"}, None
        return 206, body[first : last + 1], {"Content-Range": f"bytes {first}-{last}/{len(body)}"}, drop_after

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""
