"""``make dry-run``: the whole lab rehearsed end to end on the fake RunPod, through the API alone.

In a fresh home it synthesises and ingests candles, starts the fake RunPod (real ``runpod`` SDK, pods that are
local processes with their own empty home), ``tradelab serve`` and ``tradelab worker --backend runpod``; then,
only over HTTP: registers the dataset, checks a manifest tool (copied into the lab's tools folder) and previews
it, stores an env config that uses it, creates an experiment with a sweep section, launches two training seeds
and a two-trial sweep on pods, then an ensemble of the two seeds and a re-evaluation on the newest bars, waits
for them, checks that metrics, logs and artifacts came back, and prints a report. Exit status 0 when all held.

Usage: ``python scripts/dry_run.py [--home DIR] [--timesteps N] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "tradelab"
SYMBOL = "SYNTH-BTC"
TOOL = "donchian_atr_breakout"
FINAL = ("succeeded", "failed", "cancelled")
console = Console(width=max(Console().width, 120))


def experiment_config(timesteps: int) -> dict[str, Any]:
    """A small PPO experiment over the dataset, with the manifest tool as a feature and a two-value sweep."""
    return {
        "name": "dry-run",
        "tags": ["dry-run"],
        "env": {
            "dataset": {"symbol": SYMBOL, "timeframe": "1m"},
            "features": [
                {"tool": "log_return", "as": "ret_1", "norm": "zscore", "norm_window": 240},
                {
                    "tool": "realized_vol",
                    "params": {"window": 60},
                    "as": "vol_60",
                    "norm": "zscore",
                    "norm_window": 240,
                },
                {"tool": TOOL, "as": "breakout"},
            ],
            "window": 8,
            "actions": {"kind": "discrete", "levels": [0.0, 1.0]},
            "execution": {"taker_fee_bps": 10, "slippage_bps": 1},
            "episode": {"length": 1440},
        },
        "split": {"kind": "chronological", "train": 0.6, "val": 0.2, "test": 0.2},
        "algorithm": {"name": "PPO", "hyperparams": {"n_steps": 64, "batch_size": 1024, "n_epochs": 1}},
        "n_envs": 32,
        "total_timesteps": timesteps,
        "evaluation": {"every_steps": max(timesteps // 2, 2048), "metric": "sharpe"},
        "seeds": [0, 1],
        "device": "cpu",
        "sweep": {
            "params": {
                "algorithm.hyperparams.learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}
            },
            "sampler_seed": 0,
        },
    }


def main() -> int:
    """Run the dry-run; 0 when every check held."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, help="the lab's home (a new temporary folder by default)")
    parser.add_argument("--timesteps", type=int, default=4096)
    parser.add_argument("--keep", action="store_true", help="keep the home folder afterwards")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="tradelab-dry-run-"))
    try:
        return rehearse(home.resolve(), args.timesteps)
    finally:
        if not args.keep and args.home is None:
            shutil.rmtree(home, ignore_errors=True)
        else:
            console.print(f"the lab's files stay in {home}")


def rehearse(home: Path, timesteps: int) -> int:
    """Every step of the dry-run in ``home``; 0 when every check held."""
    tools = home / "tools"
    shutil.copytree(ROOT / "tools" / TOOL, tools / TOOL)  # "onboarding" a tool: a folder in the lab's tools dir
    env = {
        **os.environ,
        "TRADELAB_HOME": str(home),
        "TRADELAB_DATABASE_URL": f"sqlite:///{home / 'tradelab.db'}",
        "TRADELAB_TOOLS_DIR": str(tools),
    }
    storage = f"file://{home}/storage"
    env["TRADELAB_STORAGE_URL"] = storage  # the API accepts and reads run artifacts under it only, as the worker
    step("1. Synthesise 21 days of 1-minute candles, ingest them, push the dataset to storage")
    raw = home / "raw" / f"{SYMBOL}.zip"
    lab(env, "data", "synth", "--symbol", SYMBOL, "--days", "21", "--seed", "3", "--out", str(raw))
    lab(env, "data", "ingest", str(raw), "--symbol", SYMBOL)
    lab(env, "data", "push", SYMBOL, "--to", f"{storage}/data")
    token = lab(env, "init").strip().splitlines()[-1]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        step("2. Start the fake RunPod, the control plane and a RunPod worker")
        runpod_url = stack.enter_context(fake_runpod(env, home))
        env |= {"RUNPOD_API_BASE_URL": runpod_url, "TRADELAB_RUNPOD_API_KEY": "fake-key"}
        stack.enter_context(process(env, home / "serve.log", BIN, "serve", "--port", str(port)))
        worker = ["worker", "--api-url", url, "--interval", "0.5", "--backend", "runpod", "--image", "tradelab:dry-run"]
        worker += ["--storage-url", storage, "--data-url", f"{storage}/data", "--concurrency", "4"]
        worker += ["--pod-env", f"TRADELAB_TOOLS_DIR={tools}"]
        stack.enter_context(process(env, home / "worker.log", BIN, *worker))
        api = httpx.Client(base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        wait_healthy(url)
        console.print(f"fake RunPod at {runpod_url}; control plane at {url}")
        return through_the_api(api, timesteps)


def through_the_api(api: httpx.Client, timesteps: int) -> int:
    """Steps 3 to 8, over HTTP only; 0 when every check held."""
    step("3. Register the dataset and check the tool")
    dataset = ok(api.post("/datasets/register", json={"symbol": SYMBOL, "timeframe": "1m"}))
    console.print(f"dataset {SYMBOL}/1m@{dataset['version'][:12]}: {dataset['rows']:,} bars")
    tool = ok(api.get(f"/tools/{TOOL}"))
    preview = ok(api.post(f"/tools/{TOOL}/preview", json={"dataset_id": dataset["id"]}))
    console.print(
        f"tool {tool['name']} ({tool['origin']}): preview of {len(preview['time'])} bars, {preview['columns']}"
    )
    step("4. Store the env config and create the experiment")
    config = experiment_config(timesteps)
    env_config = ok(api.post("/env-configs", json={"name": "dry-run", "config": config["env"]}))
    experiment = ok(api.post("/experiments", json={"config": config}))
    console.print(f"env config dry-run v{env_config['version']}; experiment {experiment['id']}")
    step("5. Launch two seeds and a two-trial sweep on pods")
    pod = {"backend": "runpod", "gpu_type": "NVIDIA GeForce RTX 4090", "max_cost": 2.0, "max_wall_time_s": 1800}
    seeds = [ok(api.post(f"/experiments/{experiment['id']}/runs", json={**pod, "seed": s})) for s in (0, 1)]
    sweep = ok(api.post(f"/experiments/{experiment['id']}/sweeps", json={**pod, "trials": 2}))
    trained = wait(api, [r["id"] for r in seeds])
    step("6. An ensemble of the two seeds, and a re-evaluation of seed 0 on the newest 3 days")
    members = [run["id"] for run in trained]
    ensemble = ok(api.post(f"/experiments/{experiment['id']}/ensembles", json={**pod, "members": members}))
    evaluation = ok(api.post(f"/runs/{members[0]}/evaluations", json={**pod, "days": 3}))
    runs = wait(api, [*members, sweep["id"], ensemble["id"], evaluation["id"]])
    step("7. Check what came back: states, metrics, logs, artifacts, cost")
    return report(api, runs)


def report(api: httpx.Client, runs: list[dict[str, Any]]) -> int:
    """A table of the runs with what flowed back; 0 when every run succeeded with metrics, logs and artifacts."""
    table = Table(title="dry-run: runs on the fake RunPod")
    for column in ("run", "kind", "state", "pod", "metrics", "log lines", "artifacts", "result", "cost $"):
        table.add_column(column)
    problems = []
    for run in runs:
        keys = [k["key"] for k in ok(api.get(f"/runs/{run['id']}/metrics"))["data"]]
        lines = ok(api.get(f"/runs/{run['id']}/logs", params={"limit": 1}))["count"]
        files = ok(api.get(f"/runs/{run['id']}/artifacts"))["data"] if run["artifact_url"] else []
        result_key = "oos/sharpe" if run["kind"] == "evaluate" else "test/sharpe"
        result = "—"
        if result_key in keys:
            value = ok(api.get(f"/runs/{run['id']}/metrics/{result_key}"))["values"][-1]
            result = f"{result_key} {value:+.2f}"
        row = [str(run["id"]), run["kind"], run["state"], str(run["compute_id"])[:10], str(len(keys)), str(lines)]
        table.add_row(*row, str(len(files)), result, f"{run['cost']:.4f}")
        if run["state"] != "succeeded" or result == "—" or not lines or not files or not run["compute_id"]:
            problems.append(f"run {run['id']} ({run['kind']}): {run['state']} {run.get('error') or ''}".strip())
    scored = runs[0]["id"]
    if "oos/sharpe" not in [k["key"] for k in ok(api.get(f"/runs/{scored}/metrics"))["data"]]:
        problems.append(f"run {scored} has no oos/sharpe from its re-evaluation")
    console.print(table)
    for problem in problems:
        console.print(f"[red]✗ {problem}[/red]")
    if not problems:
        console.print("[green]✓ dry-run passed: every run succeeded on a pod, with metrics, logs and artifacts[/green]")
    return 1 if problems else 0


def wait(api: httpx.Client, ids: list[int], timeout_s: float = 900) -> list[dict[str, Any]]:
    """The runs once all are final and settled, printing each state change."""
    deadline, seen = time.monotonic() + timeout_s, dict.fromkeys(ids, "")
    while True:
        runs = [ok(api.get(f"/runs/{run_id}")) for run_id in ids]
        for run in runs:
            if seen[run["id"]] != run["state"]:
                seen[run["id"]] = run["state"]
                console.print(f"  run {run['id']} ({run['kind']}): {run['state']}")
        if all(r["state"] in FINAL and r["reserved"] == 0 for r in runs) or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def ok(response: httpx.Response) -> Any:
    """The JSON of a successful response; otherwise exit with the API's answer."""
    if response.is_error:
        console.print(f"[red]{response.request.method} {response.request.url} → {response.status_code}[/red]")
        console.print(response.text)
        sys.exit(1)
    return response.json()


def lab(env: dict[str, str], *args: str) -> str:
    """Run a ``tradelab`` command; its output, or exit with it when it fails."""
    done = subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True)
    if done.returncode:
        console.print(done.stdout, done.stderr)
        sys.exit(done.returncode)
    return done.stdout


@contextmanager
def process(env: dict[str, str], log: Path, *command: str | Path) -> Iterator[subprocess.Popen[bytes]]:
    """A background process writing to ``log``, stopped on exit."""
    with log.open("wb") as out:
        child = subprocess.Popen([str(c) for c in command], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield child
        finally:
            child.terminate()
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()


@contextmanager
def fake_runpod(env: dict[str, str], home: Path) -> Iterator[str]:
    """The fake RunPod API on loopback; its URL."""
    log = home / "fake-runpod.log"
    command = [sys.executable, "-m", "tradelab.compute.fake_runpod", "--root", str(home / "fake-runpod")]
    with process(env, log, *command, "--start-delay", "1"):
        deadline = time.monotonic() + 30
        while "listening on" not in log.read_text():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the fake RunPod did not start: {log.read_text()}")
            time.sleep(0.1)
        yield log.read_text().split("listening on ", 1)[1].split()[0]


def wait_healthy(url: str) -> None:
    """Until the control plane answers ``/health``."""
    for _ in range(300):
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def step(title: str) -> None:
    """Print a step's title."""
    console.rule(f"[bold]{title}")


if __name__ == "__main__":
    sys.exit(main())
