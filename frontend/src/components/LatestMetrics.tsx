import { Table } from '@mantine/core';
import { useQueries } from '@tanstack/react-query';
import { metricSeriesQuery } from '../api/queries';
import type { MetricKey } from '../api/types';
import { fmtNum } from '../lib/format';
import { isAnnualised, lastValue, windowCaveat } from '../lib/metrics';
import { Empty } from './common';

/** The last value of each of the run's metrics under `prefix` (e.g. `test/`). */
export function useLatestMetrics(runId: number, metricKeys: MetricKey[], prefix: string) {
  const picked = metricKeys.filter((k) => k.key.startsWith(prefix));
  const results = useQueries({ queries: picked.map((k) => metricSeriesQuery(runId, k.key)) });
  return picked.map((k, i) => ({ key: k.key, value: lastValue(results[i].data) }));
}

export function LatestMetricsTable({
  runId,
  metricKeys,
  prefix,
  testid,
  empty,
}: {
  runId: number;
  metricKeys: MetricKey[];
  prefix: string;
  testid: string;
  empty: string;
}) {
  const rows = useLatestMetrics(runId, metricKeys, prefix);
  if (rows.length === 0) return <Empty>{empty}</Empty>;
  const caveat = windowCaveat(rows, prefix);
  return (
    <Table data-testid={testid} striped>
      <Table.Tbody>
        {rows.map((r) => (
          <Table.Tr key={r.key}>
            <Table.Td>
              {caveat && isAnnualised(r.key) ? (
                <span title={caveat} data-testid="annualised-caveat">
                  {r.key} †
                </span>
              ) : (
                r.key
              )}
            </Table.Td>
            <Table.Td>{fmtNum(r.value, 4)}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}
