"""Out-of-sample monitoring: a trained run scored again on the newest bars of its dataset.

Unlike ``tradelab evaluate`` (which pins the run's dataset version, for reproducing it), this reads the
dataset as it is now, appended bars included, with the run's features, execution and seed. The window is
the last ``days`` days, never earlier than the start of the run's test segment: bars the agent trained or
was selected on are never counted as out-of-sample. Run every day, it shows whether an agent degrades.
"""

from __future__ import annotations

import io
import math
import os
from typing import Any

import polars as pl

from tradelab.data.errors import DataError
from tradelab.data.schema import to_ms
from tradelab.data.store import Store
from tradelab.env.market import MarketData
from tradelab.experiments.artifacts import RunStorage
from tradelab.experiments.config import ExperimentConfig
from tradelab.experiments.evaluation import segment
from tradelab.experiments.reevaluation import trained_model
from tradelab.experiments.runner import model_policy, score

DAY_MS = 86_400_000
#: Metrics recorded per evaluation (``oos/<name>``).
RECORDED = ("sharpe", "sortino", "total_return", "max_drawdown", "n_trades")


def evaluate_recent(url: str | os.PathLike[str], days: int, *, store: Store | None = None) -> dict[str, Any]:
    """Score the run at ``url`` and the baselines on the last ``days`` days of its dataset's newest bars.

    Writes ``equity_oos-<end>.parquet`` (and its trades) in the run's folder, like any evaluation.

    :return: ``window`` (``start``/``end`` epoch ms, ``bars``, ``unseen_bars``: bars newer than the run's own
        test segment), ``dataset`` (the version read) and what :func:`~tradelab.experiments.runner.score` returns
        under ``oos``.
    :raises DataError: when the window holds fewer than 3 bars after the run's test segment started.
    """
    if days < 1:
        raise DataError(f"days must be at least 1, got {days}")
    run = RunStorage(url)
    provenance = run.read_json("config.json")
    config = ExperimentConfig.model_validate(provenance["config"])
    dataset = config.env.dataset.model_copy(update={"version": None, "end": None})
    env = config.env.model_copy(update={"dataset": dataset})
    market = MarketData.from_store(env, store)
    tested = pl.read_parquet(io.BytesIO(run.read_bytes("equity_test.parquet")), columns=["ts"])["ts"]
    test_start, test_end = to_ms(tested[0]), to_ms(tested[-1])
    last_ts = int(market.ts[-1])
    start_ms = max(last_ts - days * DAY_MS + 1, test_start)  # (last - days, last]: `days` × 1,440 minute bars
    first = int(market.ts.searchsorted(start_ms, side="left"))
    last = len(market.ts) - 1
    if last - first < 2:
        raise DataError(
            f"{market.dataset} holds {max(last - first + 1, 0)} bar(s) of the last {days} day(s) after the run's "
            "test segment started; it needs at least 3"
        )
    model = trained_model(run, config)
    label = f"oos-{last_ts}"
    scored = score(env, model_policy(model), segment(market, first, last), provenance["seed"], run, label)
    window = {
        "start": int(market.ts[first]),
        "end": last_ts,
        "bars": last - first + 1,
        "unseen_bars": int((market.ts[first : last + 1] > test_end).sum()),
    }
    results = {"window": window, "dataset": market.dataset, "oos": scored.pop(label), **scored}
    run.write_json(f"evaluation_{label}.json", results)
    return results


def recorded_points(results: dict[str, Any]) -> dict[str, float]:
    """The agent's metrics of :func:`evaluate_recent` to record over time, plus its excess return over
    buy-and-hold and the window's unseen share."""
    agent, hold = results["oos"]["agent"], results["oos"].get("buy_and_hold", {})
    points = {name: float(agent[name]) for name in RECORDED if _finite(agent.get(name))}
    if _finite(hold.get("total_return")) and "total_return" in points:
        points["excess_return"] = points["total_return"] - float(hold["total_return"])
    points["unseen_share"] = results["window"]["unseen_bars"] / results["window"]["bars"]
    return points


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
