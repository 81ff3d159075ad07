"""The error type the data layer raises for bad input, and its subtype for conflicts with stored bars."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Bad input data, located as precisely as we can: file, line or row, column.

    :param message: what is wrong, in words a user can act on.
    :param source: the file (or dataset name) the data came from.
    :param line: 1-based line of a text file, or 1-based row of a record file.
    :param column: the offending column or field.
    :param unit: ``"line"`` for text files, ``"row"`` for records (JSON, Parquet).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
        unit: str = "line",
    ) -> None:
        self.message = message
        self.source = str(source) if source is not None else None
        self.line = line
        self.column = column
        self.unit = unit
        super().__init__(self._format())

    def _format(self) -> str:
        where = [p for p in (self.source, f"{self.unit} {self.line}" if self.line else None) if p]
        if self.column:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ConflictError(DataError):
    """New bars that disagree with stored ones; ``ts`` is the first of them, so that the caller that
    knows where the new bars came from can name the file and line.
    """

    def __init__(self, message: str, *, ts: datetime, **where: Any) -> None:
        self.ts = ts
        super().__init__(message, **where)
