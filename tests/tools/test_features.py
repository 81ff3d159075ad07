"""The feature pipeline: the matrix, its warm-up, causal normalisations and the on-disk cache."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import talib
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ValidationError

from tradelab.data.ingest.synth import generate_bars
from tradelab.data.store import Store
from tradelab.tools.base import Bars, Tool
from tradelab.tools.errors import ToolError
from tradelab.tools.features import FeaturePipeline, FeatureSpec
from tradelab.tools.lookahead import LookaheadGuard, Verdict
from tradelab.tools.registry import Registry

SPECS: list[dict[str, Any]] = [
    {"tool": "rsi", "params": {"timeperiod": 14}, "as": "rsi14"},
    {"tool": "MACD"},
    {"tool": "SMA", "params": {"timeperiod": 30}},
]


@pytest.fixture(scope="module")
def registry() -> Registry:
    """TA-Lib and built-in tools; tests that change a tool do it through ``monkeypatch`` (undone after)."""
    return Registry(entry_points=False)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    """Two days of synthetic minute bars (with gaps)."""
    return generate_bars(2, seed=7)


@pytest.fixture
def calls(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many times each of RSI, MACD and SMA computed, counted by wrapping the registry's tools."""
    counts = dict.fromkeys(("RSI", "MACD", "SMA"), 0)
    for name in counts:
        tool = registry.get(name)
        monkeypatch.setattr(tool, "compute", _counting(tool, counts))
    return counts


def _counting(tool: Tool, counts: dict[str, int]) -> Callable[[Bars, Any], Any]:
    compute = tool.compute

    def counted(bars: Bars, params: Any) -> Any:
        counts[tool.name] += 1
        return compute(bars, params)

    return counted


def _unchecked(tool: Tool, params: BaseModel, bars: Bars) -> Verdict:
    """No look-ahead check (test_lookahead.py tests it): these tests count the computations of features."""
    return Verdict(tool=tool.name, params={}, bars=bars.n, cuts=[], leak=None)


def _pipeline(registry: Registry, tmp_path: Path, specs: list[dict[str, Any]] = SPECS) -> FeaturePipeline:
    guard = LookaheadGuard(tmp_path / "cache", check=_unchecked)
    return FeaturePipeline(specs, registry, cache_dir=tmp_path / "cache", guard=guard)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(a, b, equal_nan=True)


def test_matrix_holds_the_tool_outputs_in_spec_order(registry: Registry, frame: pl.DataFrame) -> None:
    pipeline = FeaturePipeline(SPECS, registry)
    assert pipeline.columns == ["rsi14", "macd_macd", "macd_macdsignal", "macd_macdhist", "sma"]
    assert pipeline.warmup == 33  # MACD's lookback (RSI 14, SMA 29)
    features = pipeline.compute(frame)
    close = frame["close"].to_numpy()
    expected = np.column_stack([talib.RSI(close, 14), *talib.MACD(close), talib.SMA(close, 30)]).astype(np.float32)
    values = features.values
    assert values.dtype == np.float32 and values.flags.c_contiguous and not values.flags.writeable
    assert values.shape == (frame.height, 5) and features.columns == pipeline.columns and features.warmup == 33
    np.testing.assert_array_equal(values[33:], expected[33:])
    assert np.isnan(values[:33]).all()  # RSI and SMA are defined earlier but the matrix starts together
    np.testing.assert_array_equal(features.ts, frame["ts"].dt.epoch("ms").to_numpy())
    assert _same(pipeline.compute(Bars.from_frame(frame)).values, values)


def test_spec_reads_and_writes_as_and_accepts_nothing_else() -> None:
    spec = FeatureSpec.model_validate({"tool": "RSI", "as": "r"})
    assert spec.as_ == "r" and spec == FeatureSpec(tool="RSI", as_="r")
    assert spec.model_dump()["as"] == "r" and "as" in FeatureSpec.model_json_schema()["properties"]
    with pytest.raises(ValidationError, match="timeperiod"):
        FeatureSpec.model_validate({"tool": "RSI", "timeperiod": 14})
    with pytest.raises(ValidationError, match="norm"):
        FeatureSpec.model_validate({"tool": "RSI", "norm": "minmax"})


def test_bad_specs_raise_tool_errors(registry: Registry) -> None:
    with pytest.raises(ToolError, match=r"sma appear more than once.*distinct 'as'"):
        FeaturePipeline([{"tool": "SMA"}, {"tool": "SMA", "params": {"timeperiod": 50}}], registry)
    with pytest.raises(ToolError, match=r"macd_macd appear more than once"):
        FeaturePipeline([{"tool": "MACD"}, {"tool": "SMA", "as": "macd_macd"}], registry)
    with pytest.raises(ToolError, match=r"unknown tool 'RIS'.*RSI"):
        FeaturePipeline([{"tool": "RIS"}], registry)
    with pytest.raises(ToolError, match="invalid parameters for tool RSI: timeperiod"):
        FeaturePipeline([{"tool": "RSI", "params": {"timeperiod": 0}}], registry)


def test_warmup_is_the_largest_tool_plus_normalisation_warmup(registry: Registry, frame: pl.DataFrame) -> None:
    specs = [
        {"tool": "RSI", "params": {"timeperiod": 14}, "norm": "zscore", "norm_window": 50},
        {"tool": "SMA", "params": {"timeperiod": 30}, "norm": "ratio_close"},
        {"tool": "OBV", "norm": "log"},
    ]
    pipeline = FeaturePipeline(specs, registry)
    assert pipeline.warmup == 14 + 49
    values = pipeline.compute(frame).values
    assert np.isnan(values[:63]).all() and np.isfinite(values[63:]).all()
    assert FeaturePipeline(specs[1:], registry).warmup == 29


def test_normalisations_match_plain_references(registry: Registry, frame: pl.DataFrame) -> None:
    window = 40
    specs = [
        {"tool": "RSI", "params": {"timeperiod": 14}, "norm": "zscore", "norm_window": window},
        {"tool": "BBANDS", "params": {"timeperiod": 20}, "as": "bb", "norm": "ratio_close"},
        {"tool": "OBV", "norm": "log"},
    ]
    features = FeaturePipeline(specs, registry).compute(frame)
    close, volume = frame["close"].to_numpy(), frame["volume"].to_numpy()
    start = features.warmup

    rsi = talib.RSI(close, 14)[14:]
    windows = sliding_window_view(rsi, window)
    zscore = (rsi[window - 1 :] - windows.mean(axis=1)) / windows.std(axis=1, ddof=1)
    np.testing.assert_allclose(features.values[start:, 0], zscore[start - 14 - window + 1 :], rtol=1e-6, atol=1e-6)

    bands = np.column_stack(talib.BBANDS(close, 20)) / close[:, None] - 1
    np.testing.assert_array_equal(features.values[start:, 1:4], bands[start:].astype(np.float32))
    assert features.columns[1:4] == ["bb_upperband", "bb_middleband", "bb_lowerband"]

    obv = talib.OBV(close, volume)
    log_obv = (np.sign(obv) * np.log1p(np.abs(obv))).astype(np.float32)
    np.testing.assert_array_equal(features.values[start:, 4], log_obv[start:])


def test_zscore_of_a_flat_window_is_zero(registry: Registry) -> None:
    n = 200
    flat = {c: np.full(n, 101.5) for c in ("open", "high", "low", "close")}
    bars = Bars({"ts": np.arange(n, dtype=np.int64) * 60_000, **flat, "volume": np.ones(n)})
    features = FeaturePipeline([{"tool": "MAX", "params": {"timeperiod": 5}, "norm": "zscore"}], registry).compute(bars)
    assert features.warmup == 4 + 499
    assert features.values.shape == (n, 1) and np.isnan(features.values).all()  # warm-up longer than the bars
    features = FeaturePipeline(
        [{"tool": "MAX", "params": {"timeperiod": 5}, "norm": "zscore", "norm_window": 10}], registry
    ).compute(bars)
    np.testing.assert_array_equal(features.values[13:, 0], 0.0)


def test_normalisations_are_causal(registry: Registry, frame: pl.DataFrame) -> None:
    specs = [
        {"tool": "RSI", "norm": "zscore", "norm_window": 60},
        {"tool": "BBANDS", "norm": "ratio_close"},
        {"tool": "OBV", "norm": "log"},
        {"tool": "ATR", "norm": "zscore", "norm_window": 30},
    ]
    pipeline = FeaturePipeline(specs, registry)
    before = pipeline.compute(frame).values
    t = frame.height // 2
    rng = np.random.default_rng(0)
    shock = np.concatenate([np.ones(t + 1), rng.uniform(0.9, 1.1, frame.height - t - 1)])
    perturbed = frame.with_columns(pl.col("open", "high", "low", "close", "volume") * shock)
    after = pipeline.compute(perturbed).values
    assert _same(after[: t + 1], before[: t + 1])
    assert (after[t + 1 :] != before[t + 1 :]).all(axis=0).any()  # the perturbation did reach the features


def test_second_compute_is_a_cache_hit(registry: Registry, frame: pl.DataFrame, tmp_path: Path, calls) -> None:
    first = _pipeline(registry, tmp_path).compute(frame, dataset_hash="v1")
    assert calls == {"RSI": 1, "MACD": 1, "SMA": 1}
    assert len(list((tmp_path / "cache" / "columns").glob("*.npy"))) == 3
    assert len(list((tmp_path / "cache" / "matrix").glob("*.npy"))) == 1
    second = _pipeline(registry, tmp_path).compute(frame, dataset_hash="v1")
    assert calls == {"RSI": 1, "MACD": 1, "SMA": 1}
    assert _same(second.values, first.values) and second.columns == first.columns and second.warmup == first.warmup
    assert second.values.dtype == np.float32 and second.values.flags.c_contiguous and not second.values.flags.writeable
    # Another list sharing specs reuses their columns; a new alias only renames a column.
    renamed = [{**SPECS[0], "as": "momentum"}, {"tool": "EMA"}]
    third = _pipeline(registry, tmp_path, renamed).compute(frame, dataset_hash="v1")
    assert calls["RSI"] == 1 and third.columns == ["momentum", "ema"]
    np.testing.assert_array_equal(third.values[33:, 0], first.values[33:, 0])


def test_no_dataset_hash_means_no_cache(registry: Registry, frame: pl.DataFrame, tmp_path: Path, calls) -> None:
    pipeline = _pipeline(registry, tmp_path)
    pipeline.compute(frame)
    pipeline.compute(frame)
    assert calls["RSI"] == 2 and not (tmp_path / "cache").exists()


def test_new_tool_version_or_dataset_misses(
    registry: Registry, frame: pl.DataFrame, tmp_path: Path, calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pipeline(registry, tmp_path).compute(frame, dataset_hash="v1")
    monkeypatch.setattr(registry.get("RSI"), "version", "talib-99")
    _pipeline(registry, tmp_path).compute(frame, dataset_hash="v1")
    assert calls == {"RSI": 2, "MACD": 1, "SMA": 1}
    _pipeline(registry, tmp_path).compute(frame, dataset_hash="v2")
    assert calls == {"RSI": 3, "MACD": 2, "SMA": 2}


def test_changed_params_or_norm_miss(registry: Registry, frame: pl.DataFrame, tmp_path: Path, calls) -> None:
    _pipeline(registry, tmp_path, SPECS[:1]).compute(frame, dataset_hash="v1")
    _pipeline(registry, tmp_path, [{"tool": "RSI", "params": {"timeperiod": 15}}]).compute(frame, dataset_hash="v1")
    _pipeline(registry, tmp_path, [{**SPECS[0], "norm": "log"}]).compute(frame, dataset_hash="v1")
    assert calls["RSI"] == 3
    _pipeline(registry, tmp_path, [{"tool": "RSI"}]).compute(frame, dataset_hash="v1")  # default timeperiod 14
    assert calls["RSI"] == 3


def test_corrupt_cache_files_are_recomputed(registry: Registry, frame: pl.DataFrame, tmp_path: Path, calls) -> None:
    # A copy: the returned values map the cache file, which this test truncates in place.
    expected = np.array(_pipeline(registry, tmp_path).compute(frame, dataset_hash="v1").values)
    [matrix] = (tmp_path / "cache" / "matrix").glob("*.npy")
    matrix.write_bytes(matrix.read_bytes()[:1000])  # truncated: rebuilt from the column entries
    assert _same(_pipeline(registry, tmp_path).compute(frame, dataset_hash="v1").values, expected)
    assert calls == {"RSI": 1, "MACD": 1, "SMA": 1}
    assert matrix.stat().st_size > 1000
    for path in (tmp_path / "cache").rglob("*.npy"):
        path.write_bytes(b"not a numpy file")
    assert _same(_pipeline(registry, tmp_path).compute(frame, dataset_hash="v1").values, expected)
    assert calls == {"RSI": 2, "MACD": 2, "SMA": 2}
    assert _same(_pipeline(registry, tmp_path).compute(frame, dataset_hash="v1").values, expected)
    assert calls == {"RSI": 2, "MACD": 2, "SMA": 2}


def test_an_entry_of_another_length_is_a_miss(registry: Registry, frame: pl.DataFrame, tmp_path: Path, calls) -> None:
    _pipeline(registry, tmp_path).compute(frame, dataset_hash="v1")
    shorter = _pipeline(registry, tmp_path).compute(frame.head(500), dataset_hash="v1")
    assert shorter.values.shape == (500, 5) and calls["RSI"] == 2


def test_an_unwritable_cache_warns_and_still_computes(
    registry: Registry, frame: pl.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="tradelab.tools.cache"):
        features = _pipeline(registry, tmp_path).compute(frame, dataset_hash="v1")
    assert "feature cache entry" in caplog.text and "not written" in caplog.text
    assert _same(features.values, FeaturePipeline(SPECS, registry).compute(frame).values)


def test_a_failing_tool_fails_the_compute_and_caches_nothing(
    registry: Registry, frame: pl.DataFrame, tmp_path: Path
) -> None:
    broken = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 100).then(None).otherwise(pl.col("close")).alias("close")
    )
    with pytest.raises(ToolError, match="output macd is nan at bar 100"):
        _pipeline(registry, tmp_path).compute(broken, dataset_hash="v1")
    assert not list((tmp_path / "cache").glob("matrix/*"))


def test_missing_columns_and_zero_closes_raise(registry: Registry) -> None:
    bars = Bars({"high": np.full(50, 2.0), "low": np.ones(50)})
    with pytest.raises(ToolError, match="'ts' column"):
        FeaturePipeline([{"tool": "MIDPRICE"}], registry).compute(bars)
    bars = Bars({"ts": np.arange(50, dtype=np.int64), "high": np.full(50, 2.0), "low": np.ones(50)})
    with pytest.raises(ToolError, match="norm 'ratio_close' of tool MIDPRICE needs a 'close' column"):
        FeaturePipeline([{"tool": "MIDPRICE", "norm": "ratio_close"}], registry).compute(bars)
    close = np.ones(50)
    close[20] = 0.0
    with pytest.raises(ToolError, match=r"norm 'ratio_close' of tool MIDPRICE is not finite at bar 20 \(close 0.0\)"):
        FeaturePipeline([{"tool": "MIDPRICE", "norm": "ratio_close"}], registry).compute(Bars({**bars, "close": close}))


def test_compute_dataset_is_keyed_by_dataset_version_and_range(
    registry: Registry, tmp_path: Path, store: Store, calls
) -> None:
    bars = generate_bars(3, seed=11)
    store.write("BTCUSDT", "1m", bars.filter(pl.col("ts") < pl.datetime(2024, 1, 3, time_zone="UTC")))
    pipeline = _pipeline(registry, tmp_path)
    features = pipeline.compute_dataset(store, "BTCUSDT", "1m", start="2024-01-01T12:00")
    assert _same(pipeline.compute_dataset(store, "BTCUSDT", "1m", start="2024-01-01T12:00").values, features.values)
    assert calls["RSI"] == 1
    pipeline.compute_dataset(store, "BTCUSDT", "1m", start="2024-01-01T13:00")
    assert calls["RSI"] == 2
    store.write("BTCUSDT", "1m", bars)  # the third day: a new dataset version
    extended = pipeline.compute_dataset(store, "BTCUSDT", "1m", start="2024-01-01T12:00")
    assert calls["RSI"] == 3 and len(extended.ts) > len(features.ts)
    loaded = store.load("BTCUSDT", "1m", "2024-01-01T12:00", "2024-01-03")
    assert _same(features.values, FeaturePipeline(SPECS, registry).compute(loaded).values)
    np.testing.assert_array_equal(features.ts, loaded["ts"].dt.epoch("ms").to_numpy())
