import { useState } from 'react';
import { Anchor, Badge, Button, Checkbox, Group, Stack, Table, Tabs, Text } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router-dom';
import { useCancelRun, useCloneExperiment, useExperiment, useLaunch, useRuns } from '../api/queries';
import { ACTIVE_STATES, MODEL_KINDS, type Run } from '../api/types';
import { Empty, ErrorAlert, JsonView, PageTitle, QueryState, RunStateBadge, Section } from '../components/common';
import { LaunchDialog, type LaunchKind } from '../components/LaunchDialog';
import { RunKindBadge } from '../components/RunKind';
import { RunPanel } from '../components/RunPanel';
import { fmtDate, fmtMoney } from '../lib/format';

function RunsTable({
  runs,
  selected,
  onSelect,
  picked,
  onPick,
}: {
  runs: Run[];
  selected: number | null;
  onSelect: (id: number) => void;
  picked: number[];
  onPick: (id: number) => void;
}) {
  const cancel = useCancelRun();
  if (runs.length === 0) return <Empty>No runs yet. Launch one.</Empty>;
  return (
    <Table highlightOnHover data-testid="runs-table">
      <Table.Thead>
        <Table.Tr>
          <Table.Th />
          <Table.Th>Run</Table.Th>
          <Table.Th>Kind</Table.Th>
          <Table.Th>State</Table.Th>
          <Table.Th>Backend</Table.Th>
          <Table.Th>Seed</Table.Th>
          <Table.Th>Cost</Table.Th>
          <Table.Th>Queued</Table.Th>
          <Table.Th>Ended</Table.Th>
          <Table.Th />
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {runs.map((r) => (
          <Table.Tr
            key={r.id}
            bg={r.id === selected ? 'var(--mantine-color-blue-light)' : undefined}
            data-testid="run-row"
            data-id={r.id}
          >
            <Table.Td>
              <Checkbox checked={picked.includes(r.id)} onChange={() => onPick(r.id)} aria-label={`pick run ${r.id}`} />
            </Table.Td>
            <Table.Td>
              <Anchor onClick={() => onSelect(r.id)} component="button">
                #{r.id}
              </Anchor>
            </Table.Td>
            <Table.Td>
              <RunKindBadge kind={r.kind} testid="run-row-kind" />
            </Table.Td>
            <Table.Td>
              <RunStateBadge state={r.state} />
            </Table.Td>
            <Table.Td>{r.backend}</Table.Td>
            <Table.Td>{r.seed}</Table.Td>
            <Table.Td>{fmtMoney(r.cost)}</Table.Td>
            <Table.Td>{fmtDate(r.queued_at)}</Table.Td>
            <Table.Td>{fmtDate(r.ended_at)}</Table.Td>
            <Table.Td>
              {ACTIVE_STATES.includes(r.state) && !r.cancel_requested && (
                <Button size="compact-xs" color="red" variant="subtle" onClick={() => cancel.mutate(r.id)}>
                  cancel
                </Button>
              )}
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

/** Queue an ensemble of the picked runs that hold a trained model (at least two). */
function EnsembleButton({
  experimentId,
  runs,
  picked,
  onQueued,
}: {
  experimentId: number;
  runs: Run[];
  picked: number[];
  onQueued: (run: Run) => void;
}) {
  const launch = useLaunch(experimentId);
  const models = new Set(runs.filter((r) => r.state === 'succeeded' && MODEL_KINDS.includes(r.kind)).map((r) => r.id));
  const members = picked.filter((id) => models.has(id));
  const submit = () =>
    launch.mutate(
      { kind: 'ensemble', body: { members, backend: 'local' } },
      {
        onSuccess: (run) => {
          notifications.show({ color: 'green', message: `Ensemble #${run.id} queued` });
          onQueued(run);
        },
      },
    );
  return (
    <Stack gap={4} align="flex-end">
      <Button
        size="xs"
        variant="default"
        disabled={members.length < 2}
        loading={launch.isPending}
        onClick={submit}
        data-testid="ensemble-button"
      >
        Ensemble selected ({members.length})
      </Button>
      {launch.isError && <ErrorAlert error={launch.error} title="Ensemble refused" />}
    </Stack>
  );
}

export function ExperimentDetailPage() {
  const id = Number(useParams().id);
  const navigate = useNavigate();
  const [params, setParams] = useSearchParams();
  const experiment = useExperiment(id);
  const runs = useRuns({ experiment_id: id });
  const clone = useCloneExperiment();
  const [launching, setLaunching] = useState<LaunchKind | null>(null);
  const [picked, setPicked] = useState<number[]>([]);
  const sorted = [...(runs.data?.data ?? [])].sort((a, b) => b.id - a.id);
  const selected = params.get('run') ? Number(params.get('run')) : (sorted[0]?.id ?? null);

  return (
    <QueryState query={experiment}>
      {(e) => (
        <>
          <PageTitle title={`Experiment · ${e.name}`}>
            <Button onClick={() => setLaunching('train')} data-testid="launch-button">
              Launch run
            </Button>
            <Button variant="light" onClick={() => setLaunching('sweep')} data-testid="launch-sweep-button">
              Launch sweep
            </Button>
            <Button
              variant="default"
              loading={clone.isPending}
              onClick={() =>
                clone.mutate(e.id, {
                  onSuccess: (c) => {
                    notifications.show({ message: `Cloned as ${c.name}` });
                    navigate(`/experiments/${c.id}`);
                  },
                  onError: (err) => notifications.show({ color: 'red', message: err.message }),
                })
              }
            >
              Clone
            </Button>
          </PageTitle>
          {(['train', 'sweep'] as const).map((kind) => (
            <LaunchDialog
              key={kind}
              experimentId={e.id}
              kind={kind}
              opened={launching === kind}
              onClose={() => setLaunching(null)}
            />
          ))}
          <Group gap={4} mb="xs">
            {e.tags.map((t) => (
              <Badge key={t} variant="outline">
                {t}
              </Badge>
            ))}
            {e.cloned_from !== null && (
              <Anchor component={Link} to={`/experiments/${e.cloned_from}`} size="sm">
                cloned from #{e.cloned_from}
              </Anchor>
            )}
            <Text size="sm" c="dimmed">
              created {fmtDate(e.created_at)}
            </Text>
          </Group>
          {e.notes && <Text size="sm">{e.notes}</Text>}
          <Tabs defaultValue="runs" mt="md">
            <Tabs.List>
              <Tabs.Tab value="runs">Runs</Tabs.Tab>
              <Tabs.Tab value="config">Config</Tabs.Tab>
            </Tabs.List>
            <Tabs.Panel value="config" pt="sm">
              <JsonView value={e.config} maxHeight={700} />
            </Tabs.Panel>
            <Tabs.Panel value="runs" pt="sm">
              <Stack>
                <Group justify="flex-end" align="flex-start">
                  <EnsembleButton
                    experimentId={e.id}
                    runs={sorted}
                    picked={picked}
                    onQueued={(run) => setParams({ run: String(run.id) })}
                  />
                  <Button
                    size="xs"
                    variant="default"
                    disabled={picked.length < 2}
                    onClick={() => navigate(`/compare?runs=${picked.join(',')}`)}
                    data-testid="compare-runs-button"
                  >
                    Compare {picked.length} runs
                  </Button>
                </Group>
                <QueryState query={runs}>
                  {() => (
                    <RunsTable
                      runs={sorted}
                      selected={selected}
                      onSelect={(rid) => setParams({ run: String(rid) })}
                      picked={picked}
                      onPick={(rid) => setPicked((p) => (p.includes(rid) ? p.filter((x) => x !== rid) : [...p, rid]))}
                    />
                  )}
                </QueryState>
                {selected !== null && (
                  <Section title={`Run #${selected}`}>
                    <RunPanel runId={selected} />
                  </Section>
                )}
              </Stack>
            </Tabs.Panel>
          </Tabs>
        </>
      )}
    </QueryState>
  );
}
