"""Synthetic bars with a planted, learnable pattern: strongly mean-reverting one-bar returns.

Log-returns follow ``r_t = phi × r_{t-1} + e_t`` with ``phi < 0``: after a down bar the next bar is up
on average. A long-or-flat agent that holds after down bars earns about ``|phi| × E|r|`` per bar it
holds, far more than the fees, while buy-and-hold earns the zero drift and a random agent pays fees.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from tradelab.data.ingest.synth import generate_bars


def planted_bars(bars: int, *, phi: float = -0.6, sigma: float = 0.002, seed: int = 0) -> pl.DataFrame:
    """``bars`` 1-minute candles without gaps whose closes follow the AR(1) log-returns above.

    Opens equal the previous close (no gaps between bars); highs and lows add a little noise beyond the
    open and close; volumes come from the ordinary generator.
    """
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, sigma, bars)
    returns = np.empty(bars)
    returns[0] = noise[0]
    for t in range(1, bars):
        returns[t] = phi * returns[t - 1] + noise[t]
    close = 30_000.0 * np.exp(np.cumsum(returns))
    open_ = np.concatenate([[30_000.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, sigma / 4, (2, bars))) * close
    template = generate_bars(bars / 1440, seed=seed, gaps=False).head(bars)
    return template.with_columns(
        pl.Series("open", open_),
        pl.Series("high", np.maximum(open_, close) + wick[0]),
        pl.Series("low", np.minimum(open_, close) - wick[1]),
        pl.Series("close", close),
    )
