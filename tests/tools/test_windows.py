"""Sliding windows: zero-copy, read-only, the right rows, and no warm-up row in an observation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tradelab.data.ingest.synth import generate_bars
from tradelab.tools.features import FeatureMatrix, FeaturePipeline
from tradelab.tools.registry import Registry
from tradelab.tools.windows import observation_windows, sliding_windows


def test_sliding_windows_are_read_only_views_of_the_right_rows() -> None:
    matrix = np.arange(30, dtype=np.float32).reshape(10, 3)
    windows = sliding_windows(matrix, 4, start=2)
    assert windows.shape == (10 - 2 - 4 + 1, 4, 3)
    assert np.shares_memory(windows, matrix)
    for i, window in enumerate(windows):
        np.testing.assert_array_equal(window, matrix[2 + i : 2 + i + 4])
    with pytest.raises(ValueError, match="read-only"):
        windows[0, 0, 0] = 1.0
    matrix[9, 2] = -1.0  # a view sees later writes to the matrix
    assert windows[-1, -1, 2] == -1.0


def test_too_short_a_matrix_gives_no_window_and_bad_arguments_raise() -> None:
    matrix = np.zeros((5, 2), dtype=np.float32)
    assert sliding_windows(matrix, 5).shape == (1, 5, 2)
    assert sliding_windows(matrix, 6).shape == (0, 6, 2)
    assert sliding_windows(matrix, 3, start=4).shape == (0, 3, 2)
    with pytest.raises(ValueError, match="2-D"):
        sliding_windows(np.zeros(5), 2)
    with pytest.raises(ValueError, match="window must be >= 1"):
        sliding_windows(matrix, 0)
    with pytest.raises(ValueError, match="start >= 0"):
        sliding_windows(matrix, 2, start=-1)


def test_observation_windows_start_right_after_the_warmup() -> None:
    values = np.arange(24, dtype=np.float32).reshape(8, 3)
    values[:3] = np.nan
    features = FeatureMatrix(values=values, columns=["a", "b", "c"], warmup=3, ts=np.arange(8, dtype=np.int64))
    windows, ends = observation_windows(features, 2)
    np.testing.assert_array_equal(ends, [4, 5, 6, 7])
    np.testing.assert_array_equal(windows[0], values[3:5])
    assert windows.shape == (4, 2, 3) and not np.isnan(windows).any()


@pytest.mark.parametrize("hit", [False, True], ids=["computed", "from-cache"])
def test_observation_windows_over_a_pipeline_matrix(tmp_path: Path, hit: bool) -> None:
    bars = generate_bars(1, seed=3)
    specs = [{"tool": "RSI", "params": {"timeperiod": 14}, "norm": "zscore", "norm_window": 50}, {"tool": "MACD"}]
    pipeline = FeaturePipeline(specs, Registry(entry_points=False), cache_dir=tmp_path)
    features = pipeline.compute(bars, dataset_hash="d")
    if hit:
        features = pipeline.compute(bars, dataset_hash="d")
        assert isinstance(features.values.base, np.memmap)
    windows, ends = observation_windows(features, 32)
    assert np.shares_memory(windows, features.values)
    assert len(windows) == bars.height - features.warmup - 32 + 1
    assert ends[0] == features.warmup + 31 and ends[-1] == bars.height - 1
    assert not np.isnan(windows).any()
    assert np.isnan(features.values[features.warmup - 1]).all()  # one bar earlier is still warm-up
    np.testing.assert_array_equal(windows[:, -1], features.values[ends])
