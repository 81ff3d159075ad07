"""Sliding windows over a feature matrix: zero-copy views, one observation per bar."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

if TYPE_CHECKING:
    from tradelab.tools.features import FeatureMatrix


def sliding_windows(matrix: np.ndarray, window: int, *, start: int = 0) -> np.ndarray:
    """Every run of ``window`` consecutive rows of ``matrix`` from row ``start`` on, as one read-only view.

    :param matrix: array of shape ``(n, F)``, any dtype.
    :param window: rows per window, at least 1.
    :param start: first row a window may contain (rows before it are skipped, e.g. a warm-up).
    :return: read-only view of shape ``(max(n - start - window + 1, 0), window, F)`` sharing ``matrix``'s
        memory: element ``i`` is ``matrix[start + i : start + i + window]``, the window ending at row
        ``start + window - 1 + i``.
    :raises ValueError: for a matrix that is not 2-D, a window below 1 or a negative start.
    """
    if matrix.ndim != 2:
        raise ValueError(f"matrix must be 2-D (bars, features), got shape {matrix.shape}")
    if window < 1 or start < 0:
        raise ValueError(f"window must be >= 1 and start >= 0, got window={window}, start={start}")
    rows = matrix[start:]
    if len(rows) < window:
        # sliding_window_view refuses a window longer than the axis: no bar has a full window.
        empty = np.empty((0, window, matrix.shape[1]), dtype=matrix.dtype)
        empty.flags.writeable = False
        return empty
    # sliding_window_view appends the window axis last: (m, F, window) -> (m, window, F), still a view.
    return sliding_window_view(rows, window, axis=0).transpose(0, 2, 1)


def observation_windows(features: FeatureMatrix, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``features`` that hold no warm-up bar, and the bar each one ends at.

    The first window is rows ``warmup .. warmup + window - 1``, so every value in every window is defined.

    :param features: a computed feature matrix (rows before ``features.warmup`` are NaN).
    :param window: bars per observation, at least 1.
    :return: ``(windows, ends)``: a read-only view of shape ``(m, window, F)`` over ``features.values``
        (see :func:`sliding_windows`) and int64 array of shape ``(m,)``, ``ends[i]`` being the bar index
        of the last row of ``windows[i]``; ``m = max(n - warmup - window + 1, 0)``.
    """
    windows = sliding_windows(features.values, window, start=features.warmup)
    first_end = features.warmup + window - 1
    return windows, np.arange(first_end, first_end + len(windows), dtype=np.int64)
