"""The RunPod pod backend through the real ``runpod`` SDK against the fake RunPod: lifecycle, tags, costs,
idempotent starts, retries with backoff, and refusals."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tradelab.cli import app
from tradelab.compute.base import ComputeError, ComputeSpec, ComputeState
from tradelab.compute.fake_runpod import FakeRunPod
from tradelab.compute.runpod_pods import RunPodBackend, RunPodConfig
from tradelab.settings import get_settings

GPU = "NVIDIA GeForce RTX 4090"  # secure 0.69/h, community 0.34/h, minimum bid 0.20/h
#: The "image": its entrypoint sleeps for $STUB_SECONDS whatever the start command (``worker run ...``) says.
SLEEPER = [sys.executable, "-c", "import os, time; time.sleep(float(os.environ.get('STUB_SECONDS', '30')))"]
SPEC = ComputeSpec(["tradelab", "worker", "run", "--run-id", "7"], {"TRADELAB_API_URL": "http://lab:8000"})


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRunPod]:
    with FakeRunPod(tmp_path / "runpod", start_delay_s=0.2, entrypoint=SLEEPER) as server:
        monkeypatch.setenv("RUNPOD_API_BASE_URL", server.url)
        yield server


def backend(delays: list[float] | None = None, **options: object) -> RunPodBackend:
    config = RunPodConfig(image="tradelab:test", gpu_type=GPU, retries=3, backoff_s=0.01, **options)  # type: ignore[arg-type]
    return RunPodBackend(config, "rp-secret-key", sleep=(delays.append if delays is not None else lambda _: None))


def test_a_pod_is_started_tagged_watched_costed_and_terminated(fake: FakeRunPod) -> None:
    pods = backend()
    handle = pods.start(7, SPEC, "run7-a1")
    (pod,) = fake.pods()
    assert pod.name == "tradelab-run7-a1" and pod.docker_args == "worker run --run-id 7"
    assert pod.env["TRADELAB_LAB_ID"] == "tradelab" and pod.env["TRADELAB_RUN_ID"] == "7"
    assert pod.env["TRADELAB_API_URL"] == "http://lab:8000"
    assert "rp-secret-key" not in str(pod.env)  # the account key never reaches a pod
    assert pods.status(handle) == ComputeState.PENDING  # pulling its image
    fake.wait_for(lambda: pods.status(handle) == ComputeState.RUNNING)
    assert [(o.run_id, o.idempotency_key, o.handle) for o in pods.list_owned()] == [(7, "run7-a1", handle)]
    fake.wait_for(lambda: fake.pod(pod.id).uptime_s >= 1.2, timeout=5)
    assert pods.cost_so_far(handle) == pytest.approx(0.69 * int(fake.pod(pod.id).uptime_s) / 3600, rel=0.5)
    pods.terminate(handle)
    gone = fake.pod(pod.id)
    assert gone.terminated and not fake.live_pods() and pods.status(handle) == ComputeState.GONE
    assert pods.cost_so_far(handle) > 0  # remembered after the pod is gone
    pods.terminate(handle)  # idempotent
    assert pods.price_per_hour(None) == 0.69 and pods.list_owned() == []


def test_a_start_with_a_used_key_returns_the_same_pod(fake: FakeRunPod) -> None:
    pods = backend()
    assert pods.start(7, SPEC, "run7-a1") == pods.start(7, SPEC, "run7-a1")
    assert len(fake.pods()) == 1


def test_a_pod_is_found_by_its_key_until_it_is_terminated(fake: FakeRunPod) -> None:
    pods = backend()
    handle = pods.start(7, SPEC, "run7-a1")
    assert pods.find("run7-a1") == handle and pods.find("run7-a2") is None
    assert backend(lab_id="other-lab").find("run7-a1") is None  # another lab's pod is never adopted
    pods.terminate(handle)
    assert pods.find("run7-a1") is None and len(fake.pods()) == 1


def test_a_create_whose_answer_was_lost_is_adopted_not_repeated(fake: FakeRunPod) -> None:
    fake.inject(ghost_create=1)  # RunPod made the pod, then answered 500
    delays: list[float] = []
    handle = backend(delays).start(7, SPEC, "run7-a1")
    assert [p.id for p in fake.pods()] == [handle.resource_id] and delays == [0.01]


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "fail_create", "no_capacity"])
def test_transient_failures_are_retried_with_exponential_backoff(fake: FakeRunPod, fault: str) -> None:
    fake.inject(**{fault: 2})
    delays: list[float] = []
    handle = backend(delays).start(7, SPEC, "run7-a1")
    assert [p.id for p in fake.pods()] == [handle.resource_id]
    assert delays == [0.01, 0.02] and fake.calls[fault] == 2


def test_transient_failures_past_the_retries_raise_a_transient_error_and_leave_no_pod(fake: FakeRunPod) -> None:
    fake.inject(fail_create=5)
    with pytest.raises(ComputeError, match="could not create the pod of run 7") as error:
        backend().start(7, SPEC, "run7-a1")
    assert error.value.transient and fake.pods() == []


def test_refusals_are_permanent_and_sent_nowhere(fake: FakeRunPod) -> None:
    with pytest.raises(ComputeError, match="No GPU found") as unknown:
        backend().start(7, ComputeSpec(SPEC.command, gpu_type="NVIDIA Imaginary 9000"), "run7-a1")
    assert not unknown.value.transient
    quoted = ComputeSpec(SPEC.command, {"NOTE": 'say "hi"'})
    with pytest.raises(ComputeError, match="NOTE holds a quote"):
        backend().start(7, quoted, "run7-a1")
    with pytest.raises(ComputeError, match="runs the lab's CLI only"):
        backend().start(7, ComputeSpec(["sh", "-c", "true"]), "run7-a1")
    assert fake.pods() == [] and fake.calls["podFindAndDeployOnDemand"] == 0


def test_a_terminate_that_fails_is_retried_until_the_pod_is_gone(fake: FakeRunPod) -> None:
    pods = backend()
    handle = pods.start(7, SPEC, "run7-a1")
    fake.inject(terminate_failures=2)
    pods.terminate(handle)
    assert fake.pod(handle.resource_id).terminated and fake.calls["terminate_failures"] == 2


def test_an_interruptible_pod_is_bid_for_and_reported_preempted(fake: FakeRunPod) -> None:
    pods = backend(interruptible=True, cloud_type="COMMUNITY", bid_per_gpu=0.25)
    assert pods.price_per_hour(None) == 0.25
    handle = pods.start(7, SPEC, "run7-a1")
    pod = fake.pod(handle.resource_id)
    assert pod.pod_type == "INTERRUPTABLE" and pod.cost_per_hr == 0.25
    fake.wait_for(lambda: pods.status(handle) == ComputeState.RUNNING)
    fake.preempt(handle.resource_id)
    fake.wait_for(lambda: pods.status(handle) == ComputeState.PREEMPTED, timeout=2)  # within a snapshot's age
    low = backend(interruptible=True, cloud_type="COMMUNITY", bid_per_gpu=0.05)
    with pytest.raises(ComputeError, match="minimum bid") as error:
        low.start(8, SPEC, "run8-a1")
    assert not error.value.transient


def test_one_listing_answers_every_pods_status_and_cost_within_a_tick(fake: FakeRunPod) -> None:
    pods = backend()
    handles = [pods.start(run, SPEC, f"run{run}-a1") for run in range(1, 6)]
    fake.wait_for(lambda: all(pods.status(h) == ComputeState.RUNNING for h in handles))
    fake.calls.clear()
    for handle in handles:  # what one reconciler tick asks of five active runs
        pods.cost_so_far(handle)
        pods.status(handle)
    pods.list_owned()
    assert fake.calls["myself"] <= 1 and fake.calls["pod"] == 0


def test_a_pod_whose_container_ended_is_failed_and_other_labs_pods_are_not_owned(fake: FakeRunPod) -> None:
    mine, theirs = backend(), backend(lab_id="another-lab")
    handle = mine.start(7, ComputeSpec(SPEC.command, {"STUB_SECONDS": "0"}), "run7-a1")
    theirs.start(9, SPEC, "run9-a1")
    fake.wait_for(lambda: mine.status(handle) == ComputeState.FAILED, timeout=10)
    assert [o.run_id for o in mine.list_owned()] == [7] and [o.run_id for o in theirs.list_owned()] == [9]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--backend", "gpu-cloud"], "unknown backend 'gpu-cloud'"),
        (["--backend", "runpod", "--image", "lab:1"], "set TRADELAB_RUNPOD_API_KEY"),
        (["--backend", "runpod"], "name the lab's image"),
        (["--backend", "runpod", "--image", "lab:1", "--pod-env", "NOEQUALS"], "'NOEQUALS' is not KEY=VALUE"),
    ],
)
def test_the_worker_refuses_a_backend_it_cannot_use(
    args: list[str], error: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "--image" not in args or "--pod-env" in args:
        monkeypatch.setenv("TRADELAB_RUNPOD_API_KEY", "rp-key")
    else:
        monkeypatch.delenv("TRADELAB_RUNPOD_API_KEY", raising=False)
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["worker", *args])
    assert result.exit_code == 2 and error in " ".join(result.output.split()), result.output
