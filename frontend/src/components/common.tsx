import { useEffect, type ReactNode } from 'react';
import { Alert, Badge, Center, Code, Group, Loader, ScrollArea, Stack, Table, Text, Title } from '@mantine/core';
import type { UseQueryResult } from '@tanstack/react-query';
import type { RunState } from '../api/types';
import { errorMessage } from '../lib/errors';
import type { DiffEntry } from '../lib/diff';

/** The page's heading, and the document title. */
export function PageTitle({ title, children }: { title: string; children?: ReactNode }) {
  useEffect(() => {
    document.title = `${title} · tradelab`;
  }, [title]);
  return (
    <Group justify="space-between" mb="md">
      <Title order={2} data-testid="page-title">
        {title}
      </Title>
      {children && <Group gap="xs">{children}</Group>}
    </Group>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <Center py="lg" data-testid="loading">
      <Group gap="xs">
        <Loader size="sm" />
        <Text c="dimmed" size="sm">
          {label}
        </Text>
      </Group>
    </Center>
  );
}

export function ErrorAlert({ error, title = 'Request failed' }: { error: unknown; title?: string }) {
  return (
    <Alert color="red" title={title} data-testid="error-alert">
      {errorMessage(error)}
    </Alert>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return (
    <Text c="dimmed" ta="center" py="md" data-testid="empty-state">
      {children}
    </Text>
  );
}

/** Loading, error, or the data. */
export function QueryState<T>({
  query,
  children,
  label,
}: {
  query: UseQueryResult<T>;
  children: (data: T) => ReactNode;
  label?: string;
}) {
  if (query.isPending) return <Loading label={label} />;
  if (query.isError) return <ErrorAlert error={query.error} />;
  return <>{children(query.data)}</>;
}

export const STATE_COLORS: Record<string, string> = {
  queued: 'gray',
  starting: 'yellow',
  running: 'blue',
  succeeded: 'green',
  failed: 'red',
  cancelled: 'orange',
};

export function RunStateBadge({ state, testid = "run-state" }: { state: RunState | string; testid?: string }) {
  return (
    <Badge color={STATE_COLORS[state] ?? 'gray'} variant="light" data-testid={testid} data-state={state}>
      {state}
    </Badge>
  );
}

export function JsonView({ value, maxHeight = 480 }: { value: unknown; maxHeight?: number }) {
  return (
    <ScrollArea.Autosize mah={maxHeight}>
      <Code block data-testid="json-view">
        {JSON.stringify(value, null, 2)}
      </Code>
    </ScrollArea.Autosize>
  );
}

const DIFF_COLORS = { added: 'green', removed: 'red', changed: 'yellow' } as const;
const show = (v: unknown) => (v === undefined ? '' : JSON.stringify(v));

export function JsonDiffView({ entries }: { entries: DiffEntry[] }) {
  if (entries.length === 0) return <Empty>No differences.</Empty>;
  return (
    <Table data-testid="json-diff" striped>
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Path</Table.Th>
          <Table.Th>Change</Table.Th>
          <Table.Th>Before</Table.Th>
          <Table.Th>After</Table.Th>
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {entries.map((e) => (
          <Table.Tr key={e.path} data-testid="diff-row" data-kind={e.kind}>
            <Table.Td>
              <Code>{e.path}</Code>
            </Table.Td>
            <Table.Td>
              <Badge color={DIFF_COLORS[e.kind]} variant="light">
                {e.kind}
              </Badge>
            </Table.Td>
            <Table.Td>
              <Text size="sm" ff="monospace">
                {show(e.before)}
              </Text>
            </Table.Td>
            <Table.Td>
              <Text size="sm" ff="monospace">
                {show(e.after)}
              </Text>
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

export function Section({ title, children, testid }: { title: string; children: ReactNode; testid?: string }) {
  return (
    <Stack gap="xs" mt="lg" data-testid={testid}>
      <Title order={4}>{title}</Title>
      {children}
    </Stack>
  );
}
