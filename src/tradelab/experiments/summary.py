"""Across runs: the spread of each metric over seeds or walk-forward folds, and the deflated Sharpe ratio.

One good seed proves little. With several runs of one experiment the summary reports each agent
metric's mean, standard deviation, minimum and maximum, the baselines' means beside them, and the
deflated Sharpe ratio of the best run (Bailey & López de Prado 2014): the probability that its Sharpe
ratio is real after picking the best of ``N`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tradelab.experiments.stats import deflated_sharpe_ratio


def return_moments(equity: np.ndarray) -> dict[str, float]:
    """Per-bar Sharpe ratio (not annualised), count, skewness and non-excess kurtosis of an equity curve's returns."""
    returns = np.diff(equity) / np.where(equity[:-1] > 0, equity[:-1], 1.0)
    centred = returns - returns.mean()
    m2 = float(np.mean(centred**2))
    std = float(returns.std(ddof=1)) if returns.size > 1 else 0.0
    return {
        "n": int(returns.size),
        "sharpe": float(returns.mean() / std) if std > 1e-12 else 0.0,
        "skew": float(np.mean(centred**3) / m2**1.5) if m2 > 0 else 0.0,
        "kurtosis": float(np.mean(centred**4) / m2**2) if m2 > 0 else 3.0,
    }


def summarize(results: Sequence[dict[str, Any]], split: str = "test", best: int | None = None) -> dict[str, Any]:
    """The spread of the runs' ``split`` metrics, and the deflated Sharpe ratio of the best run.

    :param results: the runs' ``results.json`` contents (each with ``split`` metrics and ``agent_moments``).
    :param best: index of the selected run (a sweep selects on validation); None for the best ``split`` Sharpe.
    :return: ``runs`` (seed, fold, agent Sharpe of each), ``agent`` (metric -> mean/std/min/max),
        ``baselines`` (policy -> metric -> mean), and ``best`` with its ``deflated_sharpe`` (None for one run).
    """
    agents = [r[split]["agent"] for r in results]
    baselines = [name for name in results[0][split] if name != "agent"]
    if best is None:
        best = max(range(len(results)), key=lambda i: agents[i]["sharpe"])
    deflated = None
    if len(results) >= 2:
        moments = results[best]["agent_moments"]
        trials = [r["agent_moments"]["sharpe"] for r in results]
        if np.ptp(trials) > 0:
            deflated = deflated_sharpe_ratio(
                moments["sharpe"], moments["n"], moments["skew"], moments["kurtosis"], trials
            )
    return {
        "split": split,
        "runs": [
            {"seed": r["seed"], "fold": r["fold"], "sharpe": a["sharpe"]} for r, a in zip(results, agents, strict=True)
        ],
        "agent": {key: _spread([a[key] for a in agents]) for key in agents[0]},
        "baselines": {
            name: {key: float(np.mean([r[split][name][key] for r in results])) for key in agents[0]}
            for name in baselines
        },
        "best": {"seed": results[best]["seed"], "fold": results[best]["fold"], "deflated_sharpe": deflated},
    }


def _spread(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if finite.size == 0:
        return {"mean": float(array[0]), "std": 0.0, "min": float(array.min()), "max": float(array.max())}
    return {
        "mean": float(finite.mean()),
        "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
    }
