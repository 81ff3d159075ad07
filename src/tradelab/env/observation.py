"""Observations: a window of the last W feature rows plus the account state, gathered for N envs at once.

The feature matrix is computed once (see :mod:`tradelab.tools.features`); building an observation is
one gather of W×F float32 values per env into a preallocated buffer.
The window that ends at bar ``t`` holds rows ``t - W + 1 … t``: nothing after the bar the agent decides on.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: The account state appended to every observation, in this order.
ACCOUNT_FEATURES = ("position", "unrealized_pnl", "equity_change", "drawdown", "bars_in_position")


class ObservationBuilder:
    """Gathers ``(window, features)`` market windows and account state into flat float32 observations.

    :param features: float32 matrix of shape ``(bars, F)``, finite from row ``first_bar - window + 1`` on.
    :param window: W, the number of bars in each observation.
    :param n_envs: N, the batch size the output buffer is sized for.
    :param holding_scale: bars in position are divided by this, so the value stays near [0, 1].
    """

    def __init__(self, features: np.ndarray, window: int, n_envs: int = 1, holding_scale: float = 1440.0) -> None:
        if features.dtype != np.float32 or features.ndim != 2:
            raise ValueError(f"features must be a 2-D float32 matrix, got {features.dtype} {features.shape}")
        if not 1 <= window <= features.shape[0]:
            raise ValueError(f"window must be between 1 and the number of bars ({features.shape[0]}), got {window}")
        self.window = window
        self.n_features = features.shape[1]
        # (bars - W + 1, W, F) view: row i is the window ending at bar i + W - 1. No copy.
        self._windows = sliding_window_view(features, window, axis=0).transpose(0, 2, 1)
        self.market_size = window * self.n_features
        self.size = self.market_size + len(ACCOUNT_FEATURES)
        self.holding_scale = holding_scale
        self.out = np.zeros((n_envs, self.size), dtype=np.float32)
        self._market = self.out[:, : self.market_size].reshape(n_envs, window, self.n_features)
        self._index = np.zeros(n_envs, dtype=np.intp)

    def first_bar(self, warmup: int) -> int:
        """The first bar whose window holds no warm-up row."""
        return warmup + self.window - 1

    def build(
        self,
        bar: np.ndarray,
        position: np.ndarray,
        unrealized_pnl: np.ndarray,
        equity_change: np.ndarray,
        drawdown: np.ndarray,
        bars_in_position: np.ndarray,
    ) -> np.ndarray:
        """Fill and return the ``(N, size)`` float32 observation buffer (reused between calls: copy to keep).

        :param bar: int array (N,): the bar each env decides at; its window ends there.
        :param position: position value as a signed fraction of equity, shape (N,).
        :param unrealized_pnl: open PnL as a fraction of equity, shape (N,).
        :param equity_change: equity / initial cash - 1, shape (N,).
        :param drawdown: 1 - equity / peak equity (>= 0), shape (N,).
        :param bars_in_position: bars since the position was opened, shape (N,).
        """
        np.subtract(bar, self.window - 1, out=self._index, casting="unsafe")
        # Fancy indexing gathers only the N windows (np.take on this strided view would copy all of it first).
        self._market[...] = self._windows[self._index]
        account = self.out[:, self.market_size :]
        account[:, 0] = position
        account[:, 1] = unrealized_pnl
        account[:, 2] = equity_change
        account[:, 3] = drawdown
        np.divide(bars_in_position, self.holding_scale, out=account[:, 4], casting="unsafe")
        return self.out
