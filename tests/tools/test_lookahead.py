"""The look-ahead guard: no registered tool may see the future, each declares its warm-up honestly, and a
tool that reads later bars is refused where it is first used, with the verdict cached.

For every tool the default registry finds (built-ins, every TA-Lib function in the pack, the repository's
manifest tools, installed plugins), with default parameters, the library's check
(:func:`tradelab.tools.lookahead.check_tool`) perturbs the bars after several cuts and requires the
outputs up to each cut to be bit-identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from tests.plugins import LAST, PEEK, write_manifest_tool
from tradelab.data.ingest.synth import generate_bars
from tradelab.data.schema import TS
from tradelab.tools.base import Bars, Tool
from tradelab.tools.errors import ToolError
from tradelab.tools.features import FeaturePipeline
from tradelab.tools.lookahead import Leak, LookaheadGuard, Verdict, check_tool
from tradelab.tools.registry import Registry, default_registry

REGISTRY = default_registry()
BARS = Bars.from_frame(generate_bars(1.5, seed=11, gaps=False))  # 2,160 one-minute bars
FIRST_TS = "2024-01-01T00:00:00.000 UTC"


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

    verdict = check_tool(tool, params, BARS)
    assert verdict.checked and verdict.cuts[-1] == BARS.n - 2
    assert verdict.leak is None or not tool.causal, verdict.error()


class Peeking(Tool):
    """A tool that peeks at a later bar: ``reads(close, t)`` for bar t, NaN for its first ``nan_bars`` bars."""

    name = "peeking"

    def __init__(self, reads: Any, nan_bars: int = 0, declared_warmup: int = 0) -> None:
        self.reads, self.nan_bars, self.declared_warmup = reads, nan_bars, declared_warmup

    def warmup(self, params: BaseModel) -> int:
        return self.declared_warmup

    def compute(self, bars: Bars, params: BaseModel) -> np.ndarray:
        out = self.reads(bars["close"])
        out[: self.nan_bars] = np.nan
        return out


def next_close(close: np.ndarray) -> np.ndarray:
    return np.append(close[1:], 0.0)


def next_return_sign(close: np.ndarray) -> np.ndarray:
    return np.append(np.sign(close[1:] - close[:-1]), 0.0)


def whole_series_zscore(close: np.ndarray) -> np.ndarray:
    return (close - close.mean()) / close.std()


def test_the_check_catches_a_tool_that_reads_the_next_bar_at_every_cut() -> None:
    peek = Peeking(next_close)
    verdict = check_tool(peek, peek.parse_params(), BARS)
    assert verdict.leak == Leak(column="peeking", bar=0, ts=int(BARS[TS][0]), cut=0)
    assert verdict.bars == BARS.n and len(verdict.cuts) == 8


@pytest.mark.parametrize(
    ("peek", "first"),
    [
        pytest.param(Peeking(next_return_sign, nan_bars=100, declared_warmup=100), 100, id="sign-after-nan-warmup"),
        pytest.param(Peeking(next_close, declared_warmup=10**6), 0, id="over-declared-warmup"),
        pytest.param(Peeking(whole_series_zscore, nan_bars=50, declared_warmup=50), 50, id="whole-series-norm"),
    ],
)
def test_warmup_nans_and_small_moves_do_not_hide_a_leak(peek: Peeking, first: int) -> None:
    """Cuts start at the first defined output (not at the declared warm-up), and the future moves both ways."""
    verdict = check_tool(peek, peek.parse_params(), BARS)
    assert verdict.cuts[0] == first and verdict.leak is not None and verdict.leak.bar == first


def test_the_check_is_deterministic_and_bounded_to_a_sample() -> None:
    tool = REGISTRY.get("RSI")
    params = tool.parse_params()
    assert check_tool(tool, params, BARS) == check_tool(tool, params, BARS)
    long = Bars.from_frame(generate_bars(30, seed=1, gaps=False))  # 43,200 bars
    assert check_tool(tool, params, long).bars == 20_000


def test_nothing_defined_is_not_a_verdict() -> None:
    tool = REGISTRY.get("SMA")
    verdict = check_tool(tool, tool.parse_params({"timeperiod": 100}), BARS.head(50))
    assert not verdict.checked and verdict.leak is None


def counting(calls: list[str]) -> Any:
    """The library's check, recording the name of each tool it checks."""

    def check(tool: Tool, params: BaseModel, bars: Bars) -> Verdict:
        calls.append(tool.name)
        return check_tool(tool, params, bars)

    return check


@pytest.fixture
def user_registry(tmp_path: Path) -> Registry:
    """Built-ins plus two manifest tools: ``next_return`` (peeks, claims causal) and ``last_return``."""
    write_manifest_tool(tmp_path / "tools", "next_return", PEEK)
    write_manifest_tool(tmp_path / "tools", "last_return", LAST)
    return Registry(tmp_path / "tools", talib=False, entry_points=False)


def test_the_pipeline_refuses_a_leaking_manifest_tool_naming_output_and_bar(
    user_registry: Registry, tmp_path: Path
) -> None:
    pipeline = FeaturePipeline([{"tool": "next_return"}], user_registry, cache_dir=tmp_path / "cache")
    message = rf"tool next_return looks ahead: its output next_return at bar 0 \({FIRST_TS}\) changed when only"
    with pytest.raises(ToolError, match=message):
        pipeline.compute(BARS)
    assert not list((tmp_path / "cache").glob("*/*.npy"))  # nothing computed, nothing cached
    honest = FeaturePipeline([{"tool": "last_return"}], user_registry, cache_dir=tmp_path / "cache")
    assert honest.compute(BARS).columns == ["last_return"]


def test_the_verdict_is_cached_on_disk_by_tool_code_and_params(user_registry: Registry, tmp_path: Path) -> None:
    calls: list[str] = []

    def use(specs: list[dict[str, Any]], registry: Registry = user_registry) -> bool:
        """Whether the pipeline refused ``specs``; a new guard each time, so only the disk remembers."""
        guard = LookaheadGuard(tmp_path / "cache", check=counting(calls))
        try:
            FeaturePipeline(specs, registry, cache_dir=tmp_path / "cache", guard=guard).compute(BARS)
        except ToolError:
            return True
        return False

    assert use([{"tool": "last_return"}, {"tool": "next_return"}, {"tool": "log_return"}])
    assert calls == ["last_return", "next_return"]  # refused at next_return: log_return is never reached
    assert use([{"tool": "last_return"}, {"tool": "next_return"}])
    assert calls == ["last_return", "next_return"]  # both verdicts read back, the leak refused again
    assert not use([{"tool": "log_return", "as": "r"}, {"tool": "realized_vol", "params": {"window": 30}}])
    assert not use([{"tool": "realized_vol", "params": {"window": 31}}, {"tool": "log_return"}])
    assert calls[2:] == ["log_return", "realized_vol", "realized_vol"]  # other params: checked; an alias: not
    assert len(list((tmp_path / "cache" / "lookahead").glob("*.json"))) == 5

    # Editing a manifest tool's code re-checks it, though its version was not bumped.
    (tmp_path / "tools" / "last_return" / "tool.py").write_text(LAST + "\n# tuned\n")
    assert not use([{"tool": "last_return"}], Registry(tmp_path / "tools", talib=False, entry_points=False))
    assert calls[5:] == ["last_return"]


def test_tools_declared_non_causal_are_not_checked(tmp_path: Path) -> None:
    calls: list[str] = []

    class Honest(Peeking):
        causal = False

    peek = Honest(next_close)
    LookaheadGuard(tmp_path, check=counting(calls)).require_causal(peek, peek.parse_params(), BARS)
    assert calls == []
