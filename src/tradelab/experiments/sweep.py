"""``tradelab sweep``: an Optuna study over the values an experiment config's ``sweep`` section names.

Each trial draws every value of ``sweep.params``, runs the config with them (its first seed, one run
folder per fold, see :func:`tradelab.experiments.runner.run_experiment`) and scores the trial by the best
validation value of ``evaluation.metric``, higher being better. With ``sweep.pruning`` the median pruner
stops a trial whose validation curve falls below the other trials' at the same step.

The study lives in an Optuna RDB storage: a SQLite file under ``out`` by default, or any SQLAlchemy URL
(``postgresql://`` is driven by psycopg 3). Several processes, on one machine or many, can work on one
study: each runs trials until the study holds the requested number of finished (complete or pruned)
trials, counting those finished or still running in every process. A killed process (SIGKILL) leaves
its trial running in the storage, where it keeps its slot.
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.exceptions import StorageInternalError
from optuna.study import MaxTrialsCallback
from optuna.trial import Trial, TrialState
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from tradelab.data.store import Store
from tradelab.experiments.config import (
    ChronologicalSplitConfig,
    ConfigError,
    ExperimentConfig,
    SearchSpace,
    SweepConfig,
    load_config,
)

T = TypeVar("T")
#: States of the trials that hold one of the study's slots: finished, or being run (or queued) by some worker.
CLAIMED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
#: Storage errors of two processes creating the same tables or rows at once; the one that lost retries.
_RACES = (OperationalError, IntegrityError, ProgrammingError, StorageInternalError)
_CATEGORICAL = (type(None), bool, int, float, str)


class SurplusTrialError(Exception):
    """A trial that started after the other workers had claimed the study's last slot; it is dropped as failed."""


def run_sweep(
    config: ExperimentConfig,
    *,
    trials: int,
    out: str | Path,
    storage: str | None = None,
    study_name: str | None = None,
    store: Store | None = None,
    progress: bool = False,
    worker: int = 0,
) -> optuna.Study:
    """Work on the study of ``config``'s sweep until it holds ``trials`` finished trials.

    :param config: the experiment, with a ``sweep`` section.
    :param trials: finished (complete or pruned) trials the study should hold, whoever ran them.
    :param out: parent folder of the trials' run folders (and of the default SQLite storage).
    :param storage: Optuna storage URL; ``sqlite:///<out>/<config.name>-sweep.db`` when None.
    :param study_name: the study; ``config.name`` when None. An existing study is loaded and continued.
    :param store: the candle store; the default one when None.
    :param progress: show a progress bar while each trial trains.
    :param worker: index of this process among those sharing the study; with the trials the study already
        holds, it sets the sampler seed (:func:`sampler_seed`), so that workers do not draw the same values.
    :return: the study, as this worker left it.
    :raises ConfigError: for a config without a sweep section, a split without validation, or a search space
        whose values do not make a valid config (every problem at once, before any training).
    """
    sweep = check_sweep(config)
    study = open_study(sweep, storage or default_storage(config, out), study_name or config.name, worker=worker)
    objective = claiming(make_objective(config, out, store=store, progress=progress), trials)
    study.optimize(
        objective,
        n_trials=max(trials - len(study.get_trials(deepcopy=False, states=CLAIMED)), 0),
        catch=(SurplusTrialError,),
        callbacks=[MaxTrialsCallback(trials, states=CLAIMED)],
    )
    return study


def check_sweep(config: ExperimentConfig) -> SweepConfig:
    """``config``'s sweep section, checked: a validation segment to score on, values that make valid configs.

    :raises ConfigError: listing every problem, each with its path.
    """
    if config.sweep is None:
        raise ConfigError(config.name, ["sweep: missing; a sweep needs a sweep section naming the params to search"])
    problems = [] if _has_validation(config) else ["split: a sweep scores trials on validation; this split has none"]
    for path, space in config.sweep.params.items():
        problems += [f"sweep.params.{path}: {problem}" for problem in _param_problems(config, path, space)]
    if problems:
        raise ConfigError(f"{config.name} (sweep)", problems)
    return config.sweep


def _has_validation(config: ExperimentConfig) -> bool:
    split = config.split
    return split.val > 0 if isinstance(split, ChronologicalSplitConfig) else split.val_bars > 0


def _param_problems(config: ExperimentConfig, path: str, space: SearchSpace) -> list[str]:
    """What is wrong with searching ``path`` over ``space``: the space itself, or a config its values make."""
    problems = _space_problems(space)
    for value in _samples(space):
        try:
            trial_config(config, 0, {path: value})
        except ConfigError as error:
            return [*problems, *error.problems]
    return problems


def _space_problems(space: SearchSpace) -> list[str]:
    """What Optuna would refuse in ``space``, found before the first trial rather than during it."""
    if space.type == "categorical":
        bad = [choice for choice in space.choices or () if not isinstance(choice, _CATEGORICAL)]
        return [f"choices must be null, booleans, numbers or strings; got {bad}"] if bad else []
    problems = []
    bounds = (space.low, space.high, space.step or 1)
    if space.type == "int" and not all(float(value).is_integer() for value in bounds if value is not None):
        problems.append("an int search space needs integer low, high and step")
    if space.log and space.step is not None:
        problems.append("log and step cannot be combined")
    return problems


def _samples(space: SearchSpace) -> list[Any]:
    """Values of ``space`` that stand for all of them: its bounds, or every choice."""
    if space.type == "categorical":
        return list(space.choices or ())
    cast = int if space.type == "int" else float
    return [cast(space.low), cast(space.high)]


def trial_config(config: ExperimentConfig, number: int, values: Mapping[str, Any]) -> ExperimentConfig:
    """The config of trial ``number``: ``config`` without its sweep, with ``values`` set, named ``<name>-t<number>``,
    run with its first seed only.

    :param values: config path (as for ``--set``) -> value.
    :raises ConfigError: when a value makes an invalid config.
    """
    base = config.model_dump(mode="json", by_alias=True, exclude={"sweep"})
    base.update(name=f"{config.name}-t{number}", seeds=config.seeds[:1])
    return load_config(base, [f"{path}={json.dumps(value)}" for path, value in values.items()])


def default_storage(config: ExperimentConfig, out: str | Path) -> str:
    """The SQLite storage URL ``sqlite:///<out>/<config.name>-sweep.db``; creates ``out``.

    :raises ValueError: when ``out`` is a URL rather than a local folder (give a storage URL then).
    """
    if "://" in str(out):
        raise ValueError(f"--out {out} is not a local folder: give the sweep a --storage URL")
    folder = Path(out).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / f'{config.name}-sweep.db'}"


def open_study(sweep: SweepConfig, storage: str, study_name: str, *, worker: int = 0) -> optuna.Study:
    """Create study ``study_name`` in ``storage`` (maximizing), or load it when it exists.

    :param sweep: the sampler seed and whether to prune.
    :param storage: a SQLAlchemy URL; ``postgresql://`` is driven by psycopg 3.
    :param worker: this process's index among those sharing the study (see :func:`sampler_seed`).
    """
    pruner = optuna.pruners.MedianPruner() if sweep.pruning else optuna.pruners.NopPruner()
    study = _retrying(
        lambda: optuna.create_study(
            storage=rdb_storage(storage),
            study_name=study_name,
            direction="maximize",
            pruner=pruner,
            load_if_exists=True,
        )
    )
    study.sampler = optuna.samplers.TPESampler(
        seed=sampler_seed(sweep.sampler_seed, worker, len(study.get_trials(deepcopy=False)))
    )
    return study


def sampler_seed(seed: int, worker: int, existing: int) -> int:
    """The TPE seed of one worker: ``seed`` itself for the first worker of a new study, else one derived from the
    worker index and the trials the study already holds, so that neither a parallel worker nor a resumed sweep
    replays the values already drawn.
    """
    if worker == 0 and existing == 0:
        return seed
    return random.Random(f"{seed}/{worker}/{existing}").getrandbits(32)


def rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage at ``url``: psycopg 3 for PostgreSQL, a patient lock wait for SQLite."""
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def _retrying(open_: Callable[[], T], attempts: int = 5) -> T:
    """``open_()``, tried again when it lost a race with another process creating the same storage."""
    for attempt in range(1, attempts + 1):
        try:
            return open_()
        except _RACES:
            if attempt == attempts:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def make_objective(
    config: ExperimentConfig, out: str | Path, *, store: Store | None = None, progress: bool = False
) -> Callable[[Trial], float]:
    """The objective of a sweep over ``config``: run the trial's config, return its best validation value.

    The trial records its process id (``pid``) and run folders (``runs``) as user attributes. A run
    stopped by the pruner raises :class:`optuna.TrialPruned` once its folder is written; with several
    folds the value is their mean.
    """
    from tradelab.experiments.runner import run_experiment  # torch and SB3 load only when a trial runs

    assert config.sweep is not None
    params = config.sweep.params

    def objective(trial: Trial) -> float:
        trial.set_user_attr("pid", os.getpid())
        drawn = {path: suggest(trial, path, space) for path, space in params.items()}
        on_evaluation = reporter(trial, config.evaluation.metric)
        outcomes = run_experiment(
            trial_config(config, trial.number, drawn), out, store=store, progress=progress, on_evaluation=on_evaluation
        )
        trial.set_user_attr("runs", [outcome.url for outcome in outcomes])
        if any(outcome.results["stopped_by"] == "pruned" for outcome in outcomes):
            raise optuna.TrialPruned()
        return statistics.fmean(outcome.results["best_validation"] for outcome in outcomes)

    return objective


def suggest(trial: Trial, name: str, space: SearchSpace) -> Any:
    """Draw value ``name`` of ``trial`` from ``space`` with the matching ``trial.suggest_*``."""
    if space.type == "categorical":
        return trial.suggest_categorical(name, space.choices or [])
    assert space.low is not None and space.high is not None
    if space.type == "int":
        return trial.suggest_int(name, int(space.low), int(space.high), step=int(space.step or 1), log=space.log)
    return trial.suggest_float(name, space.low, space.high, step=space.step, log=space.log)


def reporter(trial: Trial, metric: str) -> Callable[[int, dict[str, Any]], bool]:
    """The runner's ``on_evaluation`` for ``trial``: report ``metric`` at each new step; False once it should prune."""
    reported: set[int] = set()

    def on_evaluation(timesteps: int, metrics: dict[str, Any]) -> bool:
        if timesteps not in reported:  # later folds evaluate at the same steps again
            reported.add(timesteps)
            trial.report(float(metrics[metric]), step=timesteps)
        return not trial.should_prune()

    return on_evaluation


def claiming(objective: Callable[[Trial], float], trials: int) -> Callable[[Trial], float]:
    """``objective``, run only by a trial among the study's first ``trials`` claimed ones.

    Two workers that each find one free slot at the same moment both start a trial; the later-numbered
    one raises :class:`SurplusTrialError` (caught by the sweep: the trial ends failed, before any training).
    """

    def guarded(trial: Trial) -> float:
        before = [t for t in trial.study.get_trials(deepcopy=False, states=CLAIMED) if t.number < trial.number]
        if len(before) >= trials:
            raise SurplusTrialError(f"the study's {trials} trials were already claimed by other workers")
        return objective(trial)

    return guarded
