"""``tradelab tools``: list, inspect, compute and check indicator tools for look-ahead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from tradelab.atomic import atomic_write
from tradelab.cli_errors import reports_errors
from tradelab.data.ingest.synth import generate_bars
from tradelab.data.store import Store
from tradelab.tools.base import Bars
from tradelab.tools.errors import ToolError
from tradelab.tools.features import FeaturePipeline, FeatureSpec
from tradelab.tools.lookahead import SAMPLE_BARS, LookaheadGuard, Verdict
from tradelab.tools.registry import default_registry

app = typer.Typer(help="List, inspect, compute and check indicator tools.", no_args_is_help=True)
console = Console()


def parse_tool_option(text: str) -> FeatureSpec:
    """``RSI:timeperiod=14,as=rsi14`` -> a feature spec; values are JSON where they parse (numbers, booleans)."""
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    alias = None
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, raw = item.partition("=")
        if not sep:
            raise ToolError(f"--tool {text!r}: expected NAME:param=value,..., got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key.strip() == "as":
            alias = str(value)
        else:
            params[key.strip()] = value
    return FeatureSpec.model_validate({"tool": name.strip(), "params": params, "as": alias})


@app.command("list")
def list_tools(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    search: Annotated[
        str | None, typer.Argument(help="Only tools whose name, group or description contain this.")
    ] = None,
) -> None:
    """List every registered tool: TA-Lib pack, built-ins, manifest and plugin tools."""
    registry = default_registry()
    tools = [t for t in registry if not search or search.lower() in f"{t.name} {t.group} {t.description}".lower()]
    if as_json:
        rows = [
            {
                "name": t.name,
                "version": t.version,
                "group": t.group,
                "origin": t.origin,
                "description": t.description,
                "inputs": list(t.inputs),
                "outputs": t.outputs(t.parse_params()),
                "warmup": t.warmup(t.parse_params()),
                "causal": t.causal,
            }
            for t in tools
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "group", "origin", "inputs", "outputs", "description", title=f"{len(tools)} tools")
    for t in tools:
        table.add_row(
            t.name, t.group, t.origin, ",".join(t.inputs), ",".join(t.outputs(t.parse_params())), t.description
        )
    console.print(table)
    for warning in registry.warnings:
        console.print(f"[yellow]skipped:[/] {warning}", highlight=False, soft_wrap=True)


@app.command()
@reports_errors
def show(name: Annotated[str, typer.Argument(help="Tool name (case-insensitive).")]) -> None:
    """Show a tool's parameters (JSON Schema), inputs, outputs and warm-up with default parameters."""
    tool = default_registry().get(name)
    params = tool.parse_params()
    console.print(f"[bold]{tool.name}[/] {tool.version} ({tool.origin}) — {tool.description}")
    console.print(f"group: {tool.group or '-'}; causal: {tool.causal}")
    console.print(f"inputs: {', '.join(tool.inputs)}")
    console.print(f"outputs: {', '.join(tool.outputs(params))}")
    console.print(f"warm-up with defaults: {tool.warmup(params)} bars")
    console.print("parameters (JSON Schema):")
    typer.echo(json.dumps(tool.params_schema(), indent=2))


@app.command()
@reports_errors
def compute(
    symbol: Annotated[str, typer.Argument(help="Dataset symbol.")],
    tools: Annotated[list[str], typer.Option("--tool", help="NAME[:param=value,...,as=alias]; repeat for more tools.")],
    timeframe: Annotated[str, typer.Option("--timeframe", "-t", help="Bar length.")] = "1m",
    start: Annotated[str | None, typer.Option(help="First bar (UTC), inclusive.")] = None,
    end: Annotated[str | None, typer.Option(help="End (UTC), exclusive.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write ts + feature columns to this Parquet file.")] = None,
) -> None:
    """Compute tools over a stored dataset (cached by dataset version, tool version and parameters)."""
    pipeline = FeaturePipeline([parse_tool_option(t) for t in tools])
    features = pipeline.compute_dataset(Store(), symbol, timeframe, start=start, end=end)
    frame = pl.DataFrame(
        {"ts": features.ts, **{c: features.values[:, i] for i, c in enumerate(features.columns)}}
    ).with_columns(pl.col("ts").cast(pl.Datetime("ms", "UTC")))
    table = Table("column", "first defined bar", "mean", "std", "min", "max", "last", title=f"{symbol}/{timeframe}")
    defined = frame.slice(features.warmup)
    for column in features.columns:
        values = defined[column]
        table.add_row(
            column,
            str(defined["ts"][0]) if defined.height else "-",
            *(f"{v:.6g}" if v is not None else "-" for v in (values.mean(), values.std(), values.min(), values.max())),
            f"{values[-1]:.6g}" if defined.height else "-",
        )
    console.print(table)
    console.print(f"{frame.height:,} bars, {len(features.columns)} columns, warm-up {features.warmup} bars")
    if out is not None:
        atomic_write(out, lambda tmp: frame.write_parquet(tmp))
        console.print(f"written to {out}")


@app.command()
@reports_errors
def check(
    tools: Annotated[
        list[str] | None, typer.Argument(metavar="[NAME[:param=value,...]]...", help="Tools to check.")
    ] = None,
    check_all: Annotated[bool, typer.Option("--all", help="Check every registered tool, with its defaults.")] = False,
    dataset: Annotated[
        str | None, typer.Option(help=f"Check on this stored dataset's first {SAMPLE_BARS:,} bars, not synthetic ones.")
    ] = None,
    timeframe: Annotated[str, typer.Option("--timeframe", "-t", help="Bar length of --dataset.")] = "1m",
) -> None:
    """Run the look-ahead guard now: perturb later bars, require earlier outputs to stay put; exit 1 on a leak.

    The guard also runs by itself the first time a tool is used with given parameters (features, envs,
    runs); this re-checks and records the verdicts it would use.
    """
    registry = default_registry()
    if check_all == bool(tools):
        raise ToolError("name the tools to check, or pass --all")
    specs = [FeatureSpec(tool=t.name) for t in registry] if check_all else [parse_tool_option(t) for t in tools or []]
    if dataset is not None:
        bars = Bars.from_frame(Store().load(dataset, timeframe))
        source = f"{dataset}/{timeframe}"
    else:
        bars = Bars.from_frame(generate_bars(SAMPLE_BARS / 1440, seed=0, gaps=False))
        source = "synthetic 1m bars"
    guard = LookaheadGuard()
    table = Table("tool", "params", "verdict", "first bar whose past moved", title=f"look-ahead on {source}")
    refused, verdicts = [], []
    for spec in specs:
        tool = registry.get(spec.tool)
        params = tool.parse_params(spec.params)
        try:
            verdict = guard.verdict(tool, params, bars, fresh=True)
        except ToolError as exc:
            refused.append(str(exc))
            table.add_row(tool.name, json.dumps(spec.params), "[bold red]error[/]", "see below")
            continue
        verdicts.append(verdict)
        if verdict.leak is not None and tool.causal:
            refused.append(str(verdict.error()))
        table.add_row(tool.name, json.dumps(verdict.params), *_describe(verdict, tool.causal))
    console.print(table)
    leaks = sum(v.leak is not None for v in verdicts)
    unchecked = sum(not v.checked for v in verdicts)
    console.print(
        f"{len(specs)} tool(s) on {bars.n:,} bars: {len(verdicts) - leaks - unchecked} causal, {leaks} leaking, "
        f"{unchecked} not checked, {len(specs) - len(verdicts)} failed"
    )
    for message in refused:
        console.print(f"[bold red]refused:[/] {message}", highlight=False, soft_wrap=True)
    if refused:
        raise typer.Exit(1)


def _describe(verdict: Verdict, causal: bool) -> tuple[str, str]:
    """The verdict cell and the leak cell of a row of ``tools check``."""
    if verdict.leak is None:
        return ("causal", "-") if verdict.checked else ("[yellow]not checked[/]: no output defined", "-")
    return ("[bold red]LEAKS[/]" if causal else "[yellow]leaks, declared non-causal[/]"), verdict.leak.where()
