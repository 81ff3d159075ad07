"""What a run's agent executes, by the run's kind (:class:`~tradelab.server.models.RunKind`).

Each job takes the run's :class:`Job` (config, seed, parameters, input folders, where to write, how to report)
and returns the artifact folder of its result. Every kind reports the validation curve it has and the result's
metrics under ``test/`` (``oos/`` for an evaluation), so the dashboard and the budgets treat them alike. Reporting
never fails a job: the reporter (:class:`tradelab.server.agent.Reporter`) keeps what the API cannot take yet and
delivers it later, or leaves it in the attempt's ``outcome.json``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradelab.experiments.config import ExperimentConfig
    from tradelab.server.agent import Reporter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One run's work: see ``GET /api/runs/{id}/spec``."""

    run_id: int
    config: ExperimentConfig
    seed: int
    params: dict[str, Any]
    inputs: list[str]
    out: str
    reporter: Reporter

    def on_evaluation(self, timesteps: int, metrics: dict[str, Any]) -> bool:
        """The runner's validation callback: each validation's metrics as ``val/…`` points (the reporter keeps them
        until the API takes them; the training goes on meanwhile)."""
        self.reporter.metrics(timesteps, metrics, "val")
        return True


def train(job: Job) -> str:
    """Train and test the experiment with the run's seed (resuming from a checkpoint an earlier attempt left); with
    walk-forward folds, the artifact folder is the last fold's and ``test/…`` the folds' mean."""
    from tradelab.experiments.runner import resume_experiment, run_experiment

    earlier = _checkpointed(job.out)
    if earlier is not None:
        logger.info("run %d: resuming from the checkpoint in %s", job.run_id, earlier)
        outcome = resume_experiment(earlier, progress=False, on_evaluation=job.on_evaluation)
        _report_test(job, outcome.results)
        return outcome.url
    logger.info("run %d: training seed %d", job.run_id, job.seed)
    outcomes = run_experiment(job.config, job.out, seed=job.seed, progress=False, on_evaluation=job.on_evaluation)
    tested = [outcome.results["test"]["agent"] for outcome in outcomes]
    steps = outcomes[-1].results["timesteps"]
    if len(outcomes) > 1:  # walk-forward: each fold's test as fold<k>/…, their mean as test/…
        for fold, metrics in enumerate(tested):
            job.reporter.metrics(steps, metrics, f"fold{fold}")
    job.reporter.metrics(steps, _mean(tested), "test")
    for outcome in outcomes:
        logger.info("run %d: stopped by %s; artifacts in %s", job.run_id, outcome.results["stopped_by"], outcome.url)
    return outcomes[-1].url  # the latest test window's folder


def sweep(job: Job) -> str:
    """An Optuna study of ``params.trials`` trials over the config's ``sweep`` section (its storage a SQLite file in
    a scratch folder of the pod; the trials' run folders go to the run's folder); reports each trial's score as
    ``sweep/value`` at step = trial number and the best trial's test metrics."""
    from optuna.trial import TrialState

    from tradelab.experiments.artifacts import RunStorage
    from tradelab.experiments.sweep import run_sweep

    trials = int(job.params["trials"])
    config = job.config.model_copy(update={"seeds": [job.seed]})
    with tempfile.TemporaryDirectory(prefix="tradelab-sweep-") as scratch:
        study = run_sweep(config, trials=trials, out=job.out, storage=f"sqlite:///{scratch}/sweep.db")
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for trial in done:
        job.reporter.metrics(trial.number, {"value": trial.value}, "sweep")
    if not done:
        raise RuntimeError(f"none of the sweep's {trials} trials completed (all pruned or failed)")
    best = max(done, key=lambda trial: trial.value if trial.value is not None else float("-inf"))
    logger.info("run %d: best trial %d (value %.4f) with %s", job.run_id, best.number, best.value, best.params)
    url = str(best.user_attrs["runs"][0])
    _report_test(job, RunStorage(url).read_json("results.json"))
    return url


def ensemble(job: Job) -> str:
    """The members' majority (or mean) action, evaluated on their test segment beside the baselines."""
    from tradelab.experiments.ensemble import EnsembleConfig, evaluate_ensemble

    name = f"{job.config.name}-ensemble-{job.run_id}"
    outcome = evaluate_ensemble(EnsembleConfig(name=name, runs=job.inputs), job.out)
    _report_test(job, outcome.results)
    return outcome.url


def evaluate(job: Job) -> str:
    """Score the run named in ``params.run_id`` on the newest ``params.days`` days of its dataset; the metrics go
    out as ``oos/…`` at step = the window's last bar (epoch seconds), also filed under the scored run."""
    from tradelab.experiments.monitoring import evaluate_recent, recorded_points

    (target,) = job.inputs
    results = evaluate_recent(target, int(job.params["days"]))
    window = results["window"]
    end = datetime.fromtimestamp(window["end"] / 1000, UTC)
    logger.info("run %d: scored run %s over %d bars up to %s", job.run_id, job.params["run_id"], window["bars"], end)
    job.reporter.metrics(window["end"] // 1000, recorded_points(results), "oos")
    return target


#: The job of each run kind.
JOBS: dict[str, Callable[[Job], str]] = {"train": train, "sweep": sweep, "ensemble": ensemble, "evaluate": evaluate}


def _report_test(job: Job, results: dict[str, Any]) -> None:
    """The agent's test metrics of a result, as ``test/…`` at its training steps."""
    job.reporter.metrics(results["timesteps"], results["test"]["agent"], "test")


def _mean(metrics: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of each numeric metric over the folds."""
    names = [k for k, v in metrics[0].items() if isinstance(v, int | float)]
    return {name: sum(float(m[name]) for m in metrics) / len(metrics) for name in names}


def _checkpointed(out: str) -> str | None:
    """The folder under ``out`` of an earlier attempt of this run that left a checkpoint, or None."""
    from tradelab.experiments.artifacts import RunStorage

    storage = RunStorage(out)
    found = sorted(storage.fs.glob(storage.path("*/checkpoint.zip")))
    if not found:
        return None
    folder = found[-1].rsplit("/", 1)[0]
    return folder if "://" not in out else f"{out.split('://', 1)[0]}://{folder}"
