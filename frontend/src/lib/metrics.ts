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
