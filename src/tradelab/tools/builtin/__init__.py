"""Tools TA-Lib lacks, written on :mod:`tradelab.tools.numeric`: returns, volatility, z-scores, VWAP, time."""

from __future__ import annotations

from tradelab.tools.base import Tool
from tradelab.tools.builtin.returns import LogReturn, RealizedVol
from tradelab.tools.builtin.time_encoding import DayOfWeek, TimeOfDay
from tradelab.tools.builtin.vwap import VwapDay
from tradelab.tools.builtin.zscore import VolumeZScore, ZScore

BUILTIN_TOOLS: list[Tool] = [
    LogReturn(),
    RealizedVol(),
    ZScore(),
    VolumeZScore(),
    VwapDay(),
    TimeOfDay(),
    DayOfWeek(),
]

__all__ = ["BUILTIN_TOOLS"]
