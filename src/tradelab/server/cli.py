"""``tradelab init``, ``tradelab serve`` and ``tradelab db upgrade|seed``: set up and run the control plane."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from tradelab.cli_errors import reports_errors

db_app = typer.Typer(help="The control plane's database: migrations and seed data.", no_args_is_help=True)
console = Console()


@reports_errors
def init() -> None:
    """Create ``$TRADELAB_HOME``, migrate the database and print a fresh admin token (shown only this once)."""
    from tradelab.server.db import database_url, make_engine, session_factory, transaction, upgrade
    from tradelab.server.security import issue_token
    from tradelab.settings import get_settings

    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade()
    with transaction(session_factory(make_engine())) as session:
        secret = issue_token(session, "admin (tradelab init)")
    url = database_url()
    console.print(f"home: {settings.home}\ndatabase: {url.split('@')[-1] if '@' in url else url}", highlight=False)
    console.print("admin token (store it now; it is not shown again):", highlight=False)
    typer.echo(secret)


@db_app.command("upgrade")
@reports_errors
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the database migrations (to the latest by default)."""
    from tradelab.server.db import upgrade

    upgrade(revision=revision)
    console.print(f"database migrated to {revision}")


@db_app.command("seed")
@reports_errors
def db_seed() -> None:
    """Register every dataset of the candle store (with its validation report)."""
    from tradelab.data.store import Store
    from tradelab.server.db import make_engine, session_factory, transaction
    from tradelab.server.registry import register_store

    with transaction(session_factory(make_engine())) as session:
        rows = register_store(session, Store())
        for row in rows:
            console.print(f"{row.symbol}/{row.timeframe}@{row.version[:12]}: {row.rows:,} bars", highlight=False)
    console.print(f"{len(rows)} dataset(s) registered")


@reports_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the API (FastAPI under uvicorn); OpenAPI docs at /docs."""
    import uvicorn

    from tradelab.server.app import create_app
    from tradelab.server.log import configure_logging

    configure_logging()
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")


@reports_errors
def worker(
    api_url: Annotated[str, typer.Option(help="The API that runs report to.")] = "http://127.0.0.1:8000",
    concurrency: Annotated[int, typer.Option(help="Most runs active at once.")] = 2,
    interval: Annotated[float, typer.Option(help="Seconds between reconciler ticks.")] = 1.0,
    heartbeat_timeout: Annotated[float, typer.Option(help="Seconds of silence before a run is stopped.")] = 120.0,
) -> None:
    """Run the reconciler: claim queued runs, start them on the local backend, watch them, reap orphans."""
    import signal
    import threading

    from tradelab.compute.local import LocalBackend
    from tradelab.server.db import make_engine
    from tradelab.server.log import configure_logging
    from tradelab.server.worker import Reconciler, WorkerConfig, worker_env
    from tradelab.settings import get_settings

    configure_logging()
    config = WorkerConfig(api_url, concurrency, heartbeat_timeout, env=worker_env())
    reconciler = Reconciler(make_engine(), LocalBackend(get_settings().home / "compute"), config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"worker: reconciling every {interval} s, up to {concurrency} run(s), reporting to {api_url}")
    reconciler.run_forever(stop, interval)


def agent(
    run_id: Annotated[int, typer.Option(help="The run to execute.")],
    seed: Annotated[int, typer.Option(help="The run's seed.")] = 0,
) -> None:
    """Execute one run for the control plane (started by the worker; reads its token from the environment)."""
    from tradelab.server.agent import run_agent

    raise typer.Exit(run_agent(run_id, seed))
