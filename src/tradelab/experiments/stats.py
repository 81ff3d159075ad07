"""How much to trust a Sharpe ratio: a block-bootstrap confidence interval, and the probabilistic and
deflated Sharpe ratios of Bailey & López de Prado.

References:

- D. H. Bailey, M. López de Prado, "The Sharpe Ratio Efficient Frontier", *Journal of Risk* 15(2), 2012
  (the probabilistic Sharpe ratio, PSR).
- D. H. Bailey, M. López de Prado, "The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest
  Overfitting and Non-Normality", *Journal of Portfolio Management* 40(5), 2014 (the deflated Sharpe ratio, DSR).
- D. N. Politis, J. P. Romano, "A Circular Block-Resampling Procedure for Stationary Data", in *Exploring the
  Limits of Bootstrap*, Wiley, 1992 (the circular block bootstrap).

PSR and DSR take per-period (not annualised) Sharpe ratios and the non-excess kurtosis (3 for a normal).
The normal distribution comes from the standard library (:class:`statistics.NormalDist`), not scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from tradelab.experiments.metrics import MIN_DISPERSION

#: Euler–Mascheroni constant γ, in the expected maximum of the trials' Sharpe ratios.
EULER_GAMMA = 0.5772156649015329
#: Largest number of resampled values drawn at once by :func:`bootstrap_sharpe_ci` (bounds its memory).
BOOT_CHUNK = 1 << 22

_NORMAL = NormalDist()


def bootstrap_sharpe_ci(
    returns: np.ndarray,
    periods: float,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    block: int | None = None,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile confidence interval of the annualised Sharpe ratio by circular block bootstrap.

    Each resample glues blocks of ``block`` consecutive returns, starting at uniform random offsets and
    wrapping around the end (Politis & Romano 1992), so the serial dependence inside a block (volatility
    clustering) survives. The default block, ``round(√n)``, keeps dependence up to ``√n`` bars, which suits
    long-memory intraday volatility but widens the interval somewhat over the ``n^(1/3)`` rate that is
    optimal for variance estimation; pass ``block=1`` for the i.i.d. bootstrap.

    :param returns: per-period simple returns (at least 2, finite).
    :param periods: periods a year, to annualise (:func:`tradelab.experiments.metrics.periods_per_year`).
    :param confidence: two-sided coverage, in (0, 1).
    :param n_boot: number of resamples (>= 1).
    :param block: block length in periods, in ``[1, n]``; default ``round(√n)``.
    :param seed: seed of the generator: the same inputs give the same interval.
    :return: the lower and upper bounds, as annualised Sharpe ratios (risk-free 0, ``ddof=1``; a resample
        with constant returns counts as Sharpe 0).
    :raises ValueError: for invalid arguments.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1 or r.size < 2 or not np.isfinite(r).all():
        raise ValueError(f"returns must be a 1-D array of at least 2 finite values, got shape {r.shape}")
    n = r.size
    block = max(1, round(math.sqrt(n))) if block is None else block
    if not 1 <= block <= n:
        raise ValueError(f"block must be in [1, {n}] (the number of returns), got {block}")
    if not 0 < confidence < 1 or n_boot < 1 or periods <= 0:
        raise ValueError(f"need 0 < confidence < 1, n_boot >= 1 and periods > 0; got {confidence}, {n_boot}, {periods}")
    rng = np.random.default_rng(seed)
    blocks = -(-n // block)  # ceil
    rows = max(1, BOOT_CHUNK // (blocks * block))
    sharpes = np.concatenate(
        [_resampled_sharpes(r, rng, min(rows, n_boot - start), block) for start in range(0, n_boot, rows)]
    )
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(sharpes * math.sqrt(periods), [tail, 1.0 - tail])
    return float(low), float(high)


def _resampled_sharpes(r: np.ndarray, rng: np.random.Generator, count: int, block: int) -> np.ndarray:
    """Per-period Sharpe ratios of ``count`` circular-block resamples of ``r``."""
    n = r.size
    starts = rng.integers(0, n, size=(count, -(-n // block), 1))
    index = ((starts + np.arange(block)) % n).reshape(count, -1)[:, :n]
    sample = r[index]
    std = sample.std(axis=1, ddof=1)
    varies = std > MIN_DISPERSION
    return np.where(varies, sample.mean(axis=1) / np.where(varies, std, 1.0), 0.0)


def probabilistic_sharpe_ratio(sharpe: float, n: int, skew: float, kurtosis: float, benchmark: float = 0.0) -> float:
    """Probability that the true Sharpe ratio exceeds ``benchmark``, given the observed one (Bailey &
    López de Prado 2012, eq. 11)::

        PSR = Φ( (SR - SR*) √(n - 1) / √(1 - γ₃ SR + (γ₄ - 1) / 4 SR²) )

    :param sharpe: observed per-period Sharpe ratio ``SR`` (not annualised).
    :param n: number of returns it was measured on (>= 2).
    :param skew: skewness ``γ₃`` of the returns.
    :param kurtosis: kurtosis ``γ₄`` of the returns, non-excess (3 for a normal).
    :param benchmark: per-period Sharpe ratio ``SR*`` to beat.
    :return: a probability in [0, 1].
    :raises ValueError: for ``n < 2`` or moments that make the variance term non-positive.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2 returns, got {n}")
    variance = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not variance > 0:
        raise ValueError(
            f"1 - skew·SR + (kurtosis - 1)/4·SR² must be positive, got {variance} "
            f"(SR={sharpe}, skew={skew}, kurtosis={kurtosis}; kurtosis is non-excess: 3 for a normal)"
        )
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(variance))


def expected_max_sharpe(trial_sharpes: Sequence[float]) -> float:
    """Expected maximum of ``N`` trials' Sharpe ratios when all true ones are 0 (Bailey & López de Prado
    2014, eq. 2), with ``V`` their sample variance (``ddof=1``)::

        SR₀ = √V ((1 - γ) Z⁻¹(1 - 1/N) + γ Z⁻¹(1 - 1/(N e)))

    :param trial_sharpes: per-period Sharpe ratios of all trials, the selected one included (>= 2).
    :raises ValueError: for fewer than 2 trials or a non-finite one.
    """
    trials = np.asarray(trial_sharpes, dtype=np.float64)
    if trials.ndim != 1 or trials.size < 2 or not np.isfinite(trials).all():
        raise ValueError(f"need the finite Sharpe ratios of at least 2 trials, got {trials.size}")
    n = trials.size
    quantiles = (1.0 - EULER_GAMMA) * _NORMAL.inv_cdf(1.0 - 1.0 / n) + EULER_GAMMA * _NORMAL.inv_cdf(
        1.0 - 1.0 / (n * math.e)
    )
    return math.sqrt(float(trials.var(ddof=1))) * quantiles


def deflated_sharpe_ratio(sharpe: float, n: int, skew: float, kurtosis: float, trial_sharpes: Sequence[float]) -> float:
    """Probability that the selected strategy's true Sharpe ratio is positive, corrected for having picked
    the best of many trials (Bailey & López de Prado 2014): the PSR against the expected maximum
    :func:`expected_max_sharpe` of the trials under the null.

    :param sharpe: the selected strategy's per-period Sharpe ratio.
    :param n: number of returns it was measured on (>= 2).
    :param skew: skewness of its returns.
    :param kurtosis: non-excess kurtosis of its returns (3 for a normal).
    :param trial_sharpes: per-period Sharpe ratios of all trials, the selected one included (>= 2).
    :raises ValueError: as :func:`probabilistic_sharpe_ratio` and :func:`expected_max_sharpe`.
    """
    return probabilistic_sharpe_ratio(sharpe, n, skew, kurtosis, benchmark=expected_max_sharpe(trial_sharpes))
