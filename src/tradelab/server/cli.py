"""``tradelab init``, ``tradelab serve``, ``tradelab db upgrade|seed`` and ``tradelab openapi``: set up and run the
control plane."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tradelab.cli_errors import reports_errors

if TYPE_CHECKING:
    from tradelab.compute.base import ComputeBackend

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


worker_app = typer.Typer(help="The worker: reconcile runs with compute, or execute one run (on a pod).")


@worker_app.callback(invoke_without_command=True)
@reports_errors
def worker(
    ctx: typer.Context,
    api_url: Annotated[
        str, typer.Option(help="The API that runs report to (reachable from the pods, for RunPod).")
    ] = "http://127.0.0.1:8000",
    backend: Annotated[str, typer.Option(help="Where runs execute: local or runpod.")] = "local",
    concurrency: Annotated[int, typer.Option(help="Most runs active at once.")] = 2,
    interval: Annotated[float, typer.Option(help="Seconds between reconciler ticks.")] = 1.0,
    heartbeat_timeout: Annotated[float, typer.Option(help="Seconds of silence before a run is stopped.")] = 120.0,
    start_grace: Annotated[float, typer.Option(help="Seconds a run may take to send its first heartbeat.")] = 600.0,
    idle_timeout: Annotated[
        float, typer.Option(help="Seconds without CPU or GPU work before a run is stopped.")
    ] = 900.0,
    storage_url: Annotated[
        str | None,
        typer.Option(help="Root of the runs' artifact folders (s3://… for pods).", envvar="TRADELAB_STORAGE_URL"),
    ] = None,
    data_url: Annotated[
        str | None,
        typer.Option(help="Where pods pull datasets from (see tradelab data push).", envvar="TRADELAB_DATA_URL"),
    ] = None,
    image: Annotated[str, typer.Option(help="RunPod: the lab's image.", envvar="TRADELAB_RUNPOD_IMAGE")] = "",
    gpu_type: Annotated[str, typer.Option(help="RunPod: default GPU type id.")] = "NVIDIA GeForce RTX 4090",
    cloud_type: Annotated[str, typer.Option(help="RunPod: SECURE, COMMUNITY or ALL.")] = "SECURE",
    interruptible: Annotated[bool, typer.Option(help="RunPod: rent spot pods (runs resume when preempted).")] = False,
    bid: Annotated[float | None, typer.Option(help="RunPod: spot bid per GPU-hour (default: the minimum).")] = None,
    pod_env: Annotated[
        list[str] | None,
        typer.Option(help="RunPod: KEY=VALUE for every pod (e.g. TRADELAB_S3_ENDPOINT_URL); repeatable."),
    ] = None,
) -> None:
    """Run the reconciler: claim queued runs of one backend, start them, watch them, stop idle or over-budget
    runs, reap orphans. ``tradelab worker run`` is what a started run executes."""
    if ctx.invoked_subcommand is not None:
        return
    import signal
    import threading

    from tradelab.server.db import make_engine
    from tradelab.server.log import configure_logging
    from tradelab.server.worker import Reconciler, WorkerConfig, worker_env

    configure_logging()
    config = WorkerConfig(
        api_url,
        concurrency,
        heartbeat_timeout,
        start_grace,
        idle_timeout,
        storage_url=storage_url,
        data_url=data_url,
        env=worker_env() if backend == "local" else {},
    )
    options = {"image": image, "gpu_type": gpu_type, "cloud_type": cloud_type, "interruptible": interruptible}
    options["env"] = dict(_pair(item) for item in pod_env or [])
    reconciler = Reconciler(make_engine(), make_backend(backend, {**options, "bid_per_gpu": bid}), config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"worker: {backend} backend, every {interval} s, up to {concurrency} run(s), reporting to {api_url}")
    reconciler.run_forever(stop, interval)


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--pod-env")
    return key, value


def make_backend(name: str, runpod_options: dict[str, Any]) -> ComputeBackend:
    """The compute backend ``name`` (``local`` or ``runpod``) as configured by the settings and the options.

    :raises typer.BadParameter: an unknown backend, or RunPod without an API key or an image.
    """
    from tradelab.compute.local import LocalBackend
    from tradelab.settings import get_settings

    settings = get_settings()
    if name == "local":
        return LocalBackend(settings.home / "compute")
    if name != "runpod":
        raise typer.BadParameter(f"unknown backend {name!r}: local or runpod", param_hint="--backend")
    from tradelab.compute.runpod_pods import RunPodBackend, RunPodConfig

    if settings.runpod_api_key is None:
        raise typer.BadParameter("set TRADELAB_RUNPOD_API_KEY to use RunPod", param_hint="--backend")
    if not runpod_options.get("image"):
        raise typer.BadParameter("name the lab's image (TRADELAB_RUNPOD_IMAGE)", param_hint="--image")
    return RunPodBackend(RunPodConfig(**runpod_options), settings.runpod_api_key.get_secret_value())


@worker_app.command("run")
def run_command(
    run_id: Annotated[int, typer.Option(help="The run to execute.")],
    seed: Annotated[int, typer.Option(help="The run's seed.")] = 0,
) -> None:
    """Execute one run for the control plane (what a worker starts; reads its token from the environment)."""
    from tradelab.server.agent import run_agent

    raise typer.Exit(run_agent(run_id, seed))


@reports_errors
def openapi(
    out: Annotated[Path | None, typer.Option(help="Write the schema to this file instead of printing it.")] = None,
) -> None:
    """Print the API's OpenAPI schema as JSON (sorted keys), what the dashboard generates its typed client from.

    No database is touched: the app is built over an in-memory SQLite database it never opens.
    """
    import json

    from tradelab.atomic import atomic_write_text
    from tradelab.server.app import create_app

    app = create_app("sqlite:///:memory:")
    text = json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
    app.state.engine.dispose()
    if out is None:
        typer.echo(text, nl=False)
        return
    atomic_write_text(out, text)
    console.print(f"OpenAPI schema written to {out}", highlight=False)
