"""The Tool contract as :meth:`Tool.run` enforces it: every misbehaviour is named with the tool and the bar."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

from tests.bars import make_bars
from tradelab.tools.base import Bars, Tool
from tradelab.tools.errors import ToolError


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    window: int = Field(3, ge=1)
    mode: str = "ok"


class _Probe(Tool):
    """Moving sum of close over ``window`` bars, or a chosen misbehaviour."""

    name = "probe"
    version = "1"
    Params: ClassVar[type[BaseModel]] = _Params

    def warmup(self, params: Any) -> int:
        return params.window - 1

    def compute(self, bars: Bars, params: Any) -> Any:
        close = bars["close"]
        total = np.convolve(close, np.ones(params.window), mode="full")[: bars.n]
        total[: params.window - 1] = np.nan
        if params.mode == "raise":
            raise ZeroDivisionError("boom")
        if params.mode == "short":
            return total[:-1]
        if params.mode == "nan":
            total[7] = np.nan
        if params.mode == "names":
            return {"other": total}
        return total


@pytest.fixture
def bars() -> Bars:
    return Bars.from_frame(make_bars(20, start="2024-05-01"))


def test_a_good_tool_runs_with_defaults_and_checked_params(bars: Bars) -> None:
    out = _Probe().run(bars, {"window": 2})
    assert list(out) == ["probe"] and out["probe"].dtype == np.float64
    assert np.isnan(out["probe"][0]) and out["probe"][1] == pytest.approx(bars["close"][0] + bars["close"][1])
    assert _Probe().run(bars)["probe"][2] == pytest.approx(bars["close"][:3].sum())


@pytest.mark.parametrize(
    "params, message",
    [
        ({"mode": "raise"}, "tool probe failed: ZeroDivisionError: boom"),
        ({"mode": "short"}, r"tool probe output probe has shape \(19,\), expected \(20,\)"),
        (
            {"mode": "nan"},
            r"tool probe output probe is nan at bar 7 \(2024-05-01T00:07:00\.000 UTC\), after its warm-up",
        ),
        ({"mode": "names"}, r"tool probe returned outputs \['other'\], declared \['probe'\]"),
        ({"window": 0}, "invalid parameters for tool probe: window: Input should be greater than or equal to 1"),
        ({"windw": 3}, "invalid parameters for tool probe: windw: Extra inputs are not permitted"),
    ],
)
def test_misbehaviour_is_named(bars: Bars, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ToolError, match=message):
        _Probe().run(bars, params)


def test_missing_input_columns_are_named() -> None:
    with pytest.raises(ToolError, match="tool probe needs column\\(s\\) close"):
        _Probe().run(Bars({"open": np.ones(5)}))


def test_bars_of_unequal_length_are_refused() -> None:
    with pytest.raises(ToolError, match="bar columns differ in length"):
        Bars({"close": np.ones(5), "volume": np.ones(4)})


def test_bars_from_a_frame_are_contiguous_arrays() -> None:
    bars = Bars.from_frame(make_bars(10))
    assert bars.n == 10 and bars["ts"].dtype == np.int64 and bars["close"].flags.c_contiguous
    assert bars["ts"][1] - bars["ts"][0] == 60_000
    assert bars.head(3).n == 3 and np.shares_memory(bars.head(3)["close"], bars["close"])
