"""Runs on SQLite and Postgres: queueing, listing, cancelling, the reported transitions, run tokens, logs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from tests.experiments.runs import tiny_config
from tradelab.server.db import transaction
from tradelab.server.models import Event, Experiment, Run, RunState
from tradelab.server.run_folders import run_folder
from tradelab.server.security import issue_token


def make_experiment(client: TestClient, **config: object) -> int:
    """An experiment row (the tiny config) inserted directly; its id."""
    with transaction(client.app.state.sessions) as session:
        experiment = Experiment(name="tiny", config=tiny_config(**config).model_dump(mode="json", by_alias=True))
        session.add(experiment)
        session.flush()
        return experiment.id


def set_state(client: TestClient, run_id: int, state: RunState) -> None:
    """Move a run as the worker would (the API moves runs out of ``queued`` only by cancelling)."""
    with transaction(client.app.state.sessions) as session:
        session.get(Run, run_id).state = state


def run_token(client: TestClient, run_id: int) -> dict[str, str]:
    """Headers carrying a fresh token of run ``run_id``: a queued run is claimed for a new attempt first, as the
    worker claims it (a run token acts only while its attempt is open)."""
    with transaction(client.app.state.sessions) as session:
        run = session.get(Run, run_id)
        if run.state == RunState.QUEUED:
            run.state, run.attempts = RunState.STARTING, run.attempts + 1
        return {"Authorization": f"Bearer {issue_token(session, 'worker', role='run', run_id=run_id)}"}


def state_events(client: TestClient, run_id: int) -> list[dict]:
    with transaction(client.app.state.sessions) as session:
        events = session.scalars(select(Event).where(Event.run_id == run_id).order_by(Event.id)).all()
        return [e.payload for e in events if e.kind == "run_state"]


def test_a_run_is_queued_with_the_experiments_first_seed_and_an_event(client: TestClient) -> None:
    experiment_id = make_experiment(client, seeds=[7, 8])
    response = client.post(f"/api/experiments/{experiment_id}/runs", json={})
    assert response.status_code == 201
    run = response.json()
    assert run["state"] == "queued" and run["seed"] == 7 and run["experiment_id"] == experiment_id
    assert state_events(client, run["id"]) == [{"state": "queued", "previous": None}]
    other = client.post(f"/api/experiments/{experiment_id}/runs", json={"seed": 3, "max_wall_time_s": 60}).json()
    assert other["seed"] == 3 and other["max_wall_time_s"] == 60
    assert client.get(f"/api/runs/{run['id']}").json() == run
    assert client.post("/api/experiments/999/runs", json={}).status_code == 404
    assert client.get("/api/runs/999").status_code == 404
    assert client.post(f"/api/experiments/{experiment_id}/runs", json={"max_wall_time_s": -1}).status_code == 422


def test_runs_are_listed_newest_first_filtered_and_paged(client: TestClient) -> None:
    first, second = make_experiment(client), make_experiment(client)
    rows = [{"experiment_id": first if i % 2 else second, "state": "succeeded", "seed": i} for i in range(10_000)]
    with transaction(client.app.state.sessions) as session:
        session.execute(insert(Run), rows)
    ids = [client.post(f"/api/experiments/{first}/runs", json={"seed": s}).json()["id"] for s in (1, 2, 3)]
    page = client.get("/api/runs", params={"limit": 2}).json()  # its speed is bench/bench_api.py's
    assert page["count"] == 10_003 and [r["id"] for r in page["data"]] == ids[::-1][:2]
    queued = client.get("/api/runs", params={"state": "queued"}).json()
    assert queued["count"] == 3 and [r["id"] for r in queued["data"]] == ids[::-1]
    mine = client.get("/api/runs", params={"experiment_id": second, "limit": 50, "offset": 10}).json()
    assert mine["count"] == 5_000 and len(mine["data"]) == 50
    assert all(r["experiment_id"] == second for r in mine["data"])
    assert client.get("/api/runs", params={"state": "sleeping"}).status_code == 422
    assert client.get("/api/runs", params={"limit": 0}).status_code == 422


def test_cancel_stops_a_queued_run_and_flags_a_running_one(client: TestClient) -> None:
    experiment_id = make_experiment(client)
    queued, running = (client.post(f"/api/experiments/{experiment_id}/runs", json={}).json()["id"] for _ in range(2))
    cancelled = client.post(f"/api/runs/{queued}/cancel").json()
    assert cancelled["state"] == "cancelled" and cancelled["ended_at"] is not None
    assert state_events(client, queued)[-1] == {"state": "cancelled", "previous": "queued"}
    set_state(client, running, RunState.RUNNING)
    flagged = client.post(f"/api/runs/{running}/cancel").json()
    assert flagged["state"] == "running" and flagged["cancel_requested"] is True
    assert client.post(f"/api/runs/{queued}/cancel").status_code == 409
    assert client.post("/api/runs/999/cancel").status_code == 404
    assert client.post(f"/api/runs/{running}/cancel", headers=run_token(client, running)).status_code == 403


def test_a_run_reports_its_progress_through_the_allowed_transitions_only(client: TestClient) -> None:
    experiment_id = make_experiment(client)
    run_id = client.post(f"/api/experiments/{experiment_id}/runs", json={}).json()["id"]
    assert client.post(f"/api/runs/{run_id}/status", json={"state": "running"}).status_code == 409  # queued
    headers = run_token(client, run_id)
    assert client.post(f"/api/runs/{run_id}/status", json={"state": "succeeded"}, headers=headers).status_code == 409
    running = client.post(f"/api/runs/{run_id}/status", json={"state": "running"}, headers=headers).json()
    assert running["state"] == "running" and running["started_at"] is not None
    beat = client.post(f"/api/runs/{run_id}/heartbeat", headers=headers).json()
    assert beat["heartbeat_at"] is not None and beat["cancel_requested"] is False
    assert client.post(f"/api/runs/{run_id}/status", json={"state": "cancelled"}).status_code == 422
    folder = f"{run_folder(run_id)}/tiny-s0"  # inside the run's own folder, as its agent reports it
    done = client.post(
        f"/api/runs/{run_id}/status", json={"state": "succeeded", "artifact_url": folder}, headers=headers
    ).json()
    assert done["state"] == "succeeded" and done["ended_at"] is not None and done["artifact_url"] == folder
    assert client.post(f"/api/runs/{run_id}/status", json={"state": "failed"}, headers=headers).status_code == 401
    assert client.post(f"/api/runs/{run_id}/heartbeat", headers=headers).status_code == 401  # its attempt is over
    assert client.post(f"/api/runs/{run_id}/status", json={"state": "failed"}).status_code == 409  # final for all
    assert [e["state"] for e in state_events(client, run_id)] == ["queued", "running", "succeeded"]


def test_a_starting_run_may_fail_with_its_error(client: TestClient) -> None:
    run_id = client.post(f"/api/experiments/{make_experiment(client)}/runs", json={}).json()["id"]
    set_state(client, run_id, RunState.STARTING)
    failed = client.post(f"/api/runs/{run_id}/status", json={"state": "failed", "error": "boom"}).json()
    assert failed["state"] == "failed" and failed["error"] == "boom" and failed["ended_at"] is not None
    assert state_events(client, run_id)[-1] == {"state": "failed", "previous": "starting"}


def test_a_run_token_writes_only_its_own_run(client: TestClient, admin_token: str) -> None:
    experiment_id = make_experiment(client)
    mine, theirs = (client.post(f"/api/experiments/{experiment_id}/runs", json={}).json()["id"] for _ in range(2))
    headers = run_token(client, mine)
    secret = headers["Authorization"].split()[1]
    assert client.post(f"/api/runs/{mine}/logs", json={"lines": ["hi"]}, headers=headers).status_code == 201
    for path in ("heartbeat", "logs"):
        response = client.post(f"/api/runs/{theirs}/{path}", json={"lines": ["x"]}, headers=headers)
        assert response.status_code == 403
    assert client.post(f"/api/runs/{theirs}/status", json={"state": "running"}, headers=headers).status_code == 403
    assert client.get(f"/api/runs/{mine}/logs", headers=headers).status_code == 403  # reading is for admins
    assert client.get("/api/runs", headers=headers).status_code == 403
    anonymous = TestClient(client.app)
    assert anonymous.post(f"/api/runs/{mine}/heartbeat").status_code == 401
    assert anonymous.get("/api/runs").status_code == 401
    listing = client.get("/api/runs").text
    assert secret not in listing and admin_token not in listing


def test_logs_are_appended_and_paged_with_a_cursor(client: TestClient) -> None:
    run_id = client.post(f"/api/experiments/{make_experiment(client)}/runs", json={}).json()["id"]
    assert client.post(f"/api/runs/{run_id}/logs", json={"lines": [f"line {i}" for i in range(5)]}).json() == {
        "count": 5
    }
    client.post(f"/api/runs/{run_id}/logs", json={"lines": ["line 5", "line 6"]})
    seen, after = [], 0
    while page := client.get(f"/api/runs/{run_id}/logs", params={"after_id": after, "limit": 3}).json()["data"]:
        assert len(page) <= 3
        seen += [entry["line"] for entry in page]
        after = page[-1]["id"]
    assert seen == [f"line {i}" for i in range(7)]
    assert client.get(f"/api/runs/{run_id}/logs").json()["count"] == 7
    assert client.post(f"/api/runs/{run_id}/logs", json={"lines": []}).status_code == 422
    assert client.get("/api/runs/999/logs").status_code == 404


def test_a_run_is_launched_on_a_backend_with_a_gpu_type_and_a_cost_cap(client: TestClient) -> None:
    experiment_id = make_experiment(client)
    body = {"backend": "runpod", "gpu_type": "NVIDIA A40", "max_cost": 2.5}
    run = client.post(f"/api/experiments/{experiment_id}/runs", json=body).json()
    assert (run["backend"], run["gpu_type"], run["max_cost"], run["reserved"]) == ("runpod", "NVIDIA A40", 2.5, 0.0)
    unknown = client.post(f"/api/experiments/{experiment_id}/runs", json={"backend": "gpu-cloud"})
    (error,) = unknown.json()["detail"]
    assert (
        unknown.status_code == 422
        and error["loc"] == ["body", "backend"]
        and "unknown backend 'gpu-cloud'" in error["msg"]
    )
    assert client.post(f"/api/experiments/{experiment_id}/runs", json={"max_cost": 0}).status_code == 422


def test_heartbeats_mark_the_run_active_only_when_it_worked_and_its_spec_is_readable_with_its_token(
    client: TestClient,
) -> None:
    experiment_id = make_experiment(client, seeds=[4])
    run_id = client.post(f"/api/experiments/{experiment_id}/runs", json={}).json()["id"]
    set_state(client, run_id, RunState.RUNNING)
    headers = run_token(client, run_id)
    first = client.post(f"/api/runs/{run_id}/heartbeat", json={"busy": False}, headers=headers).json()
    assert first["active_at"] == first["heartbeat_at"]  # the first beat starts the idle clock
    idle = client.post(f"/api/runs/{run_id}/heartbeat", json={"busy": False}, headers=headers).json()
    assert idle["active_at"] == first["active_at"] and idle["heartbeat_at"] > first["heartbeat_at"]
    busy = client.post(f"/api/runs/{run_id}/heartbeat", json={"busy": True}, headers=headers).json()
    assert busy["active_at"] == busy["heartbeat_at"] > first["active_at"]
    spec = client.get(f"/api/runs/{run_id}/spec", headers=headers).json()
    assert spec["seed"] == 4 and spec["config"]["seeds"] == [4]
    other = client.post(f"/api/experiments/{experiment_id}/runs", json={}).json()["id"]
    assert client.get(f"/api/runs/{other}/spec", headers=headers).status_code == 403  # another run's token


def test_a_slow_start_is_not_mistaken_for_silence_once_the_run_reports_running(client: TestClient) -> None:
    """A pod that took longer than the heartbeat timeout to start is judged from its ``running`` report on."""
    experiment_id = make_experiment(client)
    run_id = client.post(f"/api/experiments/{experiment_id}/runs", json={}).json()["id"]
    long_ago = datetime.now(UTC) - timedelta(seconds=400)  # claimed 400 s ago: the image took that long to pull
    with transaction(client.app.state.sessions) as session:
        run = session.get(Run, run_id)
        run.state, run.started_at, run.heartbeat_at = RunState.STARTING, long_ago, long_ago
    assert client.post(
        f"/api/runs/{run_id}/status", json={"state": "running"}, headers=run_token(client, run_id)
    ).is_success
    # the reconciler's silence rule reads heartbeat_at: it now counts from the report, not from the claim
    reported = datetime.fromisoformat(client.get(f"/api/runs/{run_id}").json()["heartbeat_at"])
    assert datetime.now(UTC) - reported < timedelta(seconds=30)
