"""Observation windows: content, no look-ahead, no allocation of new buffers, batched gathering."""

from __future__ import annotations

import numpy as np
import pytest

from tradelab.env.observation import ACCOUNT_FEATURES, ObservationBuilder


def _features(n: int = 50, f: int = 3) -> np.ndarray:
    return (np.arange(n * f, dtype=np.float32).reshape(n, f) + 1) / 10


def _zeros(n: int) -> list[np.ndarray]:
    return [np.zeros(n) for _ in ACCOUNT_FEATURES]


def test_window_ends_at_the_decision_bar_and_account_state_follows() -> None:
    features = _features()
    builder = ObservationBuilder(features, window=4, n_envs=1)
    obs = builder.build(
        np.array([10]), np.array([0.5]), np.array([0.01]), np.array([0.02]), np.array([0.03]), np.array([720])
    )
    assert obs.shape == (1, 4 * 3 + 5) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[0, :12].reshape(4, 3), features[7:11])  # bars 7, 8, 9, 10
    np.testing.assert_allclose(obs[0, 12:], [0.5, 0.01, 0.02, 0.03, 0.5])


def test_batch_gathers_each_env_at_its_own_bar_into_the_same_buffer() -> None:
    features = _features()
    builder = ObservationBuilder(features, window=3, n_envs=3)
    buffer = builder.out
    obs = builder.build(np.array([2, 20, 49]), *_zeros(3))
    assert obs is buffer  # no new array per step
    for row, bar in zip(obs, (2, 20, 49), strict=True):
        np.testing.assert_array_equal(row[:9].reshape(3, 3), features[bar - 2 : bar + 1])


def test_no_look_ahead_future_rows_do_not_reach_the_observation() -> None:
    features = _features()
    before = ObservationBuilder(features, window=5).build(np.array([30]), *_zeros(1)).copy()
    changed = features.copy()
    changed[31:] = -99.0
    after = ObservationBuilder(changed, window=5).build(np.array([30]), *_zeros(1))
    np.testing.assert_array_equal(after, before)


def test_first_bar_skips_the_warm_up() -> None:
    assert ObservationBuilder(_features(), window=4).first_bar(warmup=10) == 13


@pytest.mark.parametrize("window", [0, 51])
def test_window_must_fit_the_data(window: int) -> None:
    with pytest.raises(ValueError, match="window must be between 1 and the number of bars"):
        ObservationBuilder(_features(), window=window)


def test_features_must_be_float32() -> None:
    with pytest.raises(ValueError, match="float32"):
        ObservationBuilder(_features().astype(np.float64), window=2)
