"""Synthetic candles that look like BTC/USD minute data, for demos, tests and benchmarks.

The model, per bar ``t`` (parameters are stated per minute and converted to the bar length):

- log-volatility is the sum of three stationary AR(1) components with half-lives of 30 minutes, 1 day
  and 3 weeks, so ``|r|`` stays autocorrelated for hours and calm weeks alternate with wild ones;
- the log-return is ``r_t = sigma_t * z_t + J_t``: ``z`` Student-t with 4 degrees of freedom (unit
  variance), ``J`` rare Laplace jumps, each followed by a burst of volatility;
- ``sigma_t`` also follows a UTC time-of-day profile (quiet Asian night, EU open, US open peak) and is
  lower at weekends;
- high and low are the extremes of a Brownian bridge from open to close with the bar's volatility,
  sampled exactly; open is the previous close; prices sit on a tick grid, volumes on a lot grid;
- volume (base units) rises with the volatility level, the seasonal profile and the bar's move, with
  lognormal noise; trades = volume / a lognormal trade size; quote volume = volume × a price in the bar;
- a few runs of missing bars, like exchange maintenance, plus the odd missing minute.

Each random quantity has its own stream spawned from ``seed``: with ``gaps=False`` a longer sample
starts with exactly the bars of a shorter one, and ``gaps=True`` only removes rows.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from tradelab.data.errors import DataError
from tradelab.data.schema import TS, TimeLike, conform, to_ms

_MINUTE_MS = 60_000
_HOUR_MS = 60 * _MINUTE_MS
_DAY_MS = 24 * _HOUR_MS
_MINUTES_PER_YEAR = 365 * 24 * 60  # crypto trades around the clock

# Log-volatility components: (half-life in minutes, stationary standard deviation).
_LOG_VOL = np.array([(30.0, 0.35), (1440.0, 0.35), (30_240.0, 0.30)])
_T_DOF = 4.0
_JUMPS_PER_DAY = 0.2
_JUMP_SCALE = 0.006  # Laplace scale of a jump's log-return (a typical jump moves the price ~0.6%)
_JUMP_VOL_KICK = 1.0  # added to the fast log-vol component: volatility x e right after a jump

# Relative volatility by UTC hour (value at the middle of the hour), linearly interpolated.
_HOURLY_VOL = np.array(
    [0.85, 0.80, 0.75, 0.70, 0.65, 0.65, 0.70, 0.85, 1.00, 1.00, 0.95, 0.95,
     1.05, 1.30, 1.50, 1.45, 1.30, 1.15, 1.05, 1.00, 1.00, 0.95, 0.90, 0.90]
)  # fmt: skip
_WEEKEND_VOL = 0.75

_REFERENCE_PRICE = 30_000.0  # volumes and trade sizes below are in BTC at this price
_BASE_VOLUME = 20.0  # typical volume of a minute
_VOLUME_SEASON_ELASTICITY = 1.5
_VOLUME_VOL_ELASTICITY = 1.0  # volume ∝ volatility level ** this
_VOLUME_MOVE_ELASTICITY = 0.8  # volume ∝ (1 + |r| / sigma) ** this: bigger moves, more volume
_VOLUME_NOISE = 0.45  # standard deviation of log-volume noise
_TRADE_SIZE = 0.015  # median trade size
_TRADE_SIZE_NOISE = 0.3

_MAINTENANCE_EVERY_DAYS = 90.0  # one maintenance run is always present, more at this rate
_MAINTENANCE_MINUTES = (10.0, 240.0)  # log-uniform length
_MISSING_MINUTE_EVERY_DAYS = 30.0


def ar1(shocks: np.ndarray, phi: float | np.ndarray) -> np.ndarray:
    """The AR(1) recursion ``x[..., t] = phi * x[..., t - 1] + shocks[..., t]`` along the last axis.

    ``x[..., 0] = shocks[..., 0]``: to start in the stationary distribution, draw that first shock
    with the process's stationary standard deviation.

    Computed as a Hillis-Steele scan: ``ceil(log2(n))`` vectorized passes, pass ``k`` adding the
    partial sums ``2**k`` steps back weighted by ``phi ** 2**k``. Exact up to floating-point rounding
    (no truncated kernel), with no Python loop over time steps.

    :param shocks: array of shape ``(..., n)``.
    :param phi: coefficient(s) in ``[0, 1)``, a scalar or one per leading row (shape ``shocks.shape[:-1]``).
    :return: float64 array of the same shape as ``shocks``.
    """
    x = np.array(shocks, dtype=np.float64)
    decay = np.asarray(phi, dtype=np.float64)[..., None]
    step = 1
    while step < x.shape[-1]:
        # the right-hand side is evaluated in full before the in-place add, so it reads the old values
        x[..., step:] += decay**step * x[..., :-step]
        step *= 2
    return x


def generate_bars(
    days: float,
    *,
    seed: int,
    start: TimeLike = "2024-01-01",
    start_price: float = 30_000.0,
    annual_vol: float = 0.6,
    timeframe_ms: int = _MINUTE_MS,
    gaps: bool = True,
) -> pl.DataFrame:
    """Synthetic BTC/USD-like candles in the canonical schema, deterministic for a given ``seed``.

    A year of 1-minute bars (525,600) takes a fraction of a second.

    :param days: length of the sample in days (``round(days * bars per day)`` bars before gaps).
    :param seed: random seed; the same seed gives the same frame.
    :param start: open time of the first bar (UTC), aligned to the timeframe.
    :param start_price: open of the first bar; the price tick is ``1e-6`` of its order of magnitude
        (0.01 at 30,000) and volumes are scaled so turnover in quote currency is BTC-like.
    :param annual_vol: annualised volatility of the diffusive part of the log-returns (jumps add a little).
    :param timeframe_ms: bar length in milliseconds, a multiple of one minute.
    :param gaps: drop a few runs of bars as an exchange's maintenance would (at least one run when the
        sample has more than two bars); the first and last bars are always kept.
    :return: frame with ``ts`` (datetime[ms, UTC], bar open time), ``open high low close volume``
        (float64), ``trades`` (int64) and ``quote_volume`` (float64), sorted by ``ts``.
    :raises DataError: for a non-positive length, price or volatility, or a misaligned timeframe or start.
    """
    if timeframe_ms <= 0 or timeframe_ms % _MINUTE_MS:
        raise DataError(f"timeframe_ms must be a positive multiple of 60000, got {timeframe_ms}")
    if days <= 0 or start_price <= 0 or annual_vol <= 0:
        raise DataError(f"days, start_price and annual_vol must be positive, got {days}, {start_price}, {annual_vol}")
    start_ms = to_ms(start)
    if start_ms % timeframe_ms:
        raise DataError(f"start {start!r} is not aligned to the {timeframe_ms} ms timeframe")
    n = max(1, round(days * _DAY_MS / timeframe_ms))
    minutes = timeframe_ms / _MINUTE_MS
    # one stream per quantity, each drawn bar by bar, so that a longer sample extends a shorter one
    jump_rng, jump_size_rng, vol_rng, shock_rng, range_rng, volume_rng, size_rng, vwap_rng, gap_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(9)
    )
    ts_ms = start_ms + np.arange(n, dtype=np.int64) * timeframe_ms
    season = _seasonal_vol(ts_ms + timeframe_ms // 2) / _SEASON_RMS

    # Jumps, then the log-volatility components; a jump kicks the fast component from the next bar on.
    jumped = jump_rng.random(n) < min(1.0, _JUMPS_PER_DAY * minutes / 1440)
    jumps = np.zeros(n)
    jumps[jumped] = jump_size_rng.laplace(0.0, _JUMP_SCALE, int(jumped.sum()))
    half_life, sd = _LOG_VOL.T
    phi = 0.5 ** (minutes / half_life)
    initial = sd * vol_rng.standard_normal(len(phi))  # start in the stationary distribution
    shocks = vol_rng.standard_normal((n, len(phi))).T * (sd * np.sqrt(1 - phi**2))[:, None]
    shocks[:, 0] = initial
    shocks[0, 1:] += _JUMP_VOL_KICK * jumped[:-1]
    log_vol = ar1(shocks, phi).sum(axis=0) - np.sum(sd**2)  # E[exp(2 * log_vol)] = 1
    sigma = annual_vol * math.sqrt(minutes / _MINUTES_PER_YEAR) * season * np.exp(log_vol)

    z = shock_rng.standard_t(_T_DOF, n) / math.sqrt(_T_DOF / (_T_DOF - 2))
    r = sigma * z + jumps
    close = start_price * np.exp(np.cumsum(r))
    open_ = np.concatenate(([start_price], close[:-1]))
    # Excursions of a Brownian bridge from 0 to r beyond max(0, r) (up) and min(0, r) (down).
    excursion = np.sqrt(r**2 + 2 * sigma**2 * range_rng.standard_exponential((n, 2)).T) - np.abs(r)
    high = np.maximum(open_, close) * np.exp(excursion[0] / 2)
    low = np.minimum(open_, close) * np.exp(-excursion[1] / 2)

    magnitude = math.floor(math.log10(start_price))
    units = _REFERENCE_PRICE / start_price  # keeps turnover in quote currency BTC-like
    log_volume = (
        _VOLUME_SEASON_ELASTICITY * np.log(season)
        + _VOLUME_VOL_ELASTICITY * log_vol
        + _VOLUME_MOVE_ELASTICITY * np.log1p(np.abs(r) / sigma)
        + _VOLUME_NOISE * volume_rng.standard_normal(n)
    )
    volume = np.round(_BASE_VOLUME * minutes * units * np.exp(log_volume), magnitude + 1)
    trade_size = _TRADE_SIZE * units * np.exp(_TRADE_SIZE_NOISE * size_rng.standard_normal(n))
    # Rounding is monotone, so high >= max(open, close) >= min(open, close) >= low survives it.
    open_, high, low, close = (np.round(p, 6 - magnitude) for p in (open_, high, low, close))
    vwap = low + (high - low) * vwap_rng.triangular(0.0, 0.5, 1.0, n)

    keep = _maintenance_mask(n, minutes, days, gap_rng) if gaps else np.ones(n, dtype=bool)
    frame = pl.DataFrame(
        {
            TS: ts_ms[keep],
            "open": open_[keep],
            "high": high[keep],
            "low": low[keep],
            "close": close[keep],
            "volume": volume[keep],
            "trades": np.maximum(1, np.rint(volume / trade_size)).astype(np.int64)[keep],
            "quote_volume": (volume * vwap)[keep],
        }
    )
    return conform(frame.with_columns(pl.col(TS).cast(pl.Datetime("ms", "UTC"))))


def _seasonal_vol(ts_ms: np.ndarray) -> np.ndarray:
    """Relative volatility by UTC time of day and weekday (lower at weekends)."""
    hour = (ts_ms % _DAY_MS) / _HOUR_MS
    weekday = (ts_ms // _DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    profile = np.interp(hour, np.arange(24) + 0.5, _HOURLY_VOL, period=24)
    return profile * np.where(weekday >= 5, _WEEKEND_VOL, 1.0)


# normalizes the profile to a mean square of 1 over a week, so it leaves annual_vol unchanged
_SEASON_RMS = float(np.sqrt(np.mean(_seasonal_vol(np.arange(0, 7 * _DAY_MS, _MINUTE_MS)) ** 2)))


def _maintenance_mask(n: int, minutes: float, days: float, rng: np.random.Generator) -> np.ndarray:
    """Rows to keep: all but a few maintenance-like runs and single missing minutes, never the first or last."""
    if n < 3:
        return np.ones(n, dtype=bool)
    runs = 1 + rng.poisson(days / _MAINTENANCE_EVERY_DAYS)
    run_minutes = np.exp(rng.uniform(*np.log(_MAINTENANCE_MINUTES), runs))
    singles = np.ones(rng.poisson(days / _MISSING_MINUTE_EVERY_DAYS))
    # a gap covers at most a tenth of the sample, so a short sample stays mostly bars
    lengths = np.minimum(np.ceil(np.concatenate((run_minutes, singles)) / minutes), max(1, n // 10))
    starts = rng.integers(1, n - 1, len(lengths))
    ends = np.minimum(starts + lengths.astype(np.int64), n - 1)
    missing = np.cumsum(np.bincount(starts, minlength=n) - np.bincount(ends, minlength=n))
    return missing == 0
