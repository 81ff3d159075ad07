"""Observations: a window of the last W feature rows plus the account state, written for N envs at once.

The feature matrix is computed once (see :mod:`tradelab.tools.features`); building an observation is
one compiled copy of W×F float32 values per env into a preallocated buffer (:func:`write_observation`,
which the env's step kernel calls too). The window that ends at bar ``t`` holds rows ``t - W + 1 … t``:
nothing after the bar the agent decides on.
"""

from __future__ import annotations

import numpy as np

from tradelab.env.jit import inline, jit

#: The account state appended to every observation, in this order.
ACCOUNT_FEATURES = ("position", "unrealized_pnl", "equity_change", "drawdown", "bars_in_position")


class ObservationBuilder:
    """Writes ``(window, features)`` market windows and account state into flat float32 observations.

    :param features: float32 matrix of shape ``(bars, F)``, finite from row ``first_bar - window + 1`` on.
    :param window: W, the number of bars in each observation.
    :param n_envs: N, the batch size the output buffer is sized for.
    :param holding_scale: bars in position are divided by this, so the value stays near [0, 1].
    :param clip: clip every value to ``[-clip, clip]``; None leaves them as they are.
    """

    def __init__(
        self,
        features: np.ndarray,
        window: int,
        n_envs: int = 1,
        holding_scale: float = 1440.0,
        clip: float | None = None,
    ) -> None:
        if features.dtype != np.float32 or features.ndim != 2:
            raise ValueError(f"features must be a 2-D float32 matrix, got {features.dtype} {features.shape}")
        if not 1 <= window <= features.shape[0]:
            raise ValueError(f"window must be between 1 and the number of bars ({features.shape[0]}), got {window}")
        self.features = np.ascontiguousarray(features)
        self.window = window
        self.n_features = features.shape[1]
        self.market_size = window * self.n_features
        self.size = self.market_size + len(ACCOUNT_FEATURES)
        self.holding_scale = holding_scale
        self.clip = clip
        self.out = np.zeros((n_envs, self.size), dtype=np.float32)

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
        account = np.stack([position, unrealized_pnl, equity_change, drawdown, bars_in_position / self.holding_scale])
        clip = np.nan if self.clip is None else self.clip
        _build_batch(self.out, self.features, np.asarray(bar, dtype=np.int64), self.window, account, clip)
        return self.out


@inline
def write_observation(
    out: np.ndarray,
    i: int,
    features: np.ndarray,
    bar: int,
    window: int,
    position: float,
    unrealized_pnl: float,
    equity_change: float,
    drawdown: float,
    holding: float,
    clip: float,
) -> None:
    """Write one env's observation into row ``i`` of ``out`` (float32, ``(N, W × F + 5)``) (compiled).

    :param bar: the decision bar; the window is rows ``bar - window + 1 … bar``.
    :param holding: bars in position divided by the holding scale.
    :param clip: the bound of every value; NaN for none.
    """
    n_features = features.shape[1]
    k = 0
    for row in range(bar - window + 1, bar + 1):
        for column in range(n_features):
            out[i, k] = features[row, column]
            k += 1
    out[i, k] = position
    out[i, k + 1] = unrealized_pnl
    out[i, k + 2] = equity_change
    out[i, k + 3] = drawdown
    out[i, k + 4] = holding
    if clip == clip:  # not NaN
        for j in range(k + 5):
            if out[i, j] > clip:
                out[i, j] = clip
            elif out[i, j] < -clip:
                out[i, j] = -clip


@jit
def _build_batch(
    out: np.ndarray, features: np.ndarray, bar: np.ndarray, window: int, account: np.ndarray, clip: float
) -> None:
    a = account
    for i in range(out.shape[0]):
        write_observation(out, i, features, bar[i], window, a[0, i], a[1, i], a[2, i], a[3, i], a[4, i], clip)
