"""The fake RunPod API, driven through the real ``runpod`` SDK: pod lifecycle, billing and every injectable fault."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import runpod
from runpod.api.graphql import run_graphql_query
from runpod.error import AuthenticationError, QueryError

from tradelab.compute import fake_runpod
from tradelab.compute.fake_runpod import NO_CAPACITY, FakeRunPod

GPU = "NVIDIA GeForce RTX 4090"  # secure 0.69, community 0.34, minimum bid 0.20
DELAY = 0.2


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRunPod]:
    with FakeRunPod(tmp_path / "runpod", start_delay_s=DELAY, entrypoint=["sh", "-c"]) as server:
        monkeypatch.setattr(runpod, "api_key", "test-key")
        monkeypatch.setenv("RUNPOD_API_BASE_URL", server.url)
        yield server


def create(command: str, **kwargs) -> dict:
    """An on-demand pod whose container runs ``sh -c command`` (quoted as one docker arg, without double quotes)."""
    return runpod.create_pod("lab-pod", "tradelab:latest", GPU, docker_args=shlex.quote(command), **kwargs)


def rent(bid: float, command: str = "sleep 30", gpu_count: int = 1) -> dict:
    """An interruptible pod, with the mutation the SDK has no call for."""
    query = f"""mutation {{ podRentInterruptable(input: {{ bidPerGpu: {bid}, name: "spot", imageName: "tradelab:latest",
        gpuTypeId: "{GPU}", cloudType: COMMUNITY, gpuCount: {gpu_count}, dockerArgs: "{shlex.quote(command)}" }})
        {{ id podType costPerHr desiredStatus }} }}"""
    return run_graphql_query(query)["data"]["podRentInterruptable"]


def running(pid: int | None) -> bool:
    """Whether a process exists and is not a zombie."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_started(fake: FakeRunPod, pod_id: str) -> dict:
    fake.wait_for(lambda: runpod.get_pod(pod_id)["runtime"] is not None)
    return runpod.get_pod(pod_id)


def wait_exited(fake: FakeRunPod, pod_id: str) -> dict:
    fake.wait_for(lambda: runpod.get_pod(pod_id)["desiredStatus"] == "EXITED")
    return runpod.get_pod(pod_id)


def test_a_pod_is_pending_then_runs_its_command_then_exits(fake, monkeypatch):
    monkeypatch.setenv("LEAKED", "yes")  # the container must not see the test's environment
    pod = create("echo hello $RUNPOD_POD_ID $TAG ${LEAKED:-clean} $RUNPOD_GPU_COUNT; sleep 0.5", env={"TAG": "t1"})
    pod_id = pod["id"]
    assert pod["env"] == ["TAG=t1"]
    pending = runpod.get_pod(pod_id)
    assert (pending["desiredStatus"], pending["runtime"], pending["costPerHr"]) == ("RUNNING", None, 0.34)
    assert pending["machine"] == {"gpuDisplayName": "RTX 4090"}

    started = wait_started(fake, pod_id)
    assert started["runtime"] == {"ports": []}
    assert [p["id"] for p in runpod.get_pods()] == [pod_id]
    snapshot = fake.pod(pod_id)
    assert snapshot.running and running(snapshot.pid)
    fake.wait_for(lambda: "hello" in fake.pod(pod_id).log())
    assert fake.pod(pod_id).log() == f"hello {pod_id} t1 clean 1\n"

    exited = wait_exited(fake, pod_id)
    assert exited["runtime"] is None
    assert exited["lastStatusChange"].startswith("Exited with code 0: ")
    assert [p["desiredStatus"] for p in runpod.get_pods()] == ["EXITED"]  # still listed: a stopped pod is kept
    final = fake.pod(pod_id)
    assert (final.exit_code, final.running, final.terminated) == (0, False, False)
    assert not running(final.pid)


def test_billing_covers_pending_time_and_stops_when_the_container_exits(fake):
    pod_id = create("exit 3")["id"]
    exited = wait_exited(fake, pod_id)
    assert exited["lastStatusChange"].startswith("Exited with code 3")
    billed = fake.pod(pod_id)
    assert billed.exit_code == 3
    assert DELAY <= billed.uptime_s < DELAY + 1.0  # the image pull is billed
    assert billed.cost == pytest.approx(0.34 * billed.uptime_s / 3600)
    time.sleep(0.2)
    assert fake.pod(pod_id).cost == billed.cost
    assert fake.total_cost() == billed.cost


def test_the_sdk_reads_the_same_price_and_uptime(fake):
    pod_id = create("sleep 30", cloud_type="SECURE", gpu_count=2)["id"]
    time.sleep(1.1)
    pod = runpod.get_pod(pod_id)
    assert pod["costPerHr"] == pytest.approx(1.38)  # secure price × 2 GPUs
    assert pod["uptimeSeconds"] >= 1
    snapshot = fake.pod(pod_id)
    assert snapshot.cost == pytest.approx(1.38 * snapshot.uptime_s / 3600)
    assert snapshot.uptime_s == pytest.approx(pod["uptimeSeconds"], abs=1)


def test_terminate_kills_the_process_group_and_the_pod_disappears(fake):
    pod_id = create("sleep 30 & echo $! > child.pid; wait")["id"]
    child_file = fake.root / "pods" / pod_id / "child.pid"
    fake.wait_for(lambda: child_file.exists() and child_file.read_text().strip() != "")
    child = int(child_file.read_text())
    shell = fake.pod(pod_id).pid
    assert running(shell) and running(child)

    runpod.terminate_pod(pod_id)
    assert runpod.get_pod(pod_id) is None
    assert runpod.get_pods() == []
    gone = fake.pod(pod_id)
    assert (gone.terminated, gone.desired_status, gone.running) == (True, "TERMINATED", False)
    fake.wait_for(lambda: not running(shell) and not running(child), timeout=2)
    assert fake.live_pods() == [] and [p.id for p in fake.pods()] == [pod_id]
    time.sleep(0.1)
    assert fake.pod(pod_id).cost == gone.cost  # billing stopped
    with pytest.raises(QueryError, match="Pod not found"):
        runpod.terminate_pod(pod_id)


def test_stop_then_resume_restarts_the_container(fake):
    pod_id = create("echo run; sleep 30")["id"]
    wait_started(fake, pod_id)
    first_pid = fake.pod(pod_id).pid
    assert runpod.stop_pod(pod_id) == {"id": pod_id, "desiredStatus": "EXITED"}
    assert runpod.get_pod(pod_id)["lastStatusChange"].startswith("Stopped by User")
    assert not running(first_pid)
    stopped_cost = fake.pod(pod_id).cost
    time.sleep(0.1)
    assert fake.pod(pod_id).cost == stopped_cost

    resumed = runpod.resume_pod(pod_id, 2)
    assert resumed["desiredStatus"] == "RUNNING"
    assert runpod.get_pod(pod_id)["runtime"] is None  # pending again
    pod = wait_started(fake, pod_id)
    assert pod["costPerHr"] == pytest.approx(0.68)
    assert fake.pod(pod_id).pid != first_pid
    fake.wait_for(lambda: fake.pod(pod_id).log() == "run\nrun\n")
    with pytest.raises(QueryError, match="already running"):
        runpod.resume_pod(pod_id, 1)


def test_an_interruptible_pod_bills_its_bid_and_a_low_bid_is_refused(fake):
    pod = rent(0.25, gpu_count=2)
    assert (pod["podType"], pod["desiredStatus"], pod["costPerHr"]) == ("INTERRUPTABLE", "RUNNING", 0.5)
    with pytest.raises(QueryError, match=r"minimum bid of \$0\.200"):
        rent(0.1)
    assert len(fake.live_pods()) == 1


def test_preemption_kills_an_interruptible_container(fake):
    spot = rent(0.2)["id"]
    steady = create("sleep 30")["id"]
    wait_started(fake, spot)
    pid = fake.pod(spot).pid
    fake.preempt(spot)
    pod = runpod.get_pod(spot)
    assert pod["desiredStatus"] == "EXITED" and pod["runtime"] is None
    assert pod["lastStatusChange"].startswith("Preempted: outbid by a higher bid at ")
    assert fake.pod(spot).preempted and not running(pid)
    with pytest.raises(ValueError, match="nothing to preempt"):
        fake.preempt(steady)

    fake.inject(preempt_after_s=0.2)
    later = rent(0.3)["id"]
    exited = wait_exited(fake, later)
    assert exited["lastStatusChange"].startswith("Preempted")
    assert fake.pod(later).uptime_s >= DELAY + 0.2
    assert runpod.get_pod(steady)["desiredStatus"] == "RUNNING"  # on-demand pods are never preempted


def test_rate_limit_answers_429_that_the_sdk_cannot_decode(fake):
    fake.inject(rate_limit=2)
    auth = {"Authorization": "Bearer k"}
    raw = requests.post(f"{fake.url}/graphql", json={"query": "{ myself { id } }"}, headers=auth)
    assert (raw.status_code, raw.headers["Retry-After"], raw.text) == (429, "1", "Too Many Requests")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        runpod.get_pods()
    assert runpod.get_pods() == []
    assert fake.calls["rate_limit"] == 2 and fake.calls["myself"] == 1


def test_server_error(fake):
    fake.inject(server_error=1)
    with pytest.raises(requests.RequestException):
        runpod.get_gpus()
    assert len(runpod.get_gpus()) == 4
    assert fake.calls["server_error"] == 1


def test_fail_create_creates_nothing(fake):
    fake.inject(fail_create=1)
    with pytest.raises(requests.RequestException):
        create("sleep 1")
    assert fake.pods() == [] and runpod.get_pods() == []
    assert create("sleep 1")["id"] == runpod.get_pods()[0]["id"]


def test_ghost_create_makes_a_pod_whose_answer_is_lost(fake):
    fake.inject(ghost_create=1)
    with pytest.raises(requests.RequestException):
        create("sleep 30")
    listed = runpod.get_pods()
    assert len(listed) == 1 and fake.calls["ghost_create"] == 1
    wait_started(fake, listed[0]["id"])  # a real pod that bills


def test_no_capacity(fake):
    fake.inject(no_capacity=1)
    with pytest.raises(QueryError, match="no longer any instances available"):
        create("sleep 1")
    assert fake.pods() == []
    assert NO_CAPACITY.startswith("There are no longer")


def test_stuck_pending_never_starts_but_bills(fake):
    fake.inject(stuck_pending=1)
    stuck = create("echo started")["id"]
    normal = create("sleep 30")["id"]
    wait_started(fake, normal)
    time.sleep(DELAY)
    pod = runpod.get_pod(stuck)
    assert (pod["desiredStatus"], pod["runtime"]) == ("RUNNING", None)
    snapshot = fake.pod(stuck)
    assert snapshot.pid is None and snapshot.log() == ""
    assert snapshot.uptime_s > 2 * DELAY and snapshot.cost > 0


def test_terminate_failures_leave_the_pod_alive(fake):
    pod_id = create("sleep 30")["id"]
    wait_started(fake, pod_id)
    fake.inject(terminate_failures=1)
    with pytest.raises(requests.RequestException):
        runpod.terminate_pod(pod_id)
    assert runpod.get_pod(pod_id)["desiredStatus"] == "RUNNING"
    assert running(fake.pod(pod_id).pid)
    runpod.terminate_pod(pod_id)
    assert runpod.get_pod(pod_id) is None


def test_latency_delays_each_answer(fake, monkeypatch):
    delays: list[float] = []
    monkeypatch.setattr(fake_runpod.time, "sleep", delays.append)  # the fake serves from this process's threads
    fake.inject(latency_s=0.3)
    runpod.get_pods()
    assert delays == [0.3]


def test_wrong_or_missing_api_key(tmp_path, monkeypatch):
    with FakeRunPod(tmp_path, api_key="right") as server:
        monkeypatch.setenv("RUNPOD_API_BASE_URL", server.url)
        with pytest.raises(AuthenticationError):
            runpod.get_gpus(api_key="wrong")
        assert len(runpod.get_gpus(api_key="right")) == 4
        assert requests.post(f"{server.url}/graphql", json={"query": "{ myself { id } }"}).status_code == 401


def test_an_unescaped_quote_is_a_syntax_error(fake):
    with pytest.raises(QueryError, match="Syntax Error"):
        create("sleep 1", env={"NOTE": 'say "hi"'})
    assert fake.pods() == []


def test_queries_are_projected_and_unknown_fields_are_errors(fake):
    query = '{ gpuTypes(input: {id: "NVIDIA A40"}) { id price: securePrice bogus lowestPrice { minimumBidPrice } } }'
    assert run_graphql_query(query)["data"]["gpuTypes"] == [
        {"id": "NVIDIA A40", "price": 0.40, "bogus": None, "lowestPrice": {"minimumBidPrice": 0.20}}
    ]
    with pytest.raises(QueryError, match='Cannot query field "podDelete"'):
        run_graphql_query('mutation { podDelete(input: {podId: "x"}) }')
    with pytest.raises(ValueError, match="No GPU found"):  # the SDK's own check on an empty gpuTypes
        runpod.create_pod("p", "img", "NVIDIA RTX 9999")
    with pytest.raises(QueryError, match="Invalid gpuTypeId"):
        run_graphql_query('mutation { podFindAndDeployOnDemand(input: {gpuTypeId: "nope", imageName: "i"}) { id } }')
    volumes = runpod.get_user()["networkVolumes"]
    assert [v["id"] for v in volumes] == ["fakevol0data01", "fakevol1runs02"]


def test_faults_over_http_and_state(fake):
    assert requests.post(f"{fake.url}/_fake/faults", json={"no_capacity": 1}).json()["no_capacity"] == 1
    assert requests.post(f"{fake.url}/_fake/faults", json={"nonsense": 1}).status_code == 400
    assert requests.post(f"{fake.url}/_fake/faults", json={"latency_s": "slow"}).status_code == 400
    with pytest.raises(QueryError, match="no longer any instances"):
        create("sleep 1")
    state = requests.get(f"{fake.url}/_fake/state").json()
    assert state["calls"]["no_capacity"] == 1 and state["pods"] == []


def test_the_cli_serves_until_sigterm_and_kills_its_pods(tmp_path, monkeypatch):
    command = [sys.executable, "-m", "tradelab.compute.fake_runpod", "--root", str(tmp_path), "--start-delay", "0.1"]
    server = subprocess.Popen([*command, "--entrypoint", "sh -c"], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline() if server.stdout else ""
        assert line.startswith("fake runpod listening on http://127.0.0.1:")
        url = line.split()[-1]
        monkeypatch.setenv("RUNPOD_API_BASE_URL", url)
        monkeypatch.setattr(runpod, "api_key", "k")
        pod_id = runpod.create_pod("cli", "img", GPU, docker_args="'sleep 30'")["id"]
        deadline = time.monotonic() + 5
        while runpod.get_pod(pod_id)["runtime"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        (pid,) = [p["pid"] for p in requests.get(f"{url}/_fake/state").json()["pods"]]
        assert running(pid)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=5) == 0
        assert not running(pid)
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
