"""The ``tradelab`` command line. Each layer keeps its own sub-app next to its code."""

from __future__ import annotations

import typer

from tradelab import __version__
from tradelab.compute.cli import serverless
from tradelab.data.cli import app as data_app
from tradelab.env.cli import app as env_app
from tradelab.experiments.cli import ensemble, evaluate, run
from tradelab.experiments.sweep_cli import sweep
from tradelab.server.cli import db_app, init, openapi, serve, worker_app
from tradelab.tools.cli import app as tools_app

app = typer.Typer(
    name="tradelab",
    help="tradelab: an RL trading lab — candle store, indicator tools, trading envs, experiments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(tools_app, name="tools")
app.add_typer(env_app, name="env")
app.command()(run)
app.command()(sweep)
app.command()(init)
app.command()(serve)
app.command()(openapi)
app.add_typer(worker_app, name="worker")
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(serverless)
app.add_typer(db_app, name="db")
app.command()(evaluate)
app.command()(ensemble)


@app.command()
def version() -> None:
    """Print the tradelab version."""
    typer.echo(__version__)


if __name__ == "__main__":
    app()
