"""Resampling bars to a longer timeframe (1m → 5m, 15m, 1h, 4h, 1d, ...).

A resampled bar is labelled by its OPEN time, like every bar in the store, but it is only known at its
close: a 1h bar labelled 10:00 aggregates the source bars 10:00 ... 10:59 and can first be acted on at
11:00. Buckets are aligned to the Unix epoch, so 4h bars open at 00:00, 04:00, 08:00 ... UTC and daily
bars at midnight UTC.
"""

from __future__ import annotations

import polars as pl

from tradelab.data.errors import DataError
from tradelab.data.schema import COLUMNS, TS, conform, format_timeframe, timeframe_ms
from tradelab.data.store import Store, WriteResult

_SUMMED = ("volume", "trades", "quote_volume")
_COUNT = "_bars"


def resample_bars(
    bars: pl.DataFrame, source_timeframe: str, target_timeframe: str, *, drop_partial: bool = False
) -> pl.DataFrame:
    """Aggregate canonical bars to a timeframe that is a whole multiple of theirs.

    ``open`` is the first source open, ``high``/``low`` the extremes, ``close`` the last close;
    ``volume``, ``trades`` and ``quote_volume`` are summed (null when any source bar of the bucket has
    them null: the total is unknown), and ``filled`` is True when any source bar was filled.
    Gaps stay gaps: a bucket without source bars produces no bar.

    .. note::
        Without ``drop_partial`` a bucket with missing source bars is kept, and so is the last bucket of
        data that ends mid-bucket; that bar changes once the rest of its source bars arrive.

    :param bars: canonical bars at ``source_timeframe`` (sorted or not, unique ``ts``).
    :param source_timeframe: timeframe of ``bars``, e.g. ``"1m"``.
    :param target_timeframe: longer timeframe, a whole multiple of the source, e.g. ``"4h"``.
    :param drop_partial: drop buckets holding fewer source bars than a full bucket.
    :return: canonical bars at ``target_timeframe``, sorted by ``ts`` (bucket open time), with the
        optional columns ``bars`` has.
    :raises DataError: when the target is not a larger whole multiple of the source, or when ``ts``
        is duplicated or not aligned to the source timeframe.
    """
    source_ms = timeframe_ms(source_timeframe)
    target_ms = timeframe_ms(target_timeframe)
    if target_ms <= source_ms or target_ms % source_ms:
        raise DataError(
            f"cannot resample {source_timeframe} bars to {target_timeframe}: the target must be a larger "
            f"whole multiple of the source (e.g. {format_timeframe(source_ms * 5)})",
            column="target_timeframe",
        )
    bars = conform(bars).sort(TS)
    epoch_ms = pl.col(TS).dt.epoch("ms")
    if bars.select((epoch_ms % source_ms != 0).any()).item():
        raise DataError(f"bar open times are not aligned to {source_timeframe}", column=TS)
    if bars[TS].is_duplicated().any():
        raise DataError("duplicate bar open times", column=TS)

    aggregations = [
        pl.col("open").first(),
        pl.col("high").max(),
        pl.col("low").min(),
        pl.col("close").last(),
        *(
            pl.when(pl.col(name).is_null().any()).then(None).otherwise(pl.col(name).sum()).alias(name)
            for name in _SUMMED
            if name in bars.columns
        ),
        *([pl.col("filled").any()] if "filled" in bars.columns else []),
        pl.len().alias(_COUNT),
    ]
    # Floor division on epoch milliseconds: epoch-aligned buckets labelled by their open time.
    bucket = (epoch_ms // target_ms * target_ms).cast(COLUMNS[TS]).alias(TS)
    resampled = bars.group_by(bucket, maintain_order=True).agg(aggregations)
    if drop_partial:
        resampled = resampled.filter(pl.col(_COUNT) == target_ms // source_ms)
    return conform(resampled.drop(_COUNT).sort(TS))


def resample_dataset(
    store: Store, symbol: str, target: str, *, source: str = "1m", drop_partial: bool = False
) -> WriteResult:
    """Resample a stored dataset and store the result as its own timeframe, replacing any earlier one.

    The new manifest's ``derived_from`` is ``"<source>@<content hash of the source>"``, so a stale
    resample is detectable by comparing it with the source's current hash.

    :param store: the candle store holding ``symbol`` at ``source``.
    :param symbol: dataset symbol, e.g. ``"BTCUSDT"``.
    :param target: target timeframe; stored under its shortest name (``"60m"`` is stored as ``"1h"``).
    :param source: timeframe of the stored dataset to resample.
    :param drop_partial: drop buckets with missing source bars (see :func:`resample_bars`).
    :return: the store's write result; ``result.manifest.timeframe`` is the stored timeframe.
    """
    manifest = store.require(symbol, source)
    resampled = resample_bars(store.load(symbol, source), source, target, drop_partial=drop_partial)
    return store.write(
        symbol,
        format_timeframe(timeframe_ms(target)),
        resampled,
        replace=True,
        derived_from=f"{source}@{manifest.content_hash}",
    )
