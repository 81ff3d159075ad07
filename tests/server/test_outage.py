"""A run's reports survive an outage of the API or its database, on SQLite and Postgres: the agent spools and
replays them, and the API stores a replayed batch once."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.server.test_metrics import new_run
from tests.server.test_runs import run_token
from tradelab.server.db import transaction
from tradelab.server.reports import store_logs, store_metrics


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
