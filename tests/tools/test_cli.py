"""``tradelab tools``: list, show and compute, including on the real BTC candles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import talib
from typer.testing import CliRunner

from tradelab.cli import app
from tradelab.data.ingest import ingest_files
from tradelab.data.store import Store

runner = CliRunner()


def tl(*args: str) -> tuple[int, str]:
    """Run the CLI; the output with rich's line wrapping undone."""
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_list_shows_talib_builtins_and_the_manifest_tool(home: Path) -> None:
    result = runner.invoke(app, ["tools", "list", "--json"])
    assert result.exit_code == 0, result.output
    tools = {t["name"]: t for t in json.loads(result.output)}
    assert len(tools) > 150
    assert tools["RSI"]["origin"] == "talib" and tools["RSI"]["warmup"] == 14
    assert tools["MACD"]["outputs"] == ["macd", "macdsignal", "macdhist"]
    assert tools["vwap_day"]["origin"] == "builtin"
    assert tools["donchian_atr_breakout"]["origin"].startswith("manifest:")
    code, output = tl("tools", "list", "bollinger")
    assert code == 0 and "BBANDS" in output and "RSI " not in output


def test_show_prints_the_parameter_schema(home: Path) -> None:
    code, output = tl("tools", "show", "bbands")
    assert code == 0
    assert "Bollinger Bands" in output and "upperband, middleband, lowerband" in output
    assert '"timeperiod"' in output and '"default": 20' in output
    assert "warm-up with defaults: 19 bars" in output


def test_unknown_tool_suggests_close_names(home: Path) -> None:
    code, output = tl("tools", "show", "RIS")
    assert code == 2 and "unknown tool 'RIS'" in output and "RSI" in output


@pytest.mark.realdata
def test_compute_on_real_btc(home: Path, shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "btc/binance_BTC_USDT-1m_2023-04-05_2023-05-05__justinbomber.json.gz"
    ingest_files([path], "BTCUSDT")
    out = tmp_path / "features.parquet"
    code, output = tl(
        "tools", "compute", "BTCUSDT", "--tool", "RSI:timeperiod=14,as=rsi14", "--tool", "MACD",
        "--tool", "donchian_atr_breakout", "--tool", "vwap_day", "--start", "2023-04-10", "--end", "2023-04-20",
        "--out", str(out),
    )  # fmt: skip
    assert code == 0, output
    assert "14,400 bars" in output
    frame = pl.read_parquet(out)
    assert frame.columns[:5] == ["ts", "rsi14", "macd_macd", "macd_macdsignal", "macd_macdhist"]
    assert any(c.startswith("donchian_atr_breakout") for c in frame.columns) and "vwap_day" in frame.columns
    close = Store().load("BTCUSDT", start="2023-04-10", end="2023-04-20")["close"].to_numpy()
    expected = talib.RSI(close, 14).astype(np.float32)
    got = frame["rsi14"].to_numpy()
    warmup = 33  # the matrix's combined warm-up: MACD's lookback, the longest of the four tools
    assert "warm-up 33 bars" in output
    assert np.isnan(got[:warmup]).all() and np.array_equal(got[warmup:], expected[warmup:])


def test_compute_rejects_bad_params_naming_the_field(home: Path) -> None:
    # Specs are validated before any data is read, so no dataset is needed to see the error.
    code, output = tl("tools", "compute", "X", "--tool", "RSI:timeperiod=-3")
    assert code == 2 and "RSI" in output and "timeperiod" in output
