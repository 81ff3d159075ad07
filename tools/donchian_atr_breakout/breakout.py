"""Donchian-channel breakout with an ATR volatility filter; the rule is written up in
``docs/tools/donchian-atr-breakout.md``.

Loaded by the registry from this file's path (not via ``sys.path``), so it imports only ``tradelab``,
numpy, TA-Lib and pydantic. Name, version and description come from ``tool.toml``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import talib
from pydantic import BaseModel, ConfigDict, Field

from tradelab.tools.base import Bars, Tool

# TA-Lib accepts periods up to 100,000 bars.
_MAX_PERIOD = 100_000


class BreakoutParams(BaseModel):
    """Parameters of the Donchian/ATR breakout rule."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    channel: int = Field(
        20,
        ge=2,
        le=_MAX_PERIOD,
        description="Bars in the Donchian channel: the high/low of the `channel` bars before the signal bar.",
    )
    atr_period: int = Field(14, ge=1, le=_MAX_PERIOD, description="Period of TA-Lib's ATR (Wilder's smoothing).")
    min_atr_pct: float = Field(
        0.0003,
        ge=0.0,
        le=1.0,
        description="Volatility filter: minimum ATR / close as a fraction (0.0003 = 0.03 %); 0 turns it off.",
    )
    allow_short: bool = Field(True, description="Signal -1 on a downside breakout; when false such bars give 0.")


class DonchianAtrBreakout(Tool):
    """Long (+1) when the close is above the previous ``channel`` bars' highest high, short (-1) when below
    their lowest low, 0 otherwise; a breakout counts only when ATR / close >= ``min_atr_pct`` and the bar
    traded (volume > 0).

    Outputs ``signal``, ``upper``, ``lower`` and ``atr_pct``; each is NaN until it is defined, and all are
    defined from bar ``max(channel, atr_period)`` on.
    """

    group: ClassVar[str] = "Signals"
    Params: ClassVar[type[BaseModel]] = BreakoutParams
    inputs: ClassVar[tuple[str, ...]] = ("high", "low", "close", "volume")

    def outputs(self, params: BreakoutParams) -> list[str]:
        """``signal`` (+1/0/-1), the channel ``upper``/``lower`` it was compared with, and ``atr_pct``."""
        return ["signal", "upper", "lower", "atr_pct"]

    def warmup(self, params: BreakoutParams) -> int:
        """``channel`` bars before the first full channel (TA-Lib MAX's lookback ``channel - 1``, plus the
        one-bar shift), ``atr_period`` before the first ATR (TA-Lib ATR's lookback)."""
        return max(params.channel, params.atr_period)

    def compute(self, bars: Bars, params: BreakoutParams) -> dict[str, np.ndarray]:
        """The signal and its ingredients, one value per bar, each known at that bar's close."""
        high, low, close = bars["high"], bars["low"], bars["close"]
        # TA-Lib's MAX/MIN at bar t span t-channel+1 .. t; shifted one bar they span t-channel .. t-1,
        # the channel the close of bar t can break out of.
        upper = _previous(talib.MAX(high, timeperiod=params.channel))
        lower = _previous(talib.MIN(low, timeperiod=params.channel))
        atr_pct = talib.ATR(high, low, close, timeperiod=params.atr_period) / close
        # Strict inequalities: a close equal to the channel is not a breakout. lower <= upper, so a
        # close cannot be above one and below the other.
        signal = np.where(close > upper, 1.0, 0.0)
        if params.allow_short:
            signal[close < lower] = -1.0
        # A dead market (ATR below the floor) or a bar nobody traded confirms nothing.
        signal[(atr_pct < params.min_atr_pct) | (bars["volume"] <= 0.0)] = 0.0
        signal[: self.warmup(params)] = np.nan
        return {"signal": signal, "upper": upper, "lower": lower, "atr_pct": atr_pct}


def _previous(values: np.ndarray) -> np.ndarray:
    """``values`` one bar later: element t is ``values[t - 1]``, NaN at bar 0."""
    shifted = np.full_like(values, np.nan)
    shifted[1:] = values[:-1]
    return shifted
