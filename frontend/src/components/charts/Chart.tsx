import { useEffect, useRef, useState } from 'react';
import { Box, Group, Text, useComputedColorScheme } from '@mantine/core';
import {
  AreaSeries,
  CandlestickSeries,
  ColorType,
  HistogramSeries,
  LineSeries,
  createChart,
  createSeriesMarkers,
  type IChartApi,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
} from 'lightweight-charts';

export interface LinePoint {
  time: number;
  value: number | null;
}

export interface LineSpec {
  name: string;
  color?: string;
  points: LinePoint[];
  area?: boolean;
  width?: number;
}

export interface Candle {
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume?: number;
}

export interface Marker {
  time: number;
  position: 'aboveBar' | 'belowBar' | 'inBar';
  shape: 'arrowUp' | 'arrowDown' | 'circle' | 'square';
  color: string;
  text?: string;
}

export const PALETTE = ['#4dabf7', '#ff922b', '#51cf66', '#f06595', '#cc5de8', '#ffd43b', '#20c997', '#adb5bd'];

/** Strictly ascending, finite points (what lightweight-charts accepts). */
export function cleanPoints(points: LinePoint[]): { time: UTCTimestamp; value: number }[] {
  const sorted = points
    .filter((p) => p.value !== null && Number.isFinite(p.value) && Number.isFinite(p.time))
    .sort((a, b) => a.time - b.time);
  const out: { time: UTCTimestamp; value: number }[] = [];
  for (const p of sorted) {
    if (out.length && out[out.length - 1].time >= p.time) continue;
    out.push({ time: p.time as UTCTimestamp, value: p.value as number });
  }
  return out;
}

function useChart(
  height: number,
  xKind: 'time' | 'step',
  build: (chart: IChartApi) => void,
  deps: unknown[],
): { ref: React.RefObject<HTMLDivElement | null>; failed: boolean } {
  const ref = useRef<HTMLDivElement | null>(null);
  const [failed, setFailed] = useState(false);
  const scheme = useComputedColorScheme('dark');
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    let chart: IChartApi;
    try {
      const dark = scheme === 'dark';
      chart = createChart(el, {
        height,
        width: el.clientWidth || 600,
        layout: {
          background: { type: ColorType.Solid, color: 'transparent' },
          textColor: dark ? '#c1c2c5' : '#333',
        },
        grid: {
          vertLines: { color: dark ? '#2c2e33' : '#eee' },
          horzLines: { color: dark ? '#2c2e33' : '#eee' },
        },
        timeScale: {
          timeVisible: xKind === 'time',
          secondsVisible: false,
          ...(xKind === 'step' ? { tickMarkFormatter: (t: Time) => String(t) } : {}),
        },
        ...(xKind === 'step' ? { localization: { timeFormatter: (t: Time) => `step ${String(t)}` } } : {}),
      });
      build(chart);
      chart.timeScale().fitContent();
    } catch {
      setFailed(true);
      return;
    }
    const observer =
      typeof ResizeObserver !== 'undefined'
        ? new ResizeObserver(() => chart.applyOptions({ width: el.clientWidth }))
        : null;
    observer?.observe(el);
    return () => {
      observer?.disconnect();
      chart.remove();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [height, xKind, scheme, ...deps]);
  return { ref, failed };
}

function Legend({ items }: { items: { name: string; color: string }[] }) {
  return (
    <Group gap="md" mt={4}>
      {items.map((i) => (
        <Group gap={4} key={i.name}>
          <Box w={12} h={3} bg={i.color} />
          <Text size="xs">{i.name}</Text>
        </Group>
      ))}
    </Group>
  );
}

/** Lines (and areas) over time or over steps; one series per spec, markers on the first. */
export function LineChart({
  series,
  height = 300,
  xKind = 'time',
  markers,
  testid = 'line-chart',
}: {
  series: LineSpec[];
  height?: number;
  xKind?: 'time' | 'step';
  markers?: Marker[];
  testid?: string;
}) {
  const colored = series.map((s, i) => ({ ...s, color: s.color ?? PALETTE[i % PALETTE.length] }));
  const { ref, failed } = useChart(
    height,
    xKind,
    (chart) => {
      colored.forEach((s, i) => {
        const data = cleanPoints(s.points);
        const line = s.area
          ? chart.addSeries(AreaSeries, {
              lineColor: s.color,
              topColor: `${s.color}44`,
              bottomColor: `${s.color}05`,
              lineWidth: 2,
            })
          : chart.addSeries(LineSeries, { color: s.color, lineWidth: (s.width ?? 2) as 1 | 2 | 3 | 4 });
        line.setData(data);
        if (i === 0 && markers?.length) {
          createSeriesMarkers(line, sortMarkers(markers));
        }
      });
    },
    [series, markers],
  );
  return (
    <Box data-testid={testid} data-series={series.length} data-points={series[0]?.points.length ?? 0}>
      {failed ? <Text c="dimmed">Chart unavailable in this browser.</Text> : <div ref={ref} style={{ width: '100%', height }} />}
      <Legend items={colored.map((s) => ({ name: s.name, color: s.color }))} />
    </Box>
  );
}

function sortMarkers(markers: Marker[]): SeriesMarker<Time>[] {
  return [...markers]
    .filter((m) => Number.isFinite(m.time))
    .sort((a, b) => a.time - b.time)
    .map((m) => ({ ...m, time: m.time as UTCTimestamp }));
}

/** Candles with volume underneath, and markers (gaps, trades). */
export function CandlesChart({
  candles,
  markers,
  height = 420,
  testid = 'candles-chart',
}: {
  candles: Candle[];
  markers?: Marker[];
  height?: number;
  testid?: string;
}) {
  const { ref, failed } = useChart(
    height,
    'time',
    (chart) => {
      const series = chart.addSeries(CandlestickSeries, {
        upColor: '#26a69a',
        downColor: '#ef5350',
        borderVisible: false,
        wickUpColor: '#26a69a',
        wickDownColor: '#ef5350',
      });
      const data: Candle[] = [];
      for (const c of [...candles].sort((a, b) => a.time - b.time)) {
        if (data.length && data[data.length - 1].time >= c.time) continue;
        data.push(c);
      }
      series.setData(data.map((c) => ({ ...c, time: c.time as UTCTimestamp })));
      if (data.some((c) => c.volume !== undefined)) {
        const volume = chart.addSeries(HistogramSeries, { priceScaleId: 'volume', priceFormat: { type: 'volume' } });
        chart.priceScale('volume').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
        volume.setData(
          data.map((c) => ({
            time: c.time as UTCTimestamp,
            value: c.volume ?? 0,
            color: c.close >= c.open ? '#26a69a55' : '#ef535055',
          })),
        );
      }
      if (markers?.length) createSeriesMarkers(series, sortMarkers(markers));
    },
    [candles, markers],
  );
  return (
    <Box data-testid={testid} data-points={candles.length} data-markers={markers?.length ?? 0}>
      {failed ? <Text c="dimmed">Chart unavailable in this browser.</Text> : <div ref={ref} style={{ width: '100%', height }} />}
    </Box>
  );
}
