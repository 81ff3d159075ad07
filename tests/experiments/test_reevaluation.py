"""``tradelab evaluate`` beyond the run's pinned data: appended bars, another symbol, and in-sample warnings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.env.envs import frame
from tests.experiments.runs import stored, tiny_config
from tradelab.cli import app
from tradelab.data.errors import DataError
from tradelab.data.ingest.synth import generate_bars
from tradelab.data.store import Store
from tradelab.env.market import EnvDataError
from tradelab.experiments.reevaluation import evaluate_run
from tradelab.experiments.runner import RunOutcome, run_experiment

NEXT_DAY = "2024-01-03..2024-01-04"


@pytest.fixture
def trained(home: Path, tmp_path: Path) -> RunOutcome:
    """A tiny run over SYN, in the default store (the CLI's)."""
    (outcome,) = run_experiment(tiny_config(), tmp_path / "runs", store=stored(Store()), progress=False)
    return outcome


def _append_next_day(store: Store) -> None:
    last = frame()["ts"][-1]
    store.write("SYN", "1m", generate_bars(1, seed=11, start=last + timedelta(minutes=1), gaps=False))


def test_appended_bars_are_evaluated_only_with_allow_newer(trained: RunOutcome) -> None:
    store = Store()
    _append_next_day(store)
    with pytest.raises(DataError, match="--allow-newer"):
        evaluate_run(trained.url, "test")
    again = evaluate_run(trained.url, "test", allow_newer=True)
    assert again["test"]["agent"]["total_return"] == pytest.approx(trained.results["test"]["agent"]["total_return"])
    assert again["warnings"] == []
    newest = evaluate_run(trained.url, NEXT_DAY, allow_newer=True)
    assert newest["2024-01-03-2024-01-04"]["agent"]["bars"] == 1_439


def test_allow_newer_refuses_a_dataset_whose_past_changed(trained: RunOutcome) -> None:
    store = Store()
    _append_next_day(store)
    edited = store.load("SYN").with_columns(
        close=pl.when(pl.int_range(pl.len()) == 10).then(pl.col("close") * 1.001).otherwise(pl.col("close"))
    )
    store.write("SYN", "1m", edited, on_conflict="replace")
    with pytest.raises(DataError, match="not only appended"):
        evaluate_run(trained.url, "test", allow_newer=True)


def test_another_symbol_is_scored_on_a_date_range_optionally_pinned(trained: RunOutcome) -> None:
    store = Store()
    store.write("OTH", "1m", generate_bars(3, seed=5, gaps=False))
    version = store.require("OTH").version
    result = evaluate_run(trained.url, NEXT_DAY, dataset=f"OTH@{version}")
    assert result["dataset"].startswith(f"OTH/1m@{version}") and result["warnings"] == []
    with pytest.raises(DataError, match="date range"):
        evaluate_run(trained.url, "test", dataset="OTH")
    with pytest.raises(EnvDataError, match="ffffffff"):
        evaluate_run(trained.url, NEXT_DAY, dataset="OTH@ffffffff")
    with pytest.raises(DataError, match="--dataset"):
        evaluate_run(trained.url, NEXT_DAY, dataset="OTH@")


def test_a_range_overlapping_training_or_validation_is_scored_with_a_warning(trained: RunOutcome) -> None:
    Store().write("OTH", "1m", generate_bars(3, seed=5, gaps=False))
    (warning,) = evaluate_run(trained.url, "val")["warnings"]
    assert "val" in warning and "selected" in warning
    (warning,) = evaluate_run(trained.url, "2024-01-01..2024-01-02", dataset="OTH")["warnings"]
    assert "train" in warning and "learned" in warning

    result = CliRunner().invoke(app, ["evaluate", trained.url, "--split", "2024-01-01..2024-01-03", "--dataset", "OTH"])
    output = " ".join(result.output.split())
    assert result.exit_code == 0, output
    assert "warning" in output and "train" in output and "val" in output

    _append_next_day(Store())
    result = CliRunner().invoke(app, ["evaluate", trained.url, "--split", NEXT_DAY, "--allow-newer"])
    assert result.exit_code == 0 and "warning" not in result.output, result.output
