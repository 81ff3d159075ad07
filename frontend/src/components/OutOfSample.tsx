import { useState } from 'react';
import { Alert, Button, Card, Group, NumberInput, Stack, Text } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useQueries } from '@tanstack/react-query';
import {
  metricSeriesQuery,
  useEvaluateRun,
  useMetricKeys,
  useRemoveWatch,
  useSetWatch,
  useWatch,
} from '../api/queries';
import { MODEL_KINDS, type MetricKey, type Run, type Watch } from '../api/types';
import { fmtDate } from '../lib/format';
import { metricLine } from '../lib/metrics';
import { BackendSelect } from './BackendSelect';
import { LineChart } from './charts/Chart';
import { Empty, ErrorAlert, Loading, QueryState, Section } from './common';
import { LatestMetricsTable } from './LatestMetrics';
import { RunLink } from './RunKind';

const OOS = 'oos/';
/** The out-of-sample metrics drawn over time (x = the evaluation window's end, epoch seconds). */
const CHARTED = ['oos/sharpe', 'oos/excess_return'];
const DEFAULT_DAYS = 30;
const HOUR_S = 3600;
const DEFAULT_EVERY_H = 24;

const epochDate = (s: number) => fmtDate(new Date(s * 1000).toISOString());

/** Whether a run is shown with an "Out-of-sample" tab: a model that can be re-evaluated, or a re-evaluation. */
export const hasOutOfSample = (run: Run) => MODEL_KINDS.includes(run.kind) || run.kind === 'evaluate';

function OosChart({ runId, metricKeys }: { runId: number; metricKeys: MetricKey[] }) {
  const charted = CHARTED.filter((key) => metricKeys.some((k) => k.key === key));
  const series = useQueries({ queries: charted.map((key) => metricSeriesQuery(runId, key)) });
  const failed = series.find((s) => s.isError);
  if (failed) return <ErrorAlert error={failed.error} />;
  const lines = series.flatMap((s) => (s.data ? [metricLine(s.data)] : []));
  if (lines.length < charted.length) return <Loading label="Loading out-of-sample metrics…" />;
  return <LineChart series={lines} height={260} testid="oos-chart" />;
}

function OosResults({ runId, metricKeys }: { runId: number; metricKeys: MetricKey[] }) {
  const oos = metricKeys.filter((k) => k.key.startsWith(OOS));
  if (oos.length === 0) return <Empty>Not re-evaluated yet.</Empty>;
  return (
    <>
      <Section title="Out-of-sample over time">
        <OosChart runId={runId} metricKeys={oos} />
      </Section>
      <Section title="Latest">
        <Text size="xs" c="dimmed">
          window ending {epochDate(Math.max(...oos.map((k) => k.last_step)))}
        </Text>
        <LatestMetricsTable runId={runId} metricKeys={oos} prefix={OOS} testid="oos-latest" empty="Not re-evaluated yet." />
      </Section>
    </>
  );
}

function ReevaluateForm({ runId }: { runId: number }) {
  const evaluate = useEvaluateRun(runId);
  const [days, setDays] = useState<number | string>(DEFAULT_DAYS);
  const [backend, setBackend] = useState('local');
  const submit = () =>
    evaluate.mutate(
      { days: Number(days), backend },
      { onSuccess: (run) => notifications.show({ color: 'green', message: `Re-evaluation #${run.id} queued` }) },
    );
  return (
    <Stack gap="xs">
      <Group align="flex-end">
        <NumberInput label="Days" min={1} max={3650} value={days} onChange={setDays} data-testid="reevaluate-days" />
        <BackendSelect value={backend} onChange={setBackend} testid="reevaluate-backend" />
        <Button loading={evaluate.isPending} onClick={submit} data-testid="reevaluate-button">
          Re-evaluate now
        </Button>
      </Group>
      {evaluate.isError && <ErrorAlert error={evaluate.error} title="Re-evaluation refused" />}
      {evaluate.data && (
        <Group gap={4}>
          <Text size="sm">queued as</Text>
          <RunLink id={evaluate.data.id} />
        </Group>
      )}
    </Stack>
  );
}

function watchSummary(w: Watch | null): string {
  if (!w) return 'Not watched.';
  const every = w.every_s / HOUR_S;
  return `Re-evaluated on the last ${w.window_days} days every ${+every.toFixed(2)} h on ${w.backend}; last queued ${fmtDate(w.last_queued_at)}.`;
}

function WatchForm({ runId, watch }: { runId: number; watch: Watch | null }) {
  const save = useSetWatch(runId);
  const remove = useRemoveWatch(runId);
  const [windowDays, setWindowDays] = useState<number | string>(watch?.window_days ?? DEFAULT_DAYS);
  const [everyHours, setEveryHours] = useState<number | string>(watch ? watch.every_s / HOUR_S : DEFAULT_EVERY_H);
  const [backend, setBackend] = useState(watch?.backend ?? 'local');
  const submit = () =>
    save.mutate({ window_days: Number(windowDays), every_s: Number(everyHours) * HOUR_S, backend });
  return (
    <Stack gap="xs" data-testid="watch-form">
      <Text size="sm" data-testid="watch-status">
        {watchSummary(watch)}
      </Text>
      <Group align="flex-end">
        <NumberInput label="Window (days)" min={1} max={3650} value={windowDays} onChange={setWindowDays} data-testid="watch-window" />
        <NumberInput label="Every (hours)" min={0} decimalScale={2} value={everyHours} onChange={setEveryHours} data-testid="watch-every" />
        <BackendSelect value={backend} onChange={setBackend} testid="watch-backend" />
        <Button loading={save.isPending} onClick={submit} data-testid="watch-save">
          {watch ? 'Update watch' : 'Watch'}
        </Button>
        {watch && (
          <Button color="red" variant="light" loading={remove.isPending} onClick={() => remove.mutate()} data-testid="watch-remove">
            Remove watch
          </Button>
        )}
      </Group>
      {save.isError && <ErrorAlert error={save.error} title="Watch refused" />}
      {remove.isError && <ErrorAlert error={remove.error} title="Removal failed" />}
    </Stack>
  );
}

/** Re-evaluate the run now, or on a schedule (its watch). */
function OosControls({ runId }: { runId: number }) {
  const watch = useWatch(runId);
  return (
    <Card withBorder>
      <Stack>
        <ReevaluateForm runId={runId} />
        <QueryState query={watch} label="Loading watch…">
          {(w) => <WatchForm runId={runId} watch={w} />}
        </QueryState>
      </Stack>
    </Card>
  );
}

/** A run's record on data it never saw: the `oos/…` metrics of its re-evaluations, and the controls for more. */
export function OutOfSample({ run }: { run: Run }) {
  const metricKeys = useMetricKeys(run.id);
  const model = MODEL_KINDS.includes(run.kind);
  const ready = run.state === 'succeeded' && !!run.artifact_url;
  return (
    <Stack data-testid="out-of-sample">
      {model && ready && <OosControls runId={run.id} />}
      {model && !ready && (
        <Alert color="gray">Re-evaluation needs a succeeded run with a trained model.</Alert>
      )}
      <QueryState query={metricKeys}>{(d) => <OosResults runId={run.id} metricKeys={d.data} />}</QueryState>
    </Stack>
  );
}
