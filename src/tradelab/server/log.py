"""Structured logs for the control plane: one JSON object per line, with a record's ``extra`` fields.

Secrets never reach a log: the request logger records the method, path, status and duration only, and
tokens are never passed to a logger.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"at", "level", "logger", "message", …extra}`` as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON (exceptions as a ``traceback`` field)."""
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **{k: v for k, v in vars(record).items() if k not in _STANDARD},
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """Send the ``tradelab`` loggers to stderr as JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("tradelab")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
