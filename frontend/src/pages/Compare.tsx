import { useMemo, useState } from 'react';
import { Alert, Anchor, Button, Group, SegmentedControl, Stack, Table, Text, TextInput } from '@mantine/core';
import { useQueries } from '@tanstack/react-query';
import { Link, useSearchParams } from 'react-router-dom';
import { api, unwrap } from '../api/client';
import { keys } from '../api/queries';
import { SPLITS, type Equity, type Run, type Split } from '../api/types';
import { LineChart, type LineSpec } from '../components/charts/Chart';
import { Empty, Loading, PageTitle, RunStateBadge, Section } from '../components/common';
import { equityLines } from '../components/RunPanel';
import { fmtMoney, fmtNum } from '../lib/format';

const ids = (s: string | null) =>
  (s ?? '')
    .split(',')
    .map((x) => Number(x.trim()))
    .filter((x) => Number.isInteger(x) && x > 0);

/** For `?experiments=`: each experiment's latest succeeded run (else its latest run). */
function useExperimentRuns(experimentIds: number[]): { runIds: number[]; pending: boolean } {
  const results = useQueries({
    queries: experimentIds.map((id) => ({
      queryKey: keys.runs({ experiment_id: id }),
      queryFn: async () =>
        unwrap(await api.GET('/api/runs', { params: { query: { experiment_id: id, limit: 200 } } })),
    })),
  });
  const runIds: number[] = [];
  for (const r of results) {
    const list = [...((r.data?.data ?? []) as Run[])].sort((a, b) => b.id - a.id);
    const best = list.find((x) => x.state === 'succeeded') ?? list[0];
    if (best) runIds.push(best.id);
  }
  return { runIds, pending: results.some((r) => r.isPending) };
}

export function ComparePage() {
  const [params, setParams] = useSearchParams();
  const explicit = ids(params.get('runs'));
  const experimentIds = ids(params.get('experiments'));
  const fromExperiments = useExperimentRuns(explicit.length ? [] : experimentIds);
  const runIds = explicit.length ? explicit : fromExperiments.runIds;
  const [split, setSplit] = useState<Split>('test');
  const [draft, setDraft] = useState(runIds.join(','));

  const runs = useQueries({
    queries: runIds.map((id) => ({
      queryKey: keys.run(id),
      queryFn: async () => unwrap(await api.GET('/api/runs/{run_id}', { params: { path: { run_id: id } } })),
    })),
  });
  const metricKeys = useQueries({
    queries: runIds.map((id) => ({
      queryKey: keys.metricKeys(id),
      queryFn: async () => unwrap(await api.GET('/api/runs/{run_id}/metrics', { params: { path: { run_id: id } } })),
    })),
  });
  const testKeys = useMemo(() => {
    const all = new Set<string>();
    metricKeys.forEach((m) => m.data?.data.forEach((k) => k.key.startsWith('test/') && all.add(k.key)));
    return [...all].sort();
  }, [metricKeys]);
  const pairs = runIds.flatMap((id) => testKeys.map((key) => ({ id, key })));
  const values = useQueries({
    queries: pairs.map(({ id, key }) => ({
      queryKey: keys.metric(id, key),
      queryFn: async () =>
        unwrap(
          await api.GET('/api/runs/{run_id}/metrics/{key}', {
            params: { path: { run_id: id, key }, query: { max_points: 3 } },
          }),
        ),
    })),
  });
  const valueOf = (id: number, key: string) => {
    const i = pairs.findIndex((p) => p.id === id && p.key === key);
    const d = values[i]?.data;
    return d && d.values.length ? d.values[d.values.length - 1] : null;
  };
  const equities = useQueries({
    queries: runIds.map((id) => ({
      queryKey: keys.equity(id, split),
      retry: false,
      queryFn: async () =>
        unwrap(
          await api.GET('/api/runs/{run_id}/equity', {
            params: { path: { run_id: id }, query: { split, max_points: 2000 } },
          }),
        ),
    })),
  });
  const overlay: LineSpec[] = useMemo(
    () =>
      equities.flatMap((q, i) => {
        if (!q.data) return [];
        const agent = equityLines(q.data as Equity).find((l) => l.name === 'agent');
        return agent ? [{ ...agent, name: `run #${runIds[i]}` }] : [];
      }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [equities.map((e) => e.dataUpdatedAt).join(','), runIds.join(',')],
  );

  return (
    <>
      <PageTitle title="Compare runs" />
      <Group align="end" mb="md">
        <TextInput
          label="Run ids"
          placeholder="1,2,3"
          value={draft}
          onChange={(e) => setDraft(e.currentTarget.value)}
          data-testid="compare-input"
        />
        <Button onClick={() => setParams({ runs: ids(draft).join(',') })}>Compare</Button>
      </Group>
      {fromExperiments.pending && experimentIds.length > 0 && !explicit.length && <Loading label="Finding the runs…" />}
      {runIds.length === 0 ? (
        <Empty>
          Pick runs to compare: select experiments in <Anchor component={Link} to="/experiments">Experiments</Anchor>, or
          enter run ids above.
        </Empty>
      ) : (
        <Stack>
          <Table data-testid="compare-table" striped>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Metric</Table.Th>
                {runIds.map((id, i) => (
                  <Table.Th key={id}>
                    <Anchor component={Link} to={`/runs/${id}`}>
                      #{id}
                    </Anchor>{' '}
                    {runs[i]?.data && <Text span size="xs" c="dimmed">exp {runs[i].data!.experiment_id}</Text>}
                  </Table.Th>
                ))}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              <Table.Tr>
                <Table.Td>state</Table.Td>
                {runIds.map((id, i) => (
                  <Table.Td key={id}>{runs[i]?.data ? <RunStateBadge state={runs[i].data!.state} /> : runs[i]?.isError ? 'error' : '…'}</Table.Td>
                ))}
              </Table.Tr>
              <Table.Tr>
                <Table.Td>cost</Table.Td>
                {runIds.map((id, i) => (
                  <Table.Td key={id}>{fmtMoney(runs[i]?.data?.cost)}</Table.Td>
                ))}
              </Table.Tr>
              {testKeys.map((k) => (
                <Table.Tr key={k}>
                  <Table.Td>{k}</Table.Td>
                  {runIds.map((id) => (
                    <Table.Td key={id}>{fmtNum(valueOf(id, k), 4)}</Table.Td>
                  ))}
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          {testKeys.length === 0 && <Text size="sm" c="dimmed">No test metrics reported by these runs yet.</Text>}
          <Section title="Agent equity, overlaid">
            <SegmentedControl data={[...SPLITS]} value={split} onChange={(v) => setSplit(v as Split)} />
            {equities.some((e) => e.isPending) && <Loading label="Loading equity…" />}
            {equities.some((e) => e.isError) && (
              <Alert color="gray">Some runs have no {split} equity yet; they are left out of the chart.</Alert>
            )}
            {overlay.length > 0 ? <LineChart series={overlay} testid="compare-equity-chart" /> : <Empty>No equity curves.</Empty>}
          </Section>
        </Stack>
      )}
    </>
  );
}
