"""Ingestion of each format: Binance klines (ms and µs, CSV/ZIP/gzip), freqtrade JSON, generic CSV/Parquet."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import polars as pl
import pytest

from tests.bars import binance_lines, make_bars, write_lines
from tests.conftest import snapshot
from tradelab.data.ingest import GenericOptions, detect_format, ingest_files
from tradelab.data.ingest.binance import write_binance
from tradelab.data.store import Store

OHLCV = ["ts", "open", "high", "low", "close", "volume"]


@pytest.mark.parametrize("scale, unit", [(1, "ms"), (1000, "us")])
def test_binance_csv_detects_the_timestamp_unit_per_file(tmp_path: Path, store: Store, scale: int, unit: str) -> None:
    bars = make_bars(300)
    path = write_lines(tmp_path / "BTCUSDT-1m-2024-01.csv", binance_lines(bars, scale=scale))
    report = ingest_files([path], "BTCUSDT", store=store)
    assert report.files[0].format == "binance" and report.files[0].ts_unit == unit
    assert store.load("BTCUSDT").select(OHLCV).equals(bars)


def test_binance_files_switching_from_ms_to_us_merge_into_one_dataset(tmp_path: Path, store: Store) -> None:
    bars = make_bars(2 * 24 * 60, start="2024-12-31")
    december = write_binance(bars[: 24 * 60], tmp_path / "BTCUSDT-1m-2024-12-31.zip", ts_unit="ms")
    january = write_binance(bars[24 * 60 :], tmp_path / "BTCUSDT-1m-2025-01-01.zip", ts_unit="us")
    report = ingest_files([january, december], "BTCUSDT", store=store)
    assert [f.ts_unit for f in report.files] == ["us", "ms"]
    assert store.load("BTCUSDT").select(OHLCV).equals(bars)


def test_binance_zip_with_header_and_trades(tmp_path: Path, store: Store) -> None:
    bars = make_bars(10).with_columns(trades=pl.lit(7, pl.Int64), quote_volume=pl.col("volume") * 100)
    header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy,taker_buy_quote,ignore"
    rows = [
        [*line.split(",")[:7], str(q), "7", "0", "0", "0"]
        for line, q in zip(binance_lines(bars), bars["quote_volume"], strict=True)
    ]
    path = tmp_path / "um.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-1m-2024-01.csv", "\n".join([header, *(",".join(r) for r in rows)]))
    ingest_files([path], "BTCUSDT", store=store)
    loaded = store.load("BTCUSDT")
    assert loaded["trades"].to_list() == [7] * 10
    assert loaded["quote_volume"].equals(bars["quote_volume"])


def test_freqtrade_json_and_gzip(tmp_path: Path, store: Store) -> None:
    bars = make_bars(50)
    rows = [[int(r[0].timestamp() * 1000), *r[1:]] for r in bars.iter_rows()]
    plain = tmp_path / "BTC_USDT-1m.json"
    plain.write_text(json.dumps(rows[:30]))
    packed = tmp_path / "BTC_USDT-1m.json.gz"
    packed.write_bytes(gzip.compress(json.dumps(rows[20:]).encode()))
    report = ingest_files([plain, packed], "BTCUSDT", store=store)
    assert [f.format for f in report.files] == ["freqtrade", "freqtrade"]
    assert report.identical_duplicates == 10
    assert store.load("BTCUSDT").equals(bars)


def test_generic_csv_kaggle_style_epoch_seconds_and_mapping(tmp_path: Path, store: Store) -> None:
    bars = make_bars(20)
    text = ["Timestamp,Open,High,Low,Close,Volume_(BTC),Volume_(Currency),Weighted_Price"]
    for r in bars.iter_rows(named=True):
        text.append(f"{r['ts'].timestamp():.1f},{r['open']},{r['high']},{r['low']},{r['close']},{r['volume']},1,1")
    path = write_lines(tmp_path / "bitstampUSD_1-min_data.csv", text)
    report = ingest_files([path], "BTC-USD", store=store)
    assert report.files[0].format == "csv" and report.files[0].ts_unit == "s"
    assert store.load("BTC-USD").select(OHLCV).equals(bars)


def test_generic_csv_headerless_kraken_style_with_names(tmp_path: Path, store: Store) -> None:
    bars = make_bars(20)
    lines = [
        f"{int(r['ts'].timestamp())},{r['open']},{r['high']},{r['low']},{r['close']},{r['volume']},3"
        for r in bars.iter_rows(named=True)
    ]
    path = write_lines(tmp_path / "XBTUSD_1.csv", lines)
    options = GenericOptions(names=["time", "open", "high", "low", "close", "volume", "trades"])
    ingest_files([path], "XBTUSD", fmt="csv", options=options, store=store)
    assert store.load("XBTUSD")["trades"].to_list() == [3] * 20


def test_generic_csv_iso_with_offset_and_explicit_timezone(tmp_path: Path, store: Store) -> None:
    bars = make_bars(5, start="2024-07-01T12:00")
    aware = ["date,open,high,low,close,volume"] + [
        f"{r['ts'].isoformat()},{r['open']},{r['high']},{r['low']},{r['close']},{r['volume']}"
        for r in bars.iter_rows(named=True)
    ]
    ingest_files([write_lines(tmp_path / "aware.csv", aware)], "A", store=store)
    assert store.load("A").select(OHLCV).equals(bars)
    # New York wall-clock times, 4 hours behind UTC in July.
    naive = ["time;o;h;l;c;v"] + [
        f"2024-07-01 08:0{i}:00;{r['open']};{r['high']};{r['low']};{r['close']};{r['volume']}"
        for i, r in enumerate(bars.iter_rows(named=True))
    ]
    options = GenericOptions(
        tz="America/New_York",
        delimiter=";",
        columns={"ts": "time", "open": "o", "high": "h", "low": "l", "close": "c", "volume": "v"},
    )
    ingest_files([write_lines(tmp_path / "naive.csv", naive)], "B", options=options, store=store)
    assert store.load("B").select(OHLCV).equals(bars)


def test_generic_parquet(tmp_path: Path, store: Store) -> None:
    bars = make_bars(40)
    path = tmp_path / "bars.parquet"
    bars.rename({"ts": "timestamp"}).write_parquet(path)
    report = ingest_files([path], "P", store=store)
    assert report.files[0].format == "parquet"
    assert store.load("P").equals(bars)


def test_sort_option_orders_an_unsorted_file(tmp_path: Path, store: Store) -> None:
    bars = make_bars(30)
    lines = binance_lines(bars)
    path = write_lines(tmp_path / "shuffled.csv", lines[10:] + lines[:10])
    ingest_files([path], "X", sort=True, store=store)
    assert store.load("X").select(OHLCV).equals(bars)


def test_reingest_is_a_noop_and_overlap_merges(tmp_path: Path, store: Store) -> None:
    bars = make_bars(3000)
    first = write_binance(bars[:2000], tmp_path / "a.csv")
    second = write_binance(bars[1000:], tmp_path / "b.csv")
    ingest_files([first], "X", store=store)
    before = snapshot(store.root)
    again = ingest_files([first], "X", store=store)
    assert not again.write.changed and snapshot(store.root) == before
    merged = ingest_files([second], "X", store=store)
    assert merged.added_rows == 1000
    loaded = store.load("X")
    assert loaded.height == 3000 and loaded["ts"].is_unique().all()
    assert [s.name for s in merged.write.manifest.sources] == ["a.csv", "b.csv"]


def test_other_timeframes_are_stored_separately(tmp_path: Path, store: Store) -> None:
    bars = make_bars(100, step_ms=300_000)
    ingest_files([write_binance(bars, tmp_path / "5m.csv", timeframe_ms=300_000)], "X", "5m", store=store)
    assert store.load("X", "5m").select(OHLCV).equals(bars)
    assert store.manifest("X", "1m") is None


@pytest.mark.parametrize(
    "name, head, expected",
    [
        ("x.json", b"[[1,", "freqtrade"),
        ("x.parquet", b"PAR1", "parquet"),
        ("x.csv", b"1700000000000,1,1,1,1,1,1700000059999,1,1,1,1,0\n", "binance"),
        ("x.csv", b"open_time,open,high,low,close,volume,close_time,q,c,t,tq,ignore\n", "binance"),
        ("x.csv", b"timestamp,open,high,low,close,volume\n", "csv"),
    ],
)
def test_format_detection(name: str, head: bytes, expected: str) -> None:
    assert detect_format(name, head) == expected


@pytest.mark.parametrize("policy, kept_volume", [("keep", 1.0), ("replace", 2.0)])
def test_conflicting_repeats_within_files_follow_the_policy_and_are_recorded(
    tmp_path: Path, store: Store, policy: str, kept_volume: float
) -> None:
    bars = make_bars(5)
    lines = binance_lines(bars.with_columns(volume=pl.lit(1.0)))
    repeat = lines[2].split(",")
    repeat[5] = "2.0"
    path = write_lines(tmp_path / "dup.csv", [*lines[:3], ",".join(repeat), *lines[3:]])
    report = ingest_files([path], "X", on_conflict=policy, store=store)  # type: ignore[arg-type]
    loaded = store.load("X")
    assert loaded.height == 5 and loaded["volume"][2] == kept_volume
    repair = report.write.manifest.repairs[-1]
    assert repair.kind == "drop_conflicting_duplicates" and repair.rows == 1 and policy in repair.detail


def test_binance_zip_writer_is_byte_deterministic(tmp_path: Path) -> None:
    bars = make_bars(100)
    first = write_binance(bars, tmp_path / "a" / "X-1m-2024-01.zip").read_bytes()
    second = write_binance(bars, tmp_path / "b" / "X-1m-2024-01.zip").read_bytes()
    assert first == second
    assert write_binance(bars[:99], tmp_path / "c" / "X-1m-2024-01.zip").read_bytes() != first
