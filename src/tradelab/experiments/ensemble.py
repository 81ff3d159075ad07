"""Ensembles: K trained runs acting as one agent, evaluated like any agent beside the baselines.

At every bar each member proposes its deterministic action; the ensemble takes the majority for
discrete actions (per dimension for MultiDiscrete; a tie goes to the lowest index, the smallest
position of sorted levels, so disagreement leans towards less risk) and the mean for a Box. All members
must have been trained on the same env (data, features, window, actions, execution): the ensemble
refuses runs that differ, naming the fields.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tradelab.data.store import Store
from tradelab.env.market import MarketData
from tradelab.env.policies import Policy
from tradelab.env.trading_env import TradingEnv
from tradelab.experiments.agents import agent_policy
from tradelab.experiments.artifacts import RunStorage
from tradelab.experiments.config import ConfigError, ExperimentConfig
from tradelab.experiments.evaluation import segment
from tradelab.experiments.reevaluation import split_label, split_rows, trained_model
from tradelab.experiments.report import write_report
from tradelab.experiments.runner import RunOutcome, pinned, score

#: Env fields every member must share (the rest, e.g. the reward or episode length, only shaped training).
_SHARED = ("dataset", "features", "window", "observation", "clip", "actions", "execution", "atr_period", "initial_cash")


class EnsembleConfig(BaseModel):
    """Which runs to combine, and where to evaluate them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    runs: list[str] = Field(min_length=2, description="run folders (or URLs) written by `tradelab run`")
    split: str = Field("test", description="train, val, test (the first run's segments) or START..END (UTC)")
    vote: Literal["auto"] = Field("auto", description="majority for discrete actions, mean for continuous ones")


def load_ensemble(path: str | os.PathLike[str]) -> EnsembleConfig:
    """Read an ensemble config (YAML or JSON); run paths are taken relative to the current folder.

    :raises ConfigError: listing every problem.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text())
        return EnsembleConfig.model_validate(raw)
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read it: {error.strerror}"]) from None
    except (yaml.YAMLError, ValidationError) as error:
        raise ConfigError(str(path), [str(error)]) from None


def vote(actions: Sequence[Any], space: spaces.Space[Any]) -> Any:
    """Combine the members' actions: per-dimension majority (ties: lowest index) for discrete spaces, mean for a Box."""
    if isinstance(space, spaces.Box):
        return np.mean(np.stack([np.asarray(a, dtype=np.float32) for a in actions]), axis=0)
    if isinstance(space, spaces.Discrete):
        return int(np.argmax(np.bincount(np.asarray(actions, dtype=np.int64), minlength=int(space.n))))
    stacked = np.stack([np.asarray(a, dtype=np.int64) for a in actions])
    return np.array(
        [np.argmax(np.bincount(column, minlength=n)) for column, n in zip(stacked.T, space.nvec, strict=True)]
    )


def ensemble_policy(models: Sequence[Any]) -> Any:
    """A function ``env -> policy`` playing the members' majority (or mean) action in ``env``."""

    def make(env: TradingEnv) -> Policy:
        members = [agent_policy(model, env) for model in models]
        space = env.action_space
        return lambda observation, info: vote([member(observation, info) for member in members], space)

    return make


def evaluate_ensemble(
    config: EnsembleConfig, out: str | os.PathLike[str] = "runs", *, store: Store | None = None
) -> RunOutcome:
    """Evaluate the ensemble beside the baselines on ``config.split``; write a run folder under ``out``.

    :raises ConfigError: when the members were trained on different envs.
    """
    members = [RunStorage(url) for url in config.runs]
    recorded = [m.read_json("config.json") for m in members]
    experiments = [ExperimentConfig.model_validate(r["config"]) for r in recorded]
    _check_same_env(config, experiments, [r["dataset"] for r in recorded])
    first = experiments[0]
    env = pinned(first.env, recorded[0]["dataset"])
    market = MarketData.from_store(env, store)
    rows = split_rows(config.split, recorded[0]["segments"], market.ts)
    models = [trained_model(m, e) for e, m in zip(experiments, members, strict=True)]
    storage = RunStorage(f"{str(out).rstrip('/')}/{config.name}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}")
    label = split_label(config.split)
    provenance = {**recorded[0], "config": first.model_copy(update={"name": config.name}).model_dump(mode="json")}
    storage.write_json("config.json", {**provenance, "ensemble": config.model_dump(mode="json")})
    results = {
        "name": config.name,
        "seed": recorded[0]["seed"],
        "fold": recorded[0]["fold"],
        "members": config.runs,
        "timesteps": sum(e.total_timesteps for e in experiments),
        "train_seconds": 0.0,
        "stopped_by": "ensemble",
        "selected": f"majority/mean of {len(models)} runs",
        "best_validation": None,
        **score(env, ensemble_policy(models), segment(market, *rows), recorded[0]["seed"], storage, label),
    }
    storage.write_json("results.json", results)
    if label == "test":
        write_report(storage)
    return RunOutcome(storage.url, results)


def _check_same_env(config: EnsembleConfig, experiments: Sequence[ExperimentConfig], datasets: Sequence[str]) -> None:
    problems = []
    reference = experiments[0].env.model_dump(mode="json")
    for url, experiment, dataset in zip(config.runs[1:], experiments[1:], datasets[1:], strict=True):
        env = experiment.env.model_dump(mode="json")
        differing = [key for key in _SHARED if env[key] != reference[key]]
        if dataset != datasets[0]:
            differing.append(f"dataset version ({dataset} vs {datasets[0]})")
        if differing:
            problems.append(f"runs: {url} was trained on another env than {config.runs[0]}: {', '.join(differing)}")
    if problems:
        raise ConfigError(config.name, problems)
