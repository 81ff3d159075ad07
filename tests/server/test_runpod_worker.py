"""The reconciler on the RunPod backend, against the fake RunPod, on SQLite and Postgres: a worker that dies
between "pod created" and "pod id recorded", preemption, the budget under 20 concurrent launches, and every
fault the fake can inject — each ends with no pod left running and the run in a final state."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.experiments.runs import tiny_config
from tests.server.test_worker import _runs
from tradelab.compute.base import ComputeError
from tradelab.compute.fake_runpod import FakeRunPod
from tradelab.compute.runpod_pods import RunPodBackend, RunPodConfig
from tradelab.server.db import make_engine, session_factory, transaction
from tradelab.server.models import Budget, Event, Experiment, Run, RunState
from tradelab.server.worker import Reconciler, WorkerConfig
from tradelab.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
GPU = "NVIDIA GeForce RTX 4090"  # secure 0.69/h: a run with a max wall time of 1 h reserves 0.69
PRICE = 0.69


@pytest.fixture
def fake(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRunPod]:
    """A fake RunPod whose pods run the stub agent of :mod:`tests.server.stub_pod` (1 s of "training")."""
    env = {"PYTHONPATH": str(ROOT), "STUB_DB_URL": db_url, "STUB_SECONDS": "1"}
    entrypoint = [sys.executable, "-m", "tests.server.stub_pod"]
    with FakeRunPod(tmp_path / "runpod", start_delay_s=0.3, entrypoint=entrypoint, base_env=env) as server:
        monkeypatch.setenv("RUNPOD_API_BASE_URL", server.url)
        monkeypatch.setenv("TRADELAB_HOME", str(tmp_path / "home"))  # the runs' folders (their outcomes) go there
        get_settings.cache_clear()
        yield server
    get_settings.cache_clear()


def reconciler(db_url: str, *, pods: dict[str, Any] | None = None, **config: Any) -> Reconciler:
    """A reconciler on a fresh RunPod backend (as a freshly started worker process has)."""
    options = {"image": "tradelab:test", "gpu_type": GPU, "retries": 3, "backoff_s": 0.01, **(pods or {})}
    backend = RunPodBackend(RunPodConfig(**options), "rp-key", sleep=lambda _: None)
    return Reconciler(make_engine(db_url), backend, WorkerConfig(**{"concurrency": 4, **config}))


def queue(db_url: str, count: int = 1) -> list[int]:
    """``count`` runs queued on the RunPod backend with a max wall time of 1 h; their ids."""
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        experiment = Experiment(name="tiny", config=tiny_config().model_dump(mode="json", by_alias=True))
        session.add(experiment)
        session.flush()
        runs = [
            Run(experiment_id=experiment.id, seed=i, backend="runpod", max_wall_time_s=3600.0) for i in range(count)
        ]
        session.add_all(runs)
        session.flush()
        ids = [r.id for r in runs]
    engine.dispose()
    return ids


def settle(db_url: str, worker: Reconciler, fake: FakeRunPod, run_id: int, timeout_s: float = 40.0) -> Run:
    """Tick until the run is final, settled (nothing reserved) and the fake has no live pod; the run."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            worker.tick()
        except ComputeError as error:  # RunPod unreachable this tick: the worker's loop retries (run_forever)
            assert error.transient
        run = _runs(db_url)[run_id]
        if RunState(run.state).final and run.reserved == 0 and not fake.live_pods():
            return run
        assert time.monotonic() < deadline, f"run {run.state}, live pods {fake.live_pods()}: {run.error}"
        time.sleep(0.2)


def billed(fake: FakeRunPod) -> float:
    """What the fake's pods cost, at the whole seconds RunPod's API reports."""
    return sum(p.cost_per_hr * int(p.uptime_s) / 3600 for p in fake.pods())


class Killed(BaseException):
    """The worker process dies here: nothing after this point of it runs."""


def die_after_creating_the_pod(db_url: str) -> None:
    """A worker tick that dies right after RunPod created the pod, before the pod's id is recorded."""
    dying = reconciler(db_url)
    create = dying.backend.start

    def start_then_die(*args: Any) -> Any:
        create(*args)
        raise Killed

    dying.backend.start = start_then_die  # type: ignore[method-assign]
    with pytest.raises(Killed):
        dying.tick()


def test_a_worker_killed_between_pod_created_and_pod_recorded_adopts_the_pod_on_restart(
    db_url: str, fake: FakeRunPod
) -> None:
    (run_id,) = queue(db_url)
    die_after_creating_the_pod(db_url)
    assert _runs(db_url)[run_id].compute_id is None and len(fake.pods()) == 1  # created, not recorded
    restarted = reconciler(db_url, adopt_after_s=0.0)  # a new process: it knows nothing of the pod but its tags
    restarted.tick()
    (pod,) = fake.pods()
    assert _runs(db_url)[run_id].compute_id == pod.id and fake.calls["podFindAndDeployOnDemand"] == 1
    run = settle(db_url, restarted, fake, run_id)
    assert run.state == RunState.SUCCEEDED and run.attempts == 1 and fake.pod(pod.id).terminated
    assert run.cost == pytest.approx(billed(fake), abs=PRICE / 3600 * 1.5) and run.cost > 0


def test_a_run_cancelled_while_its_worker_was_down_has_its_adopted_pod_terminated(
    db_url: str, fake: FakeRunPod
) -> None:
    (run_id,) = queue(db_url)
    die_after_creating_the_pod(db_url)
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        session.get(Run, run_id).cancel_requested = True  # type: ignore[union-attr]
    engine.dispose()
    run = settle(db_url, reconciler(db_url, adopt_after_s=0.0), fake, run_id)
    assert run.state == RunState.CANCELLED and len(fake.pods()) == 1 and fake.pods()[0].terminated


def test_a_preempted_run_is_queued_again_runs_on_a_new_pod_and_both_pods_are_paid_for(
    db_url: str, fake: FakeRunPod
) -> None:
    (run_id,) = queue(db_url)
    worker = reconciler(db_url, pods={"interruptible": True, "cloud_type": "COMMUNITY", "bid_per_gpu": 0.25})
    worker.tick()
    first = fake.pods()[0]
    fake.wait_for(lambda: fake.pod(first.id).running)
    time.sleep(0.2)
    fake.preempt(first.id)
    run = settle(db_url, worker, fake, run_id)
    assert run.state == RunState.SUCCEEDED and run.preemptions == 1 and run.attempts == 2
    assert len(fake.pods()) == 2 and all(p.terminated or p.preempted for p in fake.pods())
    assert run.cost == pytest.approx(billed(fake), abs=0.25 / 3600 * 2.5)
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        states = [e.payload["state"] for e in session.scalars(select(Event).where(Event.run_id == run_id))]
    engine.dispose()
    assert states.count("starting") == 2 and states.index("queued") == 1 and states[-1] == "succeeded"


def test_twenty_concurrent_launches_never_exceed_the_cap_counting_pods_already_running(
    db_url: str, fake: FakeRunPod
) -> None:
    fake_runs = queue(db_url, 1)
    first = reconciler(db_url)
    first.tick()  # one pod already running, reserving 0.69
    assert len(fake.live_pods()) == 1
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        session.add(Budget(experiment_id=None, monthly_cap=PRICE * 5 + 0.01))  # room for four more
    engine.dispose()
    ids = queue(db_url, 20)
    workers = [reconciler(db_url, concurrency=30) for _ in range(4)]
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def launch(worker: Reconciler) -> None:
        barrier.wait()  # four workers claim and create pods at the same moment
        try:
            worker.tick()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=launch, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    runs = _runs(db_url)
    started = [i for i in ids if runs[i].state == RunState.STARTING]
    refused = [i for i in ids if runs[i].state == RunState.FAILED]
    assert len(started) == 4 and len(refused) == 16 and len(fake.pods()) == 5
    assert all("budget exhausted" in (runs[i].error or "") for i in refused)
    committed = sum(r.cost + r.reserved for r in runs.values())
    assert committed <= PRICE * 5 + 0.01 and all(runs[i].compute_id for i in [*fake_runs, *started])


#: Each fault the fake can inject, and what must come of a run that meets it.
FAULTS: dict[str, tuple[dict[str, Any], dict[str, Any], RunState]] = {
    "rate_limit": ({"rate_limit": 4}, {}, RunState.SUCCEEDED),
    "server_error": ({"server_error": 4}, {}, RunState.SUCCEEDED),
    "fail_create": ({"fail_create": 5}, {}, RunState.SUCCEEDED),  # more than one tick's retries
    "ghost_create": ({"ghost_create": 2}, {}, RunState.SUCCEEDED),
    "no_capacity": ({"no_capacity": 5}, {}, RunState.SUCCEEDED),
    "stuck_pending": ({"stuck_pending": 1}, {"start_grace_s": 10.0}, RunState.SUCCEEDED),  # on its second attempt
    "terminate_failures": ({"terminate_failures": 4}, {}, RunState.SUCCEEDED),
    "latency_s": ({"latency_s": 0.1}, {}, RunState.SUCCEEDED),
    "preempt_after_s": ({"preempt_after_s": 0.3}, {"max_preemptions": 2}, RunState.FAILED),  # gives up
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_fault_ends_with_no_pod_running_and_the_run_final(db_url: str, fake: FakeRunPod, fault: str) -> None:
    faults, config, expected = FAULTS[fault]
    fake.inject(**faults)
    (run_id,) = queue(db_url)
    spot = (
        {"interruptible": True, "cloud_type": "COMMUNITY", "bid_per_gpu": 0.25} if fault.startswith("preempt") else {}
    )
    worker = reconciler(db_url, pods=spot, **config)
    run = settle(db_url, worker, fake, run_id)
    assert run.state == expected, run.error
    assert fake.live_pods() == [] and all(p.terminated or p.desired_status == "EXITED" for p in fake.pods())
    if fault == "ghost_create":
        assert len(fake.pods()) == 1  # the lost creates were adopted, never repeated
    if fault == "stuck_pending":
        assert run.attempts == 2 and len(fake.pods()) == 2 and "no heartbeat" in (run.error or "")
    if fault == "preempt_after_s":
        assert run.preemptions == 2 and "giving up" in (run.error or "") and len(fake.pods()) == 3
    assert run.cost == pytest.approx(billed(fake), abs=max(p.cost_per_hr for p in fake.pods()) / 3600 * 3)


def _running(db_url: str, worker: Reconciler, fake: FakeRunPod, run_id: int) -> Run:
    """Tick until the run's stub agent reported ``running``; the run."""
    deadline = time.monotonic() + 30
    while _runs(db_url)[run_id].state != RunState.RUNNING:
        assert time.monotonic() < deadline, "the pod never reported running"
        worker.tick()
        time.sleep(0.2)
    return _runs(db_url)[run_id]


def _billed_a_second(fake: FakeRunPod) -> None:
    deadline = time.monotonic() + 10
    while fake.pods()[0].uptime_s < 1.0:
        assert time.monotonic() < deadline, "the pod was never billed"
        time.sleep(0.1)


def update_run(db_url: str, run_id: int, **values: Any) -> None:
    """Set columns of run ``run_id`` directly in the database (what another process would have written)."""
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        run = session.get(Run, run_id)
        for key, value in values.items():
            setattr(run, key, value)
    engine.dispose()


def test_an_idle_run_is_stopped_and_its_pod_terminated(db_url: str, fake: FakeRunPod) -> None:
    (run_id,) = queue(db_url)
    worker = reconciler(db_url, pods={"env": {"STUB_SECONDS": "60"}}, idle_timeout_s=900.0)
    _running(db_url, worker, fake, run_id)
    worker.tick()
    assert _runs(db_url)[run_id].state == RunState.RUNNING  # alive and (recently) busy: left alone
    _billed_a_second(fake)  # RunPod bills whole seconds of uptime: a pod stopped sooner would cost 0
    # heartbeats keep coming but say "no work" (busy=false leaves active_at behind) for over 15 minutes
    update_run(db_url, run_id, max_attempts=1, active_at=datetime.now(UTC) - timedelta(seconds=1000))
    run = settle(db_url, worker, fake, run_id)
    assert run.state == RunState.FAILED and run.error.startswith("idle: no CPU or GPU work for 1000 s")
    assert fake.pods()[0].terminated and run.cost > 0


def test_a_cap_lowered_under_a_running_pod_stops_it(db_url: str, fake: FakeRunPod) -> None:
    (run_id,) = queue(db_url)
    worker = reconciler(db_url, pods={"env": {"STUB_SECONDS": "60"}})
    _running(db_url, worker, fake, run_id)
    engine = make_engine(db_url)
    with transaction(session_factory(engine)) as session:
        session.add(Budget(experiment_id=None, monthly_cap=0.05))  # under the run's reservation of 0.69
    engine.dispose()
    run = settle(db_url, worker, fake, run_id)
    assert run.state == RunState.FAILED and "budget exhausted" in (run.error or "")
    assert fake.live_pods() == [] and len(fake.pods()) == 1  # the retry was refused by the same cap, before a pod
