"""``tradelab env check``: the checker and one rule-based episode on a stored dataset; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.plugins import LAST, PEEK, count_lookahead_checks, manifest_tools
from tradelab.cli import app
from tradelab.data.ingest.synth import generate_bars
from tradelab.data.store import Store

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "env" / "synth-btc.json"


def tl(*args: str) -> tuple[int, str]:
    """Run the CLI; the output with rich's line wrapping and table rules undone."""
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.translate(str.maketrans("│┃", "  ")).split())


def test_check_runs_the_checker_and_an_sma_episode_on_the_example_config(home: Path) -> None:
    Store().write("SYNTH-BTC", "1m", generate_bars(10, seed=1, gaps=False))
    code, output = tl("env", "check", str(EXAMPLE))
    assert code == 0, output
    assert "gymnasium check_env passed for SYNTH-BTC/1m" in output
    assert "episode summary" in output and "final_equity" in output
    # The episode ends at its length (10,080 decisions) or earlier at the config's 30 % drawdown stop.
    assert "truncated True" in output or ("terminated True" in output and "max_drawdown 30." in output)


def test_hold_policy_pays_one_entry_fee(home: Path, tmp_path: Path) -> None:
    Store().write("SYNTH-BTC", "1m", generate_bars(10, seed=1, gaps=False))
    code, output = tl("env", "check", str(EXAMPLE), "--policy", "hold")
    assert code == 0, output
    assert "fills 1" in output and "trades 1" in output


def test_bad_config_names_the_field(home: Path, tmp_path: Path) -> None:
    config = json.loads(EXAMPLE.read_text())
    config["window"] = 0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    code, output = tl("env", "check", str(path))
    assert code == 2 and "bad.json: invalid env config: window: Input should be greater than or equal to 1" in output


def test_missing_dataset_is_a_clear_error(home: Path) -> None:
    code, output = tl("env", "check", str(EXAMPLE))
    assert code == 2 and "no dataset SYNTH-BTC/1m" in output


def test_check_refuses_a_tool_that_reads_the_next_bar_and_checks_each_tool_once(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_lookahead_checks(monkeypatch)
    Store().write("SYNTH-BTC", "1m", generate_bars(10, seed=1, gaps=False))
    config = json.loads(EXAMPLE.read_text())
    paths = {}
    for name in ("next_return", "last_return"):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps({**config, "features": [*config["features"], {"tool": name}]}))
    with manifest_tools(tmp_path / "tools", monkeypatch, {"next_return": PEEK, "last_return": LAST}):
        code, output = tl("env", "check", str(paths["next_return"]), "--policy", "flat")
        assert code == 2
        assert (
            "error: tool next_return looks ahead: its output next_return at bar 0 (2024-01-01T00:00:00.000 UTC)"
            in output
        )
        assert len(calls) == 7 and calls[-1] == "next_return"  # the example's six tools pass, then the leak
        for _ in range(2):
            code, output = tl("env", "check", str(paths["last_return"]), "--policy", "flat")
            assert code == 0 and "gymnasium check_env passed" in output, output
    assert calls[7:] == ["last_return"]  # every other verdict is read back from the cache
