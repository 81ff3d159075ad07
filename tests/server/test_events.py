"""Live events over SSE on SQLite and Postgres: state changes and metrics arrive in order; reconnects resume."""

from __future__ import annotations

import json
import threading
import time

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.server.test_runs import make_experiment, run_token, set_state
from tradelab.server.db import transaction
from tradelab.server.models import Event, RunState


def parse(body: str) -> list[dict]:
    """The events of an SSE body (comments skipped)."""
    events = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if fields:
            events.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return events


def latest_event(client: TestClient) -> int:
    with transaction(client.app.state.sessions) as session:
        return session.scalar(select(func.max(Event.id))) or 0


def streamed(client: TestClient, seconds: float, **kwargs: object) -> str:
    """The body of ``GET /api/events`` when the stream is cut after ``seconds``."""
    client.app.state.events_poll_s = 0.05
    client.app.state.events_max_s = seconds
    response = client.get("/api/events", **kwargs)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    return response.text


def test_a_client_receives_state_changes_and_metrics_live_and_resumes(client: TestClient) -> None:
    experiment_id = make_experiment(client)
    cursor = latest_event(client)
    bodies: list[str] = []
    follower = threading.Thread(target=lambda: bodies.append(streamed(client, 1.5, params={"after": cursor})))
    follower.start()
    time.sleep(0.3)
    run_id = client.post(f"/api/experiments/{experiment_id}/runs", json={}).json()["id"]
    set_state(client, run_id, RunState.STARTING)
    client.post(f"/api/runs/{run_id}/status", json={"state": "running"})
    client.post(f"/api/runs/{run_id}/metrics", json={"points": [{"key": "loss", "step": 5, "value": 0.5}]})
    follower.join(timeout=10)
    events = parse(bodies[0])
    assert [e["event"] for e in events] == ["run_state", "run_state", "metrics"]
    assert [e["data"]["payload"].get("state") for e in events[:2]] == ["queued", "running"]
    assert events[2]["data"]["payload"] == {"keys": ["loss"], "last_step": 5} and events[2]["data"]["run_id"] == run_id
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids)) and ids[0] > cursor
    resumed = parse(streamed(client, 0.2, headers={"Last-Event-ID": str(ids[0])}))
    assert [e["id"] for e in resumed] == ids[1:]


def test_a_new_stream_starts_from_now_and_pings_while_idle(client: TestClient) -> None:
    client.post(f"/api/experiments/{make_experiment(client)}/runs", json={})
    client.app.state.events_ping_s = 0.1
    body = streamed(client, 0.4)
    assert parse(body) == [] and ": ping\n\n" in body
    assert len(parse(streamed(client, 0.1, params={"after": 0}))) == 1  # ?after=0 replays everything


def test_events_are_for_admins_only(client: TestClient) -> None:
    assert TestClient(client.app).get("/api/events").status_code == 401
    run_id = client.post(f"/api/experiments/{make_experiment(client)}/runs", json={}).json()["id"]
    assert client.get("/api/events", headers=run_token(client, run_id)).status_code == 403
