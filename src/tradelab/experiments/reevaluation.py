"""``tradelab evaluate``: play a saved run's model again, on one of its segments or on any date range.

By default the run's own config, seed and dataset version are used: if the stored dataset changed since
the run, the evaluation refuses to start (the same rule as ``tradelab run`` with a pinned
``dataset.version``). ``allow_newer`` accepts a dataset that only gained bars after the pinned version
(checked against its hash, not assumed), and ``dataset`` scores the model on another symbol or version.
A range overlapping the run's train or validation segment is scored, with a warning: it is in-sample.
"""

from __future__ import annotations

import io
import os
import re
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tradelab.data.errors import DataError
from tradelab.data.schema import to_ms
from tradelab.data.store import Store
from tradelab.env.config import EnvConfig
from tradelab.env.market import MarketData
from tradelab.experiments.artifacts import RunStorage
from tradelab.experiments.config import ExperimentConfig, algorithm_class
from tradelab.experiments.evaluation import segment
from tradelab.experiments.runner import model_policy, pinned, score, segment_periods

_SEGMENTS = ("train", "val", "test")
#: What the agent did with the bars of a segment, for the in-sample warning.
_IN_SAMPLE = {"train": "learned from", "val": "was selected on"}


def evaluate_run(
    url: str | os.PathLike[str],
    split: str,
    *,
    dataset: str | None = None,
    allow_newer: bool = False,
    store: Store | None = None,
) -> dict[str, Any]:
    """Evaluate the model of the run at ``url`` beside the baselines; write ``evaluation_<label>.json`` there.

    :param split: ``train``, ``val``, ``test``, or a date range ``START..END`` (UTC, end exclusive, e.g.
        ``2024-03-01..2024-03-15``). On another dataset than the run's, only a date range.
    :param dataset: ``SYMBOL[@VERSION]``: score on this dataset (the run's timeframe), pinned to the version
        when given; the run's own dataset when None.
    :param allow_newer: accept the run's dataset when bars were appended after its pinned version.
    :return: the run's name, seed and fold, ``split``, ``dataset`` (the data read), ``warnings`` (ranges
        overlapping the run's train or validation segment), and what
        :func:`~tradelab.experiments.runner.score` returns.
    :raises DataError: for an unknown split, a range without bars, a bad ``dataset``, or a dataset that
        changed since the run (with ``allow_newer``: one whose past bars changed).
    """
    run = RunStorage(url)
    provenance = run.read_json("config.json")
    config = ExperimentConfig.model_validate(provenance["config"])
    store = store if store is not None else Store()
    env, own = _evaluated_env(config.env, provenance, dataset, allow_newer, store)
    market = MarketData.from_store(env, store)
    first, last = split_rows(split, provenance["segments"] if own else None, market.ts)
    periods = provenance.get("periods") or (segment_periods(provenance["segments"], market.ts) if own else None)
    model = trained_model(run, config)
    label = split_label(split)
    results = {
        "name": config.name,
        "seed": provenance["seed"],
        "fold": provenance["fold"],
        "split": split,
        "dataset": market.dataset,
        "warnings": in_sample_warnings(periods, int(market.ts[first]), int(market.ts[last])),
        **score(env, model_policy(model), segment(market, first, last), provenance["seed"], run, label),
    }
    run.write_json(f"evaluation_{label}.json", results)
    return results


def _evaluated_env(
    env: EnvConfig, provenance: dict[str, Any], dataset: str | None, allow_newer: bool, store: Store
) -> tuple[EnvConfig, bool]:
    """The env config to evaluate with, and whether its bars are the run's own (so the run's segment rows apply)."""
    ran_on = env.dataset
    symbol, at, version = (dataset or ran_on.symbol).partition("@")
    if not symbol or (at and not re.fullmatch(r"[0-9a-f]{4,64}", version)):
        raise DataError(f"--dataset takes SYMBOL or SYMBOL@VERSION (4+ hex digits), got {dataset!r}", column="dataset")
    pin = pinned(env, provenance["dataset"]).dataset.version
    if symbol != ran_on.symbol or (version and not (pin or "").startswith(version[:12])):
        if allow_newer:
            raise DataError("--allow-newer applies to the run's own dataset only", column="allow_newer")
        other = ran_on.model_copy(update={"symbol": symbol, "version": version or None})
        return env.model_copy(update={"dataset": other}), False
    stored = store.require(ran_on.symbol, ran_on.timeframe).content_hash
    if pin is None or stored.startswith(pin):
        return pinned(env, provenance["dataset"]), True
    name = f"{ran_on.symbol}/{ran_on.timeframe}"
    if not allow_newer:
        raise DataError(
            f"{name} is version {stored[:12]} now, the run used {pin}: --allow-newer evaluates on it if bars were "
            f"only appended since; --dataset {ran_on.symbol}@{stored[:12]} on a date range of it as it is",
            column="dataset",
        )
    last_ts = provenance.get("dataset_last_ts")
    if last_ts is None:
        raise DataError(
            f"the run did not record the last bar of {name}@{pin} (it predates --allow-newer): "
            "cannot check that bars were only appended",
            column="allow_newer",
        )
    if not store.extends_version(ran_on.symbol, ran_on.timeframe, pin, datetime.fromisoformat(last_ts)):
        raise DataError(
            f"{name} changed since the run, not only appended bars: its bars up to {last_ts} are not version {pin}'s",
            column="allow_newer",
        )
    newer = ran_on.model_copy(update={"version": stored, "end": None})
    return env.model_copy(update={"dataset": newer}), True


def in_sample_warnings(periods: dict[str, list[int] | None] | None, first_ms: int, last_ms: int) -> list[str]:
    """A warning per train or validation segment of the run that the evaluated bars ``first_ms … last_ms`` overlap.

    Periods are compared by time, so a range of another symbol in the training period is flagged too.
    """
    if periods is None:
        return ["the run records no segment periods: overlap with its training period was not checked"]
    return [
        f"the evaluated range overlaps the run's {name} segment ({_minute(period[0])} .. {_minute(period[1])}): "
        f"the agent {verb} that period, so these scores are in-sample"
        for name, verb in _IN_SAMPLE.items()
        if (period := periods.get(name)) is not None and first_ms <= period[1] and last_ms >= period[0]
    ]


def _minute(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def trained_model(run: RunStorage, config: ExperimentConfig) -> Any:
    """The selected model a run saved (``model.zip``), loaded on the CPU once its bytes match the SHA-256 the run
    recorded in ``results.json``: SB3 unpickles a model, so a swapped file would run someone else's code.

    :raises DataError: when the run recorded no hash, the file changed since, or it links out of the run folder.
    """
    recorded = run.read_json("results.json").get("model_sha256")
    model = run.read_verified("model.zip", recorded)
    return algorithm_class(config.algorithm.name).load(io.BytesIO(model), device="cpu")


def split_label(split: str) -> str:
    """The name a split gets in file names and results: itself, or a date range with its punctuation as dashes."""
    return split if split in _SEGMENTS else re.sub(r"[^0-9A-Za-z]+", "-", split).strip("-")


def split_rows(split: str, segments: dict[str, Any] | None, ts: np.ndarray) -> tuple[int, int]:
    """First and last row of a named segment of the run, or of a ``START..END`` date range.

    :param segments: the run's segment rows; None when ``ts`` is another dataset's (only a date range applies).
    """
    if split in _SEGMENTS:
        if segments is None:
            raise DataError(
                f"--split {split} is a segment of the run's own dataset; on another dataset give a date range "
                "START..END",
                column="split",
            )
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
