"""Registering the candle store's datasets in the control plane, with their validation reports."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from tradelab.data.store import Store
from tradelab.data.validate import validate_dataset
from tradelab.server.models import Dataset


def register_dataset(session: Session, store: Store, symbol: str, timeframe: str = "1m") -> Dataset:
    """The stored dataset's current version as a row (added, validated, when new; else the existing row).

    :raises tradelab.data.errors.DataError: when the store has no such dataset.
    """
    manifest = store.require(symbol, timeframe)
    existing = session.scalar(
        select(Dataset).where(
            Dataset.symbol == symbol, Dataset.timeframe == timeframe, Dataset.version == manifest.content_hash
        )
    )
    if existing is not None:
        return existing
    report = validate_dataset(store, symbol, timeframe)
    row = Dataset(
        symbol=symbol,
        timeframe=timeframe,
        version=manifest.content_hash,
        rows=report.rows,
        start=report.first_ts,
        end=report.last_ts,
        report=report.model_dump(mode="json"),
    )
    session.add(row)
    session.flush()
    return row


def register_store(session: Session, store: Store) -> list[Dataset]:
    """:func:`register_dataset` for every dataset in ``store``."""
    return [register_dataset(session, store, m.symbol, m.timeframe) for m in store.datasets()]
