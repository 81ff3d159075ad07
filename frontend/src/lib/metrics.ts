import type { MetricSeries } from '../api/types';
import type { LineSpec } from '../components/charts/Chart';

/** A metric's series as a chart line (x = its steps: training steps, or epoch seconds for `oos/…`). */
export const metricLine = (s: MetricSeries): LineSpec => ({
  name: s.key,
  points: s.steps.map((t, i) => ({ time: t, value: s.values[i] })),
});

/** The series' last value, or null before it has one. */
export const lastValue = (s: MetricSeries | undefined): number | null =>
  s && s.values.length ? s.values[s.values.length - 1] : null;

/** Annualised figures of a window shorter than this many traded days carry a caveat (the backend's SHORT_WINDOW_DAYS). */
export const SHORT_WINDOW_DAYS = 30;
const ANNUALISED = new Set(['annual_return', 'annual_volatility', 'sharpe', 'sortino', 'calmar', 'turnover']);

/** Whether metric `key` (e.g. `test/calmar`) is annualised. */
export const isAnnualised = (key: string): boolean => ANNUALISED.has(key.slice(key.lastIndexOf('/') + 1));

/**
 * The caveat on the annualised metrics beside `<prefix>window_days` (the traded window the backend reports),
 * or null for a window of a month or more, or when it is not reported.
 */
export function windowCaveat(rows: { key: string; value: number | null }[], prefix: string): string | null {
  const days = rows.find((r) => r.key === `${prefix}window_days`)?.value;
  if (days === null || days === undefined || days >= SHORT_WINDOW_DAYS) return null;
  return `annualised from ${days.toFixed(1)} traded days (under ${SHORT_WINDOW_DAYS}): an extrapolation of a few days, not a rate to expect`;
}
