"""Run tokens on SQLite and Postgres: a run token acts only for its run's open attempt, and nothing rewrites what
a finished run reported.

The reconciler issues each attempt's token (into the compute's environment, where RunPod's API shows it to anyone
with the account key); the tests play the run's agent with the tokens it issued.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.experiments.runs import tiny_config
from tests.server.test_runpod_worker import fake, queue, reconciler, settle  # noqa: F401 (fake: a fixture)
from tradelab.compute.base import ComputeSpec, Handle
from tradelab.compute.fake_runpod import FakeRunPod
from tradelab.compute.local import LocalBackend
from tradelab.server.db import make_engine, transaction
from tradelab.server.models import Experiment, Run, RunState
from tradelab.server.security import issue_token
from tradelab.server.worker import Reconciler, WorkerConfig

#: A run's compute: it idles while the test reports for it with the token the reconciler put in its env.
IDLE = [sys.executable, "-c", "import signal; signal.pause()"]  # runs until it is terminated


class TokenKeeper(Reconciler):
    """The reconciler, keeping the run token it puts in each attempt's environment; the compute only idles."""

    def __init__(self, db_url: str, root: Path) -> None:
        super().__init__(make_engine(db_url), LocalBackend(root, hourly_price=1.0), WorkerConfig(concurrency=4))
        self.tokens: list[str] = []

    def _spec(self, session: Session, run: Run) -> ComputeSpec:
        spec = super()._spec(session, run)
        self.tokens.append(spec.env["TRADELAB_RUN_TOKEN"])
        return dataclasses.replace(spec, command=IDLE)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sharpe(value: float) -> dict[str, list[dict[str, object]]]:
    return {"points": [{"key": "test/sharpe", "step": 100, "value": value}]}


def queue_runs(client: TestClient, count: int) -> list[int]:
    """An experiment with ``count`` queued local runs; their ids."""
    with transaction(client.app.state.sessions) as session:
        experiment = Experiment(name="tiny", config=tiny_config().model_dump(mode="json", by_alias=True))
        session.add(experiment)
        session.flush()
        runs = [Run(experiment_id=experiment.id, seed=seed, max_wall_time_s=3600.0) for seed in range(count)]
        session.add_all(runs)
        session.flush()
        return [run.id for run in runs]


def report_success(client: TestClient, run_id: int, token: str, value: float) -> None:
    """What the agent reports of a run that succeeds with a test Sharpe of ``value``."""
    as_run = bearer(token)
    assert client.get(f"/api/runs/{run_id}/spec", headers=as_run).status_code == 200
    assert client.post(f"/api/runs/{run_id}/status", json={"state": "running"}, headers=as_run).status_code == 200
    assert client.post(f"/api/runs/{run_id}/heartbeat", json={"busy": True}, headers=as_run).status_code == 200
    assert client.post(f"/api/runs/{run_id}/metrics", json=sharpe(value), headers=as_run).status_code == 201
    assert client.post(f"/api/runs/{run_id}/logs", json={"lines": ["done"]}, headers=as_run).status_code == 201
    done = client.post(f"/api/runs/{run_id}/status", json={"state": "succeeded"}, headers=as_run)
    assert done.status_code == 200 and done.json()["state"] == "succeeded"


def assert_refused(client: TestClient, run_id: int, token: str) -> None:
    """Every call of a run token is refused as unauthorized: its attempt is over."""
    as_run = bearer(token)
    for method, what, body in [
        ("POST", "metrics", sharpe(42.0)),
        ("POST", "logs", {"lines": ["forged"]}),
        ("POST", "heartbeat", {"busy": True}),
        ("POST", "status", {"state": "failed", "error": "forged"}),
        ("GET", "spec", None),
    ]:
        answer = client.request(method, f"/api/runs/{run_id}/{what}", json=body, headers=as_run)
        assert answer.status_code == 401, (what, answer.text)


def best_runs(client: TestClient) -> list[tuple[int, float]]:
    return [(r["id"], r["test_sharpe"]) for r in client.get("/api/dashboard").json()["best_runs"]]


def test_a_finished_runs_token_and_the_admin_cannot_rewrite_what_it_reported(
    db_url: str, client: TestClient, tmp_path: Path
) -> None:
    best, other = queue_runs(client, 2)
    worker = TokenKeeper(db_url, tmp_path / "compute")
    worker.tick()
    assert len(worker.tokens) == 2
    try:
        report_success(client, best, worker.tokens[0], 1.5)
        report_success(client, other, worker.tokens[1], 0.5)
        assert best_runs(client) == [(best, 1.5), (other, 0.5)]
        assert_refused(client, other, worker.tokens[1])
        for what, body in [("metrics", sharpe(42.0)), ("logs", {"lines": ["edited"]}), ("heartbeat", {})]:
            assert client.post(f"/api/runs/{other}/{what}", json=body).status_code == 409, what  # the admin's
        assert best_runs(client) == [(best, 1.5), (other, 0.5)]
        assert client.get(f"/api/runs/{other}/metrics/test/sharpe").json()["values"] == [0.5]
        logs = client.get(f"/api/runs/{other}/logs").json()["data"]
        assert [line["line"] for line in logs] == ["done"]
    finally:
        worker.tick()  # settles both runs: their processes are stopped
        assert not worker.backend.list_owned()


def test_an_earlier_attempts_token_is_refused_while_the_next_attempt_runs(
    db_url: str, client: TestClient, tmp_path: Path
) -> None:
    (run_id,) = queue_runs(client, 1)
    worker = TokenKeeper(db_url, tmp_path / "compute")
    worker.tick()
    first = worker.tokens[0]
    try:
        assert client.post(f"/api/runs/{run_id}/status", json={"state": "running"}, headers=bearer(first)).is_success
        compute_id = client.get(f"/api/runs/{run_id}").json()["compute_id"]
        worker.backend.terminate(Handle(worker.backend.name, compute_id))  # attempt 1's process dies
        worker.tick()  # attempt 1 failed without reporting: attempt 2 starts with its own token
        run = client.get(f"/api/runs/{run_id}").json()
        assert run["state"] == "starting" and run["attempts"] == 2 and len(worker.tokens) == 2
        assert_refused(client, run_id, first)
        report_success(client, run_id, worker.tokens[1], 1.0)
        assert_refused(client, run_id, worker.tokens[1])
    finally:
        worker.tick()
        assert not worker.backend.list_owned()


def test_a_token_is_refused_while_its_run_is_queued_again_and_after_it_ends(client: TestClient) -> None:
    (run_id,) = queue_runs(client, 1)
    sessions = client.app.state.sessions

    def move(state: RunState, attempts: int) -> None:
        with transaction(sessions) as session:
            run = session.get(Run, run_id)
            run.state, run.attempts = state, attempts

    move(RunState.STARTING, 1)  # claimed, as the reconciler does before it issues the attempt's token
    with transaction(sessions) as session:
        token = issue_token(session, "attempt 1", role="run", run_id=run_id)
    assert client.post(f"/api/runs/{run_id}/heartbeat", headers=bearer(token)).status_code == 200
    move(RunState.QUEUED, 1)  # its compute was lost: queued again for another attempt
    assert_refused(client, run_id, token)
    move(RunState.CANCELLED, 1)
    assert_refused(client, run_id, token)


def test_a_terminated_pods_token_read_through_runpods_api_cannot_rewrite_the_finished_run(
    db_url: str,
    fake: FakeRunPod,  # noqa: F811 (the imported fixture)
    client: TestClient,
) -> None:
    (run_id,) = queue(db_url)
    worker = reconciler(db_url)
    worker.tick()
    (pod,) = fake.pods()
    query = {"query": f'query {{ pod(input: {{podId: "{pod.id}"}}) {{ id env }} }}'}
    seen = httpx.post(f"{fake.url}/graphql", json=query, headers=bearer("rp-key")).json()["data"]["pod"]["env"]
    token = dict(item.split("=", 1) for item in seen)["TRADELAB_RUN_TOKEN"]  # what anyone with the key reads
    run = settle(db_url, worker, fake, run_id)
    assert run.state == RunState.SUCCEEDED and fake.pod(pod.id).terminated
    forged = client.post(f"/api/runs/{run_id}/metrics", json=sharpe(99.0), headers=bearer(token))
    assert forged.status_code == 401, forged.text
    assert client.get(f"/api/runs/{run_id}/metrics").json()["count"] == 0
    assert best_runs(client) == []
