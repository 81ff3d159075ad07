"""``tradelab env``: check an env config and play one episode with a rule-based policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer
from gymnasium.utils.env_checker import check_env
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from tradelab.cli_errors import reports_errors
from tradelab.env.config import EnvConfig
from tradelab.env.market import EnvDataError
from tradelab.env.policies import POLICIES, run_episode
from tradelab.env.trading_env import TradingEnv
from tradelab.plugins import field_errors

app = typer.Typer(help="Check trading env configs and run episodes.", no_args_is_help=True)
console = Console()


def load_config(path: Path) -> EnvConfig:
    """An :class:`EnvConfig` from a JSON file, or an :class:`EnvDataError` naming the file and the fields."""
    try:
        return EnvConfig.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EnvDataError(f"{path}: {exc.strerror}") from None
    except ValidationError as exc:
        raise EnvDataError(f"{path}: invalid env config: {field_errors(exc, root='config')}") from None


@app.command()
@reports_errors
def check(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Env config JSON file (EnvConfig).")],
    policy: Annotated[
        Literal["sma", "sma_crossover", "hold", "flat", "random"], typer.Option(help="Rule that plays the episode.")
    ] = "sma",
    seed: Annotated[int, typer.Option(help="Episode seed.")] = 0,
) -> None:
    """Build the env, run Gymnasium's env checker, then play one episode and print its summary."""
    config = load_config(config_path)
    env = TradingEnv(config)
    check_env(env, skip_render_check=True)
    console.print(f"[green]gymnasium check_env passed[/] for {env.core.market.dataset}")
    console.print(
        f"observation {env.observation_space.shape or 'dict'}, action space {env.action_space}, "
        f"{len(env.core.market.features.columns)} features, window {config.window}"
    )
    summary, trades = run_episode(env, POLICIES[policy](env), seed=seed)
    print_summary(summary, policy)
    console.print(f"{len(trades)} trades; last: {json.dumps(trades[-1], default=str) if trades else '-'}")


def print_summary(summary: dict[str, object], policy: str) -> None:
    """An episode summary as a two-column table."""
    table = Table("episode", policy, title="episode summary")
    for key, value in summary.items():
        if key in ("start_time", "end_time"):
            value = datetime.fromtimestamp(int(value) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")  # type: ignore[arg-type]
        elif isinstance(value, float):
            value = f"{value:.4%}" if key in ("return", "max_drawdown", "win_rate") else f"{value:,.4f}"
        table.add_row(key, str(value))
    console.print(table)
