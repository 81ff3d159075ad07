"""Look-ahead guard benchmark: what the check costs a tool's first use, and a cached verdict every later use.

On 20,000 synthetic 1-minute bars (the check's sample size), for the twelve features of
``bench_tools.py`` and the repository's manifest tool:

1. first use: the guard fingerprints the tool, runs the check (8 cuts × 2 perturbations) and writes the
   verdict into an empty folder (median of 5);
2. cached: the same guard call once the verdict is on disk (median of 50);
3. every registered tool, with its defaults, checked once: the median and the slowest.

Prints the table against the goals (first use ≤ 1 s per tool, a cached verdict ≤ 1 ms) and writes
``bench/results/bench_lookahead.json``. Exit status 0 even when a goal is missed.

Usage: ``.venv/bin/python bench/bench_lookahead.py`` (``make bench``).
"""

from __future__ import annotations

import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_report import RESULTS_DIR, Row, progress_steps, report, timed
from bench_tools import SPECS

BARS = 20_000
COLD_REPEATS = 5
CACHED_REPEATS = 50
RESULTS = RESULTS_DIR / "bench_lookahead.json"
TOOLS: list[dict[str, Any]] = [*SPECS, {"tool": "donchian_atr_breakout"}]


def measure(tool: Any, params: Any, bars: Any, folder: Path, step: Any) -> list[Row]:
    """First use (a new, empty verdict folder each time) and cached-verdict timings of one tool's guard call."""
    from tradelab.tools.lookahead import LookaheadGuard

    changed = params.model_dump(exclude_defaults=True)
    label = f"{tool.name} {json.dumps(changed)}" if changed else tool.name
    folders = itertools.count()

    def first_use() -> LookaheadGuard:
        guard = LookaheadGuard(folder / f"cold-{next(folders)}")
        guard.require_causal(tool, params, bars)
        return guard

    cold, guard = timed(first_use, COLD_REPEATS, step(f"{tool.name}: first use", COLD_REPEATS))
    cached, _ = timed(
        lambda: guard.require_causal(tool, params, bars), CACHED_REPEATS, step(f"{tool.name}: cached", CACHED_REPEATS)
    )
    cold_med, cached_med = statistics.median(cold), statistics.median(cached)
    return [
        Row(f"{label} first use", "ms", cold_med * 1000, "≤ 1 s", cold_med <= 1.0, samples_ours=cold),
        Row(
            f"{label} cached verdict",
            "ms",
            cached_med * 1000,
            "≤ 1 ms",
            cached_med <= 0.001,
            peer=cold_med * 1000,
            samples_ours=cached,
        ),
    ]


def run() -> list[Row]:
    """Run every measurement with a progress display; return the report rows."""
    from tradelab.data.ingest.synth import generate_bars
    from tradelab.tools.base import Bars
    from tradelab.tools.lookahead import check_tool
    from tradelab.tools.registry import default_registry

    registry = default_registry()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-lookahead-") as tmp, progress_steps() as step:
        bars = Bars.from_frame(generate_bars(BARS / 1440, seed=0, gaps=False))
        for i, spec in enumerate(TOOLS):
            tool = registry.get(spec["tool"])
            rows += measure(tool, tool.parse_params(spec.get("params")), bars, Path(tmp) / str(i), step)
        every = list(registry)
        advance = step("every registered tool, checked once", len(every))
        seconds = {}
        for tool in every:
            started = time.perf_counter()
            check_tool(tool, tool.parse_params(), bars)
            seconds[tool.name] = time.perf_counter() - started
            advance()
    slowest = max(seconds, key=seconds.__getitem__)
    median = statistics.median(seconds.values())
    return [
        *rows,
        Row(f"all {len(every)} tools: median check", "ms", median * 1000, "≤ 1 s", median <= 1.0),
        Row(f"all tools: slowest ({slowest})", "ms", seconds[slowest] * 1000, "≤ 1 s", seconds[slowest] <= 1.0),
    ]


def main() -> None:
    """Run the benchmark and report."""
    rows = run()
    title = f"tradelab look-ahead guard: cost per tool on {BARS:,} 1-minute bars, medians"
    extra = {"bars": BARS, "tools": TOOLS, "cold_repeats": COLD_REPEATS, "cached_repeats": CACHED_REPEATS}
    report(title, "first use", rows, RESULTS, extra)


if __name__ == "__main__":
    main()
