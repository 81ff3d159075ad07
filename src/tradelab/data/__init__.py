"""The data layer: a Parquet store of canonical candles, ingestion, validation, resampling and splits.

Usable from a notebook::

    import tradelab.data as td
    bars = td.load("BTCUSDT", "1m", start="2023-04-01", end="2023-05-01")
"""

from __future__ import annotations

import polars as pl

from tradelab.data.errors import DataError
from tradelab.data.manifest import Manifest
from tradelab.data.schema import TimeLike
from tradelab.data.store import Store

__all__ = ["DataError", "Manifest", "Store", "info", "list_datasets", "load"]


def load(
    symbol: str, timeframe: str = "1m", start: TimeLike | None = None, end: TimeLike | None = None
) -> pl.DataFrame:
    """Bars of ``symbol`` at ``timeframe`` in ``[start, end)`` from the default store (``$TRADELAB_HOME``).

    :param start: inclusive UTC bound (ISO string, ``YYYY-MM``, datetime or epoch ms); None for the first bar.
    :param end: exclusive UTC bound; None for the last bar.
    :return: frame with ``ts`` (datetime[ms, UTC], bar open time), ``open high low close volume`` and
        the optional columns the dataset has, sorted by ``ts``.
    """
    return Store().load(symbol, timeframe, start, end)


def list_datasets() -> list[Manifest]:
    """Manifests of every dataset in the default store."""
    return Store().datasets()


def info(symbol: str, timeframe: str = "1m") -> Manifest:
    """Manifest (rows, span, content hash = version, partitions, sources, repairs) of one dataset."""
    return Store().require(symbol, timeframe)
