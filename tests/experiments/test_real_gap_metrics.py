"""The 2023 BTC files (merged) and the 2025 one in one dataset: validation names the two-year hole first and fails
on it, splits report it and refuse a scored segment that is mostly hole, and no metric is inflated by it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.env.envs import FEATURES
from tests.experiments.joined import HOLE
from tradelab.cli import app
from tradelab.env.config import EnvConfig
from tradelab.env.market import MarketData
from tradelab.env.policies import hold
from tradelab.experiments.evaluation import evaluation_env, play, segment
from tradelab.experiments.metrics import Metrics

pytestmark = pytest.mark.realdata


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_validate_names_the_hole_first_and_fails_on_it(joined: str) -> None:
    code, output = _cli("data", "validate", joined, "--json")
    report = json.loads(output)
    assert code == 1 and report["ok"] is False
    assert list(report)[3:5] == ["coverage", "gaps"] and report["gaps"]["longest"] == HOLE
    assert [(f["check"], f["severity"]) for f in report["findings"][:2]] == [("coverage", "error"), ("gaps", "error")]
    code, output = _cli("data", "validate", joined)
    assert code == 1
    assert (
        "error: gaps: 2 gap(s), 1,092,187 missing bars; the longest: 1,092,107 bars from 2023-05-05T07:36:00+00:00 "
        "to 2025-06-01T17:22:00+00:00, more than the maximum 1,440" in " ".join(output.split())
    )


def test_splits_report_the_hole_and_refuse_a_fold_whose_test_is_mostly_hole(joined: str, tmp_path: Path) -> None:
    code, output = _cli("data", "split", joined, "--embargo", "60", "--out", str(tmp_path / "plan.json"))
    assert code == 0, output
    train, val, test = json.loads((tmp_path / "plan.json").read_text())["segments"]
    assert (train["gaps"], train["longest_gap"], train["longest_gap_start"]) == (2, 1_092_107, HOLE["start"])
    assert val["gaps"] == test["gaps"] == 0  # what is scored lies in 2025
    code, output = _cli("data", "split", joined, "--folds", "3", "--test", "0.3", "--embargo", "60")
    assert code == 0, output  # the default walk-forward tests three windows of 2025
    code, output = _cli(
        "data", "split", joined, "--folds", "4", "--test", "0.4", "--val-bars", "5000", "--embargo", "60"
    )
    text = " ".join(output.split())
    assert code == 1 and "unsafe: 'fold 0 test' (rows 68549..79973" in text and "is mostly hole" in text
    assert "longest 1,092,107 bars from 2023-05-05T07:36:00+00:00" in text and "'fold 1" not in text


def test_no_annual_return_or_calmar_is_inflated_by_the_hole(joined: str) -> None:
    """Buy-and-hold over the rows of that fold 0 test (11,425 bars, the hole inside; before the fix: +272 %, an
    annual return of 1.9e26 and a Calmar of 3.2e27) against the same rows split at the hole, played apart."""
    config = EnvConfig.model_validate({"dataset": {"symbol": joined}, "features": FEATURES, "window": 8})
    market = MarketData.from_store(config)
    first, last = 68_549, 79_973
    cut = int(market.stretches[-1, 0])  # the first bar of 2025
    assert first < cut <= last

    def buy_and_hold(first_row: int, last_row: int) -> Metrics:
        env = evaluation_env(config, segment(market, first_row, last_row))
        return play(env, hold(env), "buy_and_hold").metrics(config.dataset.timeframe, config.gaps.max_fill_bars)

    across, before, after = buy_and_hold(first, last), buy_and_hold(first, cut - 1), buy_and_hold(cut, last)
    assert across.bars == before.bars + after.bars  # the step over the hole is no bar
    assert abs(across.total_return) < 0.1  # BTC went from 29k to 105k while no bar was stored: not a return
    assert across.total_return == pytest.approx((1 + before.total_return) * (1 + after.total_return) - 1, abs=2e-3)
    assert across.annual_return <= max(before.annual_return, after.annual_return) + 1e-9
    assert across.calmar <= max(before.calmar, after.calmar) + 1e-9
