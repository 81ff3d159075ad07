"""Explicit repairs: forward-filling short gaps, recorded in the manifest."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from tests.bars import make_bars
from tradelab.cli import app
from tradelab.data.errors import DataError
from tradelab.data.repair import fill_gaps, repair_dataset
from tradelab.data.store import Store
from tradelab.data.validate import validate_bars


def _with_gaps() -> pl.DataFrame:
    index = pl.int_range(pl.len())
    return make_bars(100).filter(~index.is_between(10, 11) & ~index.is_between(50, 59))  # gaps of 2 and 10


def test_short_gaps_are_filled_from_the_previous_close_long_ones_stay() -> None:
    bars = _with_gaps()
    filled, inserted = fill_gaps(bars, "1m", 5)
    assert inserted == 2 and filled.height == 90
    new = filled.filter("filled")
    assert new.height == 2
    previous_close = bars.filter(pl.col("ts") < new["ts"][0])["close"][-1]
    assert new["open"].to_list() == [previous_close] * 2 and new["close"].to_list() == [previous_close] * 2
    assert new["volume"].to_list() == [0.0, 0.0]
    assert validate_bars(filled).gaps.missing_bars == 10


def test_repair_is_recorded_in_the_manifest_and_keeps_earlier_flags(store: Store) -> None:
    store.write("X", "1m", _with_gaps())
    repair_dataset(store, "X", fill_gaps_up_to=2)
    second = repair_dataset(store, "X", fill_gaps_up_to=10)
    manifest = second.manifest
    assert [(r.kind, r.rows) for r in manifest.repairs] == [("fill_gaps", 2), ("fill_gaps", 10)]
    loaded = store.load("X")
    assert loaded.height == 100 and loaded["filled"].sum() == 12
    assert "filled" in manifest.columns


def test_fill_gaps_needs_a_positive_size() -> None:
    with pytest.raises(DataError, match="at least 1 bar"):
        fill_gaps(make_bars(5), "1m", 0)


def test_filling_is_causal_future_bars_do_not_change_the_past() -> None:
    bars = _with_gaps()
    cut = bars["ts"][45]  # after the short gap, before the long one
    changed_future = bars.with_columns(
        pl.when(pl.col("ts") > cut).then(pl.col(c) * 1.5).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close", "volume")
    )
    past = fill_gaps(bars, "1m", 5)[0].filter(pl.col("ts") <= cut)
    assert fill_gaps(changed_future, "1m", 5)[0].filter(pl.col("ts") <= cut).equals(past)
    assert fill_gaps(bars.filter(pl.col("ts") <= cut), "1m", 5)[0].equals(past)


def test_a_repair_that_fills_nothing_changes_nothing_and_says_so(home: Path) -> None:
    store = Store()
    store.write("X", "1m", _with_gaps())  # gaps of 2 and 10 bars: none of at most 1
    folder = store.dataset_dir("X")
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    version = store.require("X").version
    result = CliRunner().invoke(app, ["data", "repair", "X", "--fill-gaps", "1"])
    output = " ".join(result.output.split())
    assert result.exit_code == 0 and result.exception is None, output
    assert "nothing to fill" in output and f"version {version} unchanged" in output, output
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert "filled" not in store.require("X").columns and store.require("X").repairs == []
    assert not repair_dataset(store, "X", fill_gaps_up_to=1).changed
