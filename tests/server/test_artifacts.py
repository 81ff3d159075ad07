"""A run's artifacts through the API on SQLite and Postgres: listing, downloads, equity and trades."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from tests.experiments.runs import stored, tiny_config
from tests.server.test_runs import make_experiment
from tradelab.data.store import Store
from tradelab.experiments.runner import run_experiment
from tradelab.server.db import transaction
from tradelab.server.models import Run


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run folder of the tiny experiment, trained once for the module."""
    root = tmp_path_factory.mktemp("artifacts")
    (outcome,) = run_experiment(tiny_config(), root / "runs", store=stored(Store(root / "store")), progress=False)
    return Path(outcome.url)


def run_with(client: TestClient, artifact_url: str | None) -> int:
    run_id = client.post(f"/api/experiments/{make_experiment(client)}/runs", json={}).json()["id"]
    with transaction(client.app.state.sessions) as session:
        session.get(Run, run_id).artifact_url = artifact_url
    return run_id


def test_the_files_are_listed_and_downloaded(client: TestClient, run_folder: Path) -> None:
    run_id = run_with(client, str(run_folder))
    listing = client.get(f"/api/runs/{run_id}/artifacts").json()
    files = {entry["name"]: entry["size"] for entry in listing["data"]}
    assert {"config.json", "results.json", "model.zip", "equity_test.parquet", "report.html"} <= set(files)
    assert files["model.zip"] == (run_folder / "model.zip").stat().st_size and listing["count"] == len(files)
    assert any(name.startswith("tensorboard/") for name in files)
    results = client.get(f"/api/runs/{run_id}/artifacts/results.json")
    assert results.status_code == 200 and results.headers["content-type"].startswith("application/json")
    assert results.json() == json.loads((run_folder / "results.json").read_text())
    assert client.get(f"/api/runs/{run_id}/artifacts/model.zip").content == (run_folder / "model.zip").read_bytes()
    assert client.get(f"/api/runs/{run_id}/artifacts/nothing.txt").status_code == 404
    assert client.get(f"/api/runs/{run_id}/artifacts/tensorboard").status_code == 404  # a folder is no file


@pytest.mark.parametrize("path", ["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "tensorboard%2F..%2F..%2Fsecret"])
def test_paths_leaving_the_run_folder_are_refused(client: TestClient, run_folder: Path, path: str) -> None:
    run_id = run_with(client, str(run_folder))
    assert client.get(f"/api/runs/{run_id}/artifacts/{path}").status_code == 400


def test_equity_comes_downsampled_per_policy(client: TestClient, run_folder: Path) -> None:
    run_id = run_with(client, str(run_folder))
    frame = pl.read_parquet(run_folder / "equity_test.parquet")
    full = client.get(f"/api/runs/{run_id}/equity", params={"max_points": 100_000}).json()
    assert full["split"] == "test" and full["total"] == frame.height == len(full["ts"])
    assert {"agent", "buy_and_hold", "flat", "random", "sma_crossover"} <= set(full["equity"])
    assert full["equity"]["agent"] == pytest.approx(frame["agent_equity"].to_list())
    assert full["ts"][0] == frame["ts"].dt.epoch("ms")[0]
    small = client.get(f"/api/runs/{run_id}/equity", params={"max_points": 20}).json()
    assert len(small["ts"]) == 20 and all(len(curve) == 20 for curve in small["equity"].values())
    assert small["ts"][0] == full["ts"][0] and small["ts"][-1] == full["ts"][-1]
    assert client.get(f"/api/runs/{run_id}/equity", params={"split": "future"}).status_code == 422


def test_a_rewritten_equity_file_is_read_again_not_served_from_the_cache(client: TestClient, run_folder: Path) -> None:
    run_id = run_with(client, str(run_folder))
    before = client.get(f"/api/runs/{run_id}/equity", params={"max_points": 100_000}).json()
    assert client.get(f"/api/runs/{run_id}/equity", params={"max_points": 100_000}).json() == before  # cached
    path = run_folder / "equity_test.parquet"
    frame = pl.read_parquet(path)
    frame.with_columns(pl.col("agent_equity") * 2).write_parquet(path)
    os.utime(path, (time.time() + 5, time.time() + 5))  # a new version even within the clock's resolution
    after = client.get(f"/api/runs/{run_id}/equity", params={"max_points": 100_000}).json()
    assert after["equity"]["agent"] == pytest.approx([2 * v for v in before["equity"]["agent"]])


def test_trades_come_as_json_rows(client: TestClient, run_folder: Path) -> None:
    run_id = run_with(client, str(run_folder))
    frame = pl.read_parquet(run_folder / "trades_test.parquet")
    trades = client.get(f"/api/runs/{run_id}/trades").json()
    assert trades["count"] == frame.height == len(trades["data"])
    if frame.height:
        assert set(trades["data"][0]) == set(frame.columns)


def test_a_run_without_artifacts_answers_404(client: TestClient, tmp_path: Path) -> None:
    for url in (None, str(tmp_path / "not-yet")):
        run_id = run_with(client, url)
        for path in ("artifacts", "artifacts/results.json", "equity", "trades"):
            assert client.get(f"/api/runs/{run_id}/{path}").status_code == 404, (url, path)
    assert not (tmp_path / "not-yet").exists()  # looking does not create the folder
    assert client.get("/api/runs/999/artifacts").status_code == 404
