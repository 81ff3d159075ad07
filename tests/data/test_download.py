"""The Binance public-data downloader against a local data.binance.vision serving real candles."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.data.fake_binance_vision import FakeBinanceVision, publish_klines
from tradelab.data.errors import DataError
from tradelab.data.ingest import ingest_files
from tradelab.data.ingest.download import download_binance
from tradelab.data.schema import REQUIRED, TS, to_datetime

pytestmark = pytest.mark.realdata

SYMBOL = "BTCUSDT"
APRIL = "BTCUSDT-1m-2023-04.zip"
APRIL_URL = f"/data/spot/monthly/klines/BTCUSDT/1m/{APRIL}"


@cache
def _freqtrade_bars(path: Path) -> pl.DataFrame:
    rows = json.loads(gzip.decompress(path.read_bytes()))
    frame = pl.DataFrame(rows, schema=list(REQUIRED), orient="row")
    return frame.with_columns(pl.col(TS).cast(REQUIRED[TS]))


def real_bars(path: Path, first: str, end: str | None = None) -> pl.DataFrame:
    """Canonical bars of a real freqtrade JSON file from ``first`` up to (not including) ``end``.

    :param end: the day after ``first`` when None.
    """
    start = to_datetime(first)
    stop = to_datetime(end) if end else start + timedelta(days=1)
    return _freqtrade_bars(path).filter(pl.col(TS).is_between(start, stop, closed="left"))


@pytest.fixture
def vision(tmp_path: Path) -> Iterator[FakeBinanceVision]:
    with FakeBinanceVision(tmp_path / "vision") as server:
        yield server


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "downloads"


@pytest.fixture
def btc_march_april(shared_data: Path) -> Path:
    """Binance BTC/USDT 1m from 2023-03-16 22:15 to 2023-05-01 21:01: all of April 2023."""
    return shared_data / "btc" / "binance_BTC_USDT-1m_2023-03-16_2023-05-01__andresciancio.json.gz"


@pytest.fixture
def btc_april_may(shared_data: Path) -> Path:
    """Binance BTC/USDT 1m from 2023-04-05 07:37 to 2023-05-05 07:35."""
    return shared_data / "btc" / "binance_BTC_USDT-1m_2023-04-05_2023-05-05__justinbomber.json.gz"


@pytest.fixture
def btc_june_2025(shared_data: Path) -> Path:
    """Binance BTC/USDT 1m from 2025-06-01 17:23 to 2025-07-01 17:30."""
    return shared_data / "btc" / "binance_BTC_USDT-1m_2025-06-01_2025-07-01__xylotech.json.gz"


@pytest.fixture
def april(vision: FakeBinanceVision, btc_march_april: Path) -> bytes:
    """Publish the real April 2023 as a monthly file (millisecond timestamps); return the ZIP's bytes."""
    publish_klines(vision.root, real_bars(btc_march_april, "2023-04-01", "2023-05-01"), symbol=SYMBOL, period="2023-04")
    return served(vision, APRIL_URL)


def publish_days(vision: FakeBinanceVision, source: Path, days: list[str], **options: Any) -> list[str]:
    """Publish each real day of ``source`` as a daily file; return their URL paths."""
    return [publish_klines(vision.root, real_bars(source, day), symbol=SYMBOL, period=day, **options) for day in days]


def served(vision: FakeBinanceVision, url_path: str) -> bytes:
    return (vision.root / url_path.lstrip("/")).read_bytes()


def download(vision: FakeBinanceVision, dest: Path, start: str, end: str, **options: Any) -> list[Path]:
    """Download from the fake site into ``dest`` with short backoffs."""
    options.setdefault("today", date(2023, 6, 10))
    return download_binance(SYMBOL, start, end, base_url=vision.base_url, dest=dest, backoff_s=0.01, **options)


def requests_for(vision: FakeBinanceVision, url_path: str) -> list[tuple[str | None, int]]:
    """``(Range header, status)`` of each request for a file."""
    return [(r.range, r.status) for r in vision.requested(url_path)]


def test_monthly_file_is_downloaded_and_verified(vision, dest, april):
    paths = download(vision, dest, "2023-04", "2023-04")

    assert paths == [dest / APRIL]
    assert paths[0].read_bytes() == april
    assert (dest / f"{APRIL}.CHECKSUM").read_bytes() == served(vision, f"{APRIL_URL}.CHECKSUM")
    assert [r.path for r in vision.requests] == [f"{APRIL_URL}.CHECKSUM", APRIL_URL]
    assert sorted(p.name for p in dest.iterdir()) == [".lock", APRIL, f"{APRIL}.CHECKSUM"]


def test_current_month_is_daily_files_up_to_yesterday(vision, dest, btc_june_2025):
    urls = publish_days(vision, btc_june_2025, ["2025-06-02", "2025-06-03", "2025-06-04", "2025-06-05"], ts_unit="us")

    paths = download(vision, dest, "2025-06-02", "2025-06-30", today=date(2025, 6, 5))

    assert [p.name for p in paths] == [f"BTCUSDT-1m-2025-06-0{d}.zip" for d in (2, 3, 4)]
    assert [p.read_bytes() for p in paths] == [served(vision, url) for url in urls[:3]]
    assert not any("monthly" in r.path or "2025-06-05" in r.path for r in vision.requests)


def test_missing_monthly_file_falls_back_to_daily_files(vision, dest, btc_april_may, caplog):
    days = ["2023-04-28", "2023-04-29", "2023-04-30"]
    urls = publish_days(vision, btc_april_may, days)

    with caplog.at_level(logging.WARNING, logger="tradelab.data.ingest.download"):
        paths = download(vision, dest, "2023-04", "2023-04")

    assert [p.name for p in paths] == [f"BTCUSDT-1m-{day}.zip" for day in days]
    assert [p.read_bytes() for p in paths] == [served(vision, url) for url in urls]
    assert requests_for(vision, f"{APRIL_URL}.CHECKSUM") == [(None, 404)]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 27
    assert "BTCUSDT-1m-2023-04-01.zip" in skipped[0]


def test_nothing_found_names_symbol_and_range(vision, dest):
    with pytest.raises(DataError, match=r"BTCUSDT from 2023-04-29 to 2023-04-30"):
        download(vision, dest, "2023-04-29", "2023-04-30")


def test_range_without_a_complete_day_is_refused(vision, dest):
    with pytest.raises(DataError, match="BTCUSDT from 2023-06-10 to 2023-07: the last complete UTC day is 2023-06-09"):
        download(vision, dest, "2023-06-10", "2023-07", today=date(2023, 6, 10))
    assert vision.requests == []


def test_interrupted_transfer_resumes_with_a_range_request(vision, dest, april):
    vision.drop_after(APRIL_URL, 100_000)

    paths = download(vision, dest, "2023-04", "2023-04", progress=True)

    assert requests_for(vision, APRIL_URL) == [(None, 200), ("bytes=100000-", 206)]
    assert paths[0].read_bytes() == april


def test_part_file_left_by_a_killed_run_is_resumed(vision, dest, april):
    dest.mkdir()
    (dest / f"{APRIL}.part").write_bytes(april[:50_000])

    paths = download(vision, dest, "2023-04", "2023-04")

    assert requests_for(vision, APRIL_URL) == [("bytes=50000-", 206)]
    assert paths[0].read_bytes() == april
    assert not (dest / f"{APRIL}.part").exists()


def test_complete_part_file_is_downloaded_again(vision, dest, april):
    dest.mkdir()
    (dest / f"{APRIL}.part").write_bytes(april)

    paths = download(vision, dest, "2023-04", "2023-04")

    assert requests_for(vision, APRIL_URL) == [(f"bytes={len(april)}-", 416), (None, 200)]
    assert paths[0].read_bytes() == april


def test_part_file_starts_over_when_the_server_ignores_range(vision, dest, april):
    vision.honour_range = False
    dest.mkdir()
    (dest / f"{APRIL}.part").write_bytes(b"not the start of the file" * 40)

    paths = download(vision, dest, "2023-04", "2023-04")

    assert requests_for(vision, APRIL_URL) == [("bytes=1000-", 200)]
    assert paths[0].read_bytes() == april


def test_5xx_and_429_are_retried(vision, dest, april):
    vision.fail(f"{APRIL_URL}.CHECKSUM", 500, times=2)
    vision.fail(APRIL_URL, 429)
    vision.fail(APRIL_URL, 503)

    paths = download(vision, dest, "2023-04", "2023-04")

    assert requests_for(vision, f"{APRIL_URL}.CHECKSUM") == [(None, 500), (None, 500), (None, 200)]
    assert requests_for(vision, APRIL_URL) == [(None, 429), (None, 503), (None, 200)]
    assert paths[0].read_bytes() == april


def test_gives_up_when_retries_run_out(vision, dest, april):
    vision.fail(APRIL_URL, 500, times=3)

    with pytest.raises(DataError, match="giving up after 3 attempts: HTTP 500"):
        download(vision, dest, "2023-04", "2023-04", retries=2)
    assert len(vision.requested(APRIL_URL)) == 3


def test_client_error_fails_without_retrying(vision, dest, april):
    vision.fail(APRIL_URL, 403)

    with pytest.raises(DataError, match="HTTP 403 Forbidden"):
        download(vision, dest, "2023-04", "2023-04")
    assert len(vision.requested(APRIL_URL)) == 1


def test_checksum_mismatch_downloads_again(vision, dest, april):
    vision.wrong_checksum(APRIL_URL, times=1)

    paths = download(vision, dest, "2023-04", "2023-04")

    assert requests_for(vision, APRIL_URL) == [(None, 200), (None, 200)]
    assert paths[0].read_bytes() == april


def test_second_checksum_mismatch_raises(vision, dest, april):
    vision.wrong_checksum(APRIL_URL, times=2)
    actual = served(vision, f"{APRIL_URL}.CHECKSUM").split()[0].decode()

    with pytest.raises(DataError, match=f"{APRIL}: checksum mismatch twice: expected sha256 0{{64}}, got {actual}"):
        download(vision, dest, "2023-04", "2023-04")
    assert len(vision.requested(APRIL_URL)) == 2
    assert [p.name for p in dest.iterdir()] == [".lock"]  # no part file, no unverified ZIP


def test_second_run_downloads_nothing_and_a_damaged_file_is_fetched_again(vision, dest, btc_april_may, april):
    may = publish_days(vision, btc_april_may, ["2023-05-01", "2023-05-02"])
    first = download(vision, dest, "2023-04", "2023-05", today=date(2023, 5, 3))
    requests = len(vision.requests)

    assert download(vision, dest, "2023-04", "2023-05", today=date(2023, 5, 3)) == first
    assert len(vision.requests) == requests

    first[1].write_bytes(b"truncated")
    assert download(vision, dest, "2023-04", "2023-05", today=date(2023, 5, 3)) == first
    assert [r.path for r in vision.requests[requests:]] == [f"{may[0]}.CHECKSUM", may[0]]
    assert first[1].read_bytes() == served(vision, may[0])


def test_futures_go_to_the_default_download_folder(vision, home, btc_march_april):
    publish_klines(
        vision.root,
        real_bars(btc_march_april, "2023-04-01", "2023-05-01"),
        symbol=SYMBOL,
        period="2023-04",
        market="um",
    )

    paths = download_binance(
        "btcusdt", "2023-04", "2023-04", market="um", base_url=vision.base_url, today=date(2023, 6, 1)
    )

    assert paths == [home / "downloads" / "binance" / "um" / SYMBOL / "1m" / APRIL]
    assert vision.requests[-1].path == f"/data/futures/um/monthly/klines/BTCUSDT/1m/{APRIL}"


@pytest.mark.parametrize(("option", "value"), [("market", "cm"), ("interval", "7m")])
def test_unknown_market_or_interval_is_refused(vision, dest, option, value):
    with pytest.raises(DataError, match=f"unknown {option} '{value}'"):
        download(vision, dest, "2023-04", "2023-04", **{option: value})
    assert vision.requests == []


def test_downloaded_files_ingest_to_the_real_rows(vision, dest, btc_march_april, btc_june_2025, april, store):
    publish_days(vision, btc_june_2025, ["2025-06-02", "2025-06-03"], ts_unit="us")
    paths = download(vision, dest, "2023-04", "2023-04") + download(
        vision, dest, "2025-06-02", "2025-06-03", today=date(2025, 6, 20)
    )

    report = ingest_files(paths, SYMBOL, store=store)

    assert [f.ts_unit for f in report.files] == ["ms", "us", "us"]

    expected = pl.concat(
        [real_bars(btc_march_april, "2023-04-01", "2023-05-01"), real_bars(btc_june_2025, "2025-06-02", "2025-06-04")]
    )
    assert store.load(SYMBOL).select(*REQUIRED).equals(expected)
