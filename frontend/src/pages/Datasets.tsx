import { useMemo, useState, type FormEvent } from 'react';
import { Anchor, Badge, Button, Card, Group, SimpleGrid, Stack, Table, Text, TextInput } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { Link, useParams } from 'react-router-dom';
import { useBars, useDataset, useDatasets, useStartStream, useStopStream, useStreams } from '../api/queries';
import { isStreamTimeframe, type BarsPublic, type StreamStatus } from '../api/types';
import { CandlesChart, type Candle, type Marker } from '../components/charts/Chart';
import { Empty, ErrorAlert, JsonView, Loading, PageTitle, QueryState, Section } from '../components/common';
import { downsampleForDisplay } from '../lib/downsample';
import { toExtraErrors, validationItems } from '../lib/errors';
import { fmtDate, spanLabel, toEpochSeconds } from '../lib/format';

export function DatasetsPage() {
  const query = useDatasets();
  const streams = useStreams().data ?? [];
  return (
    <>
      <PageTitle title="Datasets" />
      <QueryState query={query}>
        {(d) =>
          d.data.length === 0 ? (
            <Empty>No datasets registered. Use `tradelab data` or POST /api/datasets/register.</Empty>
          ) : (
            <Table striped highlightOnHover data-testid="datasets-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Symbol</Table.Th>
                  <Table.Th>Timeframe</Table.Th>
                  <Table.Th>Version</Table.Th>
                  <Table.Th>Span</Table.Th>
                  <Table.Th>Rows</Table.Th>
                  <Table.Th>Validation</Table.Th>
                  <Table.Th>Registered</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {d.data.map((ds) => (
                  <Table.Tr key={ds.id} data-testid="dataset-row">
                    <Table.Td>
                      <Group gap="xs">
                        <Anchor component={Link} to={`/datasets/${ds.id}`}>
                          {ds.symbol}
                        </Anchor>
                        <StreamBadge
                          stream={streams.find((s) => s.symbol === ds.symbol && s.timeframe === ds.timeframe)}
                        />
                      </Group>
                    </Table.Td>
                    <Table.Td>{ds.timeframe}</Table.Td>
                    <Table.Td>{ds.version}</Table.Td>
                    <Table.Td>{spanLabel(ds.start, ds.end)}</Table.Td>
                    <Table.Td>{ds.rows.toLocaleString()}</Table.Td>
                    <Table.Td>
                      <QualityBadge ok={ds.ok} />
                    </Table.Td>
                    <Table.Td>{fmtDate(ds.registered_at)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          )
        }
      </QueryState>
      <StreamsSection />
    </>
  );
}

const fmtLag = (lag: number | null | undefined): string => (lag == null ? '—' : `${Math.round(lag)} s`);

/** A streamed dataset's ingestion: "live" with its last bar and lag, else the stream's last state. */
export function StreamBadge({ stream }: { stream: StreamStatus | undefined }) {
  if (!stream) return null;
  const lag = stream.lag_s == null ? '' : `, lag ${fmtLag(stream.lag_s)}`;
  const title = `last bar ${stream.last_bar_ts ? fmtDate(stream.last_bar_ts) : 'none yet'}${lag}`;
  return (
    <Badge
      color={stream.live ? 'teal' : stream.state === 'failed' ? 'red' : 'gray'}
      variant={stream.live ? 'filled' : 'light'}
      title={title}
      data-testid="stream-badge"
      data-live={stream.live}
    >
      {stream.live ? 'live' : `stream ${stream.state}`}
    </Badge>
  );
}

const STREAM_STATE_COLORS: Record<StreamStatus['state'], string> = {
  connecting: 'yellow',
  backfilling: 'blue',
  streaming: 'teal',
  stopped: 'gray',
  failed: 'red',
};

/** The counters of a stream, one column each. */
const STREAM_COUNTERS = [
  { key: 'bars_written', label: 'Bars written' },
  { key: 'duplicates', label: 'Duplicates' },
  { key: 'out_of_order', label: 'Out of order' },
  { key: 'malformed', label: 'Malformed' },
  { key: 'reconnects', label: 'Reconnects' },
] as const satisfies readonly { key: keyof StreamStatus; label: string }[];

/** The live ingestion of the store: a form to start a stream, and every stream's state and counters. */
function StreamsSection() {
  const query = useStreams();
  return (
    <Section title="Live streams" testid="streams-section">
      <StartStreamForm />
      <QueryState query={query} label="Loading streams…">
        {(streams) =>
          streams.length === 0 ? (
            <Empty>No streams. Start one above, or run `tradelab data stream`.</Empty>
          ) : (
            <StreamsTable streams={streams} />
          )
        }
      </QueryState>
    </Section>
  );
}

function StreamsTable({ streams }: { streams: StreamStatus[] }) {
  const stop = useStopStream();
  return (
    <>
      {stop.isError && <ErrorAlert error={stop.error} title="Stop failed" />}
      <Table striped data-testid="streams-table">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Stream</Table.Th>
            <Table.Th>State</Table.Th>
            <Table.Th>Last bar</Table.Th>
            <Table.Th>Lag</Table.Th>
            {STREAM_COUNTERS.map((c) => (
              <Table.Th key={c.key}>{c.label}</Table.Th>
            ))}
            <Table.Th>Error</Table.Th>
            <Table.Th />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {streams.map((s) => {
            const { symbol, timeframe } = s;
            const stoppable = s.live && isStreamTimeframe(timeframe);
            return (
              <StreamRow
                key={`${symbol}/${timeframe}`}
                stream={s}
                onStop={stoppable ? () => stop.mutate({ symbol, timeframe }) : undefined}
                stopping={stop.isPending && stop.variables.symbol === symbol && stop.variables.timeframe === timeframe}
              />
            );
          })}
        </Table.Tbody>
      </Table>
    </>
  );
}

function StreamRow({ stream, onStop, stopping }: { stream: StreamStatus; onStop?: () => void; stopping: boolean }) {
  return (
    <Table.Tr data-testid="stream-row" data-symbol={stream.symbol} data-live={stream.live}>
      <Table.Td>{`${stream.symbol} ${stream.timeframe}`}</Table.Td>
      <Table.Td>
        <Group gap={4} wrap="nowrap">
          <Badge color={STREAM_STATE_COLORS[stream.state] ?? 'gray'} variant="light" data-testid="stream-state">
            {stream.state}
          </Badge>
          <Badge color={stream.live ? 'teal' : 'gray'} variant={stream.live ? 'filled' : 'outline'} data-testid="stream-live">
            {stream.live ? 'live' : 'not live'}
          </Badge>
        </Group>
      </Table.Td>
      <Table.Td>{fmtDate(stream.last_bar_ts)}</Table.Td>
      <Table.Td>{fmtLag(stream.lag_s)}</Table.Td>
      {STREAM_COUNTERS.map((c) => (
        <Table.Td key={c.key} data-testid={`stream-${c.key}`} title={c.key === 'malformed' ? (stream.last_malformed ?? undefined) : undefined}>
          {(stream[c.key] ?? 0).toLocaleString()}
        </Table.Td>
      ))}
      <Table.Td>
        {stream.error && (
          <Text size="xs" c="red" lineClamp={2} title={stream.error} data-testid="stream-error">
            {stream.error}
          </Text>
        )}
      </Table.Td>
      <Table.Td>
        {onStop && (
          <Button size="xs" color="red" variant="light" loading={stopping} onClick={onStop} data-testid="stream-stop">
            Stop
          </Button>
        )}
      </Table.Td>
    </Table.Tr>
  );
}

/** The fields of the start form that a 422 can point at. */
const START_FIELDS = ['symbol', 'since'] as const;
type StartField = (typeof START_FIELDS)[number];

/** A refused start: its 422 messages at the form's fields, and whether any of it belongs to no field (shown apart). */
function startErrors(error: unknown): { fields: Partial<Record<StartField, string>>; other: boolean } {
  if (!error) return { fields: {}, other: false };
  const items = validationItems(error);
  const { errors, rest } = toExtraErrors(items, ['body']);
  const fields: Partial<Record<StartField, string>> = {};
  for (const f of START_FIELDS) {
    const messages = errors[f]?.__errors;
    if (messages?.length) fields[f] = messages.join('; ');
  }
  const placed = Object.keys(errors).every((k) => (START_FIELDS as readonly string[]).includes(k));
  return { fields, other: items.length === 0 || rest.length > 0 || !placed };
}

function StartStreamForm() {
  const [symbol, setSymbol] = useState('');
  const [since, setSince] = useState('');
  const start = useStartStream();
  const errors = startErrors(start.error);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = { exchange: 'binance', symbol: symbol.trim().toUpperCase(), timeframe: '1m' } as const;
    start.mutate(since.trim() ? { ...body, since: since.trim() } : body, {
      onSuccess: (started) => {
        notifications.show({ color: 'green', message: `Started streaming ${body.symbol} (pid ${started.pid})` });
        setSymbol('');
        setSince('');
      },
    });
  };
  return (
    <form onSubmit={submit} data-testid="stream-form">
      <Stack gap="xs">
        <Group align="flex-start">
          <TextInput label="Exchange" value="binance" disabled w={110} />
          <TextInput
            label="Symbol"
            placeholder="BTCUSDT"
            withAsterisk
            value={symbol}
            onChange={(e) => setSymbol(e.currentTarget.value)}
            error={errors.fields.symbol}
            data-testid="stream-symbol"
          />
          <TextInput label="Timeframe" value="1m" disabled w={90} />
          <TextInput
            label="Backfill since (UTC, optional)"
            placeholder="2024-01-01T00:00:00Z"
            value={since}
            onChange={(e) => setSince(e.currentTarget.value)}
            error={errors.fields.since}
            data-testid="stream-since"
          />
          <Button type="submit" mt={25} loading={start.isPending} disabled={!symbol.trim()} data-testid="stream-start">
            Start stream
          </Button>
        </Group>
        {errors.other && <ErrorAlert error={start.error} title="Stream not started" />}
      </Stack>
    </form>
  );
}

function QualityBadge({ ok }: { ok: boolean }) {
  return (
    <Badge color={ok ? 'green' : 'red'} variant="light" data-testid="dataset-quality">
      {ok ? 'valid' : 'problems'}
    </Badge>
  );
}

/** Candles (downsampled for display if needed), and a marker at each gap's start. */
export function barsToChart(bars: BarsPublic): { candles: Candle[]; markers: Marker[] } {
  const n = bars.time.length;
  const keep = downsampleForDisplay(n, bars.close, 5000);
  const idx = keep ?? Array.from({ length: n }, (_, i) => i);
  const candles = idx.map((i) => ({
    time: bars.time[i],
    open: bars.open[i],
    high: bars.high[i],
    low: bars.low[i],
    close: bars.close[i],
    volume: bars.volume?.[i],
  }));
  const markers: Marker[] = (bars.gaps ?? []).map((g) => ({
    time: snap(bars.time, toEpochSeconds(g.start)),
    position: 'aboveBar',
    shape: 'square',
    color: '#fab005',
    text: `gap ${g.missing}`,
  }));
  return { candles, markers };
}

/** The bar time at or before `t` (a marker must sit on a bar of the series). */
export function snap(times: number[], t: number): number {
  let lo = 0;
  let hi = times.length - 1;
  if (hi < 0) return t;
  if (t <= times[0]) return times[0];
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (times[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  return times[lo];
}

function DatasetChart({ id }: { id: number }) {
  const [range, setRange] = useState<{ start?: string; end?: string }>({});
  const [draft, setDraft] = useState({ start: '', end: '' });
  const bars = useBars(id, range.start, range.end);
  const chart = useMemo(() => (bars.data ? barsToChart(bars.data) : null), [bars.data]);
  return (
    <Stack gap="xs">
      <Group align="end">
        <TextInput
          label="Start (ISO)"
          placeholder="2024-01-01"
          value={draft.start}
          onChange={(e) => setDraft({ ...draft, start: e.currentTarget.value })}
        />
        <TextInput
          label="End (ISO)"
          placeholder="2024-02-01"
          value={draft.end}
          onChange={(e) => setDraft({ ...draft, end: e.currentTarget.value })}
        />
        <Button onClick={() => setRange({ start: draft.start || undefined, end: draft.end || undefined })}>
          Show range
        </Button>
      </Group>
      {bars.isPending && <Loading label="Loading bars…" />}
      {bars.isError && <ErrorAlert error={bars.error} title="Bars unavailable" />}
      {bars.data && chart && (
        <>
          <Text size="sm" c="dimmed">
            {bars.data.time.length.toLocaleString()} bars shown ({bars.data.bucket_seconds}s buckets) ·{' '}
            {bars.data.gaps?.length ?? 0} gaps (yellow squares)
          </Text>
          {chart.candles.length === 0 ? <Empty>No bars in this range.</Empty> : <CandlesChart {...chart} />}
          {bars.data.gaps?.length > 0 && (
            <Table data-testid="gaps-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Gap start</Table.Th>
                  <Table.Th>End</Table.Th>
                  <Table.Th>Missing bars</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {bars.data.gaps.slice(0, 100).map((g, i) => (
                  <Table.Tr key={i}>
                    <Table.Td>{typeof g.start === 'number' ? fmtDate(new Date(toEpochSeconds(g.start) * 1000).toISOString()) : fmtDate(g.start)}</Table.Td>
                    <Table.Td>{typeof g.end === 'number' ? fmtDate(new Date(toEpochSeconds(g.end) * 1000).toISOString()) : fmtDate(g.end)}</Table.Td>
                    <Table.Td>{g.missing}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          )}
        </>
      )}
    </Stack>
  );
}

export function DatasetDetailPage() {
  const id = Number(useParams().id);
  const query = useDataset(id);
  return (
    <QueryState query={query}>
      {(ds) => (
        <>
          <PageTitle title={`${ds.symbol} ${ds.timeframe} · ${ds.version}`} />
          <SimpleGrid cols={{ base: 2, md: 5 }}>
            <Card withBorder padding="sm">
              <Text size="xs" c="dimmed">Rows</Text>
              <Text fw={600}>{ds.rows.toLocaleString()}</Text>
            </Card>
            <Card withBorder padding="sm">
              <Text size="xs" c="dimmed">Start</Text>
              <Text fw={600}>{fmtDate(ds.start)}</Text>
            </Card>
            <Card withBorder padding="sm">
              <Text size="xs" c="dimmed">End</Text>
              <Text fw={600}>{fmtDate(ds.end)}</Text>
            </Card>
            <Card withBorder padding="sm">
              <Text size="xs" c="dimmed">Validation</Text>
              <QualityBadge ok={ds.ok} />
            </Card>
            <Card withBorder padding="sm">
              <Text size="xs" c="dimmed">Registered</Text>
              <Text fw={600}>{fmtDate(ds.registered_at)}</Text>
            </Card>
          </SimpleGrid>
          <Section title="Price" testid="dataset-chart-section">
            <DatasetChart id={ds.id} />
          </Section>
          <Section title="Validation report" testid="validation-report">
            <JsonView value={ds.report} />
          </Section>
        </>
      )}
    </QueryState>
  );
}
