"""Launching on RunPod as the README says, and what ``/api/compute/backends`` reports, against the fake RunPod on
SQLite and Postgres: the README's curl body starts a pod; a launch whose max cost cannot cover one attempt is
refused at once; a backend is available while a worker of it checks in (the RunPod key lives on that worker's
machine, not the API server's)."""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.experiments.runs import tiny_config
from tests.server import test_runpod_worker
from tests.server.test_runpod_worker import reconciler, settle
from tradelab.compute.fake_runpod import FakeRunPod
from tradelab.server.db import make_engine, session_factory, transaction
from tradelab.server.models import Experiment, RunState, Worker, utcnow

ROOT = Path(__file__).resolve().parents[2]
fake = test_runpod_worker.fake  # the fixture: a fake RunPod whose pods run the stub agent


def readme_runpod_launch() -> tuple[str, dict[str, object]]:
    """The path and the JSON body of the run launch (``curl … -X POST …/runs -d '{…}'``) in the README's RunPod
    section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n### RunPod", 1)[1].split("\n### ", 1)[0]
    (line,) = [line for line in section.splitlines() if line.startswith("curl ") and "/runs" in line]
    launch = re.search(r"-X POST (\S+) -d '([^']*)'", line)
    assert launch is not None, line
    return launch[1], json.loads(launch[2])


def experiment(db_url: str) -> int:
    """A new experiment's id."""
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        row = Experiment(name="tiny", config=tiny_config().model_dump(mode="json", by_alias=True))
        session.add(row)
        session.flush()
        experiment_id = row.id
    engine.dispose()
    return experiment_id


def backends(client: TestClient) -> dict[str, dict[str, object]]:
    return {b["name"]: b for b in client.get("/api/compute/backends").json()["data"]}


def test_the_readme_runpod_launch_starts_a_pod_as_written(client: TestClient, db_url: str, fake: FakeRunPod) -> None:
    path, body = readme_runpod_launch()
    worker = reconciler(db_url)
    worker.tick()  # a live RunPod worker: the launch is checked against its prices
    path = re.sub(r"/experiments/\d+/", f"/experiments/{experiment(db_url)}/", path)
    response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    report = worker.tick()
    assert report.started == [run_id], client.get(f"/api/runs/{run_id}").json()["error"]  # past the budget check
    (pod,) = fake.pods()
    assert pod.gpu_type_id == body["gpu_type"]
    run = settle(db_url, worker, fake, run_id)
    assert run.state == RunState.SUCCEEDED and run.error is None


def test_a_launch_whose_max_cost_cannot_cover_an_attempt_is_refused_naming_the_fields(
    client: TestClient, db_url: str, fake: FakeRunPod
) -> None:
    experiment_id = experiment(db_url)
    too_little = {"backend": "runpod", "max_cost": 3}  # 0.69/h × 24 h (the default max wall time) = 16.56
    assert client.post(f"/api/experiments/{experiment_id}/runs", json=too_little).status_code == 201  # no worker
    reconciler(db_url).tick()  # now a worker publishes its price
    response = client.post(f"/api/experiments/{experiment_id}/runs", json=too_little)
    assert response.status_code == 422, response.text
    detail = json.dumps(response.json()["detail"])
    assert "max_cost" in detail and "max_wall_time_s" in detail and "16.56" in detail
    fits = {**too_little, "max_wall_time_s": 3600}
    assert client.post(f"/api/experiments/{experiment_id}/runs", json=fits).status_code == 201


def test_runpod_is_available_while_a_runpod_worker_checks_in(
    client: TestClient, db_url: str, fake: FakeRunPod, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADELAB_RUNPOD_API_KEY", raising=False)  # the API server never has the key
    runpod = backends(client)["runpod"]
    assert runpod["available"] is False and runpod["workers"] == 0 and "no runpod worker" in str(runpod["reason"])
    worker = reconciler(db_url)
    worker.tick()
    runpod = backends(client)["runpod"]
    assert runpod == {**runpod, "available": True, "workers": 1, "reason": None}
    assert backends(client)["local"]["available"] is False  # no local worker checks in
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:  # its last check-in is long past: it died
        session.get(Worker, worker.id).seen_at = utcnow() - timedelta(hours=1)  # type: ignore[union-attr]
    engine.dispose()
    assert backends(client)["runpod"]["available"] is False
    worker.tick()
    assert backends(client)["runpod"]["available"] is True
    stop = threading.Event()
    stop.set()
    worker.run_forever(stop)  # a worker that stops signs off at once
    runpod = backends(client)["runpod"]
    assert runpod["available"] is False and runpod["workers"] == 0
