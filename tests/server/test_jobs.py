"""Runs of other kinds through the API (sweeps, ensembles, re-evaluations) and watches scheduled by the worker,
on SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.experiments.runs import tiny_config
from tests.experiments.test_sweep import SWEEP
from tests.server.test_runs import run_token
from tradelab.compute.local import LocalBackend
from tradelab.server.db import transaction
from tradelab.server.models import Run, RunState, Watch
from tradelab.server.worker import Reconciler, WorkerConfig


def _experiment(client: TestClient, **overrides: Any) -> int:
    config = tiny_config(**overrides).model_dump(mode="json", by_alias=True)
    response = client.post("/api/experiments", json={"name": "jobs", "config": config})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _succeeded(client: TestClient, experiment_id: int, seeds: range) -> list[int]:
    """Training runs of the experiment marked succeeded with an artifact folder (as their agents would)."""
    ids = [client.post(f"/api/experiments/{experiment_id}/runs", json={"seed": s}).json()["id"] for s in seeds]
    with transaction(client.app.state.sessions) as session:
        session.execute(
            update(Run).where(Run.id.in_(ids)).values(state=RunState.SUCCEEDED, artifact_url="file:///runs/x")
        )
    return ids


def test_a_sweep_is_a_run_of_its_own_kind_and_needs_a_sweep_section(client: TestClient) -> None:
    plain = _experiment(client)
    refused = client.post(f"/api/experiments/{plain}/sweeps", json={"trials": 2})
    assert refused.status_code == 409 and refused.json()["detail"][0]["loc"] == ["body", "config", "sweep"]
    assert "sweep" in refused.json()["detail"][0]["msg"]
    swept = _experiment(client, sweep=SWEEP)
    run = client.post(f"/api/experiments/{swept}/sweeps", json={"trials": 3, "backend": "local", "max_cost": 2})
    assert run.status_code == 201
    assert run.json() | {"kind": "sweep", "params": {"trials": 3}, "state": "queued", "max_cost": 2.0} == run.json()
    assert client.post(f"/api/experiments/{swept}/sweeps", json={"trials": 0}).status_code == 422


def test_an_ensemble_takes_only_succeeded_trained_runs_of_its_experiment(client: TestClient) -> None:
    experiment = _experiment(client)
    members = _succeeded(client, experiment, range(2))
    queued = client.post(f"/api/experiments/{experiment}/runs", json={}).json()["id"]
    for body, code, loc in [
        ({"members": [members[0], queued]}, 409, ["body", "members", 1]),
        ({"members": [members[0], members[0]]}, 422, ["body", "members"]),
        ({"members": [members[0], 999]}, 409, ["body", "members", 1]),
    ]:
        refused = client.post(f"/api/experiments/{experiment}/ensembles", json=body)
        assert refused.status_code == code and refused.json()["detail"][0]["loc"] == loc, refused.text
    run = client.post(f"/api/experiments/{experiment}/ensembles", json={"members": members}).json()
    assert run["kind"] == "ensemble" and run["params"] == {"members": members}
    spec = client.get(f"/api/runs/{run['id']}/spec", headers=run_token(client, run["id"])).json()
    assert spec["kind"] == "ensemble" and spec["inputs"] == ["file:///runs/x", "file:///runs/x"]
    nested = client.post(f"/api/experiments/{experiment}/ensembles", json={"members": [members[0], run["id"]]})
    assert nested.status_code == 409 and "ensemble run" in nested.json()["detail"][0]["msg"]


def test_an_evaluation_files_its_out_of_sample_points_under_the_scored_run_too(client: TestClient) -> None:
    experiment = _experiment(client)
    (target,) = _succeeded(client, experiment, range(1))
    queued = client.post(f"/api/experiments/{experiment}/runs", json={}).json()["id"]
    assert client.post(f"/api/runs/{queued}/evaluations", json={"days": 7}).status_code == 409
    run = client.post(f"/api/runs/{target}/evaluations", json={"days": 7}).json()
    assert run["kind"] == "evaluate" and run["params"] == {"run_id": target, "days": 7}
    points = [{"key": "oos/sharpe", "step": 1_700_000_000, "value": 1.5}, {"key": "x/y", "step": 1, "value": 2.0}]
    posted = client.post(
        f"/api/runs/{run['id']}/metrics", json={"points": points}, headers=run_token(client, run["id"])
    )
    assert posted.status_code == 201
    assert client.get(f"/api/runs/{target}/metrics/oos/sharpe").json()["values"] == [1.5]
    assert {k["key"] for k in client.get(f"/api/runs/{target}/metrics").json()["data"]} == {"oos/sharpe"}
    assert {k["key"] for k in client.get(f"/api/runs/{run['id']}/metrics").json()["data"]} == {"oos/sharpe", "x/y"}


def test_watches_are_set_read_replaced_and_deleted(client: TestClient) -> None:
    experiment = _experiment(client)
    (target,) = _succeeded(client, experiment, range(1))
    assert client.get(f"/api/runs/{target}/watch").status_code == 404
    assert client.put(f"/api/runs/{target}/watch", json={"every_s": 10}).status_code == 422
    assert client.put(f"/api/runs/{target}/watch", json={"backend": "nope"}).status_code == 422
    first = client.put(f"/api/runs/{target}/watch", json={"window_days": 7, "every_s": 3600}).json()
    assert first | {"run_id": target, "window_days": 7, "every_s": 3600.0, "last_queued_at": None} == first
    client.put(f"/api/runs/{target}/watch", json={"window_days": 14})
    assert [w["window_days"] for w in client.get("/api/watches").json()] == [14]
    assert client.delete(f"/api/runs/{target}/watch").status_code == 204
    assert client.get("/api/watches").json() == [] and client.delete(f"/api/runs/{target}/watch").status_code == 404


def test_the_worker_queues_a_due_watch_once_then_again_after_its_period(client: TestClient, tmp_path: Path) -> None:
    experiment = _experiment(client)
    (target,) = _succeeded(client, experiment, range(1))
    client.put(f"/api/runs/{target}/watch", json={"window_days": 3, "every_s": 3600})
    engine = client.app.state.engine
    workers = [Reconciler(engine, LocalBackend(tmp_path / str(i)), WorkerConfig(concurrency=0)) for i in range(2)]
    assert [w.tick().scheduled for w in workers] == [[target + 1], []]  # one worker wins; the other sees it busy

    def evaluations() -> list[Run]:
        with transaction(client.app.state.sessions) as session:
            return list(session.scalars(select(Run).where(Run.kind == "evaluate").order_by(Run.id)))

    (first,) = evaluations()
    assert first.params == {"run_id": target, "days": 3} and first.state == RunState.QUEUED
    with transaction(client.app.state.sessions) as session:
        session.execute(update(Run).where(Run.id == first.id).values(state=RunState.SUCCEEDED))
    assert workers[0].tick().scheduled == []  # done, but not due for an hour
    with transaction(client.app.state.sessions) as session:
        earlier = datetime.now(UTC) - timedelta(hours=2)
        session.execute(update(Watch).where(Watch.run_id == target).values(last_queued_at=earlier))
    assert len(workers[1].tick().scheduled) == 1 and len(evaluations()) == 2
    elsewhere = LocalBackend(tmp_path / "x")
    elsewhere.name = "elsewhere"
    other = Reconciler(engine, elsewhere, WorkerConfig(concurrency=0))
    assert other.tick().scheduled == []  # a watch is scheduled by the worker of its own backend
