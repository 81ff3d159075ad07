"""Download Binance public kline files (data.binance.vision): checksum-verified, resumable, retried.

Finished months come as one monthly ZIP, the current month as daily ZIPs up to yesterday. Every ZIP
is checked against the SHA-256 in its ``.CHECKSUM`` file before it gets its final name, so a ZIP in
the download folder is always complete; re-running only fetches what is missing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal, TypeVar

import httpx
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from tradelab.atomic import atomic_write_text, locked
from tradelab.data.errors import DataError
from tradelab.data.manifest import file_sha256
from tradelab.data.schema import check_symbol, to_datetime
from tradelab.settings import get_settings

logger = logging.getLogger(__name__)

BASE_URL = "https://data.binance.vision"
Market = Literal["spot", "um"]
MARKET_PATHS: dict[str, str] = {"spot": "data/spot", "um": "data/futures/um"}
INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1mo")

_MONTH = re.compile(r"^\d{4}-\d{2}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_T = TypeVar("_T")


def download_binance(
    symbol: str,
    start: str | date,
    end: str | date,
    *,
    market: Market = "spot",
    interval: str = "1m",
    base_url: str = BASE_URL,
    dest: Path | None = None,
    progress: bool = False,
    client: httpx.Client | None = None,
    today: date | None = None,
    retries: int = 4,
    backoff_s: float = 1.0,
) -> list[Path]:
    """Download the kline ZIPs of ``symbol`` from ``start`` to ``end`` (inclusive) and verify their checksums.

    A month the range covers entirely (and that has ended) is one monthly file; other days are daily
    files, up to yesterday (UTC). A missing monthly file falls back to that month's daily files; a
    missing daily file is skipped with a warning. ZIPs already downloaded and verified are not fetched
    again, and a ``.part`` file left by an interrupted run is resumed with an HTTP ``Range`` request.

    :param symbol: Binance symbol, e.g. ``BTCUSDT`` (upper-cased).
    :param start: first month (``"2025-01"``) or day (``"2025-01-15"``, a ``date``).
    :param end: last month or day, inclusive; clipped to yesterday.
    :param market: ``"spot"`` or ``"um"`` (USD-M futures).
    :param interval: Binance kline interval (``1m``, ``1h``, ``1d``, ...).
    :param base_url: the site to download from (a mirror, or a test server).
    :param dest: folder for the ZIPs; ``<downloads_dir>/binance/<market>/<SYMBOL>/<interval>`` by default.
    :param progress: show a progress bar over bytes.
    :param client: HTTP client to use; one with a 30 s timeout is made (and closed) when None.
    :param today: the current UTC date (for tests); decides which months are finished.
    :param retries: retries per request after connection errors, timeouts, 429 and 5xx answers.
    :param backoff_s: wait before the first retry; doubled at each further retry.
    :return: the verified ZIP paths, in chronological order.
    :raises DataError: nothing found in the range, a checksum that does not match twice, a 4xx
        answer other than 404, or a request still failing after ``retries`` retries.

    .. note::
        Files hold whole UTC days (or months), so their bars reach beyond ``start`` and ``end`` when
        these are datetimes within a day.
    """
    symbol = check_symbol(symbol).upper()
    if market not in MARKET_PATHS:
        raise DataError(f"unknown market {market!r}: use one of {', '.join(MARKET_PATHS)}", column="market")
    if interval not in INTERVALS:
        raise DataError(f"unknown interval {interval!r}: Binance has {', '.join(INTERVALS)}", column="interval")
    today = today or datetime.now(UTC).date()
    first = _bound(start, last=False)
    last = min(_bound(end, last=True), today - timedelta(days=1))
    if first > last:
        yesterday = today - timedelta(days=1)
        raise DataError(
            f"nothing to download for {symbol} from {start} to {end}: the last complete UTC day is {yesterday}"
        )
    folder = f"{base_url.rstrip('/')}/{MARKET_PATHS[market]}"
    dest = dest or get_settings().downloads_dir / "binance" / market / symbol / interval

    found: list[Path] = []
    with ExitStack() as stack:
        if client is None:
            client = stack.enter_context(httpx.Client(timeout=30.0, follow_redirects=True))
        bar = stack.enter_context(
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                disable=not progress,
            )
        )
        stack.enter_context(locked(dest))  # two downloads into one folder would append to the same .part
        fetcher = _Fetcher(client, bar, dest, retries, backoff_s)
        for month_first, month_last in _months(first, last):
            # The current month is never covered whole: the range ends yesterday at the latest.
            if first <= month_first and month_last <= last:
                monthly = f"{folder}/monthly/klines/{symbol}/{interval}/{symbol}-{interval}-{month_first:%Y-%m}.zip"
                path = fetcher.fetch(monthly)
                if path is not None:
                    found.append(path)
                    continue
                logger.info("%s: not published (404), trying the month's daily files", monthly)
            for day in _days(max(first, month_first), min(last, month_last)):
                daily = f"{folder}/daily/klines/{symbol}/{interval}/{symbol}-{interval}-{day.isoformat()}.zip"
                path = fetcher.fetch(daily)
                if path is None:
                    logger.warning("%s: not published (404), skipped", daily)
                else:
                    found.append(path)
    if not found:
        raise DataError(f"no {market} {interval} klines for {symbol} from {first} to {last} at {base_url}")
    return found


def _bound(value: str | date, *, last: bool) -> date:
    """The first (or, with ``last``, the final) day a ``YYYY-MM`` month or a day argument stands for."""
    if isinstance(value, str) and _MONTH.match(value.strip()):
        month = date.fromisoformat(f"{value.strip()}-01")
        return _next_month(month) - timedelta(days=1) if last else month
    return to_datetime(value).date()


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _months(first: date, last: date) -> Iterator[tuple[date, date]]:
    """First and last day of each calendar month that overlaps ``first..last``."""
    month = first.replace(day=1)
    while month <= last:
        following = _next_month(month)
        yield month, following - timedelta(days=1)
        month = following


def _days(first: date, last: date) -> Iterator[date]:
    for offset in range((last - first).days + 1):
        yield first + timedelta(days=offset)


class _RetryableError(Exception):
    """An answer worth asking again for (429, 5xx, a range the server cannot satisfy)."""


@dataclass
class _Fetcher:
    """Fetches one ZIP at a time into ``dest``: checksum, resumable download, verification, final rename."""

    client: httpx.Client
    bar: Progress
    dest: Path
    retries: int
    backoff_s: float

    def fetch(self, url: str) -> Path | None:
        """Download ``url`` into ``dest`` and verify it, unless it is there and verified already.

        :return: the ZIP's path, or None when the server has no such file (404).
        """
        name = url.rsplit("/", 1)[1]
        final, checksum_file, part = (self.dest / f"{name}{suffix}" for suffix in ("", ".CHECKSUM", ".part"))
        if final.exists() and checksum_file.exists():
            if file_sha256(final) == _parse_checksum(checksum_file.read_text(), name):
                return final
            logger.warning("%s does not match its stored checksum, downloading it again", final)
        self.dest.mkdir(parents=True, exist_ok=True)
        task = self.bar.add_task(name, total=None)
        # The checksum is fetched again with the second download: either file may have been the bad one.
        for attempt in (1, 2):
            checksum_text = self._retry(url, lambda: self._get_checksum(f"{url}.CHECKSUM"))
            if checksum_text is None:
                self.bar.remove_task(task)
                return None
            expected = _parse_checksum(checksum_text, name)
            self._retry(url, lambda: self._download(url, part, task))
            actual = file_sha256(part)
            if actual == expected:
                break
            part.unlink()
            if attempt == 2:
                raise DataError(f"checksum mismatch twice: expected sha256 {expected}, got {actual}", source=url)
            logger.warning("%s: checksum mismatch (expected %s, got %s), downloading again", name, expected, actual)
        atomic_write_text(checksum_file, checksum_text)
        part.replace(final)
        return final

    def _retry(self, url: str, call: Callable[[], _T]) -> _T:
        """Run ``call``, retrying with exponential backoff on connection errors, timeouts and retryable answers."""
        attempt = 0
        while True:
            try:
                return call()
            except (httpx.TransportError, _RetryableError) as exc:
                if attempt == self.retries:
                    raise DataError(f"giving up after {attempt + 1} attempts: {exc}", source=url) from exc
                delay = self.backoff_s * 2**attempt
                logger.warning("%s: %s; retrying in %.2f s", url, exc, delay)
                time.sleep(delay)
                attempt += 1

    def _get_checksum(self, url: str) -> str | None:
        response = self.client.get(url)
        if response.status_code == 404:
            return None
        _check_status(response)
        return response.text

    def _download(self, url: str, part: Path, task: TaskID) -> None:
        """One attempt at ``url`` into ``part``, continuing after the bytes ``part`` already holds."""
        offset = part.stat().st_size if part.exists() else 0
        # Identity encoding, so that byte ranges count the file's own bytes.
        headers = {"Accept-Encoding": "identity"} | ({"Range": f"bytes={offset}-"} if offset else {})
        with self.client.stream("GET", url, headers=headers) as response:
            if response.status_code == 416:
                part.unlink()
                raise _RetryableError(f"HTTP 416: nothing after byte {offset} of {url}; starting over")
            _check_status(response)
            # 206 continues the partial file; 200 (a server ignoring Range) sends the whole file again.
            resumed = response.status_code == 206
            if resumed and not response.headers.get("content-range", "").startswith(f"bytes {offset}-"):
                raise DataError(
                    f"asked for bytes from {offset}, got {response.headers.get('content-range')}", source=url
                )
            start = offset if resumed else 0
            length = response.headers.get("content-length")
            self.bar.update(task, total=start + int(length) if length else None, completed=start)
            with part.open("ab" if resumed else "wb") as fh:
                for chunk in response.iter_raw():
                    fh.write(chunk)
                    self.bar.advance(task, len(chunk))


def _check_status(response: httpx.Response) -> None:
    """Raise :class:`_RetryableError` for 429 and 5xx answers, :class:`DataError` for other errors."""
    status = response.status_code
    if status == 429 or status >= 500:
        raise _RetryableError(f"HTTP {status} {response.reason_phrase}")
    if status >= 400:
        raise DataError(f"HTTP {status} {response.reason_phrase}", source=str(response.url))


def _parse_checksum(text: str, name: str) -> str:
    """The SHA-256 in a Binance ``.CHECKSUM`` file (``<sha256hex>  <filename>``) for the file ``name``."""
    fields = text.split()
    if len(fields) != 2 or not _SHA256.match(fields[0].lower()) or fields[1] != name:
        raise DataError(f"malformed checksum {text[:200]!r}: expected '<sha256>  {name}'", source=f"{name}.CHECKSUM")
    return fields[0].lower()
