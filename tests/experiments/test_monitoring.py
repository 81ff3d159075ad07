"""Out-of-sample monitoring: a trained run scored again on bars appended to its dataset after it ran."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from tests.env.envs import frame
from tests.experiments.runs import stored, tiny_config
from tradelab.data.errors import DataError
from tradelab.data.ingest.synth import generate_bars
from tradelab.data.schema import to_ms
from tradelab.data.store import Store
from tradelab.experiments.monitoring import evaluate_recent, recorded_points
from tradelab.experiments.runner import run_experiment

DAY_MS = 86_400_000


def _next_day(store: Store) -> None:
    """Append one more day of bars after the stored ones (as a live stream would)."""
    last = frame()["ts"][-1]
    store.write("SYN", "1m", generate_bars(1, seed=11, start=last + timedelta(minutes=1), gaps=False))


def test_a_run_is_scored_on_the_newest_bars_never_on_those_it_learned_from(store: Store, tmp_path: Path) -> None:
    (outcome,) = run_experiment(tiny_config(), tmp_path / "runs", store=stored(store), progress=False)
    tested = pl.read_parquet(Path(outcome.url) / "equity_test.parquet")["ts"]
    before = evaluate_recent(outcome.url, 30, store=store)
    # a 30-day window reaches back before the data: it starts where the run's test segment starts
    assert before["window"]["start"] == to_ms(tested[0])
    assert before["window"]["unseen_bars"] == 0 and before["window"]["bars"] == len(tested)
    assert before["oos"]["agent"]["total_return"] == pytest.approx(outcome.results["test"]["agent"]["total_return"])

    _next_day(store)
    after = evaluate_recent(outcome.url, 1, store=store)
    window = after["window"]
    assert window["end"] - window["start"] == DAY_MS - 60_000 and window["unseen_bars"] == window["bars"] == 1_440
    assert after["dataset"] != before["dataset"]  # the newest version, not the run's pinned one
    assert set(after["oos"]) == {"agent", "buy_and_hold", "flat", "random", "sma_crossover"}
    points = recorded_points(after)
    assert points["unseen_share"] == 1.0 and points["n_trades"] == after["oos"]["agent"]["n_trades"]
    hold = after["oos"]["buy_and_hold"]["total_return"]
    assert points["excess_return"] == pytest.approx(points["total_return"] - hold)
    written = json.loads((Path(outcome.url) / f"evaluation_oos-{window['end']}.json").read_text())
    assert written["window"] == window
    assert (Path(outcome.url) / f"equity_oos-{window['end']}.parquet").is_file()


def test_a_window_without_out_of_sample_bars_is_refused(store: Store, tmp_path: Path) -> None:
    (outcome,) = run_experiment(tiny_config(), tmp_path / "runs", store=stored(store), progress=False)
    with pytest.raises(DataError, match="days must be at least 1"):
        evaluate_recent(outcome.url, 0, store=store)
    tested = pl.read_parquet(Path(outcome.url) / "equity_test.parquet")["ts"]
    kept = frame().filter(pl.col("ts") < tested[0] + timedelta(minutes=1))
    store.write("SYN", "1m", kept, replace=True)  # the dataset now ends at the test segment's first bar
    with pytest.raises(DataError, match="needs at least 3"):
        evaluate_recent(outcome.url, 1, store=store)
