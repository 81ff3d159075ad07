"""The catalog API on SQLite and Postgres: datasets, tools, env configs, experiments, schemas, budgets, compute."""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.env.envs import FEATURES, frame
from tests.server.test_runs import run_token
from tradelab.data.store import Store
from tradelab.data.stream.status import StreamStatus, write_stream_status
from tradelab.server.budgets import remaining_budget
from tradelab.server.db import transaction
from tradelab.server.models import Run, RunState
from tradelab.server.routes import catalog
from tradelab.server.routes.compute import BACKENDS
from tradelab.settings import get_settings

ZERO = timedelta(0)
ENV: dict[str, Any] = {"dataset": {"symbol": "SYN"}, "features": FEATURES, "window": 8, "episode": {"length": 200}}
EXPERIMENT: dict[str, Any] = {
    "name": "tiny",
    "env": ENV,
    "algorithm": {"name": "PPO", "hyperparams": {"n_steps": 64}},
    "n_envs": 8,
    "total_timesteps": 1024,
    "device": "cpu",
}


def _experiment(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/experiments", json={"config": EXPERIMENT, **body})
    assert response.status_code == 201, response.text
    return response.json()


def _add_runs(client: TestClient, experiment_id: int, *costs_and_times: tuple[float, datetime]) -> list[int]:
    with transaction(client.app.state.sessions) as session:
        runs = [Run(experiment_id=experiment_id, cost=cost, queued_at=at) for cost, at in costs_and_times]
        session.add_all(runs)
        session.flush()
        return [r.id for r in runs]


def test_datasets_register_idempotently_from_the_store(client: TestClient, store: Store) -> None:
    client.app.state.store = store
    store.write("SYN", "1m", frame())
    first = client.post("/api/datasets/register", json={"symbol": "SYN", "timeframe": "1m"})
    assert first.status_code == 201, first.text
    row = first.json()
    assert row["rows"] == 2880 and row["report"]["rows"] == 2880 and row["ok"] is True
    assert row["start"] == "2024-01-01T00:00:00Z" and datetime.fromisoformat(row["registered_at"]).utcoffset() == ZERO
    again = client.post("/api/datasets/register", json={"symbol": "SYN"})
    assert again.status_code == 200 and again.json()["id"] == row["id"]
    synced = client.post("/api/datasets/sync").json()
    assert [d["id"] for d in synced["data"]] == [row["id"]]
    listed = client.get("/api/datasets", params={"limit": 10}).json()
    assert listed["count"] == 1 and listed["data"][0]["version"] == row["version"]
    assert "report" not in listed["data"][0]
    assert client.get(f"/api/datasets/{row['id']}").json()["report"] == row["report"]
    missing = client.post("/api/datasets/register", json={"symbol": "NOPE"})
    assert missing.status_code == 404 and "no dataset NOPE/1m" in missing.json()["detail"]
    assert client.get("/api/datasets/999").status_code == 404


def test_streams_into_the_store_are_listed_live_or_not(client: TestClient, store: Store) -> None:
    client.app.state.store = store
    store.write("SYN", "1m", frame())
    store.write("OTHER", "1m", frame())
    assert client.get("/api/datasets/streams").json() == []
    now = datetime.now(UTC)
    common = {"pid": os.getpid(), "host": socket.gethostname(), "ws_url": "ws://x", "rest_url": "http://x"}
    for symbol, state, updated in [
        ("SYN", "streaming", now),
        ("OTHER", "streaming", now - timedelta(minutes=10)),
        ("NEW", "connecting", now),
    ]:
        status = StreamStatus(symbol=symbol, state=state, started_at=now, updated_at=updated, **common)
        write_stream_status(store, status)
    streams = {s["symbol"]: s for s in client.get("/api/datasets/streams").json()}
    assert streams["NEW"]["live"] is True and streams["NEW"]["last_bar_ts"] is None  # no bars stored yet
    assert streams["SYN"]["live"] is True and streams["SYN"]["state"] == "streaming"
    assert streams["OTHER"]["live"] is False  # it stopped reporting


def test_tools_are_described_with_their_parameter_schemas(client: TestClient) -> None:
    tools = client.get("/api/tools").json()
    assert tools["count"] == len(tools["data"]) > 10
    kinds = {t["kind"] for t in tools["data"]}
    assert {"builtin", "talib"} <= kinds
    zscore = client.get("/api/tools/ZSCORE").json()
    assert zscore["name"] == "zscore" and zscore["causal"] is True and "window" in zscore["params_schema"]["properties"]
    assert zscore["outputs"] and zscore["inputs"]
    unknown = client.get("/api/tools/zscor")
    assert unknown.status_code == 404 and "zscore" in unknown.json()["detail"]


def test_env_configs_are_immutable_versions(client: TestClient) -> None:
    first = client.post("/api/env-configs", json={"name": "light", "config": ENV})
    assert first.status_code == 201 and first.json()["version"] == 1
    assert first.json()["config"]["window"] == 8 and first.json()["config"]["observation"] == "box"  # defaults kept
    second = client.post("/api/env-configs", json={"name": "light", "config": {**ENV, "window": 16}}).json()
    client.post("/api/env-configs", json={"name": "other", "config": ENV})
    assert second["version"] == 2
    latest = client.get("/api/env-configs").json()
    assert latest["count"] == 2 and [(c["name"], c["version"]) for c in latest["data"]] == [("light", 2), ("other", 1)]
    assert [c["version"] for c in client.get("/api/env-configs/light/versions").json()["data"]] == [1, 2]
    assert client.get("/api/env-configs/light/versions/1").json()["config"]["window"] == 8
    assert client.get("/api/env-configs/light/versions/3").status_code == 404
    assert client.get("/api/env-configs/nope/versions").status_code == 404
    for method in ("PUT", "PATCH", "DELETE"):
        assert client.request(method, "/api/env-configs/light/versions/1", json={"config": ENV}).status_code == 405
    invalid = client.post("/api/env-configs", json={"name": "bad", "config": {**ENV, "window": 0, "colour": 1}})
    assert invalid.status_code == 422
    locs = [e["loc"] for e in invalid.json()["detail"]]
    assert ["body", "config", "window"] in locs and ["body", "config", "colour"] in locs


def test_env_config_features_must_name_registered_tools_with_valid_params(client: TestClient) -> None:
    features = [{"tool": "no_such_tool"}, {"tool": "zscore", "params": {"window": -3}}, {"tool": "time_of_day"}]
    refused = client.post("/api/env-configs", json={"name": "bad", "config": {**ENV, "features": features}})
    assert refused.status_code == 422
    errors = {tuple(e["loc"]): e["msg"] for e in refused.json()["detail"]}
    assert errors[("body", "config", "features", 0, "tool")] == "no tool named 'no_such_tool'"
    assert ("body", "config", "features", 1, "params", "window") in errors and len(errors) == 2
    assert client.get("/api/env-configs").json()["count"] == 0  # nothing stored
    assert client.get("/api/env-configs/bad/versions").status_code == 404


def test_experiments_validate_filter_update_and_clone(client: TestClient) -> None:
    bad = {**EXPERIMENT, "name": "bad name", "n_envs": 0, "total_timesteps": -5}
    invalid = client.post("/api/experiments", json={"config": bad})
    assert invalid.status_code == 422
    locs = [e["loc"] for e in invalid.json()["detail"]]
    assert locs == [["body", "config", "name"], ["body", "config", "n_envs"], ["body", "config", "total_timesteps"]]
    created = _experiment(client, tags=["btc", "ppo"], notes="first")
    assert created["name"] == "tiny" and created["config"]["seeds"] == [0] and created["cloned_from"] is None
    other = _experiment(client, tags=["eth"])
    summary = {"runs_count": 0, "runs_by_state": dict.fromkeys(RunState, 0), "best_test_sharpe": None}
    assert client.get("/api/experiments", params={"tag": "btc"}).json()["data"] == [{**created, **summary}]
    assert client.get("/api/experiments", params={"tag": "bt"}).json()["count"] == 0
    assert client.get("/api/experiments", params={"name": "TIN"}).json()["count"] == 2
    assert client.get("/api/experiments", params={"name": "%"}).json()["count"] == 0
    assert client.get("/api/experiments", params={"limit": 1}).json()["data"][0]["id"] == other["id"]
    patched = client.patch(f"/api/experiments/{created['id']}", json={"tags": ["btc"], "notes": "changed"}).json()
    assert patched["tags"] == ["btc"] and patched["notes"] == "changed" and patched["config"] == created["config"]
    assert client.patch(f"/api/experiments/{created['id']}", json={"config": bad}).status_code == 422
    assert client.get(f"/api/experiments/{created['id']}").json() == patched
    clone = client.post(f"/api/experiments/{created['id']}/clone", json={"set": ["name=tiny2", "seeds=[1, 2]"]})
    assert clone.status_code == 201, clone.text
    assert clone.json()["cloned_from"] == created["id"] and clone.json()["config"]["seeds"] == [1, 2]
    assert clone.json()["name"] == "tiny2" and clone.json()["tags"] == ["btc"]
    plain = client.post(f"/api/experiments/{created['id']}/clone")
    assert plain.status_code == 201 and plain.json()["config"] == created["config"]
    failed = client.post(f"/api/experiments/{created['id']}/clone", json={"set": ["n_envs=0", "nonsense"]})
    assert failed.status_code == 422 and [e["loc"] for e in failed.json()["detail"]] == [["body", "set", 1]]
    assert client.get("/api/experiments/999").status_code == 404
    assert client.post("/api/experiments/999/clone").status_code == 404


def test_config_schemas_are_served(client: TestClient) -> None:
    env = client.get("/api/schemas/env").json()
    experiment = client.get("/api/schemas/experiment").json()
    assert env["title"] == "EnvConfig" and "window" in env["properties"]
    assert experiment["title"] == "ExperimentConfig" and "total_timesteps" in experiment["properties"]


def test_budgets_count_this_months_runs(client: TestClient) -> None:
    assert client.get("/api/budgets").json() == {"data": [], "count": 0}
    one, two = _experiment(client)["id"], _experiment(client)["id"]
    now = datetime.now(UTC)
    last_month = now.replace(day=1) - timedelta(days=1)
    _add_runs(client, one, (2.5, now), (1.0, now), (100.0, last_month))
    _add_runs(client, two, (4.0, now))
    assert client.put("/api/budgets/global", json={"monthly_cap": 20}).json() == {
        "experiment_id": None,
        "monthly_cap": 20.0,
        "spent": 7.5,
        "remaining": 12.5,
    }
    assert client.put("/api/budgets/global", json={"monthly_cap": 10}).json()["remaining"] == 2.5
    assert client.put(f"/api/budgets/experiments/{one}", json={"monthly_cap": 5}).json()["remaining"] == 1.5
    budgets = client.get("/api/budgets").json()
    assert [(b["experiment_id"], b["spent"]) for b in budgets["data"]] == [(None, 7.5), (one, 3.5)]
    assert client.put("/api/budgets/experiments/999", json={"monthly_cap": 5}).status_code == 404
    assert client.put("/api/budgets/global", json={"monthly_cap": -1}).status_code == 422
    assert client.delete(f"/api/budgets/experiments/{one}").status_code == 204
    assert client.delete(f"/api/budgets/experiments/{one}").status_code == 404
    assert client.get("/api/budgets").json()["count"] == 1


def test_remaining_budget_is_the_tightest_cap(client: TestClient) -> None:
    one, two = _experiment(client)["id"], _experiment(client)["id"]
    now = datetime.now(UTC)
    _add_runs(client, one, (3.0, now))
    _add_runs(client, two, (1.0, now))
    sessions = client.app.state.sessions
    with transaction(sessions) as session:
        assert remaining_budget(session, one) is None
    client.put(f"/api/budgets/experiments/{one}", json={"monthly_cap": 5})
    with transaction(sessions) as session:
        assert remaining_budget(session, one) == 2.0 and remaining_budget(session, two) is None
    client.put("/api/budgets/global", json={"monthly_cap": 5})
    with transaction(sessions) as session:
        assert remaining_budget(session, one) == 1.0 and remaining_budget(session, two) == 1.0
        next_month = now.replace(day=28) + timedelta(days=5)
        assert remaining_budget(session, one, now=next_month) == 5.0


def test_compute_backends_list_local_and_runpod_unavailable_without_a_worker_whatever_the_server_key(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Availability follows live workers (tests/server/test_runpod_launch.py): the server's key runs nothing."""
    monkeypatch.setenv("TRADELAB_RUNPOD_API_KEY", "rp-key")
    get_settings.cache_clear()
    try:
        runpod = client.get("/api/compute/backends").json()["data"][1]
    finally:
        monkeypatch.delenv("TRADELAB_RUNPOD_API_KEY")
        get_settings.cache_clear()
    assert runpod == {
        "name": "runpod",
        "description": BACKENDS["runpod"].description,
        "available": False,
        "workers": 0,
        "reason": runpod["reason"],
    }
    assert "`tradelab worker --backend runpod`" in runpod["reason"]


def _catalog_routes() -> list[tuple[str, str]]:
    """Every catalog endpoint as (method, path with its parameters filled in)."""
    routes = [r for router in catalog.routers for r in router.routes if isinstance(r, APIRoute)]
    return [(m, "/api" + re.sub(r"\{[^}]+\}", "1", r.path)) for r in routes for m in sorted(r.methods)]


def test_every_catalog_endpoint_needs_an_admin_token(client: TestClient) -> None:
    experiment_id = _experiment(client)["id"]
    (run_id,) = _add_runs(client, experiment_id, (0.0, datetime.now(UTC)))
    anonymous = TestClient(client.app)
    as_run = TestClient(client.app, headers=run_token(client, run_id))
    routes = _catalog_routes()
    assert len(routes) >= 22
    for method, path in routes:
        assert anonymous.request(method, path).status_code == 401, (method, path)
        assert as_run.request(method, path).status_code == 403, (method, path)


@pytest.mark.parametrize("path", ["/api/datasets", "/api/env-configs", "/api/experiments"])
def test_pages_are_bounded(client: TestClient, path: str) -> None:
    assert client.get(path, params={"limit": 0}).status_code == 422
    assert client.get(path, params={"offset": -1}).status_code == 422
