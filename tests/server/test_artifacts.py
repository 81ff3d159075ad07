"""A run's artifacts through the API on SQLite and Postgres: listing, downloads, equity and trades; read only
from the run's own folder under the storage root, which is also the only place a run may report them in."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from tests.experiments.runs import stored, tiny_config
from tests.server.test_runs import make_experiment, run_token, set_state
from tradelab.data.store import Store
from tradelab.experiments.runner import run_experiment
from tradelab.server.db import transaction
from tradelab.server.models import Run, RunState
from tradelab.settings import get_settings


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run folder of the tiny experiment, trained once for the module."""
    root = tmp_path_factory.mktemp("artifacts")
    (outcome,) = run_experiment(tiny_config(), root / "runs", store=stored(Store(root / "store")), progress=False)
    return Path(outcome.url)


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The lab's storage root (``TRADELAB_STORAGE_URL``), a fresh folder; run folders are ``runs/run-<id>`` in it."""
    root = tmp_path / "storage"
    monkeypatch.setenv("TRADELAB_STORAGE_URL", root.as_uri())
    get_settings.cache_clear()
    yield root
    get_settings.cache_clear()


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A folder outside the storage root holding a file no run may expose (``/etc`` in the issue's report)."""
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "shadow").write_text("root:$6$secret")
    return folder


def run_with(client: TestClient, artifact_url: str | None) -> int:
    run_id = client.post(f"/api/experiments/{make_experiment(client)}/runs", json={}).json()["id"]
    with transaction(client.app.state.sessions) as session:
        session.get(Run, run_id).artifact_url = artifact_url
    return run_id


def placed(client: TestClient, storage: Path, run_folder: Path) -> tuple[int, Path]:
    """A run whose own folder holds a copy of ``run_folder`` as its artifacts, as its agent leaves them."""
    run_id = run_with(client, None)
    folder = Path(shutil.copytree(run_folder, storage / "runs" / f"run-{run_id}" / run_folder.name))
    with transaction(client.app.state.sessions) as session:
        session.get(Run, run_id).artifact_url = folder.as_uri()
    return run_id, folder


def running(client: TestClient) -> tuple[int, dict[str, str]]:
    """A running run and its token's headers."""
    run_id = run_with(client, None)
    headers = run_token(client, run_id)
    set_state(client, run_id, RunState.RUNNING)
    return run_id, headers


def test_the_files_are_listed_and_downloaded(client: TestClient, storage: Path, run_folder: Path) -> None:
    run_id, run_folder = placed(client, storage, run_folder)
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
def test_paths_leaving_the_run_folder_are_refused(
    client: TestClient, storage: Path, run_folder: Path, path: str
) -> None:
    run_id, _ = placed(client, storage, run_folder)
    assert client.get(f"/api/runs/{run_id}/artifacts/{path}").status_code == 400


def test_equity_comes_downsampled_per_policy(client: TestClient, storage: Path, run_folder: Path) -> None:
    run_id, run_folder = placed(client, storage, run_folder)
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


def test_a_rewritten_equity_file_is_read_again_not_served_from_the_cache(
    client: TestClient, storage: Path, run_folder: Path
) -> None:
    run_id, run_folder = placed(client, storage, run_folder)
    before = client.get(f"/api/runs/{run_id}/equity", params={"max_points": 100_000}).json()
    assert client.get(f"/api/runs/{run_id}/equity", params={"max_points": 100_000}).json() == before  # cached
    path = run_folder / "equity_test.parquet"
    frame = pl.read_parquet(path)
    frame.with_columns(pl.col("agent_equity") * 2).write_parquet(path)
    os.utime(path, (time.time() + 5, time.time() + 5))  # a new version even within the clock's resolution
    after = client.get(f"/api/runs/{run_id}/equity", params={"max_points": 100_000}).json()
    assert after["equity"]["agent"] == pytest.approx([2 * v for v in before["equity"]["agent"]])


def test_trades_come_as_json_rows(client: TestClient, storage: Path, run_folder: Path) -> None:
    run_id, run_folder = placed(client, storage, run_folder)
    frame = pl.read_parquet(run_folder / "trades_test.parquet")
    trades = client.get(f"/api/runs/{run_id}/trades").json()
    assert trades["count"] == frame.height == len(trades["data"])
    if frame.height:
        assert set(trades["data"][0]) == set(frame.columns)


def test_a_run_without_artifacts_answers_404(client: TestClient, storage: Path) -> None:
    for folder in (None, "not-yet"):
        run_id = run_with(client, None)
        url = None if folder is None else str(storage / "runs" / f"run-{run_id}" / folder)
        with transaction(client.app.state.sessions) as session:
            session.get(Run, run_id).artifact_url = url
        for path in ("artifacts", "artifacts/results.json", "equity", "trades"):
            assert client.get(f"/api/runs/{run_id}/{path}").status_code == 404, (url, path)
    assert not (storage / "runs").exists()  # looking does not create the folder
    assert client.get("/api/runs/999/artifacts").status_code == 404


def test_a_run_reports_an_artifact_folder_inside_its_own_folder(client: TestClient, storage: Path) -> None:
    for form in (Path.as_uri, str):  # file:// or a plain path: the same place
        run_id, headers = running(client)
        folder = form(storage / "runs" / f"run-{run_id}" / "tiny-20260101-000000-s0")
        body = {"state": "succeeded", "artifact_url": folder}
        done = client.post(f"/api/runs/{run_id}/status", json=body, headers=headers)
        assert done.status_code == 200 and done.json()["artifact_url"] == folder, done.text


def test_a_run_token_cannot_point_artifact_url_anywhere_else(client: TestClient, storage: Path, secret: Path) -> None:
    run_id, headers = running(client)
    other, _ = running(client)
    own = storage.as_uri() + f"/runs/run-{run_id}"
    forged = [
        secret.as_uri(),  # file:///etc in the report
        str(secret),
        storage.as_uri(),  # the root, every run's files
        storage.as_uri() + f"/runs/run-{other}/tiny",  # another run's folder
        storage.as_uri() + f"/runs/run-{run_id}0",  # run-50 is not run-5's
        f"{own}/../run-{other}",
        f"{own}/%2e%2e/run-{other}",
        f"{own}/..\\..\\run-{other}",
        f"file://elsewhere{storage}/runs/run-{run_id}",
        f"file:{storage}/runs/run-{run_id}",  # fsspec reads file:/x as /x
        f"simplecache::{own}",
        f"s3://bucket{storage}/runs/run-{run_id}",
        f"runs/run-{run_id}",  # relative: wherever the server happens to run
        "",
    ]
    for url in forged:
        refused = client.post(
            f"/api/runs/{run_id}/status", json={"state": "succeeded", "artifact_url": url}, headers=headers
        )
        assert refused.status_code == 422, (url, refused.text)
        assert refused.json()["detail"][0]["loc"] == ["body", "artifact_url"], url
    huge = {"state": "succeeded", "artifact_url": secret.as_uri() + "/x" * 20_000}  # 40 kB: under the body limit
    refused = client.post(f"/api/runs/{run_id}/status", json=huge, headers=headers)
    assert refused.status_code == 422 and len(refused.content) < 2_000  # the answer does not echo the input
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["state"] == "running" and run["artifact_url"] is None  # nothing half-recorded
    assert client.get(f"/api/runs/{run_id}/artifacts/shadow").status_code == 404


def test_an_evaluation_reports_the_folder_of_the_run_it_scored(client: TestClient, storage: Path) -> None:
    target = run_with(client, None)
    folder = (storage / "runs" / f"run-{target}" / "tiny").as_uri()
    with transaction(client.app.state.sessions) as session:
        session.get(Run, target).artifact_url = folder
    set_state(client, target, RunState.SUCCEEDED)
    evaluation = client.post(f"/api/runs/{target}/evaluations", json={"days": 7}).json()["id"]
    headers = run_token(client, evaluation)
    set_state(client, evaluation, RunState.RUNNING)
    beside = {"state": "succeeded", "artifact_url": folder + "-other"}
    assert client.post(f"/api/runs/{evaluation}/status", json=beside, headers=headers).status_code == 422
    body = {"state": "succeeded", "artifact_url": folder}
    assert client.post(f"/api/runs/{evaluation}/status", json=body, headers=headers).json()["artifact_url"] == folder


def test_links_planted_in_a_run_folder_are_neither_listed_nor_served(
    client: TestClient, storage: Path, run_folder: Path, secret: Path
) -> None:
    run_id, folder = placed(client, storage, run_folder)
    (folder / "leak.txt").symlink_to(secret / "shadow")
    (folder / "leaked").symlink_to(secret, target_is_directory=True)
    (folder / "loop").symlink_to(folder / "loop")
    (folder / "dangling").symlink_to(folder / "gone")
    (folder / "tensorboard" / "events.txt").symlink_to(folder / "results.json")  # inside the folder: fine
    names = {entry["name"] for entry in client.get(f"/api/runs/{run_id}/artifacts").json()["data"]}
    assert "results.json" in names and "tensorboard/events.txt" in names
    assert not {name for name in names if name.startswith(("leak", "loop", "dangling"))}, names
    assert client.get(f"/api/runs/{run_id}/artifacts/dangling").status_code == 404
    for path in ("leak.txt", "leaked/shadow", "loop"):
        refused = client.get(f"/api/runs/{run_id}/artifacts/{path}")
        assert refused.status_code == 400 and b"root:$6$" not in refused.content, path
    linked = client.get(f"/api/runs/{run_id}/artifacts/tensorboard/events.txt")
    assert linked.json() == json.loads((folder / "results.json").read_text())


def test_an_artifact_folder_outside_its_run_folder_is_not_read(client: TestClient, storage: Path, secret: Path) -> None:
    """Recorded before the control plane checked it, or a folder inside the run's that is a link leading out."""
    legacy = run_with(client, secret.as_uri())
    linked = run_with(client, None)
    (storage / "runs" / f"run-{linked}").mkdir(parents=True)
    (storage / "runs" / f"run-{linked}" / "tiny").symlink_to(secret, target_is_directory=True)
    with transaction(client.app.state.sessions) as session:
        session.get(Run, linked).artifact_url = (storage / "runs" / f"run-{linked}" / "tiny").as_uri()
    for run_id in (legacy, linked):
        for path in ("artifacts", "artifacts/shadow"):
            refused = client.get(f"/api/runs/{run_id}/{path}")
            assert refused.status_code == 409 and b"root:$6$" not in refused.content, (run_id, path, refused.text)
