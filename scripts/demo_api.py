"""The control-plane part of ``make demo``: drive a live ``tradelab serve`` + ``tradelab worker`` through the API.

Registers the demo dataset, stores the env config as a version, creates the experiment, launches a run on
the chosen backend (on RunPod with a GPU type and a cost cap), follows its events until it ends, and prints
its test results, artifacts and cost.

Usage: ``python scripts/demo_api.py URL TOKEN CONFIG [--timesteps N] [--backend local|runpod]`` (the token
from ``tradelab init``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import httpx
import yaml


def follow(url: str, token: str, run_id: int, done: threading.Event) -> None:
    """Print the run's state changes and new metrics as the event stream delivers them, until ``done``."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{url}/api/events?after=0", headers=headers, timeout=None) as stream:
        for line in stream.iter_lines():
            if done.is_set():
                return
            if not line.startswith("data:"):
                continue
            event = json.loads(line.split(":", 1)[1])
            if event["run_id"] != run_id:
                continue
            payload = event["payload"]
            if event["kind"] == "run_state":
                print(f"  event: run {run_id} {payload['previous']} -> {payload['state']}", flush=True)
            elif event["kind"] == "metrics":
                print(f"  event: metrics {', '.join(payload['keys'][:3])}…", flush=True)
            if event["kind"] == "run_state" and payload["state"] in ("succeeded", "failed", "cancelled"):
                done.set()
                return


def main() -> int:
    """Run the demo; exit status 0 when the run succeeded."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("config")
    parser.add_argument("--timesteps", type=int, default=50_000)
    parser.add_argument("--backend", default="local", choices=["local", "runpod"])
    args = parser.parse_args()
    api = httpx.Client(base_url=f"{args.url}/api", headers={"Authorization": f"Bearer {args.token}"}, timeout=60)
    config = yaml.safe_load(Path(args.config).read_text())
    config["total_timesteps"] = args.timesteps
    dataset = api.post("/datasets/register", json=config["env"]["dataset"]).raise_for_status().json()
    print(f"dataset {dataset['symbol']}/{dataset['timeframe']}@{dataset['version'][:12]}: {dataset['rows']:,} bars")
    env = api.post("/env-configs", json={"name": config["name"], "config": config["env"]}).raise_for_status().json()
    print(f"env config {env['name']} version {env['version']}")
    experiment = api.post("/experiments", json={"config": config}).raise_for_status().json()
    launch = {"backend": args.backend}
    if args.backend == "runpod":
        launch |= {"gpu_type": "NVIDIA GeForce RTX 4090", "max_cost": 1.0, "max_wall_time_s": 3600}
    run = api.post(f"/experiments/{experiment['id']}/runs", json=launch).raise_for_status().json()
    print(f"experiment {experiment['id']} ({experiment['name']}), run {run['id']} queued; following its events:")
    done = threading.Event()
    follower = threading.Thread(target=follow, args=(args.url, args.token, run["id"], done), daemon=True)
    follower.start()
    done.wait(timeout=600)
    final = api.get(f"/runs/{run['id']}").raise_for_status().json()
    while final["reserved"] > 0 and final["state"] == "succeeded":  # the worker settles the run's cost
        time.sleep(0.5)
        final = api.get(f"/runs/{run['id']}").raise_for_status().json()
    if final["state"] != "succeeded":
        print(f"run {run['id']} {final['state']}: {final.get('error')}", file=sys.stderr)
        return 1
    points = api.get(f"/runs/{run['id']}/metrics/test/total_return").raise_for_status().json()
    files = [a["name"] for a in api.get(f"/runs/{run['id']}/artifacts").raise_for_status().json()["data"]]
    print(f"run {run['id']} succeeded: agent test return {points['values'][-1]:+.2%}; {len(files)} artifacts")
    print(f"report: {final['artifact_url']}/report.html")
    if args.backend == "runpod":
        print(f"pod {final['compute_id']} terminated; cost {final['cost']:.4f} $ ({final['gpu_type']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
