"""The dashboard's endpoints on SQLite and Postgres: summary, chart bars, tool previews, experiment summaries, the
served web app and the OpenAPI export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, insert, text, update
from typer.testing import CliRunner

from tests.env.envs import frame
from tests.server.test_catalog import EXPERIMENT
from tradelab.cli import app as cli
from tradelab.data.store import Store
from tradelab.server.app import create_app
from tradelab.server.db import transaction
from tradelab.server.models import Experiment, MetricPoint, Run, RunState
from tradelab.settings import get_settings
from tradelab.tools.features import FeaturePipeline

DAY = timedelta(days=1)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _experiments(client: TestClient, names: list[str]) -> list[int]:
    with transaction(client.app.state.sessions) as session:
        rows = [Experiment(name=name, config=EXPERIMENT) for name in names]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def _runs(client: TestClient, experiment_id: int, *states: RunState, **fields: Any) -> list[int]:
    with transaction(client.app.state.sessions) as session:
        rows = [Run(experiment_id=experiment_id, state=state, **fields) for state in states]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def _points(client: TestClient, run_id: int, key: str, values: list[float]) -> None:
    """``values`` as steps 0, 1, ... of ``key`` (the last one is the run's last point)."""
    with transaction(client.app.state.sessions) as session:
        session.execute(
            insert(MetricPoint), [{"run_id": run_id, "key": key, "step": i, "value": v} for i, v in enumerate(values)]
        )


def _dataset(client: TestClient, store: Store, bars: pl.DataFrame, symbol: str = "SYN") -> dict[str, Any]:
    client.app.state.store = store
    store.write(symbol, "1m", bars)
    response = client.post("/api/datasets/register", json={"symbol": symbol})
    assert response.status_code == 201, response.text
    return response.json()


def test_dashboard_counts_states_and_ranks_runs_by_their_last_test_sharpe(client: TestClient) -> None:
    empty = client.get("/api/dashboard").json()
    assert empty["runs_by_state"] == dict.fromkeys(RunState, 0) and empty["recent_runs"] == empty["best_runs"] == []
    assert empty["budget"] == {"monthly_cap": None, "spent": 0.0, "remaining": None}
    one, two = _experiments(client, ["one", "two"])
    queued = _runs(client, one, *[RunState.QUEUED] * 3)
    done = _runs(client, two, *[RunState.SUCCEEDED] * 12, cost=0.5)
    failed = _runs(client, one, RunState.FAILED)
    for rank, run_id in enumerate(done):  # the last point counts: run i's earlier points were all higher
        _points(client, run_id, "test/sharpe", [100.0] * 200 + [float(rank)])
        _points(client, run_id, "test/total_return", [0.1 * rank])
        _points(client, run_id, "train/reward", [1.0] * 100)
    _points(client, failed[0], "train/reward", [1.0] * 100)
    assert client.put("/api/budgets/global", json={"monthly_cap": 10.0}).status_code == 200
    dashboard = client.get("/api/dashboard").json()
    assert dashboard["runs_by_state"] == {**dict.fromkeys(RunState, 0), "queued": 3, "succeeded": 12, "failed": 1}
    assert dashboard["budget"] == {"monthly_cap": 10.0, "spent": 6.0, "remaining": 4.0}
    assert [r["id"] for r in dashboard["recent_runs"]] == [*failed, *reversed(done)][:10]
    best = dashboard["best_runs"]
    assert [r["id"] for r in best] == list(reversed(done))[:10]
    assert best[0]["test_sharpe"] == 11.0 and best[0]["test_total_return"] == pytest.approx(1.1)
    assert best[0]["experiment_name"] == "two" and best[0]["state"] == "succeeded" and best[0]["cost"] == 0.5
    assert not set(queued + failed) & {r["id"] for r in best}
    assert dashboard["recent_runs"][0]["test_sharpe"] is None and dashboard["recent_runs"][0]["ended_at"] is None


def test_the_last_point_of_every_run_is_read_from_the_covering_index(client: TestClient) -> None:
    """EXPLAIN of the per-run last-point lookup: a seek into ``ix_metric_points_series``, never a table scan."""
    with client.app.state.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            query = "EXPLAIN QUERY PLAN SELECT value FROM metric_points WHERE run_id = 1 AND key = 'test/sharpe' "
            query += "ORDER BY step DESC, id DESC LIMIT 1"
            plan = " ".join(str(row[-1]) for row in connection.execute(text(query)))
            assert "COVERING INDEX ix_metric_points_series (run_id=? AND key=?)" in plan, plan
        else:
            connection.execute(text("SET enable_seqscan = off"))  # an empty table would be scanned anyway
            query = "EXPLAIN SELECT value FROM metric_points WHERE run_id = 1 AND key = 'test/sharpe' "
            query += "ORDER BY step DESC, id DESC LIMIT 1"
            plan = " ".join(str(row[0]) for row in connection.execute(text(query)))
            assert "Index Only Scan Backward using ix_metric_points_series" in plan, plan


def test_bars_are_bucketed_keeping_the_extremes_and_list_the_gaps_of_the_range(
    client: TestClient, store: Store
) -> None:
    full = frame()
    bars = full.filter(~pl.int_range(pl.len()).is_between(1000, 1009))  # 10 missing bars
    row = _dataset(client, store, bars)
    last = full["ts"][-1]
    answer = client.get(f"/api/datasets/{row['id']}/bars").json()  # the last 7 days: all 2,870 bars, bucketed
    assert answer["symbol"] == "SYN" and answer["timeframe"] == "1m"
    end = last + timedelta(minutes=1)
    assert answer["end"] == _iso(end) and answer["start"] == _iso(end - 7 * DAY)
    assert len(answer["time"]) <= 2000 and answer["bucket_seconds"] == 120
    steps = [b - a for a, b in zip(answer["time"], answer["time"][1:], strict=False)]
    assert set(steps) == {120, 720} and steps.count(720) == 1  # the gap's 5 buckets are left out
    assert max(answer["high"]) == bars["high"].max() and min(answer["low"]) == bars["low"].min()
    assert sum(answer["volume"]) == pytest.approx(bars["volume"].sum())
    assert answer["open"][0] == bars["open"][0] and answer["close"][-1] == bars["close"][-1]
    assert answer["gaps"] == [{"start": _iso(full["ts"][1000]), "end": _iso(full["ts"][1009]), "missing": 10}]

    start, end = full["ts"][990], full["ts"][1100]
    raw = client.get(f"/api/datasets/{row['id']}/bars", params={"start": _iso(start), "end": _iso(end)}).json()
    expected = bars.filter(pl.col("ts").is_between(start, end, closed="left"))
    assert raw["bucket_seconds"] == 60 and raw["time"] == (expected["ts"].dt.epoch("s")).to_list()
    assert raw["high"] == expected["high"].to_list() and raw["gaps"][0]["missing"] == 10
    small = {"start": _iso(start), "end": _iso(end), "max_points": 10}
    bucketed = client.get(f"/api/datasets/{row['id']}/bars", params=small).json()
    assert len(bucketed["time"]) <= 10 and max(bucketed["high"]) == expected["high"].max()
    after = {"start": _iso(full["ts"][1010])}  # 7 days from start: to the dataset's end, no gap
    assert client.get(f"/api/datasets/{row['id']}/bars", params=after).json()["gaps"] == []

    inverted = client.get(f"/api/datasets/{row['id']}/bars", params={"start": _iso(end), "end": _iso(start)}).json()
    assert inverted["time"] == [] and inverted["gaps"] == []  # an end before the start: an empty range
    assert client.get(f"/api/datasets/{row['id']}/bars", params={"max_points": 5}).status_code == 422
    assert client.get(f"/api/datasets/{row['id'] + 1}/bars").status_code == 404


def test_tool_previews_are_causal_and_defined_from_the_first_bar(client: TestClient, store: Store) -> None:
    bars = frame()
    row = _dataset(client, store, bars)
    changed = bars.with_columns(  # the same bars until bar 2000, other ones after it
        close=pl.when(pl.int_range(pl.len()) >= 2000).then(pl.col("close") * 1.5).otherwise(pl.col("close"))
    )
    other = _dataset(client, store, changed, symbol="SYN2")
    start, end = bars["ts"][500], bars["ts"][2000]
    body = {"dataset_id": row["id"], "params": {"window": 30}, "start": _iso(start), "end": _iso(end)}
    preview = client.post("/api/tools/ZSCORE/preview", json=body).json()
    assert preview["tool"] == "zscore" and preview["columns"] == ["zscore"] and preview["warmup"] == 29
    assert len(preview["time"]) == 1500 and preview["time"][0] == int(start.timestamp())
    full = FeaturePipeline([{"tool": "zscore", "params": {"window": 30}}]).compute(bars)
    assert preview["values"]["zscore"] == pytest.approx(full.values[500:2000, 0].tolist())  # no null: warmed up
    assert client.post("/api/tools/zscore/preview", json={**body, "dataset_id": other["id"]}).json() == preview

    thinned = client.post("/api/tools/zscore/preview", json={**body, "max_points": 100}).json()
    assert thinned["time"] == preview["time"][::15] and thinned["values"]["zscore"] == preview["values"]["zscore"][::15]
    default = client.post("/api/tools/zscore/preview", json={"dataset_id": row["id"]}).json()
    assert len(default["time"]) == 1440 and default["time"][-1] == int(bars["ts"][-2].timestamp())  # every 2nd bar
    first = client.post("/api/tools/zscore/preview", json={**body, "start": _iso(bars["ts"][0])}).json()
    assert first["values"]["zscore"][:29] == [None] * 29 and first["values"]["zscore"][29] is not None

    invalid = client.post("/api/tools/zscore/preview", json={**body, "params": {"window": 1, "colour": 2}})
    assert invalid.status_code == 422
    assert [e["loc"] for e in invalid.json()["detail"]] == [["body", "params", "window"], ["body", "params", "colour"]]
    assert client.post("/api/tools/nope/preview", json=body).status_code == 404
    assert client.post("/api/tools/zscore/preview", json={**body, "dataset_id": 999}).status_code == 404
    empty = client.post("/api/tools/zscore/preview", json={**body, "end": _iso(start)}).json()  # end at start: empty
    assert empty["time"] == [] and empty["values"] == {"zscore": []}


def test_experiments_are_listed_with_their_runs_summarised_in_any_order(client: TestClient) -> None:
    first, second, third = _experiments(client, ["beta", "alpha", "gamma"])
    with transaction(client.app.state.sessions) as session:  # one transaction: one creation time, ties by id
        session.execute(update(Experiment).values(created_at=datetime(2026, 1, 1, tzinfo=UTC)))
    a = _runs(client, first, RunState.SUCCEEDED, RunState.SUCCEEDED, RunState.FAILED)
    b = _runs(client, second, RunState.SUCCEEDED, RunState.QUEUED)
    _points(client, a[0], "test/sharpe", [5.0, 0.5])
    _points(client, a[1], "test/sharpe", [1.5])
    _points(client, b[0], "test/sharpe", [3.0, 2.0])

    def order(sort: str) -> list[int]:
        response = client.get("/api/experiments", params={"sort": sort})
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["data"]]

    listed = {e["id"]: e for e in client.get("/api/experiments").json()["data"]}
    assert listed[first]["runs_count"] == 3 and listed[first]["best_test_sharpe"] == 1.5
    assert listed[first]["runs_by_state"] == {**dict.fromkeys(RunState, 0), "succeeded": 2, "failed": 1}
    assert listed[second]["best_test_sharpe"] == 2.0 and listed[second]["runs_by_state"]["queued"] == 1
    assert listed[third]["runs_count"] == 0 and listed[third]["best_test_sharpe"] is None
    assert listed[third]["runs_by_state"] == dict.fromkeys(RunState, 0)
    assert order("-created_at") == [third, second, first] and order("created_at") == [first, second, third]
    assert order("name") == [second, first, third] and order("-name") == [third, first, second]
    assert order("-best_sharpe") == [second, first, third]
    assert client.get("/api/experiments", params={"sort": "best_sharpe"}).status_code == 422


def _statements(client: TestClient, path: str) -> int:
    """How many SQL statements one GET of ``path`` runs."""
    count = 0

    def counted(*_: Any) -> None:
        nonlocal count
        count += 1

    engine = client.app.state.engine
    event.listen(engine, "before_cursor_execute", counted)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return count


def test_the_experiment_list_runs_as_many_queries_for_50_experiments_as_for_5(client: TestClient) -> None:
    def seed(n: int) -> None:
        for experiment_id in _experiments(client, [f"e{i}" for i in range(n)]):
            for run_id in _runs(client, experiment_id, RunState.SUCCEEDED, RunState.RUNNING):
                _points(client, run_id, "test/sharpe", [1.0, 2.0])

    seed(5)
    few = [_statements(client, f"/api/experiments?sort={sort}") for sort in ("-created_at", "-best_sharpe")]
    seed(45)
    many = [_statements(client, f"/api/experiments?sort={sort}") for sort in ("-created_at", "-best_sharpe")]
    assert few == many
    assert _statements(client, "/api/dashboard") == _statements(client, "/api/dashboard")


@pytest.fixture
def web_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str, admin_token: str) -> Iterator[TestClient]:
    """The app serving a built dashboard from a temporary folder."""
    folder = tmp_path / "dist"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text("<html>tradelab</html>")
    (folder / "assets" / "app.js").write_text("console.log('tradelab')")
    (folder / "assets" / "big.css").write_text("body { color: #4dabf7; }\n" * 200)
    (folder / "favicon.ico").write_bytes(b"icon")
    monkeypatch.setenv("TRADELAB_WEB_DIR", str(folder))
    get_settings.cache_clear()
    app = create_app(db_url)
    with TestClient(app, headers={"Authorization": f"Bearer {admin_token}"}) as client:
        yield client
    app.state.engine.dispose()
    get_settings.cache_clear()


def test_the_built_dashboard_is_served_with_a_fallback_for_deep_links(web_app: TestClient) -> None:
    for path in ("/", "/experiments/3", "/runs/1/metrics"):
        response = web_app.get(path)
        assert response.status_code == 200 and response.text == "<html>tradelab</html>", path
    asset = web_app.get("/assets/app.js")
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    assert web_app.get("/favicon.ico").content == b"icon"
    assert web_app.get("/assets/missing.js").status_code == 404
    assert web_app.get("/assets/..%2Findex.html").status_code == 404  # never a file outside assets/


def test_assets_are_cached_for_good_and_gzipped_for_clients_that_accept_it(web_app: TestClient) -> None:
    plain = web_app.get("/assets/big.css", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    packed = web_app.get("/assets/big.css", headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["content-encoding"] == "gzip" and "text/css" in packed.headers["content-type"]
    assert packed.text == plain.text and int(packed.headers["content-length"]) < len(plain.content) / 10
    for response in (plain, packed):
        assert "immutable" in response.headers["cache-control"] and response.headers["vary"] == "Accept-Encoding"
    small = web_app.get("/assets/app.js", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers and small.text == "console.log('tradelab')"
    assert web_app.get("/").headers["cache-control"] == "no-cache"
    assert web_app.get("/api/nope").status_code == 404 and web_app.get("/docs/nope").status_code == 404
    assert web_app.get("/api/dashboard").json()["runs_by_state"]["queued"] == 0
    assert web_app.get("/health").status_code == 200 and "paths" in web_app.get("/openapi.json").json()
    assert "/{path}" not in web_app.get("/openapi.json").json()["paths"]


def test_without_a_built_dashboard_the_root_tells_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    monkeypatch.setenv("TRADELAB_WEB_DIR", str(tmp_path / "absent"))
    get_settings.cache_clear()
    try:
        app = create_app(db_url)
    finally:
        get_settings.cache_clear()
    with TestClient(app) as client:
        root = client.get("/")
        assert root.status_code == 200 and "make setup" in root.json()["detail"]
        assert client.get("/experiments/3").status_code == 404
    app.state.engine.dispose()


def test_openapi_export_is_sorted_json_of_the_api(tmp_path: Path, home: Path) -> None:
    out = tmp_path / "openapi.json"
    result = CliRunner().invoke(cli, ["openapi", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = out.read_text()
    schema = json.loads(written)
    assert written == json.dumps(schema, indent=2, sort_keys=True) + "\n"
    assert {"/api/dashboard", "/api/datasets/{dataset_id}/bars", "/api/tools/{name}/preview"} <= set(schema["paths"])
    printed = CliRunner().invoke(cli, ["openapi"])
    assert printed.exit_code == 0 and printed.output == written
    assert not home.exists()  # no database was made


def test_the_dashboards_committed_api_contract_is_the_servers_current_schema(home: Path) -> None:
    """``frontend/openapi.json`` (from which ``npm run build`` generates the typed client) matches the API:
    after changing an endpoint, run ``cd frontend && npm run spec``."""
    printed = CliRunner().invoke(cli, ["openapi"])
    committed = (Path(__file__).resolve().parents[2] / "frontend" / "openapi.json").read_text()
    assert printed.exit_code == 0 and json.loads(printed.output) == json.loads(committed)
