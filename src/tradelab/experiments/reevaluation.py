"""``tradelab evaluate``: play a saved run's model again, on one of its segments or on any date range.

The run's own config, seed and dataset version are used: if the stored dataset changed since the run,
the evaluation refuses to start (the same rule as ``tradelab run`` with a pinned ``dataset.version``).
"""

from __future__ import annotations

import io
import os
import re
from typing import Any

import numpy as np

from tradelab.data.errors import DataError
from tradelab.data.schema import to_ms
from tradelab.data.store import Store
from tradelab.env.market import MarketData
from tradelab.experiments.artifacts import RunStorage
from tradelab.experiments.config import ExperimentConfig, algorithm_class
from tradelab.experiments.evaluation import segment
from tradelab.experiments.runner import model_policy, pinned, score

_SEGMENTS = ("train", "val", "test")


def evaluate_run(url: str | os.PathLike[str], split: str, *, store: Store | None = None) -> dict[str, Any]:
    """Evaluate the model of the run at ``url`` beside the baselines; write ``evaluation_<label>.json`` there.

    :param split: ``train``, ``val``, ``test``, or a date range ``START..END`` (UTC, end exclusive, e.g.
        ``2024-03-01..2024-03-15``).
    :return: the run's name, seed and fold, ``split``, and what :func:`~tradelab.experiments.runner.score` returns.
    :raises DataError: for an unknown split, a range without bars, or a dataset that changed since the run.
    """
    run = RunStorage(url)
    provenance = run.read_json("config.json")
    config = ExperimentConfig.model_validate(provenance["config"])
    env = pinned(config.env, provenance["dataset"])
    market = MarketData.from_store(env, store)
    first, last = split_rows(split, provenance["segments"], market.ts)
    model = trained_model(run, config)
    label = split_label(split)
    results = {
        "name": config.name,
        "seed": provenance["seed"],
        "fold": provenance["fold"],
        "split": split,
        **score(env, model_policy(model), segment(market, first, last), provenance["seed"], run, label),
    }
    run.write_json(f"evaluation_{label}.json", results)
    return results


def trained_model(run: RunStorage, config: ExperimentConfig) -> Any:
    """The selected model a run saved (``model.zip``), loaded on the CPU."""
    return algorithm_class(config.algorithm.name).load(io.BytesIO(run.read_bytes("model.zip")), device="cpu")


def split_label(split: str) -> str:
    """The name a split gets in file names and results: itself, or a date range with its punctuation as dashes."""
    return split if split in _SEGMENTS else re.sub(r"[^0-9A-Za-z]+", "-", split).strip("-")


def split_rows(split: str, segments: dict[str, Any], ts: np.ndarray) -> tuple[int, int]:
    """First and last row of a named segment of the run, or of a ``START..END`` date range."""
    if split in _SEGMENTS:
        rows = segments.get(split)
        if rows is None:
            raise DataError(f"the run has no {split} segment (its split had none)")
        return int(rows[0]), int(rows[1])
    start, sep, end = split.partition("..")
    if not sep:
        raise DataError(f"--split must be train, val, test or START..END, got {split!r}")
    first = int(np.searchsorted(ts, to_ms(start), side="left"))
    last = int(np.searchsorted(ts, to_ms(end), side="left")) - 1
    if last - first < 2:
        raise DataError(
            f"the range {split} holds {max(last - first + 1, 0)} bar(s) of the dataset; it needs at least 3"
        )
    return first, last
