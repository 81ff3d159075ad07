"""Metrics on SQLite and Postgres: bulk ingest, non-finite values refused, keys, downsampled series."""

from __future__ import annotations

import json

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.server.test_runs import make_experiment, run_token
from tradelab.server.db import transaction
from tradelab.server.models import Event


def new_run(client: TestClient) -> int:
    return client.post(f"/api/experiments/{make_experiment(client)}/runs", json={}).json()["id"]


def test_a_big_batch_is_ingested_and_comes_back_downsampled_with_its_ends(client: TestClient) -> None:
    run_id = new_run(client)
    steps = np.arange(50_000)
    values = np.sin(steps / 700.0) + (steps == 31_337) * 10.0  # one spike
    points = [{"key": "train/reward", "step": int(s), "value": float(v)} for s, v in zip(steps, values, strict=True)]
    points += [{"key": "val/sharpe", "step": s * 100, "value": s / 10} for s in range(20)]
    headers = run_token(client, run_id)
    response = client.post(f"/api/runs/{run_id}/metrics", json={"points": points}, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json() == {"count": 50_020, "keys": ["train/reward", "val/sharpe"], "last_step": 49_999}
    keys = client.get(f"/api/runs/{run_id}/metrics").json()
    assert keys["data"] == [
        {"key": "train/reward", "count": 50_000, "last_step": 49_999},
        {"key": "val/sharpe", "count": 20, "last_step": 1_900},
    ]
    series = client.get(f"/api/runs/{run_id}/metrics/train/reward").json()  # a key may hold a slash
    assert series["total"] == 50_000 and len(series["steps"]) == 2_000 == len(series["values"])
    assert series["steps"][0] == 0 and series["steps"][-1] == 49_999 and 31_337 in series["steps"]
    assert series["steps"] == sorted(series["steps"])
    small = client.get(f"/api/runs/{run_id}/metrics/val/sharpe", params={"max_points": 100}).json()
    assert small["steps"] == [s * 100 for s in range(20)] and small["values"] == [s / 10 for s in range(20)]
    window = client.get(
        f"/api/runs/{run_id}/metrics/train/reward", params={"start_step": 100, "end_step": 199, "max_points": 10}
    ).json()
    assert window["total"] == 100 and window["steps"][0] == 100 and window["steps"][-1] == 199
    assert len(window["steps"]) == 10
    with transaction(client.app.state.sessions) as session:
        (event,) = session.scalars(select(Event).where(Event.run_id == run_id, Event.kind == "metrics")).all()
        assert event.payload == {"keys": ["train/reward", "val/sharpe"], "last_step": 49_999}


def test_non_finite_values_are_refused_naming_the_point(client: TestClient) -> None:
    run_id = new_run(client)
    for bad in ("NaN", "Infinity", "-Infinity", "1e999"):
        body = f'{{"points": [{{"key": "a", "step": 0, "value": 1.0}}, {{"key": "a", "step": 1, "value": {bad}}}]}}'
        response = client.post(
            f"/api/runs/{run_id}/metrics", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, bad
        assert ["body", "points", 1, "value"] in [error["loc"] for error in response.json()["detail"]]
    assert client.get(f"/api/runs/{run_id}/metrics").json() == {"data": [], "count": 0}  # nothing half-stored


def test_metric_requests_check_the_run_the_key_and_the_token(client: TestClient) -> None:
    run_id, other = new_run(client), new_run(client)
    point = {"points": [{"key": "a", "step": 0, "value": 1.0}]}
    assert client.post("/api/runs/999/metrics", json=point).status_code == 404
    assert client.post(f"/api/runs/{other}/metrics", json=point, headers=run_token(client, run_id)).status_code == 403
    assert TestClient(client.app).post(f"/api/runs/{run_id}/metrics", json=point).status_code == 401
    assert client.post(f"/api/runs/{run_id}/metrics", json={"points": []}).status_code == 422
    assert client.get(f"/api/runs/{run_id}/metrics/missing").status_code == 404
    assert client.get(f"/api/runs/{run_id}/metrics/a", params={"max_points": 2}).status_code == 422
    client.post(f"/api/runs/{run_id}/metrics", json=point)
    empty = client.get(f"/api/runs/{run_id}/metrics/a", params={"start_step": 5}).json()
    assert empty == {"key": "a", "steps": [], "values": [], "total": 0}
    assert json.loads(client.get(f"/api/runs/{run_id}/metrics/a").text)["values"] == [1.0]


def test_a_key_with_a_nul_or_control_character_is_refused(client: TestClient) -> None:
    run_id = new_run(client)
    for key in ("bad\x00key", "tab\tkey"):
        response = client.post(f"/api/runs/{run_id}/metrics", json={"points": [{"key": key, "step": 1, "value": 1.0}]})
        assert response.status_code == 422, (key, response.text)
