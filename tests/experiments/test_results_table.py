"""The results table of ``tradelab run`` / ``evaluate``: annualised columns of a short window carry a caveat."""

from __future__ import annotations

import numpy as np
import pytest

from tradelab.experiments.cli import print_results
from tradelab.experiments.metrics import compute_metrics


def _results(bars: int) -> dict[str, object]:
    equity = 100.0 * np.cumprod(np.concatenate(([1.0], 1.0 + np.random.default_rng(0).normal(1e-4, 1e-3, bars))))
    metrics = compute_metrics(equity, timeframe="1m").as_dict()
    return {
        "name": "x",
        "seed": 0,
        "fold": None,
        "split": "test",
        "test": {"agent": metrics, "flat": metrics},
        "agent_sharpe_ci95": [0.0, 1.0],
    }


@pytest.mark.parametrize(("days", "marked"), [(7, True), (31, False)])
def test_a_short_window_marks_the_annualised_columns(
    capsys: pytest.CaptureFixture[str], days: int, marked: bool
) -> None:
    print_results(_results(days * 1440), "runs/x")
    output = capsys.readouterr().out
    assert ("Calmar †" in output and "Sharpe †" in output) is marked
    assert (f"annualised from {days:.1f} traded days (under 30)" in output) is marked
    assert "return †" not in output and "max DD †" not in output
