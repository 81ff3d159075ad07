"""How every ``tradelab`` command reports bad input: one red line naming the problem, exit status 2."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from tradelab.data.errors import DataError
from tradelab.env.market import EnvDataError
from tradelab.experiments.config import ConfigError
from tradelab.tools.errors import ToolError

F = TypeVar("F", bound=Callable[..., Any])
errors = Console(stderr=True)


def reports_errors(command: F) -> F:
    """Turn a data, tool, env or config error into ``error: <message>`` and exit status 2 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (DataError, ToolError, EnvDataError, ConfigError) as exc:
            errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
