"""Types the routers share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time (SQLite returns those) is taken as UTC."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


#: A datetime served as UTC (ISO 8601 with ``Z``), whatever the database returned.
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]

#: The largest id of a table with 32-bit serial ids (Postgres ``integer``); a larger one fails the query there.
MAX_ID = 2**31 - 1
#: The largest 64-bit integer (Postgres ``bigint``, SQLite ``INTEGER``): bounds 64-bit ids, steps and offsets.
MAX_BIGINT = 2**63 - 1
#: A path id of a table with 32-bit ids: out of range is a 422, never a database error.
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
