"""The real candles in ../shared/data: every file ingests, overlapping files merge, the report matches their README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradelab.cli import app
from tradelab.data.store import Store

pytestmark = pytest.mark.realdata
runner = CliRunner()

FREQTRADE_FILES = {
    # file: (rows, missing minutes) as listed in ../shared/data/README.md
    "btc/binance_BTC_USDT-1m_2023-03-16_2023-05-01__andresciancio.json.gz": (66_087, 80),
    "btc/binance_BTC_USDT-1m_2023-04-05_2023-05-05__justinbomber.json.gz": (43_199, 0),
    "btc/binance_BTC_USDT-1m_2021-04-02_2021-05-14__selskas.json.gz": (61_272, 434),
    "btc/binance_BTC_USDT-1m_2025-06-01_2025-07-01__xylotech.json.gz": (43_208, 0),
    "eth/binance_ETH_USDT-1m_2023-03-16_2023-05-01__andresciancio.json.gz": (66_087, 80),
    "eth/binance_ETH_USDT-1m_2021-04-02_2021-05-14__selskas.json.gz": (61_273, 434),
    "eth/binance_ETH_USDT-1m_2025-06-01_2025-07-01__xylotech.json.gz": (43_208, 0),
}


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize("name", list(FREQTRADE_FILES))
def test_every_freqtrade_file_ingests_with_the_documented_rows_and_gaps(
    shared_data: Path, home: Path, name: str
) -> None:
    rows, missing = FREQTRADE_FILES[name]
    code, output = _cli("data", "ingest", str(shared_data / name), "--symbol", "REAL")
    assert code == 0, output
    code, output = _cli("data", "validate", "REAL", "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["rows"] == rows and report["gaps"]["missing_bars"] == missing
    assert report["duplicates_conflicting"] == 0 and report["ok"] is True


def test_ftx_csv_with_naive_utc_timestamps_needs_tz_then_ingests(shared_data: Path, home: Path) -> None:
    path = str(shared_data / "btc/ftx_BTC-PERP-1m_2021-12-31_2022-02-01__nautilus.csv.gz")
    code, output = _cli("data", "ingest", path, "--symbol", "BTC-PERP", "--format", "csv")
    assert code == 2 and "no timezone" in output and "--tz UTC" in output
    assert Store().manifest("BTC-PERP") is None
    code, output = _cli("data", "ingest", path, "--symbol", "BTC-PERP", "--format", "csv", "--tz", "UTC")
    assert code == 0, output
    manifest = Store().require("BTC-PERP")
    assert manifest.rows == 45_031
    assert manifest.first_ts is not None and manifest.first_ts.isoformat() == "2021-12-31T23:01:00+00:00"
    assert manifest.last_ts is not None and manifest.last_ts.isoformat() == "2022-02-01T05:31:00+00:00"


def test_overlapping_btc_files_merge_and_validate_reports_gap_and_zero_volume(shared_data: Path, home: Path) -> None:
    first = shared_data / "btc/binance_BTC_USDT-1m_2023-03-16_2023-05-01__andresciancio.json.gz"
    second = shared_data / "btc/binance_BTC_USDT-1m_2023-04-05_2023-05-05__justinbomber.json.gz"
    assert _cli("data", "ingest", str(first), "--symbol", "BTCUSDT")[0] == 0
    code, output = _cli("data", "ingest", str(second), "--symbol", "BTCUSDT")
    assert code == 0 and "+4,954 bars, 71,041 in total" in output
    bars = Store().load("BTCUSDT")
    assert bars.height == 71_041 and bars["ts"].is_unique().all() and bars["ts"].is_sorted()

    code, output = _cli("data", "validate", "BTCUSDT", "--json")
    assert code == 0
    report = json.loads(output)
    assert report["first_ts"] == "2023-03-16T22:15:00Z" and report["last_ts"] == "2023-05-05T07:35:00Z"
    assert report["gaps"]["count"] == 1
    assert report["gaps"]["longest"] == {
        "start": "2023-03-24T12:40:00Z",
        "end": "2023-03-24T13:59:00Z",
        "missing_bars": 80,
    }
    assert report["zero_volume_bars"] == 72

    code, output = _cli("data", "ingest", str(second), "--symbol", "BTCUSDT")
    assert code == 0 and "already stored, nothing changed" in output


def test_selskas_maintenance_windows(shared_data: Path, home: Path) -> None:
    path = shared_data / "btc/binance_BTC_USDT-1m_2021-04-02_2021-05-14__selskas.json.gz"
    assert _cli("data", "ingest", str(path), "--symbol", "BTCUSDT")[0] == 0
    report = json.loads(_cli("data", "validate", "BTCUSDT", "--json")[1])
    gaps = [(g["start"], g["end"], g["missing_bars"]) for g in report["gaps"]["gaps"]]
    assert gaps == [
        ("2021-04-20T02:00:00Z", "2021-04-20T04:29:00Z", 150),
        ("2021-04-25T04:01:00Z", "2021-04-25T08:44:00Z", 284),
    ]
