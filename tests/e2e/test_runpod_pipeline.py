"""The whole pipeline on RunPod, against the fake RunPod: control plane (``tradelab serve``) + worker
(``tradelab worker --backend runpod``) + pods that run the real ``tradelab worker run`` in their own "container
disk". Register a dataset and a tool, configure an env, launch an experiment on the ``runpod`` backend; the pod
pulls the dataset from storage, trains, reports metrics and logs, writes its artifacts to storage and is
terminated; the cost is recorded. A second test preempts the spot pod mid-run: the run resumes from its
checkpoint on a new pod and both pods are paid for."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.e2e.test_control_plane import _free_port, wait_healthy
from tests.env.envs import FEATURES, frame
from tests.experiments.runs import tiny_config
from tradelab.cli import app
from tradelab.compute.fake_runpod import FakeRunPod
from tradelab.data.store import Store

ROOT = Path(__file__).resolve().parents[2]
TOOL = """\
name = "bar_range"
version = "1.0.0"
description = "The bar's high-low range as a fraction of its close"
module = "bar_range"
callable = "BarRange"
"""
MODULE = '''
"""The bar's range: (high - low) / close, from the bar itself only."""
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from tradelab.tools.base import Bars, Tool


class BarRangeParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BarRange(Tool):
    """``range``: (high - low) / close of each bar."""

    Params: ClassVar[type[BaseModel]] = BarRangeParams
    inputs: ClassVar[tuple[str, ...]] = ("high", "low", "close")

    def outputs(self, params: BarRangeParams) -> list[str]:
        return ["range"]

    def warmup(self, params: BarRangeParams) -> int:
        return 0

    def compute(self, bars: Bars, params: BarRangeParams) -> dict[str, np.ndarray]:
        return {"range": (bars["high"] - bars["low"]) / bars["close"]}
'''


@dataclass
class Lab:
    """A live control plane with a RunPod worker, and the fake RunPod its pods run on."""

    api: httpx.Client
    fake: FakeRunPod
    storage: Path


@pytest.fixture
def lab(home: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """SYN/1m pushed to file:// storage, a manifest tool, ``tradelab serve`` and ``tradelab worker --backend
    runpod`` (spot pods when the test is marked ``spot``), and the fake RunPod."""
    tools = tmp_path / "tools" / "bar_range"
    tools.mkdir(parents=True)
    (tools / "tool.toml").write_text(TOOL)
    (tools / "bar_range.py").write_text(textwrap.dedent(MODULE))
    Store().write("SYN", "1m", frame())
    storage = tmp_path / "storage"
    cli = CliRunner()
    token = cli.invoke(app, ["init"]).output.strip().splitlines()[-1]
    pushed = cli.invoke(app, ["data", "push", "SYN", "--to", (storage / "data").as_uri()])
    assert pushed.exit_code == 0, pushed.output
    # a pod's home is its own empty container disk; the plugin's folder reaches it through --pod-env
    image_env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    spot = request.node.get_closest_marker("spot") is not None
    with FakeRunPod(tmp_path / "runpod", start_delay_s=0.5, base_env=image_env) as fake:
        url = f"http://127.0.0.1:{_free_port()}"
        env = {
            **os.environ,
            "TRADELAB_HOME": str(home),
            "TRADELAB_STORAGE_URL": storage.as_uri(),  # the API accepts and reads run artifacts under it only
            "TRADELAB_TOOLS_DIR": str(tools.parent),
            "RUNPOD_API_BASE_URL": fake.url,
            "TRADELAB_RUNPOD_API_KEY": "rp-account-key",
        }
        command = [sys.executable, "-m", "tradelab.cli"]
        worker_args = ["worker", "--backend", "runpod", "--api-url", url, "--interval", "0.3", "--image", "lab:test"]
        worker_args += ["--storage-url", storage.as_uri(), "--data-url", (storage / "data").as_uri()]
        worker_args += ["--pod-env", f"TRADELAB_TOOLS_DIR={tools.parent}"]  # where the pods find the plugin
        if spot:
            worker_args += ["--interruptible", "--cloud-type", "COMMUNITY", "--bid", "0.25"]
        serve = subprocess.Popen([*command, "serve", "--port", url.rsplit(":", 1)[1]], cwd=ROOT, env=env)
        worker = subprocess.Popen([*command, *worker_args], cwd=ROOT, env=env)
        try:
            api = httpx.Client(base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=30)
            wait_healthy(url)
            yield Lab(api, fake, storage)
        finally:
            for process in (worker, serve):
                process.terminate()
                process.wait(timeout=15)


def launch(lab: Lab, **config: object) -> dict:
    """Register SYN/1m, store the env config (with the plugin tool), create the experiment, queue a RunPod run."""
    api = lab.api
    assert api.post("/datasets/register", json={"symbol": "SYN", "timeframe": "1m"}).status_code in (200, 201)
    assert api.get("/tools/bar_range").raise_for_status().json()["name"] == "bar_range"  # the plugin is registered
    experiment_config = tiny_config(**config).model_dump(mode="json", by_alias=True)
    experiment_config["env"]["features"] = [*FEATURES, {"tool": "bar_range"}]
    assert api.post("/env-configs", json={"name": "tiny-env", "config": experiment_config["env"]}).status_code == 201
    experiment = api.post("/experiments", json={"config": experiment_config}).raise_for_status().json()
    body = {"backend": "runpod", "gpu_type": "NVIDIA GeForce RTX 4090", "max_cost": 5.0, "max_wall_time_s": 3600}
    return api.post(f"/experiments/{experiment['id']}/runs", json=body).raise_for_status().json()


def finish(lab: Lab, run_id: int, timeout_s: float = 240) -> dict:
    """Wait until the run is final and settled (nothing reserved); the run."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = lab.api.get(f"/runs/{run_id}").json()
        if run["state"] in ("succeeded", "failed", "cancelled") and run["reserved"] == 0:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['state']}"
        time.sleep(0.5)


@pytest.mark.slow
def test_an_experiment_trains_on_a_runpod_pod_end_to_end(lab: Lab) -> None:
    run = finish(lab, launch(lab)["id"])
    assert run["state"] == "succeeded", run["error"]
    (pod,) = lab.fake.pods()
    assert pod.terminated and lab.fake.live_pods() == []  # terminated once the run reported its end
    assert "rp-account-key" not in str(pod.env) and pod.docker_args.startswith(f"worker run --run-id {run['id']}")
    log = (pod.folder / "container.log").read_text()
    assert "Traceback" not in log
    # the pod pulled the dataset into its own disk: nothing of the lab's home was visible to it
    assert list((pod.folder / ".tradelab" / "data" / "SYN" / "1m").rglob("*.parquet"))
    # metrics and logs flowed back
    keys = {m["key"] for m in lab.api.get(f"/runs/{run['id']}/metrics").json()["data"]}
    assert {"val/sharpe", "test/total_return"} <= keys
    lines = "\n".join(line["line"] for line in lab.api.get(f"/runs/{run['id']}/logs").json()["data"])
    assert "dataset pulled" in lines and "artifacts in" in lines
    # artifacts landed in storage
    assert run["artifact_url"].startswith((lab.storage / "runs" / f"run-{run['id']}").as_uri())
    names = {a["name"] for a in lab.api.get(f"/runs/{run['id']}/artifacts").json()["data"]}
    assert {"results.json", "model.zip", "report.html"} <= names
    # the cost: RunPod's price × the pod's billed seconds, against the global spend
    billed = pod.cost_per_hr * int(pod.uptime_s) / 3600
    assert pod.cost_per_hr == 0.69 and run["cost"] == pytest.approx(billed, abs=0.69 / 3600 * 1.5) and run["cost"] > 0
    assert run["gpu_type"] == "NVIDIA GeForce RTX 4090" and run["max_cost"] == 5.0


@pytest.mark.slow
@pytest.mark.spot
def test_a_preempted_spot_pod_resumes_the_run_from_its_checkpoint_on_a_new_pod(lab: Lab) -> None:
    run = launch(lab, total_timesteps=4096, evaluation={"every_steps": 512})
    deadline = time.monotonic() + 180
    while not lab.api.get(f"/runs/{run['id']}/metrics").json()["data"]:  # validated once: a checkpoint exists
        assert time.monotonic() < deadline, "no validation before the deadline"
        time.sleep(0.2)
    (first,) = lab.fake.pods()
    lab.fake.preempt(first.id)
    final = finish(lab, run["id"])
    assert final["state"] == "succeeded", final["error"]
    assert final["preemptions"] == 1 and final["attempts"] == 2
    pods = lab.fake.pods()
    assert len(pods) == 2 and pods[0].preempted and all(p.terminated for p in pods) and not lab.fake.live_pods()
    assert "resuming from the checkpoint" in (pods[1].folder / "container.log").read_text() or any(
        "resuming from the checkpoint" in line["line"] for line in lab.api.get(f"/runs/{run['id']}/logs").json()["data"]
    )
    billed = sum(p.cost_per_hr * int(p.uptime_s) / 3600 for p in pods)
    assert final["cost"] == pytest.approx(billed, abs=0.25 / 3600 * 2.5) and pods[0].cost > 0
