import { useEffect, useMemo, useState } from 'react';
import {
  Alert,
  Anchor,
  Button,
  Card,
  Code,
  Group,
  ScrollArea,
  SegmentedControl,
  SimpleGrid,
  Stack,
  Table,
  Tabs,
  Text,
} from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { Link } from 'react-router-dom';
import { api, unwrap } from '../api/client';
import {
  useArtifacts,
  useBars,
  useCancelRun,
  useDatasets,
  useEquity,
  useExperiment,
  useMetricKeys,
  useMetricSeries,
  useRun,
  useTrades,
} from '../api/queries';
import { ACTIVE_STATES, SPLITS, type Equity, type MetricKey, type Split } from '../api/types';
import { CandlesChart, LineChart, type LineSpec, type Marker } from './charts/Chart';
import { Empty, ErrorAlert, Loading, QueryState, RunStateBadge, Section } from './common';
import { LatestMetricsTable } from './LatestMetrics';
import { OutOfSample, hasOutOfSample } from './OutOfSample';
import { RunKindInfo } from './RunKind';
import { downsampleForDisplay } from '../lib/downsample';
import { fmtDate, fmtMoney, fmtNum, toEpochSeconds } from '../lib/format';
import { metricLine } from '../lib/metrics';
import { snap } from '../pages/Datasets';

/** Policies' equity as chart lines (epoch ms → s; downsampled for display if the server sent full resolution). */
export function equityLines(eq: Equity): LineSpec[] {
  const names = Object.keys(eq.equity).sort((a, b) => (a === 'agent' ? -1 : b === 'agent' ? 1 : a.localeCompare(b)));
  const agent = eq.equity.agent ?? eq.equity[names[0]] ?? [];
  const keep = downsampleForDisplay(eq.ts.length, agent.map((v) => v ?? NaN), 4000);
  const idx = keep ?? eq.ts.map((_, i) => i);
  return names.map((name) => ({
    name,
    width: name === 'agent' ? 2 : 1,
    points: idx.map((i) => ({ time: toEpochSeconds(eq.ts[i]), value: eq.equity[name][i] })),
  }));
}

/** Drawdown (fraction below the running peak, ≤ 0) of each line. */
export function drawdownLines(lines: LineSpec[]): LineSpec[] {
  return lines.map((l) => {
    let peak = -Infinity;
    return {
      name: l.name,
      area: l.name === 'agent',
      width: l.width,
      points: l.points.map((p) => {
        if (p.value === null) return p;
        peak = Math.max(peak, p.value);
        return { time: p.time, value: peak > 0 ? p.value / peak - 1 : 0 };
      }),
    };
  });
}

type Trade = Record<string, unknown>;

/** At most this many trades are marked on the price chart (markers are costly to lay out). */
export const MAX_MARKED_TRADES = 300;
/** Trades-table rows shown at first; "Show more" adds as many again. */
export const TRADES_PAGE = 50;

/** Every k-th trade so that at most `max` remain (evenly over the run). */
export function thinTrades<T>(trades: T[], max = MAX_MARKED_TRADES): T[] {
  if (trades.length <= max) return trades;
  const out: T[] = [];
  const step = trades.length / max;
  for (let i = 0; i < max; i++) out.push(trades[Math.floor(i * step)]);
  return out;
}

/** True once the browser has had a moment after the first paint (the secondary charts wait for it). */
function useAfterFirstPaint(ready: boolean): boolean {
  const [done, setDone] = useState(false);
  useEffect(() => {
    if (!ready || done) return;
    let cancelled = false;
    const go = () => {
      if (!cancelled) setDone(true);
    };
    // two frames: the equity chart is committed and painted before the rest is built
    const raf = typeof requestAnimationFrame === 'function' ? requestAnimationFrame : (f: () => void) => setTimeout(f, 16);
    const t = setTimeout(() => raf(() => setTimeout(go, 0)), 0);
    return () => {
      cancelled = true;
      clearTimeout(t);
    };
  }, [ready, done]);
  return done;
}

export function tradeMarkers(trades: Trade[], times?: number[]): Marker[] {
  const at = (t: unknown) => {
    const s = toEpochSeconds(t as string | number);
    return times && times.length ? snap(times, s) : s;
  };
  const out: Marker[] = [];
  for (const t of trades) {
    const long = t.side === 'long';
    if (t.entry_time !== null && t.entry_time !== undefined)
      out.push({
        time: at(t.entry_time),
        position: long ? 'belowBar' : 'aboveBar',
        shape: long ? 'arrowUp' : 'arrowDown',
        color: long ? '#51cf66' : '#ff6b6b',
        text: long ? 'L' : 'S',
      });
    if (t.exit_time !== null && t.exit_time !== undefined)
      out.push({ time: at(t.exit_time), position: 'inBar', shape: 'circle', color: '#adb5bd' });
  }
  return out;
}

function TrainingCurves({ runId, keys: metricKeys }: { runId: number; keys: MetricKey[] }) {
  const val = metricKeys.filter((k) => k.key.startsWith('val/'));
  if (val.length === 0) return <Empty>No validation metrics reported yet.</Empty>;
  return (
    <SimpleGrid cols={{ base: 1, md: 2 }} data-testid="training-curves">
      {val.map((k) => (
        <MetricChart key={k.key} runId={runId} metric={k.key} />
      ))}
    </SimpleGrid>
  );
}

function MetricChart({ runId, metric }: { runId: number; metric: string }) {
  const series = useMetricSeries(runId, metric);
  return (
    <Card withBorder padding="xs">
      <Text size="sm" fw={600}>
        {metric}
        {series.data && series.data.total > series.data.steps.length && (
          <Text span size="xs" c="dimmed">
            {' '}
            ({series.data.steps.length} of {series.data.total} points)
          </Text>
        )}
      </Text>
      <QueryState query={series}>
        {(s) =>
          s.steps.length === 0 ? (
            <Empty>No points.</Empty>
          ) : (
            <LineChart
              xKind="step"
              height={180}
              testid="training-chart"
              series={[metricLine(s)]}
            />
          )
        }
      </QueryState>
    </Card>
  );
}

/** The experiment's dataset, if registered (config.env.dataset: symbol, timeframe, version). */
function useExperimentDataset(experimentId: number) {
  const experiment = useExperiment(experimentId);
  const datasets = useDatasets();
  return useMemo(() => {
    const ref = ((experiment.data?.config as Record<string, any> | undefined)?.env?.dataset ?? {}) as {
      symbol?: string;
      timeframe?: string;
      version?: string | null;
    };
    const matches = (datasets.data?.data ?? []).filter(
      (d) => d.symbol === ref.symbol && (!ref.timeframe || d.timeframe === ref.timeframe) && (!ref.version || d.version === ref.version),
    );
    return matches.sort((a, b) => b.registered_at.localeCompare(a.registered_at))[0];
  }, [experiment.data, datasets.data]);
}

function SplitResults({ runId, experimentId, split }: { runId: number; experimentId: number; split: Split }) {
  const equity = useEquity(runId, split);
  const trades = useTrades(runId, split, !equity.isPending);
  const lines = useMemo(() => (equity.data ? equityLines(equity.data) : []), [equity.data]);
  const dd = useMemo(() => drawdownLines(lines), [lines]);
  const dataset = useExperimentDataset(experimentId);
  const first = lines[0]?.points;
  const range =
    first && first.length
      ? {
          start: new Date(first[0].time * 1000).toISOString(),
          end: new Date(first[first.length - 1].time * 1000).toISOString(),
        }
      : undefined;
  const bars = useBars(range && dataset ? dataset.id : undefined, range?.start, range?.end);
  const tradeList = useMemo(() => (trades.data?.data ?? []) as Trade[], [trades.data]);
  const marked = useMemo(() => thinTrades(tradeList), [tradeList]);
  const markers = useMemo(
    () => tradeMarkers(marked, bars.data?.time ?? first?.map((p) => p.time)),
    [marked, bars.data, first],
  );
  const candles = useMemo(
    () =>
      bars.data
        ? bars.data.time.map((t, i) => ({
            time: t,
            open: bars.data!.open[i],
            high: bars.data!.high[i],
            low: bars.data!.low[i],
            close: bars.data!.close[i],
          }))
        : [],
    [bars.data],
  );
  const rest = useAfterFirstPaint(!!equity.data);

  if (equity.isPending) return <Loading label="Loading equity…" />;
  if (equity.isError) return <Alert color="gray" data-testid="no-results">No {split} results for this run yet ({String(equity.error.message)}).</Alert>;
  return (
    <Stack>
      <Section title={`Equity vs baselines (${split})`}>
        {equity.data.total > equity.data.ts.length && (
          <Text size="xs" c="dimmed">
            {equity.data.ts.length.toLocaleString()} of {equity.data.total.toLocaleString()} bars (downsampled by the server)
          </Text>
        )}
        <LineChart series={lines} testid="equity-chart" />
      </Section>
      <Section title="Drawdown">
        {rest ? <LineChart series={dd} height={200} testid="drawdown-chart" /> : <Loading label="Drawing…" />}
      </Section>
      <Section title={`Trades (${tradeList.length})`}>
        {trades.isError && <ErrorAlert error={trades.error} title="Trades unavailable" />}
        {marked.length < tradeList.length && (
          <Text size="xs" c="dimmed" data-testid="trades-marked-note">
            showing {marked.length.toLocaleString()} of {tradeList.length.toLocaleString()} trades on the chart
          </Text>
        )}
        {!rest ? (
          <Loading label="Drawing…" />
        ) : candles.length > 0 ? (
          <CandlesChart candles={candles} markers={markers} testid="trades-chart" height={360} />
        ) : (
          <>
            <Text size="xs" c="dimmed">
              Price bars unavailable for this dataset; trades are marked on the agent&apos;s equity.
            </Text>
            <LineChart series={lines.slice(0, 1)} markers={markers} testid="trades-chart" height={260} />
          </>
        )}
        {rest && tradeList.length > 0 && <TradesTable trades={tradeList} />}
      </Section>
    </Stack>
  );
}

function TradesTable({ trades }: { trades: Trade[] }) {
  const [shown, setShown] = useState(TRADES_PAGE);
  const cols = ['side', 'entry_time', 'entry_price', 'exit_time', 'exit_price', 'size', 'net_pnl', 'reason'];
  const show = (c: string, v: unknown) =>
    v === null || v === undefined ? '—' : typeof v === 'number' ? (c.endsWith('time') ? fmtDate(new Date(toEpochSeconds(v) * 1000).toISOString()) : fmtNum(v, 4)) : c.endsWith('time') ? fmtDate(String(v)) : String(v);
  return (
    <ScrollArea.Autosize mah={300}>
      <Table data-testid="trades-table" striped>
        <Table.Thead>
          <Table.Tr>
            {cols.map((c) => (
              <Table.Th key={c}>{c}</Table.Th>
            ))}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {trades.slice(0, shown).map((t, i) => (
            <Table.Tr key={i}>
              {cols.map((c) => (
                <Table.Td key={c}>{show(c, t[c])}</Table.Td>
              ))}
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {shown < trades.length && (
        <Group gap="xs" mt={4}>
          <Text size="xs" c="dimmed" data-testid="trades-shown">
            {Math.min(shown, trades.length)} of {trades.length} trades
          </Text>
          <Button size="xs" variant="subtle" onClick={() => setShown((n) => n + TRADES_PAGE * 4)} data-testid="trades-more">
            Show more
          </Button>
        </Group>
      )}
    </ScrollArea.Autosize>
  );
}

function Artifacts({ runId }: { runId: number }) {
  const query = useArtifacts(runId);
  const download = async (name: string) => {
    const { data, response } = await api.GET('/api/runs/{run_id}/artifacts/{path}', {
      params: { path: { run_id: runId, path: name } },
      parseAs: 'blob',
    });
    if (!response.ok || !data) return;
    const url = URL.createObjectURL(data as Blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = name.split('/').pop() ?? name;
    a.click();
    URL.revokeObjectURL(url);
  };
  return (
    <QueryState query={query}>
      {(d) =>
        d.data.length === 0 ? (
          <Empty>No artifacts yet.</Empty>
        ) : (
          <Table data-testid="artifacts-table">
            <Table.Tbody>
              {d.data.map((a) => (
                <Table.Tr key={a.name}>
                  <Table.Td>
                    <Anchor component="button" onClick={() => void download(a.name)}>
                      {a.name}
                    </Anchor>
                  </Table.Td>
                  <Table.Td>{(a.size / 1024).toFixed(1)} KiB</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )
      }
    </QueryState>
  );
}

/** The log, read incrementally with `after_id`; polled while the run is active. */
function Logs({ runId, active }: { runId: number; active: boolean }) {
  const [lines, setLines] = useState<{ id: number; at: string; line: string }[]>([]);
  const after = lines.length ? lines[lines.length - 1].id : undefined;
  const query = useQuery({
    queryKey: ['logs', runId, after ?? 0],
    refetchInterval: active ? 3000 : false,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/runs/{run_id}/logs', {
          params: { path: { run_id: runId }, query: after !== undefined ? { after_id: after, limit: 1000 } : { limit: 1000 } },
        }),
      ),
  });
  useEffect(() => {
    setLines([]);
  }, [runId]);
  useEffect(() => {
    const fresh = query.data?.data ?? [];
    if (fresh.length) setLines((l) => [...l, ...fresh.filter((f) => !l.length || f.id > l[l.length - 1].id)]);
  }, [query.data]);
  if (query.isError && lines.length === 0) return <ErrorAlert error={query.error} />;
  if (query.isPending && lines.length === 0) return <Loading label="Loading logs…" />;
  if (lines.length === 0) return <Empty>No log lines yet.</Empty>;
  return (
    <ScrollArea.Autosize mah={400}>
      <Code block data-testid="run-logs">
        {lines.map((l) => `${fmtDate(l.at)}  ${l.line}`).join('\n')}
      </Code>
    </ScrollArea.Autosize>
  );
}

/** Everything about one run. */
export function RunPanel({ runId }: { runId: number }) {
  const run = useRun(runId);
  const metricKeys = useMetricKeys(runId);
  const cancel = useCancelRun();
  const [split, setSplit] = useState<Split>('test');
  // Results need only the run's id: start them now, not after the run itself has loaded.
  const equity = useEquity(runId, split);
  useTrades(runId, split, !equity.isPending); // after the equity: the chart waits for it, not for trades
  if (run.isPending) return <Loading label="Loading run…" />;
  if (run.isError) return <ErrorAlert error={run.error} />;
  const r = run.data;
  const active = ACTIVE_STATES.includes(r.state);
  return (
    <Stack data-testid="run-panel">
      <Card withBorder>
        <Group justify="space-between">
          <Group>
            <Text fw={700}>Run #{r.id}</Text>
            <RunStateBadge state={r.state} />
            <RunKindInfo run={r} />
            <Anchor component={Link} to={`/experiments/${r.experiment_id}`} size="sm">
              experiment #{r.experiment_id}
            </Anchor>
          </Group>
          <Group>
            <Button component={Link} to={`/compare?runs=${r.id}`} variant="default" size="xs">
              Compare…
            </Button>
            {active && (
              <Button
                color="red"
                size="xs"
                variant="light"
                loading={cancel.isPending}
                disabled={r.cancel_requested}
                onClick={() => cancel.mutate(r.id)}
                data-testid="cancel-run"
              >
                {r.cancel_requested ? 'Cancel requested' : 'Cancel run'}
              </Button>
            )}
          </Group>
        </Group>
        <SimpleGrid cols={{ base: 2, md: 6 }} mt="sm">
          <Text size="sm">backend: {r.backend}{r.gpu_type ? ` (${r.gpu_type})` : ''}</Text>
          <Text size="sm">seed: {r.seed}</Text>
          <Text size="sm">cost: {fmtMoney(r.cost)}{r.max_cost ? ` / ${fmtMoney(r.max_cost)}` : ''}</Text>
          <Text size="sm">attempts: {r.attempts}/{r.max_attempts}</Text>
          <Text size="sm">queued: {fmtDate(r.queued_at)}</Text>
          <Text size="sm">ended: {fmtDate(r.ended_at)}</Text>
        </SimpleGrid>
        {cancel.isError && <ErrorAlert error={cancel.error} title="Cancel failed" />}
        {r.error && (
          <Alert color="red" mt="sm" title="Error" data-testid="run-error">
            {r.error}
          </Alert>
        )}
      </Card>
      <Tabs defaultValue="results" keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="results">Results</Tabs.Tab>
          <Tabs.Tab value="training">Training curves</Tabs.Tab>
          <Tabs.Tab value="metrics">Metrics</Tabs.Tab>
          {hasOutOfSample(r) && <Tabs.Tab value="oos">Out-of-sample</Tabs.Tab>}
          <Tabs.Tab value="artifacts">Artifacts</Tabs.Tab>
          <Tabs.Tab value="logs">Logs</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="results" pt="sm">
          <SegmentedControl
            data={SPLITS.map((s) => ({ value: s, label: s }))}
            value={split}
            onChange={(v) => setSplit(v as Split)}
            data-testid="split-select"
          />
          <SplitResults runId={r.id} experimentId={r.experiment_id} split={split} />
        </Tabs.Panel>
        <Tabs.Panel value="training" pt="sm">
          <QueryState query={metricKeys}>{(d) => <TrainingCurves runId={r.id} keys={d.data} />}</QueryState>
        </Tabs.Panel>
        <Tabs.Panel value="metrics" pt="sm">
          <QueryState query={metricKeys}>
            {(d) => (
              <LatestMetricsTable
                runId={r.id}
                metricKeys={d.data}
                prefix="test/"
                testid="metrics-table"
                empty="No test metrics yet (they arrive when the run finishes)."
              />
            )}
          </QueryState>
        </Tabs.Panel>
        {hasOutOfSample(r) && (
          <Tabs.Panel value="oos" pt="sm">
            <OutOfSample run={r} />
          </Tabs.Panel>
        )}
        <Tabs.Panel value="artifacts" pt="sm">
          <Artifacts runId={r.id} />
        </Tabs.Panel>
        <Tabs.Panel value="logs" pt="sm">
          <Logs runId={r.id} active={active} />
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}
