"""``tradelab run``: train an agent on the train segment, select it on validation, test it beside the baselines.

For every fold of the split (one for a chronological split) and every seed, :func:`run_experiment`:

1. trains the configured SB3 algorithm on the native vectorized env over the train segment, with a
   progress bar and the wall-time budget;
2. every ``evaluation.every_steps`` env steps, plays the agent over the validation segment and keeps
   the model with the best validation metric (early stopping after ``evaluation.patience``
   evaluations without improvement);
3. plays the selected model and the baselines over the test segment, with the same execution model,
   and writes every artifact (see :mod:`tradelab.experiments.artifacts`).

Features are computed once over the whole dataset (causal tools, so a segment's warm-up reads only
bars before it), and every segment is a window of that one :class:`MarketData`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import platform
import re
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed

from tradelab.data.splits import SplitPlan, check_plan, chronological_split, walk_forward
from tradelab.data.store import Store
from tradelab.env.config import EnvConfig
from tradelab.env.market import MarketData
from tradelab.env.policies import Policy
from tradelab.env.trading_env import TradingEnv
from tradelab.env.vec_env import TradingVecEnv
from tradelab.experiments.agents import agent_policy
from tradelab.experiments.artifacts import RunStorage
from tradelab.experiments.config import ChronologicalSplitConfig, ExperimentConfig, algorithm_class
from tradelab.experiments.evaluation import Episode, evaluation_env, play, play_baselines, segment
from tradelab.experiments.metrics import periods_per_year, traded_curve
from tradelab.experiments.report import write_report
from tradelab.experiments.sb3_vec_env import SB3VecEnv
from tradelab.experiments.stats import bootstrap_sharpe_ci
from tradelab.experiments.summary import return_moments, summarize

logger = logging.getLogger(__name__)

# Artifacts of an unfinished run (see resume_experiment).
_CHECKPOINT, _BEST, _STATE = "checkpoint.zip", "best_model.zip", "training_state.json"
_PACKAGES = ("tradelab", "numpy", "numba", "polars", "gymnasium", "torch", "stable-baselines3", "sb3-contrib")


@dataclass(frozen=True, slots=True)
class Segments:
    """Row ranges (first, last, inclusive) of one fold's segments; ``val`` is None without validation."""

    fold: int | None
    train: tuple[int, int]
    val: tuple[int, int] | None
    test: tuple[int, int]


@dataclass(frozen=True, slots=True)
class _Job:
    """One run to do: the experiment, its data, fold and seed, where it writes, and how it reports."""

    config: ExperimentConfig
    market: MarketData
    fold: Segments
    seed: int
    storage: RunStorage
    progress: bool
    on_evaluation: Callable[[int, dict[str, Any]], bool] | None = None
    resume: bool = False
    #: Last bar of the stored dataset at the version read: with the version, it lets ``evaluate --allow-newer``
    #: check that later versions only appended bars.
    dataset_last_ts: datetime | None = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """One finished run: where its artifacts are and what ``results.json`` holds."""

    url: str
    results: dict[str, Any]


def plan_segments(config: ExperimentConfig, market: MarketData) -> list[Segments]:
    """The folds of ``config.split`` over ``market``'s bars, checked to be in order and not to overlap.

    No embargo is needed for the env itself: an env over a segment decides up to its second-to-last bar
    and fills on its last one, so training never earns a return on a later segment's bars. An evaluation
    reads the window and indicator warm-up before its segment, which is past data and leaks nothing
    about the returns it is scored on. ``embargo_bars`` is there for slower-moving dependence.

    Segments holding a gap are logged with it; a validation or test segment that is mostly hole is refused
    (see :func:`~tradelab.data.splits.verify_plan`).

    :raises DataError: for a split that leaves a segment without bars, whose segments overlap, or whose scored
        segment is mostly hole (naming the fold and the segment).
    """
    ts = pl.Series("ts", market.ts).cast(pl.Datetime("ms", "UTC"))
    split = config.split
    if isinstance(split, ChronologicalSplitConfig):
        plan = chronological_split(
            ts, train=split.train, val=split.val, test=split.test, embargo_bars=split.embargo_bars
        )
    else:
        plan = walk_forward(
            ts,
            n_folds=split.n_folds,
            test_fraction=split.test_fraction,
            train_bars=split.train_bars,
            val_bars=split.val_bars,
            embargo_bars=split.embargo_bars,
        )
    for prefix, segments in plan.sequences():
        for gappy in (s for s in segments if s.gaps):
            logger.warning("segment '%s%s' of %s: %s", prefix, gappy.name, market.dataset, gappy.gap_summary())
    check_plan(plan, warmup_bars=0, horizon_bars=0)
    return _segments(plan)


def _segments(plan: SplitPlan) -> list[Segments]:
    def rows(segment: Any) -> tuple[int, int] | None:
        return None if segment is None else (segment.first_row, segment.last_row)

    if plan.kind == "chronological":
        by_name = {s.name: s for s in plan.segments}
        return [Segments(None, rows(by_name["train"]), rows(by_name.get("val")), rows(by_name["test"]))]  # type: ignore[arg-type]
    return [Segments(f.index, rows(f.train), rows(f.val), rows(f.test)) for f in plan.folds]  # type: ignore[arg-type]


def run_experiment(
    config: ExperimentConfig,
    out: str | Path = "runs",
    *,
    seed: int | None = None,
    store: Store | None = None,
    progress: bool = True,
    on_evaluation: Callable[[int, dict[str, Any]], bool] | None = None,
) -> list[RunOutcome]:
    """Train, select and test one agent per fold and seed; write each run's artifacts under ``out``.

    With several runs, ``<name>-<time>-summary.json`` beside their folders holds the spread of their test
    metrics and the deflated Sharpe ratio of the best (see :func:`~tradelab.experiments.summary.summarize`).

    :param config: the experiment.
    :param out: parent folder (or fsspec URL) of the run folders.
    :param seed: run only this seed instead of ``config.seeds``.
    :param store: the candle store; the default one when None.
    :param progress: show a progress bar while training.
    :param on_evaluation: called after every validation evaluation with the timesteps so far and the
        validation metrics; returning False stops training there (a sweep prunes a trial this way).
    :raises tradelab.data.errors.DataError: a missing dataset, or a split without bars.
    :raises EnvDataError: data that fails validation, a non-causal tool, a version mismatch.
    """
    store = store if store is not None else Store()
    market = MarketData.from_store(config.env, store)
    last_ts = store.require(config.env.dataset.symbol, config.env.dataset.timeframe).last_ts
    folds = plan_segments(config, market)
    prefix = f"{str(out).rstrip('/')}/{config.name}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    outcomes = []
    for fold in folds:
        for run_seed in [seed] if seed is not None else config.seeds:
            suffix = f"-s{run_seed}" + ("" if fold.fold is None else f"-f{fold.fold}")
            storage = RunStorage(prefix + suffix)
            job = _Job(config, market, fold, run_seed, storage, progress, on_evaluation, dataset_last_ts=last_ts)
            outcomes.append(_run_one(job))
    if len(outcomes) > 1:
        summary = summarize([o.results for o in outcomes])
        RunStorage(str(out)).write_json(f"{prefix.rsplit('/', 1)[-1]}-summary.json", summary)
    return outcomes


def _run_one(job: _Job) -> RunOutcome:
    """One run, its folder marked failed (with the traceback) if anything raises.

    A Ctrl-C during training stops it cleanly: the checkpoint is saved, the selected model is tested
    and the results are written, with the status ``interrupted`` (resume with :func:`resume_experiment`).
    """
    storage = job.storage
    if not job.resume:
        storage.write_json("config.json", provenance(job.config, job.market, job.seed, job.fold, job.dataset_last_ts))
    storage.write_json("status.json", {"status": "running", "started": _now()})
    try:
        results = _train_and_test(job)
    except BaseException as error:
        status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        storage.write_json("status.json", {"status": status, "ended": _now(), "error": traceback.format_exc()})
        raise
    storage.write_json("results.json", results)
    write_report(storage)
    status = "interrupted" if results["stopped_by"] == "interrupted" else "succeeded"
    storage.write_json("status.json", {"status": status, "ended": _now()})
    return RunOutcome(storage.url, results)


def resume_experiment(
    url: str | os.PathLike[str],
    *,
    store: Store | None = None,
    progress: bool = True,
    on_evaluation: Callable[[int, dict[str, Any]], bool] | None = None,
) -> RunOutcome:
    """Continue an interrupted (or killed) run from its last checkpoint, in its own folder, to its full timesteps.

    The run's own config, seed, segments and dataset version are used; ``on_evaluation`` is as in
    :func:`run_experiment`.

    :raises FileNotFoundError: when the run has no checkpoint yet (it never reached an evaluation).
    """
    storage = RunStorage(url)
    recorded = storage.read_json("config.json")
    config = ExperimentConfig.model_validate(recorded["config"])
    if not storage.exists(_CHECKPOINT):
        raise FileNotFoundError(f"{storage.url} has no {_CHECKPOINT}: it stopped before its first checkpoint")
    market = MarketData.from_store(pinned(config.env, recorded["dataset"]), store)
    segments = recorded["segments"]
    fold = Segments(
        recorded["fold"], *(None if segments[k] is None else tuple(segments[k]) for k in ("train", "val", "test"))
    )  # type: ignore[arg-type]
    return _run_one(_Job(config, market, fold, recorded["seed"], storage, progress, on_evaluation, resume=True))


def pinned(env: EnvConfig, dataset: str) -> EnvConfig:
    """``env`` with its dataset version pinned to the 12-hex-digit hash in ``dataset`` (``SYM/TF@hash…``)."""
    version = re.search(r"@([0-9a-f]{12})", dataset)
    if version is None:
        return env
    return env.model_copy(update={"dataset": env.dataset.model_copy(update={"version": version.group(1)})})


def _train_and_test(job: _Job) -> dict[str, Any]:
    config, market, fold, seed, storage = job.config, job.market, job.fold, job.seed, job.storage
    set_random_seed(seed)
    train_config = config.env.model_copy(update={"episode": config.env.episode.model_copy(update={"trade_log": False})})
    venv = TradingVecEnv(train_config, config.n_envs, market=segment(market, *fold.train))
    venv.reset(seed=seed)
    algorithm = config.algorithm
    validate = _validator(config, segment(market, *fold.val)) if fold.val else None
    training = _Training(config, validate, job.on_evaluation, storage)
    tensorboard = tempfile.TemporaryDirectory(prefix="tradelab-tb-")  # copied into the run folder after training
    if job.resume:
        checkpoint = io.BytesIO(storage.read_bytes(_CHECKPOINT))
        model = algorithm_class(algorithm.name).load(
            checkpoint, env=SB3VecEnv(venv), device=config.device, tensorboard_log=tensorboard.name
        )
        training.restore()
    else:
        model = algorithm_class(algorithm.name)(
            algorithm.policy_name,
            SB3VecEnv(venv),
            seed=seed,
            device=config.device,
            verbose=0,
            tensorboard_log=tensorboard.name,
            policy_kwargs=dict(algorithm.policy_kwargs) or None,
            **algorithm.hyperparams,
        )
    started = time.perf_counter()
    with tensorboard, _progress(job.progress, config.total_timesteps) as advance:
        training.advance = advance
        remaining = config.total_timesteps - model.num_timesteps
        try:
            model.learn(remaining, callback=training, reset_num_timesteps=not job.resume, tb_log_name="train")
        except KeyboardInterrupt:
            training.stopped_by = "interrupted"
            training.save_checkpoint()
            logger.warning("training interrupted at %d steps: checkpoint saved, testing the model", model.num_timesteps)
        finally:
            storage.put_folder(tensorboard.name, "tensorboard")
    train_seconds = time.perf_counter() - started
    trained = int(model.num_timesteps)
    if training.best is not None:
        model = algorithm_class(algorithm.name).load(io.BytesIO(training.best), device=config.device)
    buffer = io.BytesIO()
    model.save(buffer)
    storage.write_bytes("model.zip", buffer.getvalue())
    model_sha256 = hashlib.sha256(buffer.getvalue()).hexdigest()  # checked before the model is loaded again
    if training.curve:
        storage.write_parquet("metrics.parquet", pl.DataFrame(training.curve))

    return {
        "name": config.name,
        "seed": seed,
        "fold": fold.fold,
        "timesteps": trained,
        "selected_timesteps": int(model.num_timesteps),
        "train_seconds": train_seconds,
        "stopped_by": training.stopped_by,
        "selected": "best_validation" if training.best is not None else "last",
        "best_validation": training.best_value,
        "model_sha256": model_sha256,
        **score(config.env, model_policy(model), segment(market, *fold.test), seed, storage, "test"),
    }


def model_policy(model: Any) -> Callable[[TradingEnv], Policy]:
    """A trained model's deterministic policy, for any env it is evaluated in (see :func:`agent_policy`)."""
    return lambda env: agent_policy(model, env)


def score(
    env: EnvConfig,
    make_policy: Callable[[TradingEnv], Policy],
    market: MarketData,
    seed: int,
    storage: RunStorage,
    split: str,
) -> dict[str, Any]:
    """Play the agent and the baselines over ``market``'s segment; write their curves and the agent's trades.

    :param make_policy: the agent's policy for the evaluation env (e.g. :func:`model_policy` of a trained model).
    :param split: the label of the segment in file names and in the result (``test``, ``val``, a date range).
    :return: ``{split: {policy: metrics}, "agent_sharpe_ci95": [low, high], "agent_moments": {...}}``.
    """
    eval_env = evaluation_env(env, market)
    policy = make_policy(eval_env)
    episodes = {"agent": play(eval_env, policy, "agent", seed), **play_baselines(eval_env, seed)}
    _write_episodes(storage, split, episodes)
    timeframe, max_fill_bars = env.dataset.timeframe, env.gaps.max_fill_bars
    agent = episodes["agent"]
    curve, _ = traded_curve(agent.equity, agent.ts, timeframe=timeframe, max_fill_bars=max_fill_bars)
    returns = np.diff(curve) / curve[:-1]
    low, high = bootstrap_sharpe_ci(returns, periods_per_year(timeframe), seed=seed)
    metrics = {name: episode.metrics(timeframe, max_fill_bars).as_dict() for name, episode in episodes.items()}
    return {split: metrics, "agent_sharpe_ci95": [low, high], "agent_moments": return_moments(curve)}


def _validator(config: ExperimentConfig, market: MarketData) -> Callable[[Any], dict[str, Any]]:
    """A function scoring a model on the validation segment: one pass with deterministic actions, or the mean
    metrics of ``evaluation.episodes`` seeded passes with stochastic ones."""
    eval_env = evaluation_env(config.env, market)
    timeframe = config.env.dataset.timeframe
    evaluation = config.evaluation
    passes = 1 if evaluation.deterministic else evaluation.episodes

    def validate(model: Any) -> dict[str, Any]:
        policy = agent_policy(model, eval_env, evaluation.deterministic)
        runs = [
            play(eval_env, policy, "agent", seed).metrics(timeframe, config.env.gaps.max_fill_bars).as_dict()
            for seed in range(passes)
        ]
        return {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}

    return validate


class _Training(BaseCallback):
    """Progress, wall-time budget, periodic validation with best-model selection and early stopping."""

    def __init__(
        self,
        config: ExperimentConfig,
        validate: Callable[[Any], dict[str, Any]] | None,
        on_evaluation: Callable[[int, dict[str, Any]], bool] | None,
        storage: RunStorage,
    ) -> None:
        super().__init__()
        self.on_evaluation = on_evaluation
        self.storage = storage
        self.evaluation = config.evaluation
        self.budget = config.budget.max_wall_time_s
        self.validate = validate
        self.advance: Callable[[int], None] = lambda _steps: None
        self.curve: list[dict[str, Any]] = []
        self.best: bytes | None = None
        self.best_value: float | None = None
        self.stopped_by = "timesteps"
        self._next = self.evaluation.every_steps
        self._stale = 0
        self._started = time.perf_counter()

    def _on_step(self) -> bool:
        self.advance(self.num_timesteps)
        if self.budget is not None and time.perf_counter() - self._started > self.budget:
            self.stopped_by = "budget"
            return False
        if self.validate is None or self.num_timesteps < self._next:
            return True
        self._next += self.evaluation.every_steps
        return self._evaluate()

    def save_checkpoint(self) -> None:
        """Write the model being trained and the selection state, so :func:`resume_experiment` can go on."""
        buffer = io.BytesIO()
        self.model.save(buffer)
        self.storage.write_bytes(_CHECKPOINT, buffer.getvalue())
        if self.best is not None:
            self.storage.write_bytes(_BEST, self.best)
        state = {"curve": self.curve, "best_value": self.best_value, "stale": self._stale, "next": self._next}
        self.storage.write_json(_STATE, state)

    def restore(self) -> None:
        """Take up the selection state saved by :meth:`save_checkpoint`."""
        state = self.storage.read_json(_STATE)
        self.curve, self.best_value, self._stale, self._next = (
            state["curve"], state["best_value"], state["stale"], state["next"]
        )  # fmt: skip
        self.best = self.storage.read_bytes(_BEST) if self.storage.exists(_BEST) else None

    def _on_training_end(self) -> None:
        if self.validate is not None and (not self.curve or self.curve[-1]["timesteps"] != self.num_timesteps):
            self._evaluate()  # the final model competes too

    def _evaluate(self) -> bool:
        assert self.validate is not None
        metrics = self.validate(self.model)
        value = float(metrics[self.evaluation.metric])
        elapsed = time.perf_counter() - self._started
        self.curve.append({"timesteps": self.num_timesteps, "seconds": elapsed, **_finite(metrics)})
        for key in ("sharpe", "sortino", "total_return", "max_drawdown", "n_trades"):
            self.logger.record(f"validation/{key}", self.curve[-1][key])  # TensorBoard, at the next dump
        if self.best_value is None or value > self.best_value:
            self.best_value, self._stale = value, 0
            buffer = io.BytesIO()
            self.model.save(buffer)
            self.best = buffer.getvalue()
        else:
            self._stale += 1
        self.save_checkpoint()
        if self.on_evaluation is not None and not self.on_evaluation(self.num_timesteps, metrics):
            self.stopped_by = "pruned"
            return False
        if self.evaluation.patience is not None and self._stale >= self.evaluation.patience:
            self.stopped_by = "early_stopping"
            return False
        return True


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    """Metrics as floats with infinities clipped, for a Parquet training curve."""
    return {key: float(np.clip(value, -1e300, 1e300)) for key, value in metrics.items()}


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over the training timesteps, yielding ``advance(timesteps_done)``."""
    if not enabled:
        yield lambda _steps: None
        return
    columns = (TextColumn("training"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"))
    with Progress(*columns, TimeElapsedColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("train", total=total)
        yield lambda steps: bar.update(task, completed=steps)


def _write_episodes(storage: RunStorage, split: str, episodes: dict[str, Episode]) -> None:
    """Equity and position of every policy side by side, and the agent's trades, for one split."""
    agent = episodes["agent"]
    columns = {"ts": agent.frame()["ts"]}
    for name, episode in episodes.items():
        columns[f"{name}_equity"] = pl.Series(episode.equity)
        columns[f"{name}_position"] = pl.Series(episode.position)
    storage.write_parquet(f"equity_{split}.parquet", pl.DataFrame(columns))
    storage.write_parquet(f"trades_{split}.parquet", pl.DataFrame(agent.trades, infer_schema_length=None))


def provenance(
    config: ExperimentConfig, market: MarketData, seed: int, fold: Segments, dataset_last_ts: datetime | None = None
) -> dict[str, Any]:
    """The resolved config with what reproduces the run: dataset, code version, packages, seed, segments.

    ``periods`` (first and last bar of each segment, epoch ms) and ``dataset_last_ts`` let a later evaluation
    warn about in-sample ranges on any dataset and check that a newer dataset only appended bars.
    """
    segments = {"train": fold.train, "val": fold.val, "test": fold.test}
    return {
        "config": config.model_dump(mode="json"),
        "seed": seed,
        "fold": fold.fold,
        "dataset": market.dataset,
        "dataset_last_ts": None if dataset_last_ts is None else dataset_last_ts.isoformat(),
        "segments": segments,
        "periods": segment_periods(segments, market.ts),
        "git_commit": _git_commit(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "python": platform.python_version(),
        "created": _now(),
    }


def segment_periods(segments: dict[str, Sequence[int] | None], ts: np.ndarray) -> dict[str, list[int] | None]:
    """Each segment's first and last bar as epoch ms, from its rows in ``ts``."""
    return {name: None if rows is None else [int(ts[rows[0]]), int(ts[rows[1]])] for name, rows in segments.items()}


def _git_commit() -> str | None:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except OSError:
        return None
    return found.stdout.strip() or None


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
