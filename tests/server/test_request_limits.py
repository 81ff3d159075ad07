"""Request limits: bodies are refused by size before they are parsed, anonymous bodies before they are read, and
a 422 never echoes a large input. The memory bounds are measured on a live ``tradelab serve`` (its RSS)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.e2e.test_control_plane import ROOT, _free_port, wait_healthy
from tests.server.test_metrics import new_run
from tradelab.server.app import create_app
from tradelab.server.db import make_engine, session_factory, transaction, upgrade
from tradelab.server.security import issue_token
from tradelab.settings import get_settings

#: Most a rejected request may grow the server's resident memory, at its peak.
MAX_GROWTH_KIB = 50 * 1024
CHUNK_POINTS = 10_000


def _point(step: int) -> bytes:
    return b'{"key":"train/episode_reward_mean","step":%d,"value":0.123456789}' % step


def metric_points(count: int) -> tuple[int, Iterator[bytes]]:
    """A metrics batch of ``count`` points as JSON: its length and its bytes, generated chunk by chunk (so the
    client never holds it)."""
    length = len(b'{"points":[]}') + sum(len(_point(step)) for step in range(count)) + count - 1

    def chunks() -> Iterator[bytes]:
        yield b'{"points":['
        for start in range(0, count, CHUNK_POINTS):
            steps = range(start, min(start + CHUNK_POINTS, count))
            yield (b"," if start else b"") + b",".join(_point(step) for step in steps)
        yield b"]}"

    return length, chunks()


def _memory_kib(pid: int, field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (resident at its peak) of process ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class Server:
    """A live ``tradelab serve`` over a migrated SQLite database, with an admin token."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, token: str) -> None:
        self.process, self.url, self.token = process, url, token

    def post(self, path: str, framing: str, count: int, token: str | None = None) -> tuple[httpx.Response, int]:
        """POST ``count`` metric points to ``path`` (``chunked``, or with a ``Content-Length``); the answer and how
        far the server's resident memory rose above its level before the request, at its peak (KiB)."""
        length, body = metric_points(count)
        headers = {"Content-Type": "application/json"}
        if framing == "content-length":
            headers["Content-Length"] = str(length)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        before = _memory_kib(self.process.pid, "VmRSS")
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")  # restart the peak (VmHWM) from now
        response = httpx.post(f"{self.url}{path}", content=body, headers=headers, timeout=120)
        return response, _memory_kib(self.process.pid, "VmHWM") - before


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``tradelab serve`` on a free port over a fresh home, warmed up by one small request of each kind the tests
    send (shared by the tests of this module: each measures from its own start)."""
    home = tmp_path_factory.mktemp("home")
    database = f"sqlite:///{home / 'tradelab.db'}"
    upgrade(database)
    engine = make_engine(database)
    with transaction(session_factory(engine)) as session:
        token = issue_token(session, "limits test")
    engine.dispose()
    url = f"http://127.0.0.1:{_free_port()}"
    command = [sys.executable, "-m", "tradelab.cli", "serve", "--port", url.rsplit(":", 1)[1]]
    env = {**os.environ, "TRADELAB_HOME": str(home), "TRADELAB_DATABASE_URL": database}
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        wait_healthy(url, timeout_s=120)
        live = Server(process, url, token)
        for framing in ("chunked", "content-length"):
            live.post("/api/runs/1/metrics", framing, 10)
            live.post("/api/runs/1/metrics", framing, 10, token)
        yield live
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_an_anonymous_190_mb_body_is_refused_without_being_read(server: Server, framing: str) -> None:
    response, growth = server.post("/api/runs/1/metrics", framing, 3_000_000)  # 190 MB
    assert response.status_code == 401, response.text[:200]
    assert growth < MAX_GROWTH_KIB, f"the server's memory rose by {growth} KiB"
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_million_metric_points_are_refused_by_size_unparsed(server: Server, framing: str) -> None:
    response, growth = server.post("/api/runs/1/metrics", framing, 1_000_000, server.token)  # 63 MB
    assert response.status_code == 413, response.text[:200]
    assert len(response.content) < 200 and b"points" not in response.content  # a short answer, no echo
    assert growth < MAX_GROWTH_KIB, f"the server's memory rose by {growth} KiB"
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}


def test_each_route_has_its_own_configurable_limit(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADELAB_MAX_CONFIG_BODY", "2KiB")
    get_settings.cache_clear()
    try:
        app = create_app(db_url)
    finally:
        get_settings.cache_clear()
    with transaction(app.state.sessions) as session:
        headers = {"Authorization": f"Bearer {issue_token(session, 'limits test')}"}
    client = TestClient(app, headers={**headers, "Content-Type": "application/json"})
    _, chunks = metric_points(2_000)  # 130 kB: a metrics batch, far beyond the default limit
    batch = b"".join(chunks)
    assert client.post("/api/runs/1/metrics", content=batch).status_code == 404  # parsed: no such run
    assert client.put("/api/budgets/global", content=batch).status_code == 413  # the small default
    lines = {"lines": ["12:00:00 INFO a log line of a run"] * 4_000}  # 150 kB of log lines
    assert client.post("/api/runs/1/logs", json=lines).status_code == 404  # parsed: no such run
    status = {"state": "failed", "error": "x" * 100_000}  # the runs' other routes keep the small default
    assert client.post("/api/runs/1/status", json=status).status_code == 413
    assert client.post("/api/experiments", json={"config": {"notes": "x" * 1_000}}).status_code == 422
    assert client.post("/api/experiments", json={"config": {"notes": "x" * 3_000}}).status_code == 413
    app.state.engine.dispose()


def test_a_validation_error_never_echoes_a_large_input(client: TestClient) -> None:
    run_id = new_run(client)
    points = [{"key": "k", "step": step, "value": 0.5} for step in range(100_001)]  # one more than a batch holds
    response = client.post(f"/api/runs/{run_id}/metrics", json={"points": points})
    assert response.status_code == 422 and len(response.content) < 1_000
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "points"] and error["type"] == "too_long" and "input" not in error
    invalid = [{"key": "k", "step": -1, "value": 0.5}] * 10_000
    response = client.post(f"/api/runs/{run_id}/metrics", json={"points": invalid})
    assert response.status_code == 422 and len(response.content) < 10_000
    detail = response.json()["detail"]
    assert detail[0]["loc"] == ["body", "points", 0, "step"] and detail[0]["input"] == -1  # small inputs stay
    listed = [entry for entry in detail if entry["loc"][:2] == ["body", "points"]]
    assert len(listed) < 100 and f"{10_000 - len(listed):,} more" in detail[-1]["msg"]  # the rest are counted


def test_the_schema_documents_the_413_of_every_api_operation(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    operations = [(path, op) for path, item in paths.items() if path.startswith("/api/") for op in item.values()]
    assert operations and all("413" in op["responses"] for _, op in operations)
