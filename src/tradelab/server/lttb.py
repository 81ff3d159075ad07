"""Largest-Triangle-Three-Buckets downsampling (Steinarsson, 2013), vectorised in numpy.

A chart of 2,000 points looks like one of a million when each kept point is the one that spans the
largest triangle with its neighbours: spikes survive, flat stretches collapse.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def lttb_indices(x: npt.ArrayLike, y: npt.ArrayLike, max_points: int) -> npt.NDArray[np.intp]:
    """The indices of the at most ``max_points`` points of ``(x, y)`` that LTTB keeps, ascending.

    The first and last points are always kept; a series of at most ``max_points`` points is kept whole.

    :param x: the abscissae, sorted ascending (steps, epoch times).
    :param y: the values, as long as ``x``.
    :param max_points: how many points to keep, at least 3.
    :raises ValueError: for ``max_points`` below 3 or ``x`` and ``y`` of different lengths.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-d and as long as each other, not {xs.shape} and {ys.shape}")
    if max_points < 3:
        raise ValueError(f"max_points must be at least 3, not {max_points}")
    n = len(xs)
    if n <= max_points:
        return np.arange(n)
    # Buckets of the inner points: edges[i]:edges[i + 1] is bucket i; the last point is a bucket of its own.
    edges = np.floor(np.linspace(1, n - 1, max_points - 1)).astype(np.intp)
    edges = np.append(edges, n)
    sizes = np.diff(edges)
    # The mean of each next bucket (the last inner bucket looks at the last point) in one pass.
    mean_x = np.add.reduceat(xs, edges[:-1]) / sizes
    mean_y = np.add.reduceat(ys, edges[:-1]) / sizes
    kept = np.empty(max_points, dtype=np.intp)
    kept[0], kept[-1] = 0, n - 1
    a = 0
    for bucket in range(max_points - 2):
        start, stop = edges[bucket], edges[bucket + 1]
        cx, cy = mean_x[bucket + 1], mean_y[bucket + 1]
        ax, ay = xs[a], ys[a]
        # Twice the triangle's area, up to sign, for every candidate of the bucket at once.
        areas = np.abs((ax - cx) * (ys[start:stop] - ay) - (ax - xs[start:stop]) * (cy - ay))
        a = start + int(np.argmax(areas))
        kept[bucket + 1] = a
    return kept


def lttb(
    x: npt.ArrayLike, y: npt.ArrayLike, max_points: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The at most ``max_points`` points of ``(x, y)`` that LTTB keeps (see :func:`lttb_indices`)."""
    xs, ys = np.asarray(x), np.asarray(y)
    kept = lttb_indices(xs, ys, max_points)
    return xs[kept], ys[kept]
