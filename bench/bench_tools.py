"""Tools benchmark: our feature pipeline against TA-Lib called directly and against the `ta` library.

On 1,000,000 synthetic 1-minute bars, in one run and on the same arrays:

1. the floor: TA-Lib's functions called directly for the nine TA-Lib features (median of 5);
2. ours, cold: the feature pipeline computing all twelve features into one float32 matrix and writing
   its cache into an empty folder (median of 5), and the same without a cache (computation only);
3. ours, from cache: the same pipeline again on the same dataset version (median of 5);
4. the peer: the `ta` library on pandas Series, what a pandas user reaches for (once: it takes seconds).

Prints the table against the goals (cold ≤ 2× direct TA-Lib, cache hit ≤ 30 ms, ≥ 30× faster than
`ta`) and writes ``bench/results/bench_tools.json``. Exit status 0 even when a goal is missed.

Usage: ``.venv/bin/python bench/bench_tools.py`` (``make bench``).
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench_report import RESULTS_DIR, Row, progress_steps, report, timed

BARS = 1_000_000
REPEATS = 9
RESULTS = RESULTS_DIR / "bench_tools.json"
SPECS: list[dict[str, Any]] = [
    {"tool": "SMA", "params": {"timeperiod": 30}},
    {"tool": "EMA", "params": {"timeperiod": 30}},
    {"tool": "RSI", "params": {"timeperiod": 14}},
    {"tool": "MACD"},
    {"tool": "ATR", "params": {"timeperiod": 14}},
    {"tool": "BBANDS", "params": {"timeperiod": 20}},
    {"tool": "STOCH"},
    {"tool": "ADX", "params": {"timeperiod": 14}},
    {"tool": "OBV"},
    {"tool": "log_return"},
    {"tool": "realized_vol", "params": {"window": 60}},
    {"tool": "vwap_day"},
]


def talib_direct(o: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The nine TA-Lib features, called directly on float64 arrays: the floor for any wrapper."""
    import talib

    h, low, c, v = o["high"], o["low"], o["close"], o["volume"]
    return [
        talib.SMA(c, 30),
        talib.EMA(c, 30),
        talib.RSI(c, 14),
        *talib.MACD(c),
        talib.ATR(h, low, c, 14),
        *talib.BBANDS(c, 20),
        *talib.STOCH(h, low, c),
        talib.ADX(h, low, c, 14),
        talib.OBV(c, v),
    ]


def ta_library(o: dict[str, np.ndarray]) -> list[Any]:
    """The twelve features with the `ta` library (pandas); realised volatility, which `ta` lacks, via pandas."""
    import pandas as pd
    from ta.momentum import RSIIndicator, StochasticOscillator
    from ta.others import DailyLogReturnIndicator
    from ta.trend import MACD, ADXIndicator, EMAIndicator, SMAIndicator
    from ta.volatility import AverageTrueRange, BollingerBands
    from ta.volume import OnBalanceVolumeIndicator, VolumeWeightedAveragePrice

    h, low, c, v = (pd.Series(o[k]) for k in ("high", "low", "close", "volume"))
    macd, bands = MACD(c), BollingerBands(c, 20)
    stoch = StochasticOscillator(h, low, c)
    return [
        SMAIndicator(c, 30).sma_indicator(),
        EMAIndicator(c, 30).ema_indicator(),
        RSIIndicator(c, 14).rsi(),
        macd.macd(),
        macd.macd_signal(),
        macd.macd_diff(),
        AverageTrueRange(h, low, c, 14).average_true_range(),
        bands.bollinger_hband(),
        bands.bollinger_mavg(),
        bands.bollinger_lband(),
        stoch.stoch(),
        stoch.stoch_signal(),
        ADXIndicator(h, low, c, 14).adx(),
        OnBalanceVolumeIndicator(c, v).on_balance_volume(),
        DailyLogReturnIndicator(c).daily_log_return(),
        np.log(c).diff().rolling(60).std(),
        VolumeWeightedAveragePrice(h, low, c, v, window=1440).volume_weighted_average_price(),
    ]


def run() -> list[Row]:
    """Run every measurement with a progress display; return the report rows."""
    from tradelab.data.ingest.synth import generate_bars
    from tradelab.tools.base import Bars
    from tradelab.tools.features import FeaturePipeline, FeatureSpec

    with tempfile.TemporaryDirectory(prefix="bench-tools-") as tmp, progress_steps() as step:
        advance = step(f"generate {BARS:,} 1m bars", 1)
        frame = generate_bars(BARS / 1440, seed=0, gaps=False)
        bars = Bars.from_frame(frame)
        arrays = {k: bars[k] for k in ("high", "low", "close", "volume")}
        advance()
        specs = [FeatureSpec.model_validate(s) for s in SPECS]
        direct, _ = timed(lambda: talib_direct(arrays), REPEATS, step("TA-Lib direct (9 features)", REPEATS))

        caches = itertools.count()  # a fresh, empty cache folder for every cold run

        def cold() -> Any:
            pipeline = FeaturePipeline(specs, cache_dir=Path(tmp) / f"cold-{next(caches)}")
            return pipeline.compute(bars, dataset_hash="bench")

        def uncached() -> Any:
            return FeaturePipeline(specs).compute(bars)

        compute_s, _ = timed(uncached, REPEATS, step("ours, computed only (no cache)", REPEATS))
        cold_s, matrix = timed(cold, REPEATS, step("ours, cold (computed, cache written)", REPEATS))
        warm = FeaturePipeline(specs, cache_dir=Path(tmp) / "cold-0")
        hit_s, cached = timed(
            lambda: warm.compute(bars, dataset_hash="bench"), REPEATS, step("ours, from cache", REPEATS)
        )
        if not np.array_equal(np.asarray(cached.values), matrix.values, equal_nan=True):
            raise RuntimeError("the cached matrix differs from the computed one")
        peer_s, _ = timed(lambda: ta_library(arrays), 1, step("ta library (pandas), once", 1), warmup=0)

    direct_s, cold_med, hit_med = statistics.median(direct), statistics.median(cold_s), statistics.median(hit_s)
    return [
        Row("TA-Lib direct, 9 features (the floor)", "ms", direct_s * 1000, "reference", None, samples_ours=direct),
        Row(
            f"ours cold: 12 features, {len(matrix.columns)} columns, cache written",
            "ms",
            cold_med * 1000,
            f"≤ 2× TA-Lib direct ({2 * direct_s * 1000:.0f} ms), ≥ 30× ta",
            cold_med <= 2 * direct_s and peer_s[0] / cold_med >= 30,
            peer=peer_s[0] * 1000,
            samples_ours=cold_s,
            samples_peer=peer_s,
        ),
        Row(
            "ours computed only (no cache)",
            "ms",
            statistics.median(compute_s) * 1000,
            "reference: the cold run less its cache writes",
            None,
            peer=peer_s[0] * 1000,
            samples_ours=compute_s,
        ),
        Row(
            "ours from cache",
            "ms",
            hit_med * 1000,
            "≤ 30 ms",
            hit_med <= 0.030,
            peer=peer_s[0] * 1000,
            samples_ours=hit_s,
        ),
    ]


def main() -> None:
    """Run the benchmark and report."""
    from importlib.metadata import version

    rows = run()
    title = f"tradelab tools benchmark: 12 features on {BARS:,} 1-minute bars, medians"
    versions = {name: version(name) for name in ("ta-lib", "ta", "numpy")}
    report(title, "ta", rows, RESULTS, {"bars": BARS, "features": SPECS, "repeats": REPEATS, "versions": versions})


if __name__ == "__main__":
    main()
