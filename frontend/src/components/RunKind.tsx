import { Anchor, Badge, Group, Text } from '@mantine/core';
import { Link } from 'react-router-dom';
import type { Run, RunKind } from '../api/types';

const KIND_COLORS: Record<RunKind, string> = { train: 'gray', sweep: 'grape', ensemble: 'teal', evaluate: 'cyan' };

export function RunKindBadge({ kind, testid = 'run-kind' }: { kind: RunKind; testid?: string }) {
  return (
    <Badge color={KIND_COLORS[kind]} variant="outline" data-testid={testid} data-kind={kind}>
      {kind}
    </Badge>
  );
}

export function RunLink({ id }: { id: number }) {
  return (
    <Anchor component={Link} to={`/runs/${id}`} size="sm" data-testid="run-link">
      #{id}
    </Anchor>
  );
}

const numberAt = (params: Run['params'], key: string): number | null => {
  const v = params?.[key];
  return typeof v === 'number' ? v : null;
};

const idsAt = (params: Run['params'], key: string): number[] => {
  const v = params?.[key];
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number') : [];
};

/** What the kind's parameters say: a sweep's trials, an ensemble's members, the run an evaluation scores. */
function KindParams({ run }: { run: Run }) {
  switch (run.kind) {
    case 'sweep':
      return <Text size="sm">{numberAt(run.params, 'trials') ?? '?'} trials</Text>;
    case 'ensemble':
      return (
        <Group gap={4}>
          <Text size="sm">members</Text>
          {idsAt(run.params, 'members').map((id) => (
            <RunLink key={id} id={id} />
          ))}
        </Group>
      );
    case 'evaluate': {
      const scored = numberAt(run.params, 'run_id');
      return (
        <Group gap={4}>
          <Text size="sm">scores</Text>
          {scored !== null && <RunLink id={scored} />}
          <Text size="sm">on the last {numberAt(run.params, 'days') ?? '?'} days</Text>
        </Group>
      );
    }
    case 'train':
      return null;
  }
}

/** The run's kind, and its parameters with links to the runs they name. */
export function RunKindInfo({ run }: { run: Run }) {
  return (
    <Group gap="xs" data-testid="run-kind-info">
      <RunKindBadge kind={run.kind} />
      <KindParams run={run} />
    </Group>
  );
}
