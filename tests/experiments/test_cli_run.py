"""``tradelab run`` and ``tradelab evaluate`` from the command line, on a tiny experiment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.experiments.runs import stored, tiny_config
from tests.plugins import PEEK, manifest_tools
from tradelab.cli import app
from tradelab.data.store import Store

cli = CliRunner()


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny_config().model_dump(mode="json", by_alias=True, exclude_none=True)))
    return path


def test_run_prints_the_table_and_evaluate_replays_the_model(home: Path, tmp_path: Path) -> None:
    stored(Store())
    runs = tmp_path / "runs"
    result = cli.invoke(app, ["run", str(_config_file(tmp_path)), "--out", str(runs), "--no-progress", "--seed", "3"])
    assert result.exit_code == 0, result.output
    for name in ("agent", "buy_and_hold", "flat", "random", "sma_crossover", "artifacts:"):
        assert name in result.output
    (run_dir,) = runs.iterdir()
    assert run_dir.name.endswith("-s3")

    result = cli.invoke(app, ["evaluate", str(run_dir), "--split", "val"])
    assert result.exit_code == 0, result.output
    assert json.loads((run_dir / "evaluation_val.json").read_text())["val"]["flat"]["n_trades"] == 0

    result = cli.invoke(app, ["evaluate", str(run_dir), "--split", "2024-01-01T12:00..2024-01-01T18:00"])
    assert result.exit_code == 0, result.output
    evaluation = json.loads((run_dir / "evaluation_2024-01-01T12-00-2024-01-01T18-00.json").read_text())
    assert evaluation["2024-01-01T12-00-2024-01-01T18-00"]["agent"]["bars"] == 359  # 360 bars: the last only fills

    result = cli.invoke(app, ["evaluate", str(run_dir), "--split", "sometime"])
    assert result.exit_code == 2 and "train, val, test or START..END" in result.output


def test_a_bad_config_lists_its_problems_and_exits_2(home: Path, tmp_path: Path) -> None:
    stored(Store())
    result = cli.invoke(app, ["run", str(_config_file(tmp_path)), "--set", "n_envs=0", "--set", "algorithm.name=DQX"])
    assert result.exit_code == 2
    assert "2 problem(s)" in result.output and "n_envs" in result.output and "algorithm.name" in result.output


def test_run_refuses_a_tool_that_reads_the_next_bar(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored(Store())
    config = tiny_config().model_dump(mode="json", by_alias=True, exclude_none=True)
    config["env"]["features"].append({"tool": "next_return"})
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(config))
    runs = tmp_path / "runs"
    with manifest_tools(tmp_path / "tools", monkeypatch, {"next_return": PEEK}):
        result = cli.invoke(app, ["run", str(path), "--out", str(runs), "--no-progress"])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert (
        "error: tool next_return looks ahead: its output next_return at bar 0 (2024-01-01T00:00:00.000 UTC)" in output
    )
    assert not runs.exists()  # refused before any training
