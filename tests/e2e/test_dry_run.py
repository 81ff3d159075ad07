"""``make dry-run``: the lab rehearsed through the API on the fake RunPod (seeds, a sweep, an ensemble, a
re-evaluation), in a temporary home."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]


def test_the_dry_run_trains_sweeps_ensembles_and_reevaluates_on_pods(tmp_path: Path) -> None:
    home = tmp_path / "lab"
    done = subprocess.run(
        [sys.executable, "scripts/dry_run.py", "--home", str(home)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "dry-run passed" in done.stdout
    engine = create_engine(f"sqlite:///{home / 'tradelab.db'}")
    with engine.connect() as connection:
        runs = connection.execute(text("SELECT kind, state, backend, compute_id, params FROM runs ORDER BY id")).all()
        scored = connection.execute(text("SELECT count(*) FROM metric_points WHERE run_id = 1 AND key LIKE 'oos/%'"))
        oos_points = scored.scalar()
    engine.dispose()
    assert [(r.kind, r.state, r.backend) for r in runs] == [
        ("train", "succeeded", "runpod"),
        ("train", "succeeded", "runpod"),
        ("sweep", "succeeded", "runpod"),
        ("ensemble", "succeeded", "runpod"),
        ("evaluate", "succeeded", "runpod"),
    ]
    assert all(r.compute_id for r in runs)
    assert json.loads(runs[3].params) == {"members": [1, 2]} and json.loads(runs[4].params)["run_id"] == 1
    assert oos_points >= 5  # the re-evaluation's metrics, filed under the run it scored
    trials = list((home / "storage" / "runs" / "run-3").glob("*/results.json"))
    assert len(trials) == 2  # the sweep's two trials, each an ordinary run folder
