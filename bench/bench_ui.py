"""Dashboard benchmark: the React app served by ``tradelab serve``, timed inside Debian's Chromium.

The database (SQLite; also Postgres when ``TRADELAB_TEST_DATABASE_URL`` is set) is seeded with ``bench_api``'s
helpers: 1,000 experiments, 10,000 runs, 5,000,000 training points (100 runs × 5 keys × 10,000 steps), plus
``test/sharpe`` and ``test/total_return`` (one point) and ``val/sharpe`` and ``val/total_return`` (100 steps) for
every succeeded run. One succeeded run gets an artifact folder with a year of 1-minute equity
(``equity_test.parquet``, 525,600 bars × 5 policies) and 1,000 trades (``trades_test.parquet``); the next run
gets the same equity and no trades.

``tradelab serve`` runs as its own process; Chromium (headless, through Playwright) loads the pages, each in a
new browser context (no HTTP cache, token set in localStorage by an init script). A ``requestAnimationFrame``
loop injected before the app's scripts records ``performance.now()`` (ms since navigation start) at the first
frame where the page is ready:

1. the dashboard: ``best-runs`` has rows and ``runs-by-state`` counts all 10,000 runs (goal ≤ 1 s);
2. the experiment list: the first ``experiment-row`` is rendered with the expected id, its link is visible and
   is the element hit at its centre, and as many rows as the API returns for the page; cold (``/experiments``
   loaded in a new context) and as an in-app navigation (click on ``nav-experiments`` from the dashboard,
   timed from the click); goal ≤ 300 ms for the in-app navigation;
3. a run's detail: ``equity-chart`` has ``data-points`` > 0 and its canvas holds pixels of the agent's colour
   (goal ≤ 1 s); and, as a control without a goal, a second run with the same equity file and no trades file,
   which shows what rendering the trades (table and markers) costs the page.

Median of 5 loads each (after one untimed warm-up load, so the server's caches are warm, the browser's cold).
The resource timings of every load say which request dominates. For context, the API latencies of the
pages' main requests are measured from Python (httpx). No peer ships a dashboard for RL trading runs.

Usage: ``.venv/bin/python bench/bench_ui.py``; needs ``/usr/bin/chromium`` and ``frontend/dist`` (``make
setup``); writes ``bench/results/bench_ui.json``; exit status 0 even when a goal is missed.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

import bench_api
from bench_api import seed_core, seed_points_postgres, seed_points_sqlite, start_server, stop_server
from bench_report import RESULTS_DIR, Row, progress_steps

ROOT = Path(__file__).resolve().parents[1]
RESULTS = RESULTS_DIR / "bench_ui.json"
WEB = ROOT / "frontend" / "dist" / "index.html"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1440, "height": 1000}
TOKEN_KEY = "tradelab.token"  # frontend/src/api/auth.ts
EXPERIMENTS = 1_000
RUNS = bench_api.RUNS  # 10,000
VAL_STEPS = 100
BARS = 525_600  # a year of 1-minute bars
TRADES = 1_000
EXPERIMENT_PAGE = 50  # what the experiments page asks for (frontend/src/api/queries.ts)
SAMPLES = 5
API_REPEATS = 10
TIMEOUT_MS = 30_000
AGENT_RGB = (0x4D, 0xAB, 0xF7)  # the first palette colour (frontend/src/components/charts/Chart.tsx)
Step = Callable[[str, int], Callable[[], None]]

# Runs before the app's scripts in every document: the token, and a frame loop that records when the
# condition named by window.__bench.cond first holds (performance.now(), ms from navigation start).
WATCHER = """
((token, cond, expected) => {
  localStorage.setItem(__KEY__, token);
  window.__bench = { cond, done: null, t0: 0 };
  const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const conds = {
    dashboard: () => {
      const states = document.querySelector('[data-testid=runs-by-state]');
      if (!states || !visible(states)) return false;
      if (!document.querySelectorAll('[data-testid=best-runs] tbody tr').length) return false;
      const counts = [...states.querySelectorAll('[data-testid^=state-count-]')];
      return counts.reduce((sum, el) => sum + Number(el.textContent), 0) === expected.runs;
    },
    experiments: () => {
      const rows = document.querySelectorAll('[data-testid=experiment-row]');
      if (rows.length !== expected.rows || rows[0].dataset.id !== String(expected.first)) return false;
      const link = rows[0].querySelector('[data-testid=experiment-name]');
      if (!link || !visible(link)) return false;
      const r = link.getBoundingClientRect();
      const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
      return hit !== null && link.contains(hit);
    },
    run: () => {
      const chart = document.querySelector('[data-testid=equity-chart]');
      if (!chart || !(Number(chart.dataset.points) > 0)) return false;
      const [r, g, b] = expected.rgb;
      for (const canvas of chart.querySelectorAll('canvas')) {
        if (!canvas.width || !canvas.height) continue;
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 0; i < pixels.length; i += 4) {
          if (pixels[i + 3] > 200 && Math.abs(pixels[i] - r) < 24 && Math.abs(pixels[i + 1] - g) < 24
              && Math.abs(pixels[i + 2] - b) < 24) return true;
        }
      }
      return false;
    },
  };
  const tick = () => {
    const bench = window.__bench;
    if (bench.cond && bench.done === null) {
      try {
        if (conds[bench.cond]()) bench.done = performance.now();
      } catch (error) { /* not there yet */ }
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})
""".replace("__KEY__", json.dumps(TOKEN_KEY))

# Every finished request of the page (the SSE stream never finishes, so it is not among them).
ENTRIES = """() => ({
  done: window.__bench.done,
  t0: window.__bench.t0,
  nav: (() => { const n = performance.getEntriesByType('navigation')[0];
                return n ? { responseEnd: n.responseEnd, dcl: n.domContentLoadedEventEnd } : null; })(),
  resources: performance.getEntriesByType('resource').map((e) => ({
    name: e.name, start: e.startTime, responseStart: e.responseStart, end: e.responseEnd,
    bytes: e.encodedBodySize, initiator: e.initiatorType })),
})"""


@dataclass
class Load:
    """One timed page load: ms to ready (from navigation start or the click), and the requests on the way."""

    ready_ms: float
    requests: list[dict[str, Any]]
    html_ms: float | None = None


@dataclass
class Figures:
    """What one database measured."""

    label: str
    run_id: int
    bare_run_id: int
    expected_rows: int
    first_id: int
    loads: dict[str, list[Load]] = field(default_factory=dict)
    api: dict[str, list[float]] = field(default_factory=dict)  # seconds
    seed_s: float = 0.0


# ---------------------------------------------------------------- seeding


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh Postgres database under ``TRADELAB_TEST_DATABASE_URL`` (dropped after), or None when it is unset."""
    base = os.environ.get("TRADELAB_TEST_DATABASE_URL")
    if not base:
        yield None
        return
    from sqlalchemy import create_engine, text

    from tradelab.server.db import database_url

    admin = create_engine(database_url(base), isolation_level="AUTOCOMMIT")
    name = f"tradelab_bench_ui_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield database_url(base).rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def write_artifacts(folder: Path, bare: Path) -> None:
    """A year of 1-minute equity for the agent and four baselines, and the agent's trades (test split); ``bare``
    gets the same equity file only (no trades: the control that shows what the trades cost the page)."""
    import polars as pl

    rng = np.random.default_rng(1)
    start = int(np.datetime64("2025-01-01T00:00", "ms").astype(np.int64))
    ts_ms = start + np.arange(BARS, dtype=np.int64) * 60_000
    ts = pl.from_epoch(pl.Series("ts", ts_ms), time_unit="ms").dt.replace_time_zone("UTC")

    def walk(drift: float, vol: float) -> np.ndarray:
        return 10_000.0 * np.exp(np.cumsum(rng.normal(drift, vol, BARS)))

    equity = pl.DataFrame(
        {
            "ts": ts,
            "agent_equity": walk(2e-6, 4e-4),
            "buy_and_hold_equity": walk(1e-6, 5e-4),
            "flat_equity": np.full(BARS, 10_000.0),
            "random_equity": walk(-1e-6, 3e-4),
            "sma_crossover_equity": walk(0.0, 3e-4),
        }
    )
    entries = np.sort(rng.choice(BARS - 60, TRADES, replace=False))
    exits = entries + rng.integers(1, 60, TRADES)
    entry_price = 100 + rng.normal(0, 5, TRADES)
    exit_price = entry_price * (1 + rng.normal(0, 0.002, TRADES))
    size = rng.uniform(0.1, 1.0, TRADES)
    pnl = (exit_price - entry_price) * size
    fees = np.abs(entry_price * size) * 0.0004
    trades = pl.DataFrame(
        {
            "side": np.where(rng.random(TRADES) < 0.5, "long", "short"),
            "entry_time": ts_ms[entries],
            "entry_price": entry_price,
            "exit_time": ts_ms[exits],
            "exit_price": exit_price,
            "size": size,
            "fees": fees,
            "pnl": pnl,
            "net_pnl": pnl - fees,
            "reason": np.full(TRADES, "signal"),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    equity.write_parquet(folder / "equity_test.parquet")
    trades.write_parquet(folder / "trades_test.parquet")
    results = {"test": {"agent": {"sharpe": 1.5, "total_return": 0.12}}}
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    bare.mkdir(parents=True, exist_ok=True)
    os.link(folder / "equity_test.parquet", bare / "equity_test.parquet")


def seed(url: str, home: Path, advance: Callable[[], None]) -> tuple[str, int, int]:
    """Seed ``url`` (see the module's doc); the admin token, the id of the run with a year of equity and trades,
    and the id of the run with the same equity and no trades."""
    from sqlalchemy import func, select, text, update

    from tradelab.server.db import make_engine
    from tradelab.server.models import Run, utcnow

    bench_api.EXPERIMENTS = EXPERIMENTS  # seed_core reads the module's sizes when called
    token = seed_core(url)
    advance()
    if url.startswith("sqlite"):
        seed_points_sqlite(Path(url.removeprefix("sqlite:///")))
    else:
        seed_points_postgres(url)
    advance()
    folder, bare = home / "artifacts" / "run-with-a-year", home / "artifacts" / "run-without-trades"
    write_artifacts(folder, bare)
    advance()
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            run_id = int(connection.execute(select(func.min(Run.id))).scalar_one())
            for target, where in ((run_id, folder), (run_id + 1, bare)):
                connection.execute(
                    update(Run)
                    .where(Run.id == target)
                    .values(state="succeeded", artifact_url=str(where), started_at=utcnow(), ended_at=utcnow())
                )
            # Test metrics once per succeeded run, validation curves of 100 steps (same SQL on both databases).
            for keys, steps in (("'test/sharpe' UNION ALL SELECT 'test/total_return'", 1), (None, VAL_STEPS)):
                keys = keys or "'val/sharpe' UNION ALL SELECT 'val/total_return'"
                connection.execute(
                    text(
                        "WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x < :last), "
                        f"k(key) AS (SELECT {keys}) "
                        "INSERT INTO metric_points (run_id, key, step, value) "
                        "SELECT r.id, k.key, s.x, ((r.id * 7919 + s.x * 31) % 1000) / 250.0 - 1.0 "
                        "FROM runs r CROSS JOIN k CROSS JOIN s WHERE r.state = 'succeeded'"
                    ),
                    {"last": steps - 1},
                )
        with engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()
    finally:
        engine.dispose()
    advance()
    return token, run_id, run_id + 1


# ---------------------------------------------------------------- measurements in the browser


def _path(url: str) -> str:
    """A request's path and query, shortened to what tells the requests apart."""
    parts = urlsplit(url)
    name = parts.path
    if name.startswith("/assets/"):
        return name
    return f"{name}?{parts.query}" if parts.query else name


def _collect(page: Any, since: float = 0.0) -> Load:
    """The load's ready time (relative to ``since``'s click when set) and its requests (relative likewise)."""
    data = page.evaluate(ENTRIES)
    offset = data["t0"] if since else 0.0
    requests = [
        {
            "name": _path(e["name"]),
            "start": e["start"] - offset,
            "end": e["end"] - offset,
            "ttfb": e["responseStart"] - e["start"],
            "bytes": e["bytes"],
        }
        for e in data["resources"]
        if e["start"] >= offset
    ]
    html = data["nav"]["responseEnd"] if data["nav"] and not since else None
    return Load(data["done"] - offset, requests, html)


def _context(browser: Any, token: str, cond: str, expected: dict[str, Any]) -> tuple[Any, Any]:
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(f"{WATCHER}({json.dumps(token)}, {json.dumps(cond)}, {json.dumps(expected)});")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    return context, page


def cold_load(browser: Any, base: str, path: str, token: str, cond: str, expected: dict[str, Any]) -> Load:
    """``path`` loaded in a new context, until ``cond`` holds."""
    context, page = _context(browser, token, cond, expected)
    try:
        page.goto(base + path, wait_until="commit")
        page.wait_for_function("window.__bench.done !== null", polling=50)
        return _collect(page)
    finally:
        context.close()


def in_app_experiments(browser: Any, base: str, token: str, expected: dict[str, Any]) -> Load:
    """The dashboard loaded, then a click on the Experiments nav link, timed from the click to the ready list."""
    context, page = _context(browser, token, "dashboard", expected)
    try:
        page.goto(base + "/", wait_until="commit")
        page.wait_for_function("window.__bench.done !== null", polling=50)
        page.wait_for_timeout(300)  # the user reads the dashboard a moment
        page.evaluate(
            """() => {
              window.__bench = { cond: 'experiments', done: null, t0: performance.now() };
              document.querySelector('[data-testid=nav-experiments]').click();
            }"""
        )
        page.wait_for_function("window.__bench.done !== null", polling=50)
        return _collect(page, since=1.0)
    finally:
        context.close()


def measure_browser(figures: Figures, base: str, token: str, step: Step) -> None:
    """The four page measurements, each one warm-up load and then :data:`SAMPLES` timed loads."""
    from playwright.sync_api import sync_playwright

    expected = {"runs": RUNS, "rows": figures.expected_rows, "first": figures.first_id, "rgb": list(AGENT_RGB)}
    loads: dict[str, Callable[[Any], Load]] = {
        "dashboard": lambda b: cold_load(b, base, "/", token, "dashboard", expected),
        "experiments_cold": lambda b: cold_load(b, base, "/experiments", token, "experiments", expected),
        "experiments_nav": lambda b: in_app_experiments(b, base, token, expected),
        "run": lambda b: cold_load(b, base, f"/runs/{figures.run_id}", token, "run", expected),
        "run_no_trades": lambda b: cold_load(b, base, f"/runs/{figures.bare_run_id}", token, "run", expected),
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            for name, load in loads.items():
                advance = step(f"{figures.label}: browser {name}", SAMPLES + 1)
                load(browser)  # warm-up: the server's caches, not the browser's
                advance()
                samples = []
                for _ in range(SAMPLES):
                    samples.append(load(browser))
                    advance()
                figures.loads[name] = samples
        finally:
            browser.close()


def measure_api(figures: Figures, base: str, token: str, step: Step) -> None:
    """Latencies (s) of the pages' main API requests from Python (keep-alive; one warm-up each)."""
    import httpx

    requests = {
        "equity": (f"/api/runs/{figures.run_id}/equity", {"split": "test", "max_points": 2000}),
        "trades": (f"/api/runs/{figures.run_id}/trades", {"split": "test"}),
        "dashboard": ("/api/dashboard", {}),
        "experiments": ("/api/experiments", {"limit": EXPERIMENT_PAGE, "sort": "-created_at"}),
    }
    advance = step(f"{figures.label}: API from Python", len(requests))
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for name, (path, params) in requests.items():
            client.get(path, params=params).raise_for_status()
            seconds = []
            for _ in range(API_REPEATS):
                started = time.perf_counter()
                response = client.get(path, params=params)
                seconds.append(time.perf_counter() - started)
                response.raise_for_status()
            if name == "equity":
                body = response.json()
                if body["total"] != BARS or not 0 < len(body["ts"]) <= 2000:
                    raise RuntimeError(f"equity: {body['total']} bars, {len(body['ts'])} kept")
            figures.api[name] = seconds
            advance()


def expected_page(base: str, token: str) -> tuple[int, int]:
    """How many rows the experiments page shows, and the first one's id (what the API answers the page)."""
    import httpx

    params = {"limit": EXPERIMENT_PAGE, "sort": "-created_at"}
    response = httpx.get(f"{base}/api/experiments", params=params, headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    data = response.json()["data"]
    return len(data), int(data[0]["id"])


def bench_database(label: str, url: str, home: Path, step: Step) -> Figures:
    """Seed ``url``, serve it, measure the pages in Chromium and the API from Python."""
    advance = step(f"{label}: seed 1k experiments, 10k runs, 5M points, a year of equity", 4)
    started = time.perf_counter()
    token, run_id, bare_run_id = seed(url, home, advance)
    seed_s = time.perf_counter() - started
    process, base = start_server(url, home)
    try:
        rows, first = expected_page(base, token)
        figures = Figures(label, run_id, bare_run_id, rows, first, seed_s=seed_s)
        measure_api(figures, base, token, step)
        measure_browser(figures, base, token, step)
    finally:
        stop_server(process)
    return figures


# ---------------------------------------------------------------- the report


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _p90(values: list[float]) -> float:
    return float(np.quantile(np.array(values), 0.9))


def breakdown(loads: list[Load], ready_ms: float) -> list[dict[str, Any]]:
    """Per request (by name), the median start, end, time to first byte and size over the loads; by end."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for load in loads:
        for request in load.requests:
            by_name.setdefault(request["name"], []).append(request)
    out = []
    for name, found in by_name.items():
        if len(found) < len(loads) // 2 + 1:  # seen in a minority of loads
            continue
        out.append(
            {
                "name": name,
                "start_ms": _median([r["start"] for r in found]),
                "end_ms": _median([r["end"] for r in found]),
                "ttfb_ms": _median([r["ttfb"] for r in found]),
                "kb": _median([r["bytes"] for r in found]) / 1024,
            }
        )
    out.sort(key=lambda r: r["end_ms"])
    html = [load.html_ms for load in loads if load.html_ms is not None]
    if html:
        out.insert(0, {"name": "(document)", "start_ms": 0.0, "end_ms": _median(html), "ttfb_ms": None, "kb": None})
    out.append({"name": "(ready)", "start_ms": None, "end_ms": ready_ms, "ttfb_ms": None, "kb": None})
    return out


LABELS = {
    "dashboard": ("dashboard first load → best-runs + runs-by-state rendered", 1000.0),
    "experiments_cold": ("experiment list, cold load of /experiments → first row clickable", None),
    "experiments_nav": ("experiment list, in-app nav (click nav-experiments) → first row clickable", 300.0),
    "run": (f"run detail, {BARS:,} 1-min bars + {TRADES:,} trades → equity chart drawn", 1000.0),
    "run_no_trades": (f"run detail, same {BARS:,} bars, no trades file → equity chart drawn", None),
}
NO_GOAL = {"experiments_cold": "— (goal is on the in-app nav)", "run_no_trades": "— (control)"}
API_LABELS = {
    "equity": f"API /runs/<id>/equity, {BARS:,} → 2,000 pts (LTTB), from Python",
    "trades": f"API /runs/<id>/trades, {TRADES:,} trades, from Python",
    "dashboard": "API /dashboard, from Python",
    "experiments": f"API /experiments?limit={EXPERIMENT_PAGE}, from Python",
}


def rows_for(figures: Figures, prefix: str) -> list[Row]:
    """One row per page measurement (ms from navigation start, or from the click), then the API rows."""
    rows = []
    for name, (metric, goal) in LABELS.items():
        samples = [load.ready_ms for load in figures.loads[name]]
        ours = _median(samples)
        rows.append(
            Row(
                f"{prefix}{metric}",
                "ms",
                ours,
                f"≤ {goal:.0f} ms" if goal is not None else NO_GOAL[name],
                None if goal is None else ours <= goal,
                samples_ours=[s / 1000 for s in samples],
            )
        )
    for name, metric in API_LABELS.items():
        seconds = figures.api[name]
        rows.append(Row(f"{prefix}{metric}", "ms", _median(seconds) * 1000, "— (context)", None, samples_ours=seconds))
    return rows


def print_report(all_figures: list[Figures], total_s: float) -> None:
    """The table, what each page waits for, and the JSON file."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.width = max(console.width, 140)
    multi = len(all_figures) > 1
    rows: list[Row] = []
    details: dict[str, Any] = {}
    for figures in all_figures:
        rows.extend(rows_for(figures, f"[{figures.label}] " if multi else ""))
    labels = ", ".join(f.label for f in all_figures)
    table = Table(title=f"Dashboard in Chromium (headless), tradelab serve over {labels}; peer: no peer")
    for name in ("metric", "median", "p90 (min–max)", "goal", "pass"):
        table.add_column(name, justify="left" if name in ("metric", "goal") else "right")
    for row in rows:
        samples = [s * 1000 for s in row.samples_ours]
        spread = f"{_p90(samples):.1f} ({min(samples):.1f}–{max(samples):.1f})"
        passed = "—" if row.passed is None else "[green]pass[/]" if row.passed else "[bold red]FAIL[/]"
        table.add_row(row.metric, row.show(row.ours), spread, row.goal, passed)
    console.print(table)
    console.print("peer: no peer (no other project ships a dashboard for RL trading runs)")

    for figures in all_figures:
        details[figures.label] = {}
        for name, (metric, _) in LABELS.items():
            loads = figures.loads[name]
            parts = breakdown(loads, _median([load.ready_ms for load in loads]))
            details[figures.label][name] = parts
            title = f"[{figures.label}] {metric}: median request timings (ms from start)"
            sub = Table(title=title, title_justify="left")
            for column in ("request", "start", "end", "ttfb", "KiB"):
                sub.add_column(column, justify="left" if column == "request" else "right")
            for part in parts:
                sub.add_row(
                    part["name"][:90],
                    *(
                        "" if part[key] is None else f"{part[key]:.1f}"
                        for key in ("start_ms", "end_ms", "ttfb_ms", "kb")
                    ),
                )
            console.print(sub)

    misses = [row for row in rows if row.passed is False]
    for row in misses:
        console.print(f"[bold red]MISSED[/] {row.metric}: {row.show(row.ours)}; goal {row.goal}")
    if not misses:
        console.print("[green]all goals met[/]")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "bench": "ui",
        "peer": "no peer",
        "sizes": {
            "experiments": EXPERIMENTS,
            "runs": RUNS,
            "equity_bars": BARS,
            "trades": TRADES,
            "experiment_page": EXPERIMENT_PAGE,
        },
        "samples": SAMPLES,
        "browser": str(CHROMIUM),
        "seed_s": {f.label: f.seed_s for f in all_figures},
        "total_s": total_s,
        "requests": details,
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "results": [{**asdict(row), "ratio": None} for row in rows],
    }
    RESULTS.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    console.print(f"results written to {RESULTS}")


def main() -> None:
    """Seed, serve and measure SQLite (and Postgres when configured); print the table, write the JSON."""
    import warnings

    warnings.filterwarnings("ignore")
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing (make test installs Debian's chromium)")
    if not WEB.exists():
        sys.exit(f"{WEB} is missing: build the dashboard (make setup, or cd frontend && npm run build)")
    started = time.perf_counter()
    all_figures: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="tradelab-bench-ui-") as tmp, progress_steps() as step:
        home = Path(tmp) / "sqlite"
        home.mkdir()
        all_figures.append(bench_database("sqlite", f"sqlite:///{home / 'tradelab.db'}", home, step))
        with postgres_database() as pg_url:
            if pg_url is not None:
                home = Path(tmp) / "postgres"
                home.mkdir()
                all_figures.append(bench_database("postgres", pg_url, home, step))
    print_report(all_figures, time.perf_counter() - started)


if __name__ == "__main__":
    main()
