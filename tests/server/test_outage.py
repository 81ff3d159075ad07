"""A run's reports survive an outage of the API or its database, on SQLite and Postgres: the agent keeps them and
replays them once the API is back, the API stores a replayed batch once, and what could not be delivered before
the deadline is left in the attempt's ``outcome.json``.

The agent runs in the test's process against ``tradelab serve`` in a subprocess (stopped and started again; the
agent forwards the ``tradelab`` log, so an in-process server would report its own requests into the run's log).
Its waits between tries go to a fake clock: the API comes back after a given number of them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.e2e.test_control_plane import _free_port, wait_healthy
from tests.experiments.runs import stored
from tests.server.test_agent import FakeTime
from tests.server.test_database_outage import _outage
from tests.server.test_metrics import new_run
from tests.server.test_runs import run_token
from tradelab.data.store import Store
from tradelab.experiments import runner
from tradelab.server import jobs
from tradelab.server.agent import FIRST_DELAY_S, run_agent
from tradelab.server.db import transaction
from tradelab.server.models import MetricPoint, Run, RunLog, RunState
from tradelab.server.reports import store_logs, store_metrics
from tradelab.settings import get_settings


class Api:
    """``tradelab serve`` over ``db_url`` in a subprocess, to stop and start again."""

    def __init__(self, db_url: str, home: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "TRADELAB_HOME": str(home), "TRADELAB_DATABASE_URL": db_url}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "tradelab.cli", "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(command, env=self.env)
        wait_healthy(self.url, timeout_s=120)  # a loaded machine takes long to import the app

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=15)
            self.process = None


@pytest.fixture
def api(db_url: str, home: Path) -> Iterator[Api]:
    """The API over :func:`db_url`, up."""
    served = Api(db_url, home)
    served.start()
    yield served
    served.stop()


def _started(client: TestClient, api: Api, monkeypatch: pytest.MonkeyPatch, clock: FakeTime) -> int:
    """A run of the tiny experiment in its first attempt, as the worker starts it: its agent's environment set (its
    folder where the worker puts it, under ``$TRADELAB_HOME/artifacts``)."""
    run_id = new_run(client)
    with transaction(client.app.state.sessions) as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.state, run.attempts = RunState.STARTING, 1
    monkeypatch.setenv("TRADELAB_API_URL", api.url)
    monkeypatch.setenv("TRADELAB_RUN_TOKEN", run_token(client, run_id)["Authorization"].removeprefix("Bearer "))
    monkeypatch.setenv("TRADELAB_RUN_URL", _folder(run_id).as_uri())
    monkeypatch.setenv("TRADELAB_ATTEMPT", "1")
    monkeypatch.setenv("TRADELAB_DEADLINE", str(clock.now + 3_600))
    return run_id


def _stored_points(client: TestClient, run_id: int) -> list[tuple[str, int]]:
    with transaction(client.app.state.sessions) as session:
        return [(p.key, p.step) for p in session.scalars(select(MetricPoint).where(MetricPoint.run_id == run_id))]


def _stored_lines(client: TestClient, run_id: int) -> list[str]:
    with transaction(client.app.state.sessions) as session:
        return list(session.scalars(select(RunLog.line).where(RunLog.run_id == run_id)))


def _folder(run_id: int) -> Path:
    return get_settings().home / "artifacts" / "runs" / f"run-{run_id}"


def _outcome(run_id: int) -> dict[str, Any]:
    return json.loads((_folder(run_id) / "attempts" / "1" / "outcome.json").read_text())


def _points(step: int, values: dict[str, Any], prefix: str) -> set[tuple[str, int]]:
    """The points a report of ``values`` makes."""
    finite = {k for k, v in values.items() if isinstance(v, int | float) and math.isfinite(v)}
    return {(f"{prefix}/{key}", step) for key in finite}


class Validations:
    """Wraps the jobs' validation callback: the points each validation makes, and a hook before and after it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.points: set[tuple[str, int]] = set()
        self.count = 0
        self.before = self.after = lambda count: None
        original = jobs.Job.on_evaluation

        def observed(job: jobs.Job, timesteps: int, metrics: dict[str, Any]) -> bool:
            self.count += 1
            self.points |= _points(timesteps, metrics, "val")
            self.before(self.count)
            answer = original(job, timesteps, metrics)
            self.after(self.count)
            return answer

        monkeypatch.setattr(jobs.Job, "on_evaluation", observed)


def test_a_replayed_batch_stores_nothing_twice(client: TestClient) -> None:
    run_id = new_run(client)
    headers = run_token(client, run_id)
    first = [{"key": "val/sharpe", "step": s, "value": s / 10} for s in range(3)]
    replay = [*first, {"key": "val/sharpe", "step": 3, "value": 0.3}]  # the lost batch, then one made since
    assert client.post(f"/api/runs/{run_id}/metrics", json={"points": first}, headers=headers).json()["count"] == 3
    again = client.post(f"/api/runs/{run_id}/metrics", json={"points": replay}, headers=headers)
    assert again.status_code == 201 and again.json()["count"] == 1
    series = client.get(f"/api/runs/{run_id}/metrics/val/sharpe").json()
    assert series["steps"] == [0, 1, 2, 3] and series["values"] == [0.0, 0.1, 0.2, 0.3]
    lines = ["12:00:00,001 INFO tradelab: one", "12:00:00,002 INFO tradelab: two"]
    assert client.post(f"/api/runs/{run_id}/logs", json={"lines": lines}, headers=headers).json() == {"count": 2}
    resent = client.post(f"/api/runs/{run_id}/logs", json={"lines": [*lines, "12:00:01,000 INFO tradelab: three"]})
    assert resent.json() == {"count": 1}
    log = client.get(f"/api/runs/{run_id}/logs").json()
    assert [line["line"] for line in log["data"]] == [*lines, "12:00:01,000 INFO tradelab: three"]


def test_the_storage_the_worker_shares_is_idempotent_and_names_a_bad_point(client: TestClient) -> None:
    run_id = new_run(client)
    points = [{"key": "test/sharpe", "step": 1024, "value": 1.5}, {"key": "test/sharpe", "step": 1024, "value": 9.0}]
    with transaction(client.app.state.sessions) as session:
        assert store_metrics(session, run_id, points) == 1  # a batch's repeat keeps the first value
        assert store_metrics(session, run_id, points) == 0
        assert store_logs(session, run_id, ["a", "a"]) == 2  # two records with the same text in one delivery
        assert store_logs(session, run_id, ["a", "b"]) == 1
    with transaction(client.app.state.sessions) as session:
        for bad in ({"key": "k", "step": 1, "value": float("nan")}, {"key": "k"}):
            with pytest.raises(ValueError, match="metric point 1"):
                store_metrics(session, run_id, [{"key": "k", "step": 0, "value": 0.0}, bad])
    assert client.get(f"/api/runs/{run_id}/metrics/test/sharpe").json()["values"] == [1.5]
    assert client.get(f"/api/runs/{run_id}/metrics").json()["data"] == [
        {"key": "test/sharpe", "count": 1, "last_step": 1024}
    ]


def test_a_run_that_ends_while_the_api_is_down_succeeds_with_every_point_stored_once(
    client: TestClient, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored(Store())
    clock = FakeTime()
    run_id = _started(client, api, monkeypatch, clock)
    validations = Validations(monkeypatch)
    trained = runner.run_experiment

    def then_the_api_goes_down(*args: Any, **kwargs: Any) -> Any:  # right after the last validation
        outcomes = trained(*args, **kwargs)
        api.stop()
        return outcomes

    monkeypatch.setattr(runner, "run_experiment", then_the_api_goes_down)

    def wait(delay: float) -> None:  # the API is back after the agent's third wait
        clock.sleep(delay)
        if len(clock.delays) == 3:
            api.start()

    assert run_agent(run_id, 0, sleep=wait, clock=clock.clock) == 0
    assert clock.delays == [FIRST_DELAY_S, 2 * FIRST_DELAY_S, 4 * FIRST_DELAY_S]
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["state"] == "succeeded", run["error"]
    results = json.loads((Path(run["artifact_url"].removeprefix("file://")) / "results.json").read_text())
    tested = _points(results["timesteps"], results["test"]["agent"], "test")
    points = _stored_points(client, run_id)
    assert validations.count >= 2 and tested
    assert sorted(points) == sorted(validations.points | tested)  # every point, each once
    outcome = _outcome(run_id)  # written before the final posts, with what was not delivered then
    assert outcome["state"] == "succeeded" and outcome["artifact_url"] == run["artifact_url"]
    assert {(p["key"], p["step"]) for p in outcome["metrics"]} == tested
    lines = _stored_lines(client, run_id)
    assert len(lines) == len(set(lines)) and any("training seed 0" in line for line in lines)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # a server outage; SQLite is a file in-process
def test_validation_points_made_while_the_database_is_down_are_delivered_once_it_is_back(
    db_url: str, client: TestClient, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored(Store())
    clock = FakeTime()
    run_id = _started(client, api, monkeypatch, clock)
    validations = Validations(monkeypatch)
    validations.before = lambda count: _outage(db_url, down=True) if count == 1 else None
    validations.after = lambda count: _outage(db_url, down=False) if count == 2 else None
    assert run_agent(run_id, 0, sleep=clock.sleep, clock=clock.clock) == 0
    assert validations.count >= 2
    assert client.get(f"/api/runs/{run_id}").json()["state"] == "succeeded"
    stored_validations = [point for point in _stored_points(client, run_id) if point[0].startswith("val/")]
    assert sorted(stored_validations) == sorted(validations.points)


def test_an_agent_that_cannot_report_its_end_before_the_deadline_leaves_it_in_its_outcome_file(
    client: TestClient, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeTime()
    run_id = _started(client, api, monkeypatch, clock)
    monkeypatch.setenv("TRADELAB_DEADLINE", str(clock.now + 60))

    def job(job: jobs.Job) -> str:  # reports a validation, then the API goes away for good
        job.reporter.metrics(512, {"sharpe": 0.5}, "val")
        api.stop()
        job.reporter.metrics(1024, {"sharpe": 1.5}, "test")
        return f"{job.out}/model"

    monkeypatch.setitem(jobs.JOBS, "train", job)
    assert run_agent(run_id, 0, sleep=clock.sleep, clock=clock.clock) == 0  # the job succeeded
    assert sum(clock.delays) <= 60 and clock.delays[-1] > clock.delays[0]
    outcome = _outcome(run_id)
    assert outcome["state"] == "succeeded" and outcome["artifact_url"].endswith(f"run-{run_id}/model")
    assert outcome["metrics"] == [{"key": "test/sharpe", "step": 1024, "value": 1.5}]
    assert any("gave up reporting its end" in line for line in outcome["logs"])
    assert _stored_points(client, run_id) == [("val/sharpe", 512)]
    assert client.get(f"/api/runs/{run_id}").json()["state"] == "running"  # the worker decides from the file
