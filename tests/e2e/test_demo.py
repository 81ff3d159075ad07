"""``make demo``'s script, end to end, in a temporary home: synthesise, ingest, validate, resample, split."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from tradelab.data.store import Store

ROOT = Path(__file__).resolve().parents[2]


#: The longest the demo may go without printing a line before the test calls it stuck. The demo prints a
#: line per step and training progress, so silence this long is a hang on any machine, however slow; there
#: is no bound on the total time (a busy machine is slower, not broken).
STALL_S = 600.0


def _run_demo(home: Path, backend: str = "local") -> subprocess.CompletedProcess[str]:
    """Run ``scripts/demo.sh`` to its end, failing only when it stops making progress (no output for STALL_S)."""
    env = {
        "BACKEND": backend,
        **os.environ,
        "TRADELAB_DEMO_HOME": str(home),
        "TRADELAB_BIN": str(Path(sys.executable).parent / "tradelab"),
        "COLUMNS": "160",
        "SERVE": "0",  # stop once the control plane's run has finished
        "PYTHON_BIN": sys.executable,
        "PYTHONUNBUFFERED": "1",
    }
    demo = subprocess.Popen(
        ["bash", "scripts/demo.sh"], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(demo.stdout, lines), daemon=True).start()
    out: list[str] = []
    while True:
        try:
            line = lines.get(timeout=STALL_S)  # waits on the demo's next line, not on the clock
        except queue.Empty as stalled:
            demo.kill()
            stuck = f"the demo printed nothing for {STALL_S:.0f} s; its last lines:\n{''.join(out[-30:])}"
            raise AssertionError(stuck) from stalled
        if line is None:
            break
        out.append(line)
    return subprocess.CompletedProcess(demo.args, demo.wait(), "".join(out), "")


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Put each line of ``stream`` on ``lines``, then None at its end."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def test_demo_runs_end_to_end_and_twice(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    first = _run_demo(home)
    assert first.returncode == 0, first.stderr + first.stdout
    expected_lines = (
        "SYNTH-BTC/1m: +",
        "OK (warnings only)",
        "SYNTH-BTC/1h:",
        "verified: no overlap, no leakage",
        "donchian_atr_breakout_signal",
        "gymnasium check_env passed",
        "final_equity",
        "ppo-btc-1m: test split",
        "sma_crossover",
        "agent Sharpe 95% bootstrap interval",
        "queued -> starting",
        "running -> succeeded",
        "agent test return",
        "dashboard: http://127.0.0.1:",
    )
    for expected in expected_lines:
        assert expected in first.stdout
    (run,) = (home / "runs").glob("ppo-btc-1m-*")
    assert (run / "results.json").is_file() and (run / "model.zip").is_file() and (run / "report.html").is_file()
    test = json.loads((run / "results.json").read_text())["test"]
    # ADR 0009: after the demo's budget the agent does not bleed fees: within 2 % of flat on the unseen test split
    assert test["agent"]["total_return"] >= test["flat"]["total_return"] - 0.02, test["agent"]
    assert f"report: {run}/report.html" in first.stdout.replace("\n", "")
    store = Store(home / "data")
    assert store.require("SYNTH-BTC", "1m").rows > 120_000
    assert store.require("SYNTH-BTC", "1h").derived_from == f"1m@{store.require('SYNTH-BTC', '1m').content_hash}"

    deadline = time.monotonic() + 20  # a finished run's process may still be exiting when the demo stops
    while _tradelab_processes(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _tradelab_processes(home), "the demo left a process of its control plane running"
    version = store.require("SYNTH-BTC", "1m").content_hash
    second = _run_demo(home)  # same seed: the ingest is a no-op and the data version is unchanged
    assert second.returncode == 0, second.stderr + second.stdout
    assert "already stored, nothing changed" in second.stdout
    assert store.require("SYNTH-BTC", "1m").content_hash == version


def test_demo_on_the_fake_runpod_trains_on_a_pod_and_leaves_nothing_running(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    demo = _run_demo(home, backend="runpod-fake")
    assert demo.returncode == 0, demo.stderr + demo.stdout
    for expected in (
        "runpod-fake backend",
        "4 transferred",
        "fake RunPod at http://127.0.0.1:",
        "running -> succeeded",
    ):
        assert expected in demo.stdout
    assert "terminated; cost 0.0" in demo.stdout and "report: file://" in demo.stdout
    assert not (home / "runs").exists()  # no local training: the run trained on the pod
    (results,) = (home / "storage" / "runs" / "run-1").glob("ppo-btc-1m-*/results.json")
    assert (home / "fake-runpod" / "pods").is_dir() and results.is_file()
    deadline = time.monotonic() + 20
    while _tradelab_processes(home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _tradelab_processes(home), "the demo left a process (control plane, fake RunPod or pod) running"


def _tradelab_processes(home: Path) -> list[str]:
    """Command lines of live processes started with ``home`` as their TRADELAB_HOME, or living in a fake pod's
    folder under it (Linux /proc)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = environ.read_bytes().split(b"\0")
            if f"TRADELAB_HOME={home}".encode() in variables or any(
                v.startswith(f"HOME={home}/".encode()) for v in variables
            ):
                found.append((environ.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found
