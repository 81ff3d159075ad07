"""The Parquet store: layout, manifest, merges, no-op writes, range loads, public API."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import polars as pl
import pytest

import tradelab.data as td
from tests.bars import make_bars
from tests.conftest import snapshot
from tradelab.data.errors import DataError
from tradelab.data.manifest import frame_hash
from tradelab.data.store import Store


def test_layout_is_hive_partitioned_with_a_manifest(store: Store) -> None:
    bars = make_bars(3 * 24 * 60, start="2024-01-31")  # spans January into February
    store.write("BTCUSDT", "1m", bars)
    folder = store.root / "BTCUSDT" / "1m"
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
    assert [f.rsplit("/", 1)[0] for f in files] == ["year=2024/month=01", "year=2024/month=02"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["rows"] == bars.height
    assert manifest["schema_version"] == 1
    assert [p["rows"] for p in manifest["partitions"]] == [24 * 60, 2 * 24 * 60]
    assert manifest["first_ts"].startswith("2024-01-31T00:00")
    assert len(manifest["content_hash"]) == 64


def test_roundtrip_preserves_values_and_dtypes(store: Store) -> None:
    bars = make_bars(500)
    store.write("X", "1m", bars)
    loaded = store.load("X", "1m")
    assert loaded.schema == bars.schema
    assert loaded.equals(bars)


def test_writing_the_same_bars_again_changes_no_byte(store: Store) -> None:
    bars = make_bars(2000)
    store.write("X", "1m", bars)
    before = snapshot(store.root)
    result = store.write("X", "1m", bars[500:1500])
    assert not result.changed
    assert snapshot(store.root) == before


def test_overlapping_writes_merge_without_duplicates(store: Store) -> None:
    bars = make_bars(3000)
    store.write("X", "1m", bars[:2000])
    result = store.write("X", "1m", bars[1500:])
    assert result.changed and result.added_rows == 1000
    loaded = store.load("X", "1m")
    assert loaded.equals(bars)
    assert loaded["ts"].is_unique().all()


def test_content_hash_is_the_dataset_version(store: Store) -> None:
    bars = make_bars(1000)
    first = store.write("A", "1m", bars).manifest
    same = store.write("B", "1m", bars).manifest
    other = store.write("C", "1m", bars.with_columns(pl.col("volume") * 2)).manifest
    assert first.content_hash == same.content_hash != other.content_hash
    assert first.partitions[0].content_hash == frame_hash(bars)


def test_conflicting_bar_is_refused_unless_a_policy_says_otherwise(store: Store) -> None:
    bars = make_bars(100)
    store.write("X", "1m", bars)
    before = snapshot(store.root)
    changed = bars[40:60].with_columns(pl.col("volume") + 1)
    with pytest.raises(DataError, match=r"20 bar\(s\) conflict .* first at 2024-01-01 00:40"):
        store.write("X", "1m", changed)
    assert snapshot(store.root) == before

    kept = store.write("X", "1m", changed, on_conflict="keep")
    assert not kept.changed and store.load("X", "1m").equals(bars)
    replaced = store.write("X", "1m", changed, on_conflict="replace")
    assert replaced.conflicts_resolved == 20
    assert store.load("X", "1m")["volume"][40:60].equals(changed["volume"])
    assert replaced.manifest.repairs[-1].kind == "drop_conflicting_duplicates"


def test_load_range_is_half_open_and_opens_only_overlapping_partitions(store: Store) -> None:
    bars = make_bars(62 * 24 * 60, start="2024-01-01")
    store.write("X", "1m", bars)
    month = store.load("X", "1m", start="2024-02", end="2024-03")
    assert month.height == 29 * 24 * 60
    assert str(month["ts"].min()) == "2024-02-01 00:00:00+00:00"
    lazy_plan = store.scan("X", "1m", start="2024-02-10", end="2024-02-11").explain()
    assert "month=02" in lazy_plan and "month=01" not in lazy_plan
    assert store.load("X", "1m", start="2030-01-01").height == 0


def test_public_api_uses_tradelab_home(home: Path) -> None:
    bars = make_bars(100)
    Store().write("BTCUSDT", "1m", bars)
    assert (home / "data" / "BTCUSDT" / "1m" / "manifest.json").exists()
    assert td.load("BTCUSDT").equals(bars)
    assert [m.symbol for m in td.list_datasets()] == ["BTCUSDT"]
    assert td.info("BTCUSDT").rows == 100
    with pytest.raises(DataError, match=r"no dataset ETHUSDT/1m .*datasets: BTCUSDT/1m"):
        td.info("ETHUSDT")


def test_unlisted_files_of_an_interrupted_write_are_invisible_then_collected(store: Store) -> None:
    bars = make_bars(200)
    store.write("X", "1m", bars[:100])
    folder = store.root / "X" / "1m" / "year=2024" / "month=01"
    orphan = folder / "part-deadbeefdeadbeef.parquet"
    make_bars(5).write_parquet(orphan)
    (folder / ".tmp-123-part.parquet").write_bytes(b"half a file")
    assert store.load("X", "1m").equals(bars[:100])
    store.write("X", "1m", bars)
    assert not orphan.exists() and not (folder / ".tmp-123-part.parquet").exists()


@pytest.mark.parametrize("symbol", ["BTC/USD", "../etc", "", "a b"])
def test_symbol_must_be_a_safe_folder_name(store: Store, symbol: str) -> None:
    with pytest.raises(DataError, match="invalid symbol"):
        store.write(symbol, "1m", make_bars(3))


def test_timeframe_must_be_valid(store: Store) -> None:
    with pytest.raises(DataError, match="invalid timeframe '7x'"):
        td.schema.timeframe_ms("7x")


def test_unsorted_bars_are_stored_sorted_and_repeated_timestamps_refused(store: Store) -> None:
    bars = make_bars(3 * 24 * 60, start="2024-01-31")
    store.write("X", "1m", bars.reverse())
    assert store.load("X").equals(bars)
    assert [p.rows for p in store.require("X").partitions] == [1440, 2880]
    with pytest.raises(DataError, match="repeat a timestamp"):
        store.write("Y", "1m", pl.concat([bars[:10], bars[5:6]]))
    assert store.manifest("Y") is None


def test_reads_never_fail_while_a_stream_keeps_replacing_the_partition(store: Store) -> None:
    """A live stream rewrites the month's partition every minute; a reader that found the old file listed in the
    manifest reads again from the new one instead of failing."""
    bars = make_bars(400)
    store.write("LIVE", "1m", bars.head(100))
    done = threading.Event()

    def stream() -> None:
        try:
            for i in range(100, 400):
                store.write("LIVE", "1m", bars.slice(i, 1))
        finally:
            done.set()

    writer = threading.Thread(target=stream)
    writer.start()
    heights = []
    while not done.is_set():
        loaded = store.load("LIVE")
        assert loaded["ts"].is_sorted() and loaded["ts"].n_unique() == loaded.height
        heights.append(loaded.height)
    writer.join()
    assert heights == sorted(heights) and len(heights) > 10 and store.load("LIVE").height == 400


def test_a_write_leaves_other_writers_temporary_files_alone(store: Store) -> None:
    """A stream's status file is written through a temporary file in the dataset folder: the store's clean-up of
    interrupted writes must not take it away mid-write."""
    bars = make_bars(20)
    store.write("LIVE", "1m", bars.head(10))
    folder = store.root / "LIVE" / "1m"
    foreign = folder / ".tmp-0123-stream.json"
    foreign.write_text("{}")
    (folder / ".tmp-4567-manifest.json").write_text("{}")  # the store's own, left by a killed write
    store.write("LIVE", "1m", bars)
    assert foreign.exists() and not (folder / ".tmp-4567-manifest.json").exists()
