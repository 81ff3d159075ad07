"""``tradelab run`` on the 2023 BTC files (merged) and the 2025 one in one dataset: a walk-forward and a
chronological run train, select and test without any episode, fold or metric spanning the two-year hole.

Training is a few hundred steps (the point is where episodes and scores lie, not what is learned); each
scored segment and test curve is checked against the bar times. That no figure is inflated by the hole is
``test_real_gap_metrics``'s; that no training episode steps across it, ``tests/env/test_gaps.py``'s.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.env.envs import FEATURES
from tests.experiments.joined import HOLE
from tradelab.cli import app

pytestmark = pytest.mark.realdata

HOLE_END = datetime.fromisoformat(HOLE["end"])


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _config(tmp_path: Path, split: dict[str, Any]) -> Path:
    config = {
        "name": "gap-run",
        "env": {"dataset": {"symbol": "BTCUSDT"}, "features": FEATURES, "window": 8, "episode": {"length": 200}},
        "split": split,
        "algorithm": {"name": "PPO", "hyperparams": {"n_steps": 32, "batch_size": 128, "n_epochs": 1}},
        "n_envs": 4,
        "total_timesteps": 256,
        "evaluation": {"every_steps": 256},
        "device": "cpu",
    }
    path = tmp_path / f"{split['kind']}.json"
    path.write_text(json.dumps(config))
    return path


def _period(run: Path, name: str) -> tuple[datetime, datetime]:
    first, last = json.loads((run / "config.json").read_text())["periods"][name]  # epoch ms
    return datetime.fromtimestamp(first / 1000, UTC), datetime.fromtimestamp(last / 1000, UTC)


def test_walk_forward_and_chronological_runs_score_nothing_across_the_hole(joined: str, tmp_path: Path) -> None:
    walk_forward = {"kind": "walk_forward", "n_folds": 3, "test_fraction": 0.3, "val_bars": 5000, "embargo_bars": 60}
    chronological = {"kind": "chronological", "train": 0.7, "val": 0.15, "test": 0.15, "embargo_bars": 60}
    for split, runs_expected in ((walk_forward, 3), (chronological, 1)):
        out = tmp_path / split["kind"]
        code, output = _cli("run", str(_config(tmp_path, split)), "--out", str(out), "--no-progress")
        assert code == 0, output
        runs = sorted(p for p in out.iterdir() if p.is_dir())
        assert len(runs) == runs_expected
        for run in runs:
            for name in ("val", "test"):  # scored segments lie on one side of the hole: 2025
                first, last = _period(run, name)
                assert HOLE_END < first <= last, (run.name, name, first, last)
            results = json.loads((run / "results.json").read_text())
            equity = pl.read_parquet(run / "equity_test.parquet")
            ts = equity["ts"].dt.epoch("ms")
            assert ts.diff().drop_nulls().max() <= 6 * 60_000  # no step of the test curve crosses a hole
            bars = results["test"]["buy_and_hold"]["bars"]
            assert bars == equity.height - 1 and results["test"]["buy_and_hold"]["window_days"] < 31
        train_first, train_last = _period(runs[-1], "train")
        assert train_first.year == 2023 and train_last >= HOLE_END  # the last fold trains across it: allowed


def test_a_walk_forward_whose_test_window_straddles_the_hole_is_refused(joined: str, tmp_path: Path) -> None:
    split = {"kind": "walk_forward", "n_folds": 4, "test_fraction": 0.4, "val_bars": 5000, "embargo_bars": 60}
    code, output = _cli("run", str(_config(tmp_path, split)), "--out", str(tmp_path / "runs"), "--no-progress")
    text = " ".join(output.split())
    assert code == 2 and "'fold 0 test'" in text and "is mostly hole" in text, text
    assert not any((tmp_path / "runs").glob("*/results.json"))  # refused before anything trained
