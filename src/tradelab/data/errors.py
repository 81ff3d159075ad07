"""The one error type the data layer raises for bad input."""

from __future__ import annotations

from pathlib import Path


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
