import { useMemo, useState } from 'react';
import { Anchor, Badge, Button, Card, Group, SimpleGrid, Stack, Table, Text, TextInput } from '@mantine/core';
import { Link, useParams } from 'react-router-dom';
import { useBars, useDataset, useDatasets, useStreams } from '../api/queries';
import type { BarsPublic, StreamStatus } from '../api/types';
import { CandlesChart, type Candle, type Marker } from '../components/charts/Chart';
import { Empty, ErrorAlert, JsonView, Loading, PageTitle, QueryState, Section } from '../components/common';
import { downsampleForDisplay } from '../lib/downsample';
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
    </>
  );
}

/** A streamed dataset's ingestion: "live" with its last bar and lag, else the stream's last state. */
export function StreamBadge({ stream }: { stream: StreamStatus | undefined }) {
  if (!stream) return null;
  const lag = stream.lag_s == null ? '' : `, lag ${Math.round(stream.lag_s)} s`;
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
