"""Explicit repairs of a stored dataset, each recorded in its manifest."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from tradelab.data.errors import DataError
from tradelab.data.manifest import Repair
from tradelab.data.schema import TS, format_timeframe, timeframe_ms
from tradelab.data.store import Store, WriteResult


def fill_gaps(bars: pl.DataFrame, timeframe: str, max_bars: int) -> tuple[pl.DataFrame, int]:
    """Insert the missing bars of every gap of at most ``max_bars`` bars; longer gaps stay gaps.

    An inserted bar repeats the previous close as open, high, low and close, has zero volume (and
    trades), and ``filled=True``; real bars get ``filled=False``. Causal: only the previous bar is used.

    :return: the bars with the gaps filled, and how many bars were inserted.
    """
    if max_bars < 1:
        raise DataError(f"--fill-gaps must be at least 1 bar, got {max_bars}", column="fill_gaps")
    step = timeframe_ms(timeframe)
    earlier = pl.col("filled").fill_null(False) if "filled" in bars.columns else pl.lit(False)
    real = bars.with_columns(earlier.alias("filled"))
    grid = real.upsample(time_column=TS, every=f"{step}ms").with_columns(_new=pl.col("filled").is_null())
    run = grid.with_columns(_run=pl.col("_new").rle_id()).with_columns(_len=pl.len().over("_run"))
    kept = run.filter(~pl.col("_new") | (pl.col("_len") <= max_bars))
    prev_close = pl.col("close").forward_fill()
    filled = kept.with_columns(
        *(pl.when(pl.col("_new")).then(prev_close).otherwise(pl.col(c)).alias(c) for c in ("open", "high", "low")),
        close=prev_close,
        volume=pl.col("volume").fill_null(0.0),
        filled=pl.col("filled").fill_null(True),
        **{c: pl.col(c).fill_null(0) for c in ("trades", "quote_volume") if c in bars.columns},
    ).drop("_new", "_run", "_len")
    return filled, filled.height - bars.height


def repair_dataset(store: Store, symbol: str, timeframe: str = "1m", *, fill_gaps_up_to: int) -> WriteResult:
    """Fill the short gaps of a stored dataset in place (atomically), recording the repair in its manifest.

    A repair that would insert no bar writes nothing (``changed`` is False): rewriting would still add a
    ``filled`` column and so change the dataset version, invalidating every run pinned to it for nothing.
    """
    manifest = store.require(symbol, timeframe)
    bars = store.load(symbol, timeframe)
    repaired, inserted = fill_gaps(bars, timeframe, fill_gaps_up_to)
    if not inserted:
        return WriteResult(manifest=manifest, changed=False)
    repair = Repair(
        kind="fill_gaps",
        detail=f"forward-filled gaps of at most {fill_gaps_up_to} bars ({format_timeframe(timeframe_ms(timeframe))})",
        rows=inserted,
        applied_at=datetime.now(UTC),
    )
    return store.write(symbol, timeframe, repaired, replace=True, repairs=[repair])
