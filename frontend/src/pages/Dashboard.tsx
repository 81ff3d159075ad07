import { Anchor, Card, Group, Progress, SimpleGrid, Stack, Table, Text } from '@mantine/core';
import { Link } from 'react-router-dom';
import { useDashboard } from '../api/queries';
import { RUN_STATES, type DashboardRun } from '../api/types';
import { Empty, PageTitle, QueryState, RunStateBadge, Section } from '../components/common';
import { fmtDate, fmtMoney, fmtNum } from '../lib/format';

function RunsTable({ runs, testid }: { runs: DashboardRun[]; testid: string }) {
  if (runs.length === 0) return <Empty>No runs yet.</Empty>;
  return (
    <Table striped highlightOnHover data-testid={testid}>
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Run</Table.Th>
          <Table.Th>Experiment</Table.Th>
          <Table.Th>State</Table.Th>
          <Table.Th>Backend</Table.Th>
          <Table.Th>Test Sharpe</Table.Th>
          <Table.Th>Test return</Table.Th>
          <Table.Th>Cost</Table.Th>
          <Table.Th>Queued</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {runs.map((r) => (
          <Table.Tr key={r.id}>
            <Table.Td>
              <Anchor component={Link} to={`/runs/${r.id}`}>
                #{r.id}
              </Anchor>
            </Table.Td>
            <Table.Td>
              <Anchor component={Link} to={`/experiments/${r.experiment_id}`}>
                {r.experiment_name}
              </Anchor>
            </Table.Td>
            <Table.Td>
              <RunStateBadge state={r.state} />
            </Table.Td>
            <Table.Td>{r.backend}</Table.Td>
            <Table.Td data-testid="test-sharpe">{fmtNum(r.test_sharpe)}</Table.Td>
            <Table.Td>{r.test_total_return === null ? '—' : `${(r.test_total_return * 100).toFixed(2)}%`}</Table.Td>
            <Table.Td>{fmtMoney(r.cost)}</Table.Td>
            <Table.Td>{fmtDate(r.queued_at)}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

export function DashboardPage() {
  const query = useDashboard();
  return (
    <>
      <PageTitle title="Dashboard" />
      <QueryState query={query}>
        {(d) => {
          const cap = d.budget.monthly_cap;
          const pct = cap ? Math.min(100, (d.budget.spent / cap) * 100) : 0;
          return (
            <Stack>
              <SimpleGrid cols={{ base: 2, sm: 3, lg: 6 }} data-testid="runs-by-state">
                {RUN_STATES.map((s) => (
                  <Card key={s} withBorder padding="sm">
                    <RunStateBadge state={s} testid="state-label" />
                    <Text fz={28} fw={700} data-testid={`state-count-${s}`}>
                      {d.runs_by_state[s] ?? 0}
                    </Text>
                  </Card>
                ))}
              </SimpleGrid>
              <Card withBorder data-testid="budget">
                <Group justify="space-between" mb="xs">
                  <Text fw={600}>Budget this month</Text>
                  <Text size="sm">
                    {fmtMoney(d.budget.spent)} spent
                    {cap !== null ? ` of ${fmtMoney(cap)} (${fmtMoney(d.budget.remaining)} left)` : ' (no cap set)'}
                  </Text>
                </Group>
                <Progress
                  value={pct}
                  color={pct > 90 ? 'red' : pct > 70 ? 'yellow' : 'blue'}
                  size="lg"
                  data-testid="budget-progress"
                  aria-label="budget used"
                />
              </Card>
              <Section title="Recent runs">
                <RunsTable runs={d.recent_runs} testid="recent-runs" />
              </Section>
              <Section title="Best runs (test Sharpe)">
                <RunsTable runs={d.best_runs} testid="best-runs" />
              </Section>
            </Stack>
          );
        }}
      </QueryState>
    </>
  );
}
