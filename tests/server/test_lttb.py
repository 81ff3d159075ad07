"""LTTB keeps the ends and the shape of a series in at most ``max_points`` points."""

from __future__ import annotations

import numpy as np
import pytest

from tradelab.server.lttb import lttb, lttb_indices


def test_a_long_series_shrinks_to_max_points_keeping_the_ends() -> None:
    x = np.arange(50_000)
    y = np.sin(x / 500.0)
    kept = lttb_indices(x, y, 2_000)
    assert len(kept) == 2_000 and kept[0] == 0 and kept[-1] == 49_999
    assert np.all(np.diff(kept) > 0)  # ascending, no point twice


def test_a_short_series_comes_back_unchanged() -> None:
    x, y = np.arange(10.0), np.arange(10.0) ** 2
    xs, ys = lttb(x, y, 10)
    assert np.array_equal(xs, x) and np.array_equal(ys, y)
    assert np.array_equal(lttb(x, y, 100)[1], y)


def test_the_spike_in_a_flat_series_survives() -> None:
    y = np.zeros(10_000)
    y[6_543] = 5.0
    y[2_001] = -3.0
    kept = lttb_indices(np.arange(10_000), y, 50)
    assert 6_543 in kept and 2_001 in kept and len(kept) == 50


def test_it_picks_the_extremes_of_each_bucket_on_a_sawtooth() -> None:
    y = np.tile([0.0, 1.0, 0.0, -1.0], 1_000)
    _, ys = lttb(np.arange(len(y)), y, 200)
    assert set(np.unique(ys[1:-1])) <= {1.0, -1.0}


def test_a_million_points_keep_the_first_the_last_and_the_asked_count() -> None:
    x = np.arange(1_000_000)
    y = np.random.default_rng(0).standard_normal(1_000_000).cumsum()
    kept = lttb_indices(x, y, 2_000)  # its speed shows in bench/bench_ui.py's run page
    assert len(kept) == 2_000 and kept[0] == 0 and kept[-1] == 999_999 and np.all(np.diff(kept) > 0)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        lttb_indices([0, 1, 2, 3], [0, 1, 2, 3], 2)
    with pytest.raises(ValueError, match="as long"):
        lttb_indices([0, 1, 2], [0, 1], 3)
