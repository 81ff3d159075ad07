/**
 * Client-side downsampling for display. The server already downsamples (LTTB) metric series, equity curves and
 * bars; these are the safety net for a series that arrives at full resolution (e.g. a year of minute bars).
 */

/**
 * Largest-Triangle-Three-Buckets: the indices of at most `threshold` points that keep the shape of (xs, ys).
 * The first and last points are always kept. Non-finite ys are treated as 0 for the area test.
 */
export function lttbIndices(xs: ArrayLike<number>, ys: ArrayLike<number>, threshold: number): number[] {
  const n = Math.min(xs.length, ys.length);
  if (threshold >= n || threshold < 3) return Array.from({ length: n }, (_, i) => i);
  const y = (i: number) => (Number.isFinite(ys[i]) ? ys[i] : 0);
  const kept: number[] = [0];
  const every = (n - 2) / (threshold - 2);
  let a = 0;
  for (let i = 0; i < threshold - 2; i++) {
    const nextStart = Math.floor((i + 1) * every) + 1;
    const nextEnd = Math.min(Math.floor((i + 2) * every) + 1, n);
    let avgX = 0;
    let avgY = 0;
    for (let j = nextStart; j < nextEnd; j++) {
      avgX += xs[j];
      avgY += y(j);
    }
    const len = Math.max(nextEnd - nextStart, 1);
    avgX /= len;
    avgY /= len;
    const start = Math.floor(i * every) + 1;
    const end = Math.floor((i + 1) * every) + 1;
    let best = start;
    let bestArea = -1;
    for (let j = start; j < end; j++) {
      const area = Math.abs((xs[a] - avgX) * (y(j) - y(a)) - (xs[a] - xs[j]) * (avgY - y(a)));
      if (area > bestArea) {
        bestArea = area;
        best = j;
      }
    }
    kept.push(best);
    a = best;
  }
  kept.push(n - 1);
  return kept;
}

/**
 * Min/max bucketing: splits the series into `buckets` equal index ranges and keeps, in order, the first, the
 * minimum, the maximum and the last point of each. Every extreme survives (at most 4 points per bucket).
 */
export function minMaxIndices(ys: ArrayLike<number>, buckets: number): number[] {
  const n = ys.length;
  if (n <= buckets * 4) return Array.from({ length: n }, (_, i) => i);
  const kept: number[] = [];
  const size = n / buckets;
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor(b * size);
    const end = Math.min(Math.floor((b + 1) * size), n);
    if (end <= start) continue;
    let lo = start;
    let hi = start;
    for (let j = start; j < end; j++) {
      const v = ys[j];
      if (!Number.isFinite(v)) continue;
      if (!Number.isFinite(ys[lo]) || v < ys[lo]) lo = j;
      if (!Number.isFinite(ys[hi]) || v > ys[hi]) hi = j;
    }
    const set = new Set([start, lo, hi, end - 1]);
    kept.push(...[...set].sort((p, q) => p - q));
  }
  return kept;
}

/** Keep `indices` of several parallel arrays. */
export function pick<T>(values: ArrayLike<T>, indices: number[]): T[] {
  return indices.map((i) => values[i]);
}

/** The default for display: a no-op at or under `maxPoints`, else min/max buckets (keeps extremes). */
export function downsampleForDisplay(length: number, ys: ArrayLike<number>, maxPoints = 4000): number[] | null {
  if (length <= maxPoints) return null;
  return minMaxIndices(ys, Math.max(1, Math.floor(maxPoints / 4)));
}
