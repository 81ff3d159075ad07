"""Postgres goes away under load and comes back: the API answers 503 meanwhile and recovers; the worker backs
off and resumes; nothing is lost.

The outage is the test database refusing connections and dropping the open ones (``ALLOW_CONNECTIONS false``
plus ``pg_terminate_backend``), which is what clients of a restarting server see, without restarting the
server that other suites share.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.server.stub_worker import stub_reconciler
from tests.server.test_worker import _queue, _runs
from tradelab.server.db import make_engine
from tradelab.server.models import RunState


def _outage(db_url: str, down: bool) -> None:
    name = db_url.rsplit("/", 1)[1]
    admin = create_engine(db_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if down else "true"}'))
        if down:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )
    admin.dispose()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # a server outage; SQLite is a file in-process
def test_the_api_answers_503_and_the_worker_backs_off_then_both_recover(
    db_url: str, client: TestClient, tmp_path: Path
) -> None:
    ids = _queue(db_url, 6)
    reconciler = stub_reconciler(db_url, tmp_path / "compute", 60.0, concurrency=2)
    stop = threading.Event()
    worker = threading.Thread(target=reconciler.run_forever, args=(stop, 0.1), daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while sum(r.state == RunState.STARTING for r in _runs(db_url).values()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        _outage(db_url, down=True)
        try:
            for path in ("/ready", "/api/runs", f"/api/runs/{ids[0]}"):
                response = client.get(path)
                assert response.status_code == 503, (path, response.status_code, response.text)
            time.sleep(1.0)  # the worker's ticks fail meanwhile: it must back off, not die
            assert worker.is_alive()
        finally:
            _outage(db_url, down=False)
        deadline = time.monotonic() + 30
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the API did not recover"
            time.sleep(0.2)
        assert client.get("/api/runs").json()["count"] == 6
        engine = make_engine(db_url)
        with engine.connect() as connection:  # the worker goes on: cancel the active runs, it ends them
            connection.execute(text("UPDATE runs SET cancel_requested = true WHERE state = 'starting'"))
            connection.commit()
        engine.dispose()
        deadline = time.monotonic() + 60
        while sum(r.state == RunState.CANCELLED for r in _runs(db_url).values()) < 2:
            assert time.monotonic() < deadline, "the worker did not resume"
            time.sleep(0.2)
        runs = _runs(db_url)
        assert sorted(runs) == sorted(ids)  # nothing lost
        assert all(r.attempts <= 1 for r in runs.values())  # nothing started twice
    finally:
        stop.set()
        worker.join(timeout=30)
        for owned in reconciler.backend.list_owned():
            reconciler.backend.terminate(owned.handle)
