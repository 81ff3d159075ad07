"""Position in the UTC day and week as points on the unit circle, so 23:59 sits next to 00:00."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from tradelab.tools.base import Bars, Tool

DAY_MS = 86_400_000
#: 1970-01-01, day 0 of the epoch, was a Thursday: weekday 3 with Monday = 0.
_EPOCH_WEEKDAY = 3


class _CircleTool(Tool):
    """A phase of the bar's open time in turns (``[0, 1)``), encoded as its ``sin`` and ``cos``."""

    version: ClassVar[str] = "1"
    group: ClassVar[str] = "tradelab"
    inputs: ClassVar[tuple[str, ...]] = ("ts",)

    def outputs(self, params: Any) -> list[str]:
        """``sin`` and ``cos`` of ``2π · phase``."""
        return ["sin", "cos"]

    def warmup(self, params: Any) -> int:
        """None: each bar's value depends on its own timestamp only."""
        return 0

    def compute(self, bars: Bars, params: Any) -> dict[str, np.ndarray]:
        """``sin`` and ``cos`` of the phase, each of shape ``(n,)``, in ``[-1, 1]``."""
        angle = 2 * np.pi * self.phase(bars["ts"])
        return {"sin": np.sin(angle), "cos": np.cos(angle)}

    @abstractmethod
    def phase(self, ts: np.ndarray) -> np.ndarray:
        """Position in the cycle, in turns.

        :param ts: int64 epoch milliseconds (UTC), shape ``(n,)``.
        :return: float64 array of shape ``(n,)`` in ``[0, 1)``.
        """


class TimeOfDay(_CircleTool):
    """Time of day (UTC): phase ``minute_of_day / 1440``; 00:00 gives (sin 0, cos 1), 06:00 (1, 0)."""

    name: ClassVar[str] = "time_of_day"
    description: ClassVar[str] = "Time of day (UTC) as sin/cos of 2π·minute/1440"

    def phase(self, ts: np.ndarray) -> np.ndarray:
        """Milliseconds since 00:00 UTC over a day's milliseconds."""
        return (ts % DAY_MS) / DAY_MS


class DayOfWeek(_CircleTool):
    """Day of the week (UTC): phase ``weekday / 7`` with Monday = 0, so Monday gives (sin 0, cos 1)."""

    name: ClassVar[str] = "day_of_week"
    description: ClassVar[str] = "Day of the week (UTC, Monday = 0) as sin/cos of 2π·weekday/7"

    def phase(self, ts: np.ndarray) -> np.ndarray:
        """The weekday of the bar's UTC date over 7."""
        return (ts // DAY_MS + _EPOCH_WEEKDAY) % 7 / 7
