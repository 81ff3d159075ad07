"""``tradelab data``: exit codes, messages and what each command leaves in the store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.bars import make_bars
from tests.conftest import snapshot
from tests.data.fake_binance_vision import FakeBinanceVision, publish_klines
from tradelab.cli import app
from tradelab.data.ingest.binance import write_binance
from tradelab.data.store import Store

runner = CliRunner()


def tl(*args: str) -> tuple[int, str]:
    """Run the CLI; the output with line wrapping undone (rich wraps at the terminal width)."""
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def vision(tmp_path: Path) -> Iterator[FakeBinanceVision]:
    with FakeBinanceVision(tmp_path / "vision") as server:
        yield server


def test_synth_ingest_validate_info_list(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "synth.zip"
    code, output = tl("data", "synth", "--days", "3", "--seed", "1", "--out", str(out))
    assert code == 0 and out.exists(), output
    code, output = tl("data", "ingest", str(out), "--symbol", "SYNTH-BTC")
    assert code == 0 and "SYNTH-BTC/1m: +" in output, output
    code, output = tl("data", "validate", "SYNTH-BTC")
    assert code == 0 and "OK (warnings only)" in output and "gaps" in output, output
    result = runner.invoke(app, ["data", "info", "SYNTH-BTC", "--json"])
    code, manifest = result.exit_code, json.loads(result.output)
    assert code == 0 and manifest["sources"][0]["name"] == "synth.zip" and manifest["sources"][0]["format"] == "binance"
    code, output = tl("data", "list")
    assert code == 0 and "SYNTH-BTC" in output and manifest["content_hash"][:8] in output


def test_synth_straight_into_the_store_is_deterministic(home: Path) -> None:
    assert tl("data", "synth", "--symbol", "A", "--days", "1", "--seed", "3")[0] == 0
    assert tl("data", "synth", "--symbol", "B", "--days", "1", "--seed", "3")[0] == 0
    store = Store()
    assert store.require("A").content_hash == store.require("B").content_hash
    assert store.require("A").sources[0].format == "synth"


def test_validate_exits_1_on_hard_errors_and_prints_json(home: Path) -> None:
    bars = make_bars(100)
    broken = bars.with_columns(high=pl.when(pl.int_range(pl.len()) == 5).then(1.0).otherwise(pl.col("high")))
    Store().write("BAD", "1m", broken)  # the library lets a caller store anything; validate must still catch it
    code, output = tl("data", "validate", "BAD")
    assert code == 1 and "FAILED" in output and "ohlc_inconsistent" in output
    result = runner.invoke(app, ["data", "validate", "BAD", "--json"])
    code, report = result.exit_code, json.loads(result.output)
    assert code == 1 and report["ok"] is False
    assert report["findings"][0]["check"] == "ohlc_inconsistent"


def test_bad_input_exits_2_with_a_located_message(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,open,high,low,close,volume\n1706745600000,1,2,0.5,abc,3\n")
    code, output = tl("data", "ingest", str(path), "--symbol", "X")
    assert code == 2
    assert "error:" in output and "bad.csv, line 2, column 'close': value 'abc' is not a number" in output
    assert "Traceback" not in output
    assert tl("data", "validate", "NOPE")[0] == 2


def test_generic_options_map_columns(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("when|o|h|l|c|qty\n2024-02-01 00:00:00|1|2|0.5|1.5|3\n2024-02-01 00:01:00|1.5|2|1|1.2|4\n")
    code, output = tl(
        "data", "ingest", str(path), "-s", "EXP", "--columns", "ts=when,open=o,high=h,low=l,close=c,volume=qty",
        "--delimiter", "|", "--tz", "UTC",
    )  # fmt: skip
    assert code == 0, output
    assert Store().load("EXP")["close"].to_list() == [1.5, 1.2]


def test_repair_resample_and_split(home: Path) -> None:
    bars = make_bars(3 * 24 * 60).filter(~pl.int_range(pl.len()).is_between(100, 102))
    Store().write("X", "1m", bars)
    code, output = tl("data", "repair", "X", "--fill-gaps", "5")
    assert code == 0 and "3 bars filled" in output
    code, output = tl("data", "resample", "X", "--to", "1h")
    assert code == 0 and "X/1h: 72 bars" in output and "derived from 1m@" in output
    code, output = tl("data", "split", "X", "--warmup", "30", "--out", str(home / "plan.json"))
    assert code == 0 and "verified" in output
    plan = json.loads((home / "plan.json").read_text())
    assert [s["name"] for s in plan["segments"]] == ["train", "val", "test"] and plan["embargo_bars"] == 31
    code, output = tl("data", "split", "X", "--warmup", "30", "--embargo", "5")
    assert code == 1 and "leak" in output
    code, output = tl("data", "split", "X", "--folds", "3", "--test-bars", "500", "--embargo", "10")
    assert code == 0 and "fold 2 test" in output


def test_download_verifies_then_ingests(home: Path, vision: FakeBinanceVision) -> None:
    bars = make_bars(29 * 24 * 60, start="2024-02-01")
    publish_klines(vision.root, bars, symbol="BTCUSDT", period="2024-02")
    code, output = tl(
        "data", "download", "binance", "--symbol", "BTCUSDT", "--start", "2024-02", "--end", "2024-02",
        "--base-url", vision.base_url,
    )  # fmt: skip
    assert code == 0, output
    assert Store().load("BTCUSDT").select(bars.columns).equals(bars)


def test_download_checksum_mismatch_stores_nothing(home: Path, vision: FakeBinanceVision) -> None:
    Store().write("BTCUSDT", "1m", make_bars(100, start="2024-01-01"))
    before = snapshot(home / "data")
    url = publish_klines(vision.root, make_bars(29 * 24 * 60, start="2024-02-01"), symbol="BTCUSDT", period="2024-02")
    vision.wrong_checksum(url, times=2)
    code, output = tl(
        "data", "download", "binance", "-s", "BTCUSDT", "--start", "2024-02", "--end", "2024-02",
        "--base-url", vision.base_url,
    )  # fmt: skip
    assert code == 2 and "checksum" in output.lower() and "BTCUSDT-1m-2024-02.zip" in output
    assert snapshot(home / "data") == before


def test_binance_zip_written_by_us_reads_back(home: Path, tmp_path: Path) -> None:
    bars = make_bars(10)
    path = write_binance(bars, tmp_path / "x.zip", ts_unit="us")
    assert tl("data", "ingest", str(path), "-s", "X")[0] == 0
    assert Store().load("X").select(bars.columns).equals(bars)


def test_validate_fails_on_a_day_long_gap_or_low_coverage_by_default_naming_the_gap(home: Path) -> None:
    bars = make_bars(20_000)
    Store().write("HOLE", "1m", bars.filter(~pl.int_range(pl.len()).is_between(1000, 2499)))  # 1,500 bars: 25 h
    code, output = tl("data", "validate", "HOLE")
    text = " ".join(output.split())
    assert code == 1 and "FAILED: 1 hard error(s)" in text  # 92.5 % coverage passes the default 90 %: the gap fails
    assert (
        "error: gaps: 1 gap(s), 1,500 missing bars; the longest: 1,500 bars from 2024-01-01T16:40:00+00:00 to "
        "2024-01-02T17:39:00+00:00, more than the maximum 1,440" in text
    )
    assert tl("data", "validate", "HOLE", "--max-gap", "26h")[0] == 0
    assert tl("data", "validate", "HOLE", "--max-gap", "1500")[0] == 0
    code, output = tl("data", "validate", "HOLE", "--max-gap", "none", "--min-coverage", "0.95")
    assert code == 1 and "error: coverage: coverage 92.50%: 18,500 of 20,000 bars" in " ".join(output.split())
    code, output = tl("data", "validate", "HOLE", "--max-gap", "a week")
    assert code == 2 and "--max-gap 'a week'" in output
