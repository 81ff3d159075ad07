"""Sharpe statistics: block-bootstrap interval, probabilistic and deflated Sharpe ratios."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from tradelab.experiments.stats import (
    bootstrap_sharpe_ci,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
)

PERIODS = 252.0


def normal_returns(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.001, 0.01, n)


def annual_sharpe(r: np.ndarray) -> float:
    return float(r.mean() / r.std(ddof=1) * math.sqrt(PERIODS))


def test_bootstrap_ci_contains_the_estimate_and_shrinks_with_n() -> None:
    widths = []
    for n in (500, 8_000):
        r = normal_returns(n)
        low, high = bootstrap_sharpe_ci(r, PERIODS)
        assert low < annual_sharpe(r) < high
        widths.append(high - low)
    # the width goes as 1/√n: 16× the data → about a quarter of the width
    assert widths[1] < 0.4 * widths[0]


def test_iid_bootstrap_width_matches_the_asymptotic_standard_error() -> None:
    # i.i.d. normal returns: se(per-period SR) ≈ √((1 + SR²/2) / n) (Lo 2002), so the 95% interval is about
    # 2 × 1.96 × se × √P wide.
    r = normal_returns(4_000, seed=3)
    sr = r.mean() / r.std(ddof=1)
    expected = 2 * 1.959964 * math.sqrt((1 + sr**2 / 2) / r.size) * math.sqrt(PERIODS)
    low, high = bootstrap_sharpe_ci(r, PERIODS, block=1)
    assert high - low == pytest.approx(expected, rel=0.1)
    # a lower confidence gives a narrower interval inside it
    low80, high80 = bootstrap_sharpe_ci(r, PERIODS, block=1, confidence=0.8)
    assert low < low80 < high80 < high


def test_bootstrap_is_seeded() -> None:
    r = normal_returns(1_000)
    assert bootstrap_sharpe_ci(r, PERIODS, seed=5) == bootstrap_sharpe_ci(r, PERIODS, seed=5)
    assert bootstrap_sharpe_ci(r, PERIODS, seed=5) != bootstrap_sharpe_ci(r, PERIODS, seed=6)


def test_bootstrap_full_block_resamples_rotations_only() -> None:
    # block = n: every resample is a rotation of the series, with the same mean and std → a zero-width interval
    r = normal_returns(50)
    low, high = bootstrap_sharpe_ci(r, PERIODS, block=50, n_boot=20)
    assert low == pytest.approx(annual_sharpe(r), rel=1e-12)
    assert high == pytest.approx(annual_sharpe(r), rel=1e-12)


def test_bootstrap_constant_returns_give_zero_not_nan() -> None:
    assert bootstrap_sharpe_ci(np.zeros(30), PERIODS, n_boot=10) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("returns", "kwargs", "message"),
    [
        (np.array([0.01]), {}, "at least 2 finite values"),
        (np.array([0.01, math.nan, 0.0]), {}, "at least 2 finite values"),
        (np.zeros((2, 5)), {}, "1-D array"),
        (np.zeros(10), {"block": 0}, r"block must be in \[1, 10\]"),
        (np.zeros(10), {"block": 11}, r"block must be in \[1, 10\]"),
        (np.zeros(10), {"confidence": 1.0}, "0 < confidence < 1"),
        (np.zeros(10), {"n_boot": 0}, "n_boot >= 1"),
    ],
)
def test_bootstrap_errors(returns: np.ndarray, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_sharpe_ci(returns, PERIODS, **kwargs)


def std_normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_psr_hand_computed() -> None:
    # Bailey & López de Prado (2012), eq. 11: PSR = Φ((SR - SR*) √(n-1) / √(1 - γ3 SR + (γ4 - 1)/4 SR²)).
    # SR = 0.1, n = 253, γ3 = -0.5, γ4 = 4, SR* = 0:
    #   1 - (-0.5)(0.1) + (3/4)(0.01) = 1 + 0.05 + 0.0075 = 1.0575
    #   z = 0.1 × √252 / √1.0575 = 1.587451 / 1.028348 = 1.543690
    #   Φ(1.543690) ≈ 0.938668
    z = 0.1 * math.sqrt(252) / math.sqrt(1.0575)
    assert z == pytest.approx(1.543690, abs=1e-6)
    psr = probabilistic_sharpe_ratio(0.1, 253, -0.5, 4.0)
    assert psr == pytest.approx(std_normal_cdf(z), rel=1e-12)
    assert psr == pytest.approx(0.938668, abs=1e-6)
    # with a benchmark: SR* = 0.05 halves the numerator
    assert probabilistic_sharpe_ratio(0.1, 253, -0.5, 4.0, benchmark=0.05) == pytest.approx(
        std_normal_cdf(z / 2), rel=1e-12
    )
    # at the benchmark the probability is one half, and fat tails lower a positive PSR
    assert probabilistic_sharpe_ratio(0.2, 100, 0.0, 3.0, benchmark=0.2) == 0.5
    assert probabilistic_sharpe_ratio(0.1, 253, 0.0, 10.0) < probabilistic_sharpe_ratio(0.1, 253, 0.0, 3.0)


def test_psr_errors() -> None:
    with pytest.raises(ValueError, match="n must be >= 2"):
        probabilistic_sharpe_ratio(0.1, 1, 0.0, 3.0)
    with pytest.raises(ValueError, match="must be positive"):  # 1 - 3 × 1 + (2/4) × 1 = -1.5
        probabilistic_sharpe_ratio(1.0, 100, 3.0, 3.0)


def trials(n: int, std: float = 0.05) -> list[float]:
    """``n`` trial Sharpe ratios with sample std exactly ``std``."""
    x = np.linspace(-1.0, 1.0, n)
    return list(x / x.std(ddof=1) * std)


def test_expected_max_sharpe_hand_computed_and_close_to_the_true_maximum() -> None:
    # Bailey & López de Prado (2014), eq. 2 with N = 100, V = 1:
    #   (1 - γ) Z⁻¹(0.99) + γ Z⁻¹(1 - 1/(100 e)) = 0.422784 × 2.326348 + 0.577216 × 2.680210 = 2.530603
    assert expected_max_sharpe(trials(100, std=1.0)) == pytest.approx(2.530603, abs=1e-6)
    # the true E[max of 100 standard normals] is 2.507594: the approximation is within 1%
    assert expected_max_sharpe(trials(100, std=1.0)) == pytest.approx(2.507594, rel=0.01)
    # it scales with the trials' std
    assert expected_max_sharpe(trials(100, std=0.1)) == pytest.approx(0.2530603, abs=1e-7)


def test_dsr_is_psr_against_the_expected_maximum() -> None:
    sr, n, skew, kurt = 0.15, 500, -0.3, 5.0
    sharpes = trials(20)
    gamma = 0.5772156649015329
    nd = NormalDist()
    sr0 = math.sqrt(np.var(sharpes, ddof=1)) * (
        (1 - gamma) * nd.inv_cdf(1 - 1 / 20) + gamma * nd.inv_cdf(1 - 1 / (20 * math.e))
    )
    dsr = deflated_sharpe_ratio(sr, n, skew, kurt, sharpes)
    assert dsr == pytest.approx(probabilistic_sharpe_ratio(sr, n, skew, kurt, benchmark=sr0), rel=1e-12)
    assert dsr < probabilistic_sharpe_ratio(sr, n, skew, kurt)  # deflating never helps


def test_dsr_falls_as_trials_grow() -> None:
    values = [deflated_sharpe_ratio(0.15, 500, 0.0, 3.0, trials(n)) for n in (2, 10, 100, 1_000)]
    assert (np.diff(values) < 0).all()
    # SR = 0.15 over 500 returns is convincing alone (PSR ≈ 0.9996) but not as the best of 1000 trials
    assert values[0] > 0.99 and values[-1] < 0.5


def test_dsr_errors() -> None:
    with pytest.raises(ValueError, match="at least 2 trials, got 1"):
        deflated_sharpe_ratio(0.1, 100, 0.0, 3.0, [0.1])
    with pytest.raises(ValueError, match="finite Sharpe ratios"):
        deflated_sharpe_ratio(0.1, 100, 0.0, 3.0, [0.1, math.nan])
