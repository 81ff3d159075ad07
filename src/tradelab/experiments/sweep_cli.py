"""``tradelab sweep``: search a config's ``sweep`` space with Optuna, in one process or several sharing one study."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from tradelab.cli_errors import errors, reports_errors
from tradelab.data.store import Store
from tradelab.experiments.cli import console
from tradelab.experiments.config import load_config

if TYPE_CHECKING:
    import optuna

T = TypeVar("T")
#: Lines of a failed worker's log quoted in the error.
_TAIL_LINES = 20


@dataclass(frozen=True, slots=True)
class Worker:
    """An extra worker process and the file its output goes to."""

    index: int
    process: subprocess.Popen[bytes]
    log: Path


@reports_errors
def sweep(
    config_path: Annotated[
        Path, typer.Argument(metavar="CONFIG", help="Experiment config with a sweep section (YAML or JSON).")
    ],
    trials: Annotated[int, typer.Option(min=1, help="Finished trials the study should hold, whoever ran them.")],
    storage: Annotated[
        str | None,
        typer.Option(help="Optuna storage URL (sqlite:///..., postgresql://...); default: <out>/<name>-sweep.db."),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes working on the study from this command.")] = 1,
    out: Annotated[Path, typer.Option(help="Parent folder of the trials' run folders.")] = Path("runs"),
    study_name: Annotated[str | None, typer.Option(help="Study name; the config's name by default.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config value: key.path=value (repeatable).")
    ] = None,
    worker: Annotated[
        int,
        typer.Option(
            "--worker-index",
            min=0,
            help="Index of this command's first worker among all sharing the study (each index draws other values); "
            "its extra workers take the next indices.",
        ),
    ] = 0,
) -> None:
    """Run an Optuna study over the config's sweep section: each trial is an ordinary run with drawn values."""
    config = load_config(config_path, set_ or (), store=Store())
    from tradelab.experiments import sweep as sweeps  # optuna, torch and SB3 load only for this command

    sweeps.check_sweep(config)
    url = storage or sweeps.default_storage(config, out)
    name = study_name or config.name
    argv = [sys.executable, "-m", "tradelab.cli", "sweep", str(config_path), "--trials", str(trials), "--out", str(out)]
    argv += ["--storage", url, "--study-name", name, *(part for override in set_ or () for part in ("--set", override))]
    extra = [
        _spawn(argv, index, out / f"{_safe(name)}-worker{index}.log") for index in range(worker + 1, worker + workers)
    ]
    study = run_beside(
        extra, lambda: sweeps.run_sweep(config, trials=trials, out=out, storage=url, study_name=name, worker=worker)
    )
    print_trials(study, config.evaluation.metric)
    check_workers(extra)


def check_workers(extra: Sequence[Worker]) -> None:
    """Report every extra worker that failed, with the end of its log.

    :raises typer.Exit: with status 1 when one did.
    """
    failed = [w for w in extra if w.process.returncode != 0]
    for w in failed:
        errors.print(f"[bold red]error:[/] worker {w.index} exited with status {w.process.returncode}:")
        errors.print(_tail(w.log), highlight=False, markup=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _spawn(argv: Sequence[str], index: int, log: Path) -> Worker:
    """Start worker ``index`` of the sweep, its output (Optuna's log, its error) going to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        command = [*argv, "--workers", "1", "--worker-index", str(index)]
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    console.print(f"worker {index}: pid {process.pid}, log {log}", highlight=False)
    return Worker(index, process, log)


def run_beside(extra: Sequence[Worker], work: Callable[[], T]) -> T:
    """``work()`` in this process while the extra workers run; waits for them all.

    When ``work`` raises (or is interrupted), the extra workers are interrupted too: their running trials end failed.
    """
    try:
        result = work()
    except BaseException:
        for w in extra:
            w.process.send_signal(signal.SIGINT)
        _wait(extra, timeout=60)
        raise
    _wait(extra)
    return result


def _wait(extra: Sequence[Worker], timeout: float | None = None) -> None:
    for w in extra:
        try:
            w.process.wait(timeout)
        except subprocess.TimeoutExpired:
            w.process.kill()
            w.process.wait()


def _safe(name: str) -> str:
    """``name`` usable in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _tail(log: Path) -> str:
    """The last lines of a worker's log."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-_TAIL_LINES:])


def print_trials(study: optuna.Study, metric: str) -> None:
    """Every trial of ``study`` as a table (number, state, value, one column per param, process), then the best."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    paths = list(dict.fromkeys(path for trial in trials for path in trial.params))
    headers = _headers(paths)
    table = Table("trial", "state", f"validation {metric}", *headers, "pid", title=f"study {study.study_name}")
    for trial in trials:
        params = (_format(trial.params.get(path)) for path in paths)
        table.add_row(
            str(trial.number), trial.state.name, _format(trial.value), *params, _format(trial.user_attrs.get("pid"))
        )
    console.print(table)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        console.print("no trial completed")
        return
    best = study.best_trial
    values = ", ".join(
        f"{header}={_format(best.params[path])}"
        for path, header in zip(paths, headers, strict=True)
        if path in best.params
    )
    console.print(f"best: trial {best.number}, validation {metric} {_format(best.value)}, {values}", highlight=False)
    console.print(f"artifacts: {', '.join(best.user_attrs.get('runs', []))}", highlight=False)
    print_deflated(study)


def print_deflated(study: optuna.Study) -> None:
    """The best trial's test Sharpe deflated for the number of completed trials (Bailey & López de Prado)."""
    from optuna.trial import TrialState

    from tradelab.experiments.artifacts import RunStorage
    from tradelab.experiments.summary import summarize

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(completed) < 2:
        return
    results = [RunStorage(t.user_attrs["runs"][0]).read_json("results.json") for t in completed]
    selected = next(i for i, t in enumerate(completed) if t.number == study.best_trial.number)
    deflated = summarize(results, best=selected)["best"]["deflated_sharpe"]
    if deflated is not None:
        console.print(
            f"deflated Sharpe ratio of trial {study.best_trial.number} on test, after {len(completed)} trials: "
            f"{deflated:.3f} (the probability its true Sharpe is > 0)",
            highlight=False,
        )


def _headers(paths: Sequence[str]) -> list[str]:
    """A short name per param path: its last part, or the whole path where two last parts clash."""
    last = [path.rsplit(".", 1)[-1] for path in paths]
    return [name if last.count(name) == 1 else path for name, path in zip(last, paths, strict=True)]


def _format(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
