"""The worker's side of a run's end that never reached the API, on SQLite and Postgres: an attempt whose compute
ended without a final report is recorded as the ``outcome.json`` its agent left says (its reports stored once),
an attempt ends only once its compute is gone, and the agent learns its attempt and deadline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.server.stub_worker import StubReconciler, stub_reconciler
from tests.server.test_worker import _queue, _runs, _until
from tradelab.compute.base import ComputeState, Handle
from tradelab.compute.local import LocalBackend
from tradelab.server.agent import Outbox, _write_outcome
from tradelab.server.db import make_engine, session_factory, transaction
from tradelab.server.models import MetricPoint, Run, RunLog, RunState, utcnow
from tradelab.server.outcomes import Outcome, read_outcome
from tradelab.server.worker import Reconciler, TickReport, WorkerConfig


def _worker(db_url: str, tmp_path: Path, **config: Any) -> StubReconciler:
    """A worker whose runs' process sleeps 0.5 s and exits without reporting; run folders under ``tmp_path``."""
    return stub_reconciler(db_url, tmp_path / "compute", 0.5, storage_url=(tmp_path / "artifacts").as_uri(), **config)


def _leave_outcome(tmp_path: Path, run_id: int, **outcome: Any) -> str:
    """Write attempt 1's ``outcome.json`` as the agent would; the run's folder URL."""
    folder = tmp_path / "artifacts" / "runs" / f"run-{run_id}"
    (folder / "attempts" / "1").mkdir(parents=True)
    document = {"attempt": 1, "artifact_url": None, "error": None, "metrics": [], "logs": [], **outcome}
    (folder / "attempts" / "1" / "outcome.json").write_text(json.dumps(document))
    return folder.as_uri()


def _end_silently(worker: Reconciler, db_url: str, run_id: int) -> TickReport:
    """Start the run, wait for its process to exit (without reporting), then tick once more; that tick's report."""
    worker.tick()
    key = _runs(db_url)[run_id].compute_id
    assert key is not None
    _until(lambda: worker.backend.status(Handle("local", key)) != ComputeState.RUNNING)
    return worker.tick()


def _stored(db_url: str, run_id: int) -> tuple[list[tuple[str, int, float]], list[str]]:
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        points = session.execute(
            select(MetricPoint.key, MetricPoint.step, MetricPoint.value)
            .where(MetricPoint.run_id == run_id)
            .order_by(MetricPoint.key, MetricPoint.step)
        ).all()
        lines = session.scalars(select(RunLog.line).where(RunLog.run_id == run_id).order_by(RunLog.id)).all()
    engine.dispose()
    return [tuple(p) for p in points], list(lines)  # type: ignore[misc]


def test_a_run_whose_outcome_says_succeeded_is_recorded_succeeded_with_its_undelivered_reports(
    db_url: str, tmp_path: Path
) -> None:
    (run_id,) = _queue(db_url, 1)
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:  # delivered before the API went down
        session.add(MetricPoint(run_id=run_id, key="validation/sharpe", step=100, value=0.5))
        session.add(RunLog(run_id=run_id, at=utcnow(), line="12:00:00 INFO validation at 100"))
    engine.dispose()
    folder = f"{(tmp_path / 'artifacts').as_uri()}/runs/run-{run_id}"
    url = f"{folder}/ppo-btc-20250301-101500-s0"
    points = [
        {"key": "validation/sharpe", "step": 100, "value": 0.5},  # delivered, still listed: stored once
        {"key": "test/sharpe", "step": 200, "value": 1.25},
    ]
    lines = ["12:00:00 INFO validation at 100", "12:00:09 INFO run 1 tested"]
    assert _leave_outcome(tmp_path, run_id, state="succeeded", artifact_url=url, metrics=points, logs=lines) == folder
    report = _end_silently(_worker(db_url, tmp_path), db_url, run_id)
    run = _runs(db_url)[run_id]
    assert report.ended == {run_id: RunState.SUCCEEDED} and run.state == RunState.SUCCEEDED
    assert run.artifact_url == url and run.error is None and run.attempts == 1 and run.reserved == 0
    assert _stored(db_url, run_id) == ([("test/sharpe", 200, 1.25), ("validation/sharpe", 100, 0.5)], lines)


def test_a_run_whose_outcome_says_failed_is_failed_with_its_error_and_not_retried(db_url: str, tmp_path: Path) -> None:
    (run_id,) = _queue(db_url, 1)
    _leave_outcome(tmp_path, run_id, state="failed", error="Traceback: ValueError: bad config", logs=["boom"])
    worker = _worker(db_url, tmp_path)
    report = _end_silently(worker, db_url, run_id)
    run = _runs(db_url)[run_id]
    assert report.ended == {run_id: RunState.FAILED} and run.max_attempts == 2 and run.attempts == 1
    assert run.state == RunState.FAILED and run.error == "Traceback: ValueError: bad config"
    assert _stored(db_url, run_id) == ([], ["boom"]) and worker.tick().claimed == []


def test_an_outcome_pointing_outside_the_run_folder_succeeds_without_recording_that_folder(
    db_url: str, tmp_path: Path
) -> None:
    (run_id,) = _queue(db_url, 1)
    _leave_outcome(tmp_path, run_id, state="succeeded", artifact_url="file:///etc")
    _end_silently(_worker(db_url, tmp_path), db_url, run_id)
    run = _runs(db_url)[run_id]
    assert run.state == RunState.SUCCEEDED and run.artifact_url is None
    assert "its artifact folder was not recorded: file:///etc is not inside" in (run.error or "")


def test_an_invalid_outcome_is_not_recorded_and_the_attempt_is_retried_saying_why(db_url: str, tmp_path: Path) -> None:
    (run_id,) = _queue(db_url, 1)
    folder = tmp_path / "artifacts" / "runs" / f"run-{run_id}" / "attempts" / "1"
    folder.mkdir(parents=True)
    (folder / "outcome.json").write_text('{"attempt": 1, "state": "done"}')
    report = _end_silently(_worker(db_url, tmp_path), db_url, run_id)
    run = _runs(db_url)[run_id]
    assert report.ended == {run_id: RunState.QUEUED} and "without reporting" in (run.error or "")
    assert f"{folder / 'outcome.json'} is not a valid outcome" in (run.error or "") and "state" in (run.error or "")


class _StubbornBackend(LocalBackend):
    """A backend whose terminate does not take (as a pod RunPod has not stopped yet)."""

    def terminate(self, handle: Handle) -> None:
        return None


def test_an_attempt_is_not_retried_while_its_compute_still_runs(db_url: str, tmp_path: Path) -> None:
    (run_id,) = _queue(db_url, 1)
    config = WorkerConfig(storage_url=(tmp_path / "artifacts").as_uri())
    worker = StubReconciler(make_engine(db_url), _StubbornBackend(tmp_path / "compute", hourly_price=1.0), config)
    worker.seconds = 60.0
    worker.tick()
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:  # its agent was cut off from the API: no heartbeat
        session.get(Run, run_id).heartbeat_at = utcnow().replace(year=2000)  # type: ignore[union-attr]
    engine.dispose()
    report = worker.tick()
    run = _runs(db_url)[run_id]
    assert report.ended == {} and report.claimed == [] and run.state == RunState.STARTING and run.attempts == 1
    LocalBackend(tmp_path / "compute").terminate(Handle("local", run.compute_id))  # type: ignore[arg-type]
    report = worker.tick()  # now it is gone: the attempt is over, and the next one may start
    assert report.ended == {run_id: RunState.QUEUED} and report.claimed == [run_id]


def test_the_agent_is_told_its_attempt_and_deadline(db_url: str, tmp_path: Path) -> None:
    (run_id,) = _queue(db_url, 1, max_wall_time_s=1800.0)
    worker = Reconciler(make_engine(db_url), LocalBackend(tmp_path / "compute"), WorkerConfig(concurrency=0))
    storage = (tmp_path / "artifacts").as_uri()
    worker.config.storage_url = storage
    claimed = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with transaction(worker.sessions) as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.attempts, run.started_at = 2, claimed
        env = worker._spec(session, run).env
    assert env["TRADELAB_ATTEMPT"] == "2" and env["TRADELAB_RUN_URL"] == f"{storage}/runs/run-{run_id}"
    assert float(env["TRADELAB_DEADLINE"]) == claimed.timestamp() + 1800.0  # the attempt's max wall time from its claim
    worker.engine.dispose()


def test_the_worker_reads_the_outcome_file_the_agent_writes(tmp_path: Path) -> None:
    outbox = Outbox()
    outbox.add_points([{"key": "test/sharpe", "step": 3, "value": 1.5}])
    outbox.add_line("12:00:09 INFO run 1 tested")
    url = (tmp_path / "runs" / "run-1").as_uri()
    _write_outcome(1, url, 2, {"state": "succeeded", "artifact_url": f"{url}/model", "error": None}, outbox)
    assert read_outcome(url, 1) is None  # another attempt's
    assert read_outcome(url, 2) == Outcome(
        attempt=2,
        state="succeeded",
        artifact_url=f"{url}/model",
        metrics=[{"key": "test/sharpe", "step": 3, "value": 1.5}],
        logs=["12:00:09 INFO run 1 tested"],
    )


@pytest.fixture(autouse=True)
def _no_stray_processes(tmp_path: Path) -> Any:
    """Stop what a test left running (a stubborn backend's process)."""
    yield
    backend = LocalBackend(tmp_path / "compute")
    for owned in backend.list_owned():
        backend.terminate(owned.handle)
