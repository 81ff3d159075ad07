"""Log-returns of the close and their rolling standard deviation (realized volatility)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tradelab.tools.base import Bars, Tool
from tradelab.tools.builtin.time_encoding import DAY_MS
from tradelab.tools.numeric import rolling_mean_std

#: Crypto trades around the clock: a year is 365 days of 24 hours.
_YEAR_MS = 365 * DAY_MS


def log_returns(close: np.ndarray, periods: int) -> np.ndarray:
    """``ln(c[t] / c[t - periods])`` at every bar, NaN for the first ``periods``.

    Computed as ``log1p((c[t] - c[t - periods]) / c[t - periods])``: the difference of two nearby prices
    is exact, so even a one-tick move keeps its relative precision (``log`` of the rounded ratio would
    lose ~1e-16 absolute, 1e-12 relative on a 1e-4 move).

    :param close: prices, shape ``(n,)``, positive.
    :param periods: bars back, at least 1.
    :return: float64 array of shape ``(n,)``.
    """
    out = np.full(len(close), np.nan)
    previous = close[: max(len(close) - periods, 0)]
    out[periods:] = np.log1p((close[periods:] - previous) / previous)
    return out


class LogReturnParams(BaseModel):
    """Parameters of ``log_return``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    periods: int = Field(1, ge=1, description="Bars back: the return from the close `periods` bars earlier.")


class LogReturn(Tool):
    """``ln(close[t] / close[t - periods])``."""

    name: ClassVar[str] = "log_return"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Log-return of the close over `periods` bars"
    group: ClassVar[str] = "tradelab"
    Params: ClassVar[type[BaseModel]] = LogReturnParams

    def warmup(self, params: LogReturnParams) -> int:
        """``periods`` bars: the first return needs the close ``periods`` bars earlier."""
        return params.periods

    def compute(self, bars: Bars, params: LogReturnParams) -> np.ndarray:
        """Log-returns, shape ``(n,)``, unitless."""
        return log_returns(bars["close"], params.periods)


class RealizedVolParams(BaseModel):
    """Parameters of ``realized_vol``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(60, ge=2, description="One-bar log-returns in the window (it spans window + 1 closes).")
    annualize: bool = Field(
        False,
        description="Scale by the square root of bars per year (365 days of 24 h over the bar interval, the "
        "smallest spacing of the timestamps so far).",
    )


class RealizedVol(Tool):
    """Sample standard deviation (``ddof=1``) of the last ``window`` one-bar log-returns.

    Annualized, it is multiplied by ``sqrt(365 days / interval)``, the interval being the smallest spacing
    of the timestamps up to the bar (causal, and a gap never inflates it).
    """

    name: ClassVar[str] = "realized_vol"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Rolling std of one-bar log-returns, optionally annualized (24/7 year)"
    group: ClassVar[str] = "tradelab"
    Params: ClassVar[type[BaseModel]] = RealizedVolParams
    inputs: ClassVar[tuple[str, ...]] = ("ts", "close")

    def warmup(self, params: RealizedVolParams) -> int:
        """``window`` bars: the first full window of returns ends at bar ``window``."""
        return params.window

    def compute(self, bars: Bars, params: RealizedVolParams) -> np.ndarray:
        """Volatility per bar (or per year when annualized), shape ``(n,)``, as a fraction (0.01 = 1 %)."""
        _, vol = rolling_mean_std(log_returns(bars["close"], 1), params.window)
        if params.annualize:
            interval = np.full(bars.n, np.nan)
            interval[1:] = np.minimum.accumulate(np.diff(bars["ts"]))
            vol *= np.sqrt(_YEAR_MS / interval)
        return vol
