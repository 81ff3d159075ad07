"""``tradelab tools``: list, show, compute and check, including on the real BTC candles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import talib
from typer.testing import CliRunner

from tests.plugins import LAST, PEEK, count_lookahead_checks, manifest_tools
from tradelab.cli import app
from tradelab.data.ingest import ingest_files
from tradelab.data.ingest.synth import generate_bars
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


def test_check_prints_verdicts_and_exits_1_on_a_leak(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    leak = "refused: tool next_return looks ahead: its output next_return at bar 0 (2024-01-01T00:00:00.000 UTC)"
    with manifest_tools(tmp_path / "tools", monkeypatch, {"next_return": PEEK, "last_return": LAST}):
        code, output = tl("tools", "check", "RSI:timeperiod=7", "last_return")
        assert code == 0, output
        assert "2 tool(s) on 20,000 bars: 2 causal, 0 leaking, 0 not checked, 0 failed" in output
        assert "refused" not in output

        code, output = tl("tools", "check", "next_return", "vwap_day")
        assert code == 1 and "LEAKS" in output and leak in output
        assert "2 tool(s) on 20,000 bars: 1 causal, 1 leaking, 0 not checked, 0 failed" in output

        Store().write("SYN", "1m", generate_bars(2, seed=1, start="2024-03-01", gaps=False))
        code, output = tl("tools", "check", "next_return", "--dataset", "SYN")
        assert code == 1 and "look-ahead on SYN/1m" in output and "1 tool(s) on 2,880 bars" in output
        assert "its output next_return at bar 0 (2024-03-01T00:00:00.000 UTC)" in output

        code, output = tl("tools", "check")
        assert code == 2 and "name the tools to check, or pass --all" in output


@pytest.mark.slow
def test_check_all_finds_the_one_leak_among_every_tool(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with manifest_tools(tmp_path / "tools", monkeypatch, {"next_return": PEEK}):
        code, output = tl("tools", "check", "--all")
    assert code == 1 and output.count("refused:") == 1 and "refused: tool next_return looks ahead" in output
    assert re.search(r"\d{3} tool\(s\) on 20,000 bars: \d{3} causal, 1 leaking, 0 not checked, 0 failed", output)


def test_compute_refuses_a_leaking_tool_and_checks_each_tool_once(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_lookahead_checks(monkeypatch)
    Store().write("SYN", "1m", generate_bars(2, seed=1, gaps=False))
    with manifest_tools(tmp_path / "tools", monkeypatch, {"next_return": PEEK, "last_return": LAST}):
        code, output = tl("tools", "compute", "SYN", "--tool", "next_return")
        assert code == 2
        assert (
            "error: tool next_return looks ahead: its output next_return at bar 0 (2024-01-01T00:00:00.000 UTC)"
            in output
        )
        for _ in range(2):
            code, output = tl("tools", "compute", "SYN", "--tool", "last_return", "--tool", "RSI")
            assert code == 0 and "2,880 bars, 2 columns" in output
        code, output = tl("tools", "compute", "SYN", "--tool", "next_return")
        assert code == 2 and "looks ahead" in output
    assert calls == ["next_return", "last_return", "RSI"]  # second uses read the verdicts back
