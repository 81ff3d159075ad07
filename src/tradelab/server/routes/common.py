"""Types the routers share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time (SQLite returns those) is taken as UTC."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


#: A datetime served as UTC (ISO 8601 with ``Z``), whatever the database returned.
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
