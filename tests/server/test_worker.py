"""The reconciler on SQLite and Postgres: claims, budgets under concurrency, crashes of the worker, cancels."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from tests.experiments.runs import tiny_config
from tests.server.stub_worker import stub_reconciler
from tradelab.compute.base import Handle
from tradelab.server.db import make_engine, session_factory, transaction
from tradelab.server.models import Budget, Experiment, Run, RunState
from tradelab.server.worker import Reconciler, TickReport

ROOT = Path(__file__).resolve().parents[2]


def _queue(db_url: str, count: int, max_wall_time_s: float | None = 3600.0) -> list[int]:
    """An experiment with ``count`` queued runs; their ids."""
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        experiment = Experiment(name="tiny", config=tiny_config().model_dump(mode="json", by_alias=True))
        session.add(experiment)
        session.flush()
        runs = [Run(experiment_id=experiment.id, seed=i, max_wall_time_s=max_wall_time_s) for i in range(count)]
        session.add_all(runs)
        session.flush()
        ids = [r.id for r in runs]
    engine.dispose()
    return ids


def _runs(db_url: str) -> dict[int, Run]:
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        runs = {r.id: r for r in session.scalars(select(Run))}
    engine.dispose()
    return runs


def _until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_run_goes_from_queue_to_a_process_and_fails_when_it_ends_without_reporting(
    db_url: str, tmp_path: Path
) -> None:
    (run_id,) = _queue(db_url, 1)
    reconciler = stub_reconciler(db_url, tmp_path / "compute", 0.5, concurrency=2)
    report = reconciler.tick()
    assert report.claimed == [run_id] and report.started == [run_id]
    run = _runs(db_url)[run_id]
    assert run.state == RunState.STARTING and run.attempts == 1 and run.compute_id == f"run{run_id}-a1"
    time.sleep(1.0)
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        session.get(Run, run_id).max_attempts = 1  # type: ignore[union-attr]
    engine.dispose()
    assert reconciler.tick().ended == {run_id: RunState.FAILED}
    run = _runs(db_url)[run_id]
    assert run.state == RunState.FAILED and "without reporting" in (run.error or "")


def test_twenty_launches_against_a_budget_for_five_start_exactly_five(db_url: str, tmp_path: Path) -> None:
    ids = _queue(db_url, 20, max_wall_time_s=3600.0)  # worst case: 1.0/h × 1 h = 1.0 each
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        session.add(Budget(experiment_id=None, monthly_cap=5.0))
    engine.dispose()
    reconcilers = [stub_reconciler(db_url, tmp_path / "compute", 30.0, concurrency=20) for _ in range(4)]
    barrier = threading.Barrier(len(reconcilers))

    def claim(reconciler: Reconciler) -> None:
        barrier.wait()  # four workers claim at the same moment
        reconciler._claim(TickReport())

    threads = [threading.Thread(target=claim, args=(r,)) for r in reconcilers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = _runs(db_url)
    started = [i for i in ids if runs[i].state == RunState.STARTING]
    refused = [i for i in ids if runs[i].state == RunState.FAILED]
    assert len(started) == 5 and len(refused) == 15
    assert all("budget exhausted" in (runs[i].error or "") for i in refused)
    assert sum(runs[i].reserved for i in started) == 5.0  # reserved, not spent yet
    assert sum(runs[i].cost for i in ids) == 0.0


def test_kill_9_the_worker_mid_run_then_restart_adopts_the_process_and_never_runs_twice(
    db_url: str, tmp_path: Path
) -> None:
    (run_id,) = _queue(db_url, 1)
    compute = tmp_path / "compute"
    command = [sys.executable, "-m", "tests.server.stub_worker", db_url, str(compute), "60"]
    first = subprocess.Popen(command, cwd=ROOT, env={**os.environ})
    try:
        _until(lambda: _runs(db_url)[run_id].compute_id is not None)
        key = _runs(db_url)[run_id].compute_id
        os.kill(first.pid, signal.SIGKILL)  # the worker dies at once, its run's process lives on
        first.wait()
        second = stub_reconciler(db_url, compute, 60.0, concurrency=4)
        for _ in range(3):
            second.tick()
        run = _runs(db_url)[run_id]
        assert run.state == RunState.STARTING and run.compute_id == key and run.attempts == 1  # adopted, not rerun
        owned = second.backend.list_owned()
        assert [o.run_id for o in owned] == [run_id]  # exactly one process for the run
        engine = make_engine(db_url)
        with transaction(session_factory(engine)) as session:
            session.get(Run, run_id).cancel_requested = True  # type: ignore[union-attr]
        engine.dispose()
        assert second.tick().ended == {run_id: RunState.CANCELLED}
        assert second.backend.status(Handle("local", key)) != "running" and second.backend.list_owned() == []
    finally:
        first.kill()


def test_orphans_no_run_owns_are_terminated(db_url: str, tmp_path: Path) -> None:
    (run_id,) = _queue(db_url, 1)
    reconciler = stub_reconciler(db_url, tmp_path / "compute", 60.0)
    reconciler.tick()
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        run = session.get(Run, run_id)
        run.state = RunState.SUCCEEDED  # type: ignore[union-attr]  # e.g. reported by the agent, process left behind
        run.reserved = 0.0  # type: ignore[union-attr]  # (as if settled already: the reaper must still find it)
    engine.dispose()
    report = reconciler.tick()
    assert report.reaped == [f"run{run_id}-a1"] and reconciler.backend.list_owned() == []


def test_a_run_that_reported_its_end_is_settled_its_process_stopped_and_its_cost_recorded(
    db_url: str, tmp_path: Path
) -> None:
    (run_id,) = _queue(db_url, 1, max_wall_time_s=3600.0)
    reconciler = stub_reconciler(db_url, tmp_path / "compute", 60.0)
    reconciler.tick()
    assert _runs(db_url)[run_id].reserved == 1.0  # 1.0/h × 1 h reserved while it runs
    time.sleep(0.5)
    reconciler.tick()
    accrued = _runs(db_url)[run_id]
    assert 0 < accrued.cost < 0.01 and abs(accrued.cost + accrued.reserved - 1.0) < 1e-9  # the reservation shrinks
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        session.get(Run, run_id).state = RunState.SUCCEEDED  # type: ignore[union-attr]  # reported by its agent
    engine.dispose()
    report = reconciler.tick()
    run = _runs(db_url)[run_id]
    assert report.reaped == [] and reconciler.backend.list_owned() == []  # stopped by the settling, not as an orphan
    assert run.reserved == 0.0 and run.cost >= accrued.cost and run.attempt_cost == run.cost


def test_a_run_cancelled_between_its_claim_and_its_start_is_never_started(db_url: str, tmp_path: Path) -> None:
    (run_id,) = _queue(db_url, 1)
    reconciler = stub_reconciler(db_url, tmp_path / "compute", 30.0)
    report = TickReport()
    reconciler._claim(report)
    assert report.claimed == [run_id] and _runs(db_url)[run_id].state == RunState.STARTING
    with transaction(reconciler.sessions) as session:
        session.get(Run, run_id).cancel_requested = True  # what POST /runs/{id}/cancel does to a starting run
    reconciler._start(report)
    run = _runs(db_url)[run_id]
    assert report.started == [] and reconciler.backend.list_owned() == []
    assert run.state == RunState.CANCELLED and run.reserved == 0.0 and run.compute_id is None
    reconciler.engine.dispose()
