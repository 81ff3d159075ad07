"""The RunPod serverless handler and client, against the SDK's own local modes: ``--test_input`` and the API server.

Every job runs on a two-day synthetic dataset in a temporary ``TRADELAB_HOME`` passed to the worker processes.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_args

import numpy as np
import polars as pl
import pytest
import requests
import runpod

from tests.env.envs import FEATURES
from tests.experiments.runs import stored, tiny_config
from tradelab.compute.runpod_serverless import (
    BaselineName,
    ServerlessClient,
    ServerlessJobError,
    handler,
    json_safe,
)
from tradelab.data.store import Store
from tradelab.experiments.evaluation import BASELINES
from tradelab.experiments.metrics import Metrics
from tradelab.settings import get_settings
from tradelab.tools.features import FeaturePipeline

ROOT = Path(__file__).resolve().parents[2]
MODULE = "tradelab.compute.runpod_serverless"
ENV = {"dataset": {"symbol": "SYN"}, "features": FEATURES, "window": 8}
#: A range of the synthetic dataset's second day (it spans 2024-01-01 and 2024-01-02).
DATES = "2024-01-02T06:00..2024-01-02T18:00"


@dataclass(frozen=True)
class Lab:
    """A ``TRADELAB_HOME`` holding SYN/1m, and the environment worker processes run with."""

    home: Path
    store: Store
    env: dict[str, str]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("serverless") / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")} | {"TRADELAB_HOME": str(home)}
    with pytest.MonkeyPatch.context() as patch:  # in-process code (training, references) uses the same home
        patch.setenv("TRADELAB_HOME", str(home))
        get_settings.cache_clear()
        yield Lab(home, stored(Store(home / "data")), env)
    get_settings.cache_clear()


#: The jobs run with the SDK's local test mode (``--test_input``), all at once (each process takes seconds to start).
LOCAL_JOBS: dict[str, dict[str, Any]] = {
    "baseline": {"task": "baseline", "env": ENV, "baseline": "buy_and_hold"},
    "features": {"task": "features", "symbol": "SYN", "tools": FEATURES, "end": "2024-01-02"},
    "invalid": {"task": "baseline", "env": {"dataset": {"timeframe": "1m"}}},
}


@pytest.fixture(scope="module")
def local_runs(lab: Lab, server: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each of :data:`LOCAL_JOBS` run by ``tradelab serverless --test_input`` (while the API server starts)."""
    jobs = LOCAL_JOBS | {"features": LOCAL_JOBS["features"] | {"out_url": str(lab.home / "features" / "syn.parquet")}}

    def run(job_input: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        # through `tradelab serverless`, the endpoint's start command in the image
        command = [sys.executable, "-m", "tradelab.cli", "serverless", "--test_input", json.dumps({"input": job_input})]
        return subprocess.run(command, cwd=ROOT, env=lab.env, capture_output=True, text=True, timeout=180, check=False)

    with ThreadPoolExecutor(len(LOCAL_JOBS)) as pool:
        return dict(zip(jobs, pool.map(run, jobs.values()), strict=True))


def local_output(process: subprocess.CompletedProcess[str]) -> Any:
    """The job output the SDK logs as ``INFO   | Job result: {'output': ...}`` (a Python repr, not JSON)."""
    assert process.returncode == 0, process.stdout + process.stderr
    (line,) = [x for x in process.stdout.splitlines() if x.startswith("INFO   | Job result: ")]
    return ast.literal_eval(line.removeprefix("INFO   | Job result: "))["output"]


def test_baseline_names_match_the_baselines() -> None:
    assert set(get_args(BaselineName)) == set(BASELINES)


@pytest.mark.slow
def test_local_test_input_plays_a_baseline(lab: Lab, local_runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    output = local_output(local_runs["baseline"])
    assert output == handler({"id": "in-process", "input": LOCAL_JOBS["baseline"]})  # the same through the SDK and JSON
    assert output["dataset"] == f"SYN/1m@{lab.store.require('SYN', '1m').content_hash[:12]}"
    assert output["bars"] == 2880
    assert set(output["metrics"]) == {f.name for f in fields(Metrics)}
    assert output["metrics"]["exposure"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.slow
def test_local_test_input_computes_features(lab: Lab, local_runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    out = lab.home / "features" / "syn.parquet"
    output = local_output(local_runs["features"])
    expected = FeaturePipeline(FEATURES).compute_dataset(lab.store, "SYN", "1m", end="2024-01-02")
    assert output == {
        "dataset": "SYN/1m",
        "dataset_version": lab.store.require("SYN", "1m").content_hash,
        "shape": [1440, len(expected.columns)],
        "columns": expected.columns,
        "warmup": expected.warmup,
        "out_url": str(out),
    }
    frame = pl.read_parquet(out)
    assert frame.columns == ["ts", *expected.columns]
    assert frame["ts"].dt.epoch("ms").to_list() == expected.ts.tolist()
    np.testing.assert_array_equal(frame.drop("ts").to_numpy(), expected.values)


@pytest.mark.slow
def test_local_test_input_reports_an_invalid_field(local_runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    process = local_runs["invalid"]
    assert process.returncode == 1
    assert "failed with error: invalid job input: baseline.env.dataset.symbol: Field required" in process.stdout


@pytest.mark.parametrize(
    ("job_input", "error"),
    [
        (None, "invalid job input: input: Input should be a valid dictionary"),
        ({"task": "train"}, "invalid job input: input: Input tag 'train' found using 'task' does not match"),
        ({"task": "backtest", "run_url": "runs/x", "split": "last"}, "invalid job input: backtest.split: String"),
        ({"task": "features", "symbol": "SYN", "tools": []}, "invalid job input: features.tools: List should have"),
        ({"task": "baseline", "env": ENV, "baseline": "hold"}, "invalid job input: baseline.baseline: Input should"),
        ({"task": "baseline", "env": ENV, "extra": 1}, "invalid job input: baseline.extra: Extra inputs"),
        ({"task": "features", "symbol": "SYN", "tools": [{"tool": "NOPE"}]}, "features failed: unknown tool 'NOPE'"),
        ({"task": "features", "symbol": "BTC", "tools": FEATURES}, "features failed: no dataset BTC/1m"),
    ],
)
def test_handler_errors_name_the_problem(lab: Lab, job_input: Any, error: str) -> None:
    (message,) = handler({"id": "x", "input": job_input}).values()
    assert message.startswith(error)


def test_json_safe_turns_non_finite_floats_into_null() -> None:
    value = {"a": np.float32(1.5), "b": [float("inf"), (np.int64(2), float("nan"))], 3: np.array([1.0, -np.inf])}
    assert json_safe(value) == {"a": 1.5, "b": [None, [2, None]], "3": [1.0, None]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The SDK's development API server (``--rp_serve_api``) running the handler; its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    command = [sys.executable, "-m", MODULE, "--rp_serve_api", "--rp_api_host", "127.0.0.1", "--rp_api_port", str(port)]
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=lab.env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(base: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            requests.get(f"{base}/docs", timeout=1)
            return
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="module")
def trained(lab: Lab, server: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny trained run's folder (trained while the server starts)."""
    from tradelab.experiments.runner import run_experiment

    (outcome,) = run_experiment(tiny_config(), tmp_path_factory.mktemp("runs"), store=lab.store, progress=False)
    return outcome.url


@pytest.fixture
def client(server: str, monkeypatch: pytest.MonkeyPatch) -> ServerlessClient:
    """A client of the development server through ``runpod.Endpoint``.

    The SDK builds ``{runpod.endpoint_url_base}/{endpoint_id}/runsync`` (the base is read from
    ``RUNPOD_ENDPOINT_BASE_URL`` when ``runpod`` is imported, so it is set on the module here); the server's
    routes are ``/runsync`` and ``/status/{id}`` without an endpoint id, so the endpoint id is ``.`` and the
    URL's dot segment is removed by requests.
    """
    wait_for(server)
    monkeypatch.setattr(runpod, "endpoint_url_base", server)
    return ServerlessClient(".", api_key="local-server", timeout_s=120, sync=True)


@pytest.mark.slow
def test_endpoint_backtests_a_run_as_evaluate_does(lab: Lab, trained: str, client: ServerlessClient) -> None:
    from tradelab.experiments.reevaluation import evaluate_run

    output = client.backtest(trained, "test")
    expected = json_safe(evaluate_run(trained, "test", store=lab.store))
    metrics = expected.pop("test")
    assert set(output["metrics"]) == set(metrics) == {"agent", *BASELINES}
    for name, values in metrics.items():
        assert output["metrics"][name] == pytest.approx(values, rel=1e-9), name
    assert output.pop("agent_sharpe_ci95") == pytest.approx(expected.pop("agent_sharpe_ci95"), rel=1e-9)
    assert output.pop("agent_moments") == pytest.approx(expected.pop("agent_moments"), rel=1e-9)
    assert {k: output[k] for k in expected} == expected  # name, seed, fold, split


@pytest.mark.slow
def test_endpoint_baselines_match_a_backtest_over_the_same_dates(trained: str, client: ServerlessClient) -> None:
    backtest = client.backtest(trained, DATES)
    assert backtest["split"] == DATES
    env = json.loads((Path(trained) / "config.json").read_text())["config"]["env"]
    for name in ("buy_and_hold", "random"):
        output = client.baseline(env, name, dates=DATES, seed=backtest["seed"])
        assert output["baseline"] == name
        assert output["metrics"] == pytest.approx(backtest["metrics"][name], rel=1e-9)


@pytest.mark.slow
def test_endpoint_failures_raise_with_the_message(client: ServerlessClient) -> None:
    with pytest.raises(ServerlessJobError, match=r"FAILED: baseline failed: no dataset BTC/1m"):
        client.baseline({**ENV, "dataset": {"symbol": "BTC"}})
    with pytest.raises(ServerlessJobError, match=r"FAILED: invalid job input: input: Input tag 'train'"):
        client.submit({"task": "train"})
    with pytest.raises(ServerlessJobError, match=r"FAILED: baseline failed: the range .* holds 0 bar\(s\)"):
        client.baseline(ENV, dates="2030-01-01..2030-02-01")


@pytest.mark.slow
def test_endpoint_timeout_raises(lab: Lab, trained: str, client: ServerlessClient) -> None:
    client.timeout_s = 1e-6  # no backtest answers that fast (0.05 s was sometimes enough for a warm one)
    with pytest.raises(ServerlessJobError, match=r"did not finish within 1e-06 s"):
        client.backtest(trained, "val")


@pytest.mark.slow
def test_endpoint_computes_features(lab: Lab, client: ServerlessClient) -> None:
    output = client.features("SYN", FEATURES, start="2024-01-01T12:00")
    assert output["columns"] == FeaturePipeline(FEATURES).columns
    assert output["shape"] == [2160, len(output["columns"])]
    assert output["dataset_version"] == lab.store.require("SYN", "1m").content_hash
