"""``tradelab run``: train, select and test an agent from an experiment config, and print the results table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tradelab.cli_errors import reports_errors
from tradelab.data.store import Store
from tradelab.experiments.config import load_config
from tradelab.experiments.metrics import ANNUALISED, window_caveat

console = Console()
if not console.is_terminal:
    console.width = max(console.width, 120)  # rich assumes 80 columns in logs and pipes: the table needs more
#: The columns of the results table: metric key, header, format.
COLUMNS = (
    ("total_return", "return", "{:+.2%}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("max_drawdown", "max DD", "{:.2%}"),
    ("calmar", "Calmar", "{:.2f}"),
    ("win_rate", "win rate", "{:.1%}"),
    ("n_trades", "trades", "{:,.0f}"),
    ("exposure", "exposure", "{:.1%}"),
    ("fees", "fees", "{:,.2f}"),
)


@reports_errors
def run(
    config_path: Annotated[
        Path | None, typer.Argument(metavar="CONFIG", help="Experiment config (YAML or JSON); omit with --resume.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Parent folder of the run folders.")] = Path("runs"),
    seed: Annotated[int | None, typer.Option(help="Run only this seed (default: the config's seeds).")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config value: key.path=value (repeatable).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar while training.")] = True,
    resume: Annotated[
        str | None, typer.Option(metavar="RUN_DIR", help="Continue an interrupted run from its checkpoint.")
    ] = None,
) -> None:
    """Train on the train segment, select on validation, test beside the baselines; write the run's artifacts.

    Ctrl-C stops training cleanly: the checkpoint is saved and the model tested; ``--resume RUN_DIR`` goes on.
    """
    from tradelab.experiments.runner import resume_experiment, run_experiment  # torch and SB3 load only here

    if resume is not None:
        outcomes = [resume_experiment(resume, progress=progress)]
    elif config_path is None:
        raise typer.BadParameter("give an experiment CONFIG, or --resume RUN_DIR")
    else:
        config = load_config(config_path, set_ or (), store=Store())
        outcomes = run_experiment(config, out, seed=seed, progress=progress)
    for outcome in outcomes:
        print_results(outcome.results, outcome.url)
        console.print(f"report: {outcome.url.rstrip('/')}/report.html")
        if outcome.results["stopped_by"] == "interrupted":
            console.print(f"[yellow]interrupted[/]: continue with `tradelab run --resume {outcome.url}`")
    if len(outcomes) > 1:
        from tradelab.experiments.summary import summarize

        print_summary(summarize([o.results for o in outcomes]))


@reports_errors
def evaluate(
    run_dir: Annotated[str, typer.Argument(metavar="RUN_DIR", help="A run folder written by `tradelab run`.")],
    split: Annotated[str, typer.Option(help="train, val, test, or a date range START..END (UTC).")] = "test",
    dataset: Annotated[
        str | None,
        typer.Option(
            metavar="SYMBOL[@VERSION]",
            help="Score on this dataset (the run's timeframe, a date range --split), pinned to VERSION if given.",
        ),
    ] = None,
    allow_newer: Annotated[
        bool, typer.Option(help="Accept the run's dataset with bars appended after its version (checked).")
    ] = False,
) -> None:
    """Evaluate a saved run's model again, beside the baselines, on one of its segments or a date range.

    A range overlapping the run's train or validation segment is scored with a warning: it is in-sample.
    """
    from tradelab.experiments.reevaluation import evaluate_run  # torch and SB3 load only for this command

    results = evaluate_run(run_dir, split, dataset=dataset, allow_newer=allow_newer)
    for warning in results["warnings"]:
        console.print(f"[yellow]warning[/]: {warning}")
    print_results(results, run_dir, split=results["split"] if results["split"] in ("train", "val", "test") else None)


def print_results(results: dict[str, Any], url: str, split: str | None = "test") -> None:
    """The metrics of the agent and the baselines on one split as a table, then where the artifacts are.

    :param split: the key of the metrics in ``results``; None for the only other key (a date range's label).
    """
    split = split or next(k for k, v in results.items() if isinstance(v, dict) and "agent" in v)
    fold = "" if results["fold"] is None else f", fold {results['fold']}"
    caveat = window_caveat(next(iter(results[split].values())))  # every policy plays the same bars
    table = Table(
        "policy",
        *(f"{header} †" if caveat and key in ANNUALISED else header for key, header, _ in COLUMNS),
        title=f"{results['name']}: {results.get('split', split)} split, seed {results['seed']}{fold}",
    )
    for name, metrics in results[split].items():
        table.add_row(
            name, *(fmt.format(metrics[key]) for key, _, fmt in COLUMNS), style="bold" if name == "agent" else None
        )
    console.print(table)
    if caveat:
        console.print(f"[yellow]†[/] {caveat}", highlight=False)
    low, high = results["agent_sharpe_ci95"]
    selected = f"; model selected: {results['selected']}" if "selected" in results else ""
    console.print(f"agent Sharpe 95% bootstrap interval: [{low:.2f}, {high:.2f}]{selected}")
    console.print(f"artifacts: {url}")


def print_summary(summary: dict[str, Any]) -> None:
    """The agent's metrics across runs (mean ± std, min, max) beside the baselines' means, and the DSR."""
    table = Table("metric", "agent mean ± std", "min", "max", *summary["baselines"], title="across runs")
    for key, header, fmt in COLUMNS:
        spread = summary["agent"][key]
        baselines = (fmt.format(means[key]) for means in summary["baselines"].values())
        mean = f"{fmt.format(spread['mean'])} ± {fmt.replace('+', '').format(spread['std'])}"
        table.add_row(header, mean, fmt.format(spread["min"]), fmt.format(spread["max"]), *baselines)
    console.print(table)
    best, deflated = summary["best"], summary["best"]["deflated_sharpe"]
    where = f"seed {best['seed']}" + ("" if best["fold"] is None else f", fold {best['fold']}")
    if deflated is not None:
        console.print(
            f"best run ({where}): deflated Sharpe ratio {deflated:.3f}, the probability its true Sharpe is > 0"
        )


@reports_errors
def ensemble(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="Ensemble config: name, runs, split.")],
    out: Annotated[Path, typer.Option(help="Parent folder of the ensemble's run folder.")] = Path("runs"),
) -> None:
    """Evaluate K trained runs as one agent (majority vote, or mean for continuous actions) beside the baselines."""
    from tradelab.experiments.ensemble import evaluate_ensemble, load_ensemble

    config = load_ensemble(config_path)
    outcome = evaluate_ensemble(config, out)
    print_results(outcome.results, outcome.url, split=None)
