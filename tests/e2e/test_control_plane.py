"""Through the API alone, against a live ``tradelab serve`` and ``tradelab worker`` on SQLite: register the
dataset, create an env config and an experiment, launch a run on the local backend, watch its events, read
its metrics and artifacts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.env.envs import frame
from tests.experiments.runs import tiny_config
from tradelab.cli import app
from tradelab.data.store import Store

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, timeout_s: float = 30.0) -> None:
    """Wait until the API at ``url`` answers ``/health``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the API did not come up"
            time.sleep(0.2)


@pytest.fixture
def live(home: Path) -> Iterator[tuple[str, str]]:
    """``tradelab serve`` and ``tradelab worker`` over a fresh home holding SYN/1m; (API URL, admin token)."""
    Store().write("SYN", "1m", frame())
    token = CliRunner().invoke(app, ["init"]).output.strip().splitlines()[-1]
    url = f"http://127.0.0.1:{_free_port()}"
    env = {**os.environ, "TRADELAB_HOME": str(home)}
    cli = [sys.executable, "-m", "tradelab.cli"]
    serve = subprocess.Popen([*cli, "serve", "--port", url.rsplit(":", 1)[1]], cwd=ROOT, env=env)
    worker = subprocess.Popen([*cli, "worker", "--api-url", url, "--interval", "0.2"], cwd=ROOT, env=env)
    try:
        wait_healthy(url)
        yield url, token
    finally:
        for process in (worker, serve):
            process.terminate()
            process.wait(timeout=15)


def _follow(url: str, token: str, events: list[dict], done: threading.Event) -> None:
    """Collect ``/api/events`` until ``done`` is set."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{url}/api/events?after=0", headers=headers, timeout=None) as response:
        kind = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append({**json.loads(line.split(":", 1)[1]), "kind": kind})
            if done.is_set():
                return


def test_a_run_end_to_end_through_the_api(live: tuple[str, str]) -> None:
    url, token = live
    api = httpx.Client(base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert api.post("/datasets/register", json={"symbol": "SYN", "timeframe": "1m"}).status_code in (200, 201)
    config = tiny_config().model_dump(mode="json", by_alias=True)
    assert api.post("/env-configs", json={"name": "tiny-env", "config": config["env"]}).status_code == 201
    experiment = api.post("/experiments", json={"config": config}).json()
    events: list[dict] = []
    done = threading.Event()
    follower = threading.Thread(target=_follow, args=(url, token, events, done), daemon=True)
    follower.start()
    run = api.post(f"/experiments/{experiment['id']}/runs", json={}).json()

    deadline = time.monotonic() + 180
    while api.get(f"/runs/{run['id']}").json()["state"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.5)
    final = api.get(f"/runs/{run['id']}").json()
    assert final["state"] == "succeeded", final.get("error")

    time.sleep(1.5)  # the event stream polls the table
    done.set()
    states = [e["payload"]["state"] for e in events if e["kind"] == "run_state" and e["run_id"] == run["id"]]
    assert states[-1] == "succeeded" and "running" in states
    assert any(e["kind"] == "metrics" for e in events)

    keys = {k["key"] for k in api.get(f"/runs/{run['id']}/metrics").json()["data"]}
    assert {"val/sharpe", "test/total_return"} <= keys
    series = api.get(f"/runs/{run['id']}/metrics/val/sharpe").json()
    assert series["total"] >= 1 and len(series["steps"]) == len(series["values"]) == series["total"]
    names = {a["name"] for a in api.get(f"/runs/{run['id']}/artifacts").json()["data"]}
    assert {"results.json", "report.html", "model.zip"} <= names
    equity = api.get(f"/runs/{run['id']}/equity").json()
    assert "agent" in json.dumps(equity)
    log = "\n".join(line["line"] for line in api.get(f"/runs/{run['id']}/logs").json()["data"])
    assert "training seed 0" in log and "market data" in log and "artifacts in" in log  # the run's own log
