"""Types the routers share."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, BeforeValidator, Field


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive time (SQLite returns those) is taken as UTC."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


#: A datetime served as UTC (ISO 8601 with ``Z``), whatever the database returned.
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]

#: The largest id of a table with 32-bit serial ids (Postgres ``integer``); a larger one fails the query there.
MAX_ID = 2**31 - 1
#: The largest integer every JSON parser holds exactly (RFC 8259, JavaScript's ``Number.MAX_SAFE_INTEGER``): bounds
#: steps, offsets and the ids of 64-bit tables. Past it the schema's own bound (written as a float) is inexact.
MAX_JSON_INT = 2**53 - 1
#: A path id of a table with 32-bit ids: out of range is a 422, never a database error.
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


def _json_integer(value: object) -> object:
    """``value`` as JSON Schema's ``integer``: a number without a fraction (``3.0`` included), never a boolean or
    a string (which pydantic would take for ``1`` or parse)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError("must be an integer")


#: Makes an ``int`` read a JSON body's number exactly as the schema's ``integer`` means it; placed after the bounds
#: (``Annotated[int, Field(ge=1), JSON_INTEGER]``) where they would otherwise not reach the schema (in a list or an
#: optional field).
JSON_INTEGER = BeforeValidator(_json_integer)
#: An integer in a JSON body, exactly as the schema's ``integer`` means it.
JsonInt = Annotated[int, JSON_INTEGER]

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


def _rfc3339(value: object) -> object:
    """``value`` if it is a datetime or an RFC 3339 date-time string with its offset (what the schema's ``format:
    date-time`` means); pydantic alone also takes epoch numbers, bare dates and times without an offset."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise ValueError("must be an RFC 3339 date-time with its offset, e.g. 2024-01-31T00:00:00Z")


#: A time a client sends: RFC 3339 with an offset, exactly what the schema states.
ClientDatetime = Annotated[datetime, BeforeValidator(_rfc3339)]

#: Text the database stores or compares: no NUL character, which Postgres refuses (stated in the schema).
Text = Annotated[str, Field(pattern=r"^[^\x00]*$")]
