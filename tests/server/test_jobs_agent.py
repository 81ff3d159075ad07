"""The agent's jobs run for real (the runner, SB3, the store); what they report is recorded instead of posted, or
kept by the reporter while the API is down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.experiments.runs import stored, tiny_config
from tradelab.data.store import Store
from tradelab.server.agent import Reporter
from tradelab.server.jobs import Job, train
from tradelab.settings import get_settings


class Recorder:
    """Stands in for :class:`tradelab.server.agent.Reporter`: keeps the metric points it is given."""

    def __init__(self) -> None:
        self.points: dict[str, dict[str, float]] = {}

    def metrics(self, step: int, values: dict[str, Any], prefix: str) -> None:
        self.points.setdefault(prefix, {}).update({k: v for k, v in values.items() if isinstance(v, int | float)})


def test_a_walk_forward_run_reports_each_fold_and_their_mean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADELAB_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    stored(Store())
    config = tiny_config(split={"kind": "walk_forward", "n_folds": 2, "test_fraction": 0.3, "val_bars": 300})
    recorder = Recorder()
    job = Job(1, config, 0, {}, [], str(tmp_path / "runs"), recorder)  # type: ignore[arg-type]
    url = train(job)
    get_settings.cache_clear()
    folds = [recorder.points["fold0"], recorder.points["fold1"]]
    assert recorder.points["test"]["sharpe"] == pytest.approx((folds[0]["sharpe"] + folds[1]["sharpe"]) / 2)
    assert folds[0]["total_return"] != folds[1]["total_return"]  # two different test windows
    assert Path(url).name.endswith("-f1")  # the last fold's folder
    assert (Path(url) / "equity_test.parquet").is_file()


def test_validation_metrics_that_cannot_be_posted_do_not_stop_training_and_wait_to_be_delivered(
    tmp_path: Path,
) -> None:
    def refused(request: httpx.Request) -> httpx.Response:  # an API that is down
        raise httpx.ConnectError("connection refused")

    reporter = Reporter("http://api", "secret", 1, transport=httpx.MockTransport(refused))
    job = Job(1, tiny_config(), 0, {}, [], str(tmp_path / "runs"), reporter)
    assert job.on_evaluation(512, {"sharpe": 1.0}) is True  # the runner goes on training
    assert reporter.outbox.pending() == ([{"key": "val/sharpe", "step": 512, "value": 1.0}], [])
