"""Control-plane API benchmark: ``tradelab serve`` over Postgres 15 and over SQLite, measured from another process.

Each database is migrated, then seeded with bulk inserts: 10 experiments, 10,000 runs (states and experiments
varied), 5,000,000 metric points (100 runs × 5 keys × 10,000 steps). ``tradelab serve`` then runs as a separate
process on loopback and this process measures, with httpx (keep-alive):

Metric points are laid out as concurrent runs write them (step by step across runs and keys), so one series'
10,000 points sit on ~10,000 different heap pages.

1. listing runs, paged and filtered: ``GET /api/runs?state=running&limit=50&offset=…`` and by experiment,
   500 requests each, p50 and p99;
2. one run's metric series (10,000 points) LTTB-downsampled to 2,000 points, 200 requests, p50 and p99;
3. metric ingest: batches of 5,000 points POSTed by 4 concurrent clients for 10 s, points per second;
4. SSE fan-out: 50 clients streaming ``/api/events`` while 200 events are written to the database in 10 bursts;
   the largest delay from an event's commit to its arrival at a client, and whether every client got every event.

Goals (on Postgres; SQLite is the "peer" column): list p99 ≤ 50 ms; metric series p99 ≤ 100 ms;
ingest ≥ 50,000 points/s; all 50 SSE clients receive all events.
Postgres runs at ``BENCH_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``); the bench
drops and recreates a ``tradelab_bench`` database there. Without Postgres, only SQLite is measured.

Usage: ``.venv/bin/python bench/bench_api.py`` (``make bench``); writes ``bench/results/bench_api.json``;
exit status 0 even when a goal is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench_report import RESULTS_DIR, Row, progress_steps, report

RESULTS = RESULTS_DIR / "bench_api.json"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_DB = "tradelab_bench"
EXPERIMENTS = 10
RUNS = 10_000
METRIC_RUNS = 100
KEYS = ("loss", "reward", "entropy", "value_loss", "learning_rate")
STEPS = 10_000
STATES = ("queued", "starting", "running", "succeeded", "failed", "cancelled")
LIST_REQUESTS = 500
PAGE = 50
SERIES_REQUESTS = 200
SERIES_POINTS = 2_000
INGEST_CLIENTS = 4
INGEST_BATCH = 5_000
INGEST_SECONDS = 10.0
SSE_CLIENTS = 50
SSE_BURSTS = 10
SSE_BURST_EVENTS = 20
SSE_TIMEOUT_S = 30.0
Step = Callable[[str, int], Callable[[], None]]


@dataclass
class Figures:
    """What one database measured: request latencies in seconds, ingest rate, SSE delivery."""

    label: str
    points: int
    list_state: list[float] = field(default_factory=list)
    list_experiment: list[float] = field(default_factory=list)
    series: list[float] = field(default_factory=list)
    series_total: int = 0
    ingest_points_per_s: float = 0.0
    sse_max_latency_s: float = float("nan")
    sse_all_received: bool = False
    sse_received: int = 0
    seed_s: float = 0.0


# ---------------------------------------------------------------- databases and seeding


def postgres_url() -> str | None:
    """A freshly (re)created ``tradelab_bench`` database's URL, or None when Postgres does not answer."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {PG_DB}"))
    except OperationalError:
        return None
    finally:
        engine.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + PG_DB


def seed_core(url: str) -> str:
    """Migrate, then insert the experiments, the runs (executemany) and an admin token; return its secret."""
    from sqlalchemy import insert

    from tradelab.server.db import make_engine, session_factory, transaction, upgrade
    from tradelab.server.models import Experiment, Run
    from tradelab.server.security import issue_token

    upgrade(url)
    engine = make_engine(url)
    rng = np.random.default_rng(0)
    try:
        with transaction(session_factory(engine)) as session:
            session.execute(
                insert(Experiment),
                [{"name": f"bench-{i}", "config": {"seeds": [i]}, "tags": ["bench"]} for i in range(EXPERIMENTS)],
            )
            states = rng.choice(len(STATES), RUNS)
            runs = [
                {
                    "experiment_id": i % EXPERIMENTS + 1,
                    "state": STATES[int(states[i])],
                    "seed": i,
                    "cost": float(i % 7),
                }
                for i in range(RUNS)
            ]
            for start in range(0, RUNS, 2_000):
                session.execute(insert(Run), runs[start : start + 2_000])
            return issue_token(session, "bench admin")
    finally:
        engine.dispose()


def seed_points_postgres(url: str) -> int:
    """5,000,000 metric points in one server-side ``INSERT … SELECT generate_series`` (index rebuilt after)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    keys = ", ".join(f"('{key}')" for key in KEYS)
    try:
        with engine.connect() as connection:
            definition = connection.execute(
                text("SELECT pg_get_indexdef('ix_metric_points_series'::regclass)")
            ).scalar_one()
            connection.execute(text("DROP INDEX ix_metric_points_series"))
            connection.execute(text("SET session_replication_role = replica"))  # no FK triggers while seeding
            connection.execute(
                text(
                    "INSERT INTO metric_points (run_id, key, step, value) "
                    "SELECT r.id, k.key, s, sin(s / 500.0) + random() * 0.1 "
                    f"FROM (SELECT id FROM runs ORDER BY id LIMIT {METRIC_RUNS}) r "
                    f"CROSS JOIN (VALUES {keys}) AS k(key) CROSS JOIN generate_series(0, {STEPS - 1}) AS s"
                )
            )
            connection.execute(text("SET session_replication_role = DEFAULT"))
            connection.execute(text(definition))  # the migrations' own definition, rebuilt after the load
            connection.execute(text("VACUUM ANALYZE"))
            return int(connection.execute(text("SELECT count(*) FROM metric_points")).scalar_one())
    finally:
        engine.dispose()


def seed_points_sqlite(path: Path) -> int:
    """The same points in SQLite with one ``INSERT … SELECT`` over a recursive CTE (index rebuilt after)."""
    import sqlite3

    connection = sqlite3.connect(path)
    keys = " UNION ALL ".join(f"SELECT '{key}'" for key in KEYS)
    try:
        (definition,) = connection.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'ix_metric_points_series'"
        ).fetchone()
        connection.execute("DROP INDEX ix_metric_points_series")
        connection.execute(
            "WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < ?), "
            f"k(key) AS ({keys}) "
            "INSERT INTO metric_points (run_id, key, step, value) "
            "SELECT r.id, k.key, s.x, (s.x % 977) / 977.0 + (abs(random()) % 1000) / 10000.0 "
            "FROM (SELECT id FROM runs ORDER BY id LIMIT ?) r CROSS JOIN k CROSS JOIN s",
            (STEPS - 1, METRIC_RUNS),
        )
        connection.execute(definition)  # the migrations' own definition, rebuilt after the load
        connection.commit()
        connection.execute("ANALYZE")
        return int(connection.execute("SELECT count(*) FROM metric_points").fetchone()[0])
    finally:
        connection.close()


# ---------------------------------------------------------------- the server process


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, home: Path, attempts: int = 3) -> tuple[subprocess.Popen[bytes], str]:
    """``tradelab serve`` over ``url`` (a few tries, each on a fresh free port); the process and its base URL."""
    for attempt in range(attempts):
        try:
            return _start_server(url, home)
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _start_server(url: str, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``tradelab serve`` on a free port over ``url``; returns the process and its base URL once /health answers."""
    import httpx

    port = free_port()
    env = {**os.environ, "TRADELAB_DATABASE_URL": url, "TRADELAB_HOME": str(home)}
    executable = Path(sys.executable).parent / "tradelab"
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [str(executable), "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (home / "server.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"tradelab serve exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("tradelab serve did not answer /health within 60 s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Stop the server process (SIGTERM, then SIGKILL)."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---------------------------------------------------------------- measurements


def measure_lists(base: str, headers: dict[str, str], counts: dict[str, int], advance: Callable[[], None]) -> Any:
    """Latencies (s) of paged run lists: by state ``running``, then by experiment (500 requests each)."""
    import httpx

    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for _ in range(5):  # warm-up
            client.get("/api/runs", params={"state": "running", "limit": PAGE}).raise_for_status()
        pages = max(1, counts["running"] // PAGE)
        by_state = _timed_gets(
            client, advance, lambda i: {"state": "running", "limit": PAGE, "offset": (i % pages) * PAGE}
        )
        per_experiment = max(1, RUNS // EXPERIMENTS // PAGE)
        by_experiment = _timed_gets(
            client,
            advance,
            lambda i: {
                "experiment_id": i % EXPERIMENTS + 1,
                "limit": PAGE,
                "offset": (i // EXPERIMENTS % per_experiment) * PAGE,
            },
        )
    return by_state, by_experiment


def _timed_gets(client: Any, advance: Callable[[], None], params: Callable[[int], dict[str, Any]]) -> list[float]:
    """Seconds of :data:`LIST_REQUESTS` ``GET /api/runs`` calls with ``params(i)``, advancing every 50."""
    seconds = []
    for i in range(LIST_REQUESTS):
        started = time.perf_counter()
        response = client.get("/api/runs", params=params(i))
        seconds.append(time.perf_counter() - started)
        response.raise_for_status()
        if i % 50 == 49:
            advance()
    return seconds


def measure_series(base: str, headers: dict[str, str], advance: Callable[[], None]) -> tuple[list[float], int]:
    """Latencies (s) of one run's metric series downsampled to 2,000 points; and the points before downsampling."""
    import httpx

    seconds: list[float] = []
    total = 0
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for _ in range(3):
            client.get("/api/runs/1/metrics/loss", params={"max_points": SERIES_POINTS}).raise_for_status()
        for i in range(SERIES_REQUESTS):
            run_id, key = i % METRIC_RUNS + 1, KEYS[i % len(KEYS)]
            started = time.perf_counter()
            response = client.get(f"/api/runs/{run_id}/metrics/{key}", params={"max_points": SERIES_POINTS})
            seconds.append(time.perf_counter() - started)
            response.raise_for_status()
            body = response.json()
            total = body["total"]
            if len(body["steps"]) != SERIES_POINTS:
                raise RuntimeError(f"expected {SERIES_POINTS} points, got {len(body['steps'])}")
            if i % 20 == 19:
                advance()
    return seconds, total


def measure_ingest(base: str, headers: dict[str, str], advance: Callable[[], None]) -> float:
    """Points per second stored by 4 clients POSTing batches of 5,000 points for 10 s (keep-alive each)."""
    import httpx

    stored = [0] * INGEST_CLIENTS
    errors: list[BaseException] = []
    deadline = [0.0]
    # The deadline is set by the barrier's action, before any client is released (no client sees 0).
    start_gate = threading.Barrier(
        INGEST_CLIENTS + 1, action=lambda: deadline.__setitem__(0, time.perf_counter() + INGEST_SECONDS)
    )

    def client_loop(index: int) -> None:
        run_id = METRIC_RUNS + 1 + index  # runs without seeded points
        per_key = INGEST_BATCH // len(KEYS)
        try:
            json_headers = {**headers, "content-type": "application/json"}
            with httpx.Client(base_url=base, headers=json_headers, timeout=60) as client:
                batch = 0

                def body() -> bytes:
                    first = batch * per_key
                    points = [
                        {"key": key, "step": step, "value": step * 0.001}
                        for key in KEYS
                        for step in range(first, first + per_key)
                    ]
                    return json.dumps({"points": points}).encode()

                content = body()  # warm-up batch (not counted)
                client.post(f"/api/runs/{run_id}/metrics", content=content).raise_for_status()
                batch += 1
                start_gate.wait()
                while time.perf_counter() < deadline[0]:
                    content = body()
                    response = client.post(f"/api/runs/{run_id}/metrics", content=content)
                    response.raise_for_status()
                    stored[index] += response.json()["count"]
                    batch += 1
        except BaseException as error:  # reported by the caller
            errors.append(error)
            start_gate.abort()

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(INGEST_CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        start_gate.wait()
    except threading.BrokenBarrierError:
        for thread in threads:
            thread.join()
        raise RuntimeError(f"ingest failed: {errors[0]!r}") from errors[0]
    started = deadline[0] - INGEST_SECONDS
    while any(thread.is_alive() for thread in threads):
        time.sleep(1.0)
        if time.perf_counter() - started < INGEST_SECONDS + 0.5:
            advance()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"ingest failed: {errors[0]!r}")
    return sum(stored) / elapsed


def insert_events(url: str, burst: int) -> float:
    """Write one burst of ``run_state`` events straight into the database; the commit's ``perf_counter``."""
    from sqlalchemy import insert

    from tradelab.server.db import make_engine, session_factory, transaction
    from tradelab.server.models import Event

    if url not in _event_engines:
        _event_engines[url] = make_engine(url)
    rows = [
        {"kind": "run_state", "run_id": 1 + (burst * SSE_BURST_EVENTS + i) % RUNS, "payload": {"bench": burst}}
        for i in range(SSE_BURST_EVENTS)
    ]
    with transaction(session_factory(_event_engines[url])) as session:
        session.execute(insert(Event), rows)
    return time.perf_counter()


_event_engines: dict[str, Any] = {}


def measure_sse(base: str, headers: dict[str, str], url: str, advance: Callable[[], None]) -> tuple[float, bool, int]:
    """50 SSE clients, 10 bursts of 20 events: the largest commit-to-arrival delay (s), all delivered, received."""
    return asyncio.run(_sse(base, headers, url, advance))


async def _sse(base: str, headers: dict[str, str], url: str, advance: Callable[[], None]) -> tuple[float, bool, int]:
    import httpx

    expected = SSE_BURSTS * SSE_BURST_EVENTS
    arrivals: list[dict[int, tuple[int, float]]] = [{} for _ in range(SSE_CLIENTS)]  # id: (burst, arrival)
    connected = asyncio.Semaphore(0)
    done = [asyncio.Event() for _ in range(SSE_CLIENTS)]
    limits = httpx.Limits(max_connections=SSE_CLIENTS + 5, max_keepalive_connections=SSE_CLIENTS + 5)
    timeout = httpx.Timeout(60, connect=30)

    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=timeout) as client:

        async def listen(index: int) -> None:
            async with client.stream("GET", "/api/events") as response:
                response.raise_for_status()
                connected.release()
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        event = json.loads(line[6:])
                        burst = event["payload"].get("bench")
                        if event["kind"] == "run_state" and burst is not None:
                            arrivals[index][event["id"]] = (burst, time.perf_counter())
                            if len(arrivals[index]) >= expected:
                                done[index].set()
                                return

        listeners = [asyncio.create_task(listen(i)) for i in range(SSE_CLIENTS)]
        for _ in range(SSE_CLIENTS):
            await asyncio.wait_for(connected.acquire(), 60)
        advance()
        await asyncio.sleep(1.0)  # every stream has fixed its cursor and polls
        committed: list[float] = []  # each burst's commit time
        for burst in range(SSE_BURSTS):
            committed.append(await asyncio.to_thread(insert_events, url, burst))
            advance()
            await asyncio.sleep(0.3)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in done)), SSE_TIMEOUT_S)
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)

    received = sum(len(a) for a in arrivals)
    every = all(len(a) >= expected for a in arrivals)
    delays = [at - committed[burst] for a in arrivals for burst, at in a.values()]
    latency = max(delays, default=float("nan"))
    return latency, every, received


# ---------------------------------------------------------------- one database


def run_counts(url: str) -> dict[str, int]:
    """How many runs are in each state."""
    from sqlalchemy import func, select

    from tradelab.server.db import make_engine
    from tradelab.server.models import Run

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(Run.state, func.count()).group_by(Run.state)).all()
    finally:
        engine.dispose()
    return {str(state): int(count) for state, count in rows}


def bench_database(label: str, url: str, home: Path, step: Step, seed_points: Callable[[], int]) -> Figures:
    """Seed the database at ``url``, serve it, measure the four workloads."""
    advance = step(f"{label}: seed 10k runs + 5M points", 2)
    started = time.perf_counter()
    token = seed_core(url)
    advance()
    points = seed_points()
    advance()
    figures = Figures(label, points, seed_s=time.perf_counter() - started)
    counts = run_counts(url)
    headers = {"Authorization": f"Bearer {token}"}
    process, base = start_server(url, home)
    try:
        advance = step(f"{label}: list runs", 2 * LIST_REQUESTS // 50)
        figures.list_state, figures.list_experiment = measure_lists(base, headers, counts, advance)
        advance = step(f"{label}: metric series", SERIES_REQUESTS // 20)
        figures.series, figures.series_total = measure_series(base, headers, advance)
        advance = step(f"{label}: ingest", int(INGEST_SECONDS))
        figures.ingest_points_per_s = measure_ingest(base, headers, advance)
        advance = step(f"{label}: SSE fan-out", SSE_BURSTS + 1)
        figures.sse_max_latency_s, figures.sse_all_received, figures.sse_received = measure_sse(
            base, headers, url, advance
        )
    finally:
        stop_server(process)
        for engine in _event_engines.values():
            engine.dispose()
        _event_engines.clear()
    return figures


# ---------------------------------------------------------------- the report


def quantile(seconds: list[float], q: float) -> float:
    """The ``q`` quantile of ``seconds``, in ms."""
    return float(np.quantile(np.array(seconds), q)) * 1000


def rows_for(pg: Figures | None, lite: Figures) -> list[Row]:
    """The report's rows: ours is Postgres (goals judged there), the peer column is SQLite."""
    main = pg or lite
    peer = lite if pg is not None else None
    rows: list[Row] = []

    def latency(metric: str, attr: str, q: float, goal_ms: float | None) -> None:
        ours = quantile(getattr(main, attr), q)
        rows.append(
            Row(
                metric,
                "ms",
                ours,
                f"≤ {goal_ms:.0f} ms" if goal_ms is not None else "—",
                None if goal_ms is None or pg is None else ours <= goal_ms,
                quantile(getattr(peer, attr), q) if peer else None,
                samples_ours=list(getattr(main, attr)),
                samples_peer=list(getattr(peer, attr)) if peer else [],
            )
        )

    latency(f"list runs state=running, {PAGE}/page, p50", "list_state", 0.5, None)
    latency(f"list runs state=running, {PAGE}/page, p99", "list_state", 0.99, 50)
    latency(f"list runs by experiment, {PAGE}/page, p50", "list_experiment", 0.5, None)
    latency(f"list runs by experiment, {PAGE}/page, p99", "list_experiment", 0.99, 50)
    latency(f"metric series {main.series_total:,} → {SERIES_POINTS:,} pts (LTTB), p50", "series", 0.5, None)
    latency(f"metric series {main.series_total:,} → {SERIES_POINTS:,} pts (LTTB), p99", "series", 0.99, 100)
    ingest = main.ingest_points_per_s / 1000
    rows.append(
        Row(
            f"metric ingest, {INGEST_CLIENTS} clients × {INGEST_BATCH:,}-pt batches",
            "k/s",
            ingest,
            "≥ 50 k/s",
            ingest >= 50 if pg is not None else None,
            peer.ingest_points_per_s / 1000 if peer else None,
        )
    )
    expected = SSE_CLIENTS * SSE_BURSTS * SSE_BURST_EVENTS
    got = f"pg {main.sse_received:,}" + (f", sqlite {peer.sse_received:,}" if peer else "")
    rows.append(
        Row(
            f"SSE {SSE_CLIENTS} clients: max delivery delay (got {got} of {expected:,})",
            "ms",
            main.sse_max_latency_s * 1000,
            f"all {SSE_CLIENTS} get all {SSE_BURSTS * SSE_BURST_EVENTS}",
            main.sse_all_received if pg is not None else None,
            peer.sse_max_latency_s * 1000 if peer else None,
        )
    )
    return rows


def main() -> None:
    """Run both databases, print the table, write the JSON."""
    import warnings

    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    pg: Figures | None = None
    with tempfile.TemporaryDirectory(prefix="tradelab-bench-api-") as tmp, progress_steps() as step:
        pg_url = postgres_url()
        if pg_url is not None:
            home = Path(tmp) / "pg"
            home.mkdir()
            pg = bench_database("postgres", pg_url, home, step, lambda: seed_points_postgres(pg_url))
        home = Path(tmp) / "sqlite"
        home.mkdir()
        path = home / "tradelab.db"
        lite = bench_database("sqlite", f"sqlite:///{path}", home, step, lambda: seed_points_sqlite(path))
    title = "API: tradelab serve over Postgres 15 (ours) and SQLite (peer column)"
    if pg is None:
        title = "API: tradelab serve over SQLite (Postgres unreachable; goals not judged)"
    extra = {
        "bench": "api",
        "sizes": {
            "experiments": EXPERIMENTS,
            "runs": RUNS,
            "metric_points": {"postgres": pg.points if pg else None, "sqlite": lite.points},
            "series_points": STEPS,
        },
        "seed_s": {"postgres": pg.seed_s if pg else None, "sqlite": lite.seed_s},
        "sse": {
            "clients": SSE_CLIENTS,
            "events": SSE_BURSTS * SSE_BURST_EVENTS,
            "all_received": {"postgres": pg.sse_all_received if pg else None, "sqlite": lite.sse_all_received},
        },
        "peer": "sqlite",
        "total_s": time.perf_counter() - started,
    }
    report(title, "sqlite", rows_for(pg, lite), RESULTS, extra)


if __name__ == "__main__":
    main()
