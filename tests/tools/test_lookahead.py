"""The look-ahead guard: no registered tool may see the future, and each declares its warm-up honestly.

For every tool the default registry finds (built-ins, every TA-Lib function in the pack, the repository's
manifest tools, installed plugins), with default parameters: compute on a realistic series, then on
copies whose bars after ``t`` are perturbed, and require the outputs up to ``t`` to be bit-identical.
A tool that fails is a bug, or a tool to mark ``causal = False`` (which the environment refuses).
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel

from tradelab.data.ingest.synth import generate_bars
from tradelab.data.schema import TS
from tradelab.tools.base import Bars, Tool
from tradelab.tools.registry import default_registry

REGISTRY = default_registry()
BARS = Bars.from_frame(generate_bars(1.5, seed=11, gaps=False))  # 2,160 one-minute bars


def perturb_after(bars: Bars, t: int, seed: int) -> Bars:
    """A copy of ``bars`` whose every column but ``ts`` is scaled by random factors after bar ``t``.

    High and low are then recomputed as the extremes of the perturbed open, high, low and close, so the
    bars stay consistent and prices positive.
    """
    rng = np.random.default_rng(seed)
    columns = {name: values.copy() for name, values in bars.items()}
    future = slice(t + 1, None)
    for name, values in columns.items():
        if name != TS:
            values[future] *= rng.uniform(0.8, 1.25, bars.n - t - 1)
    prices = np.stack([columns[c][future] for c in ("open", "high", "low", "close")])
    columns["high"][future] = prices.max(axis=0)
    columns["low"][future] = prices.min(axis=0)
    return Bars(columns)


def test_the_guard_covers_every_source() -> None:
    origins = {tool.origin.partition(":")[0] for tool in REGISTRY}
    assert {"builtin", "talib", "manifest"} <= origins
    assert len(REGISTRY) > 100


@pytest.mark.parametrize("name", REGISTRY.names())
def test_tool_does_not_look_ahead(name: str) -> None:
    tool = REGISTRY.get(name)
    params = tool.parse_params()
    warmup = tool.warmup(params)
    assert warmup + 1 < BARS.n // 2, f"{name} warms up for {warmup} bars with its defaults, too long to test"
    outputs = tool.run(BARS, params)  # raises on a wrong length or NaN/inf after the warm-up
    for column, values in outputs.items():
        defined = np.flatnonzero(~np.isnan(values))
        nan_prefix = int(defined[0]) if defined.size else BARS.n
        assert nan_prefix <= warmup, f"{name}.{column} is NaN for {nan_prefix} bars, its warm-up is {warmup}"

    leaks = future_leaks(tool, outputs, warmup)
    if leaks:
        assert not tool.causal, f"{name} claims to be causal but its past moved with the future: {leaks}"


def future_leaks(tool: Tool, outputs: dict[str, np.ndarray], warmup: int) -> list[str]:
    """Where the default-parameter ``outputs`` of ``tool`` up to ``t`` change when bars after ``t`` do."""
    leaks = []
    for t in (warmup + 1, BARS.n // 2, BARS.n - 3):
        perturbed = tool.run(perturb_after(BARS, t, seed=t))
        leaks += [
            f"{column} at t={t}"
            for column, values in outputs.items()
            if not np.array_equal(values[: t + 1], perturbed[column][: t + 1], equal_nan=True)
        ]
    return leaks


class NextClose(Tool):
    """A tool that peeks: the next bar's close (0 on the last bar)."""

    name = "next_close"

    def warmup(self, params: BaseModel) -> int:
        return 0

    def compute(self, bars: Bars, params: BaseModel) -> np.ndarray:
        return np.append(bars["close"][1:], 0.0)


def test_the_guard_catches_a_tool_that_peeks() -> None:
    peek = NextClose()
    assert future_leaks(peek, peek.run(BARS), 0) == [
        "next_close at t=1",
        "next_close at t=1080",
        "next_close at t=2157",
    ]
