"""Volume-weighted average price anchored to the start of the UTC day."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tradelab.tools.base import Bars, Tool
from tradelab.tools.builtin.time_encoding import DAY_MS
from tradelab.tools.numeric import grouped_cumsum


class VwapDay(Tool):
    """``sum(typical * volume) / sum(volume)`` over the bars since 00:00 UTC of the bar's day, the bar
    included, with ``typical = (high + low + close) / 3``; the bar's typical price while the day has
    traded no volume yet."""

    name: ClassVar[str] = "vwap_day"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "VWAP of the typical price since 00:00 UTC"
    group: ClassVar[str] = "tradelab"
    inputs: ClassVar[tuple[str, ...]] = ("ts", "high", "low", "close", "volume")

    def warmup(self, params: Any) -> int:
        """None: the first bar of a day is its own VWAP."""
        return 0

    def compute(self, bars: Bars, params: Any) -> np.ndarray:
        """VWAP per bar, shape ``(n,)``, in price units."""
        typical = bars["high"] + bars["low"]
        typical += bars["close"]
        typical /= 3
        # the day's running sums of price * volume (real part) and of volume (imaginary part) in one pass
        flows = np.empty(bars.n, dtype=np.complex128)
        np.multiply(typical, bars["volume"], out=flows.real)
        flows.imag = bars["volume"]
        sums = grouped_cumsum(flows, bars["ts"] // DAY_MS)
        return np.divide(sums.real, sums.imag, out=typical, where=sums.imag > 0)
