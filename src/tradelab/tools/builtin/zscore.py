"""Rolling z-score of a bar column: how many standard deviations the bar sits from its window's mean."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tradelab.tools.base import Bars, Tool
from tradelab.tools.numeric import rolling_zscore


class ZScoreParams(BaseModel):
    """Parameters of the z-score tools."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: int = Field(120, ge=2, description="Bars in the window, the current one included.")


class _ZScoreTool(Tool):
    """``(x - mean) / std`` over the last ``window`` values of the input column, the bar's own included
    (sample std, ``ddof=1``); 0 where the window is flat (std 0), as in a stale run of prices."""

    version: ClassVar[str] = "1"
    group: ClassVar[str] = "tradelab"
    Params: ClassVar[type[BaseModel]] = ZScoreParams

    def warmup(self, params: ZScoreParams) -> int:
        """``window - 1`` bars: the first full window ends at bar ``window - 1``."""
        return params.window - 1

    def compute(self, bars: Bars, params: ZScoreParams) -> np.ndarray:
        """Z-scores, shape ``(n,)``, in standard deviations."""
        return rolling_zscore(bars[self.inputs[0]], params.window)


class ZScore(_ZScoreTool):
    """Z-score of the close against its last ``window`` closes."""

    name: ClassVar[str] = "zscore"
    description: ClassVar[str] = "Z-score of the close over a rolling window (0 when the window is flat)"
    inputs: ClassVar[tuple[str, ...]] = ("close",)


class VolumeZScore(_ZScoreTool):
    """Z-score of the volume against its last ``window`` volumes."""

    name: ClassVar[str] = "volume_zscore"
    description: ClassVar[str] = "Z-score of the volume over a rolling window (0 when the window is flat)"
    inputs: ClassVar[tuple[str, ...]] = ("volume",)
