import { useMemo, useState } from 'react';
import { Anchor, Badge, Button, Checkbox, Group, NativeSelect, Table, Text, TextInput } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { Link, useNavigate } from 'react-router-dom';
import { useExperiments } from '../api/queries';
import type { Experiment, ExperimentSort } from '../api/types';
import { Empty, PageTitle, QueryState, RunStateBadge } from '../components/common';
import { fmtDate, fmtNum } from '../lib/format';

export const SORTS: { value: ExperimentSort; label: string }[] = [
  { value: '-created_at', label: 'Newest first' },
  { value: 'created_at', label: 'Oldest first' },
  { value: 'name', label: 'Name A→Z' },
  { value: '-name', label: 'Name Z→A' },
  { value: '-best_sharpe', label: 'Best test Sharpe' },
];

/** The same order the server applies (a safety net if it ignores `sort`). */
export function sortExperiments(items: Experiment[], sort: string): Experiment[] {
  const desc = sort.startsWith('-');
  const field = sort.replace(/^-/, '');
  const value = (e: Experiment): string | number =>
    field === 'name' ? e.name.toLowerCase() : field === 'best_sharpe' ? (e.best_test_sharpe ?? -Infinity) : e.created_at;
  return [...items].sort((a, b) => {
    const x = value(a);
    const y = value(b);
    const c = x < y ? -1 : x > y ? 1 : a.id - b.id;
    return desc ? -c : c;
  });
}

export function ExperimentsPage() {
  const navigate = useNavigate();
  const [name, setName] = useState('');
  const [tag, setTag] = useState('');
  const [sort, setSort] = useState<ExperimentSort>('-created_at');
  const [selected, setSelected] = useState<number[]>([]);
  const [debouncedName] = useDebouncedValue(name, 250);
  const [debouncedTag] = useDebouncedValue(tag, 250);
  const query = useExperiments({ name: debouncedName.trim(), tag: debouncedTag.trim(), sort });
  const rows = useMemo(() => (query.data ? sortExperiments(query.data.data, sort) : []), [query.data, sort]);
  const toggle = (id: number) => setSelected((s) => (s.includes(id) ? s.filter((x) => x !== id) : [...s, id]));

  return (
    <>
      <PageTitle title="Experiments">
        <Text size="sm" c="dimmed" data-testid="selected-count">
          {selected.length} selected
        </Text>
        <Button
          disabled={selected.length < 2}
          onClick={() => navigate(`/compare?experiments=${selected.join(',')}`)}
          data-testid="compare-button"
        >
          Compare
        </Button>
      </PageTitle>
      <Group mb="md" align="end">
        <TextInput
          label="Name"
          placeholder="search by name"
          value={name}
          onChange={(e) => setName(e.currentTarget.value)}
          data-testid="filter-name"
        />
        <TextInput
          label="Tag"
          placeholder="e.g. baseline"
          value={tag}
          onChange={(e) => setTag(e.currentTarget.value)}
          data-testid="filter-tag"
        />
        <NativeSelect
          label="Sort"
          data={SORTS}
          value={sort}
          onChange={(e) => setSort(e.currentTarget.value as ExperimentSort)}
          data-testid="sort-select"
        />
      </Group>
      <QueryState query={query}>
        {() =>
          rows.length === 0 ? (
            <Empty>No experiments match. Create one with `tradelab experiment create` or POST /api/experiments.</Empty>
          ) : (
            <Table striped highlightOnHover data-testid="experiments-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th />
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Tags</Table.Th>
                  <Table.Th>Runs</Table.Th>
                  <Table.Th>Best test Sharpe</Table.Th>
                  <Table.Th>Created</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {rows.map((e) => (
                  <Table.Tr key={e.id} data-testid="experiment-row" data-id={e.id}>
                    <Table.Td>
                      <Checkbox
                        checked={selected.includes(e.id)}
                        onChange={() => toggle(e.id)}
                        aria-label={`select ${e.name}`}
                        data-testid={`select-${e.id}`}
                      />
                    </Table.Td>
                    <Table.Td>
                      <Anchor component={Link} to={`/experiments/${e.id}`} data-testid="experiment-name">
                        {e.name}
                      </Anchor>
                    </Table.Td>
                    <Table.Td>
                      <Group gap={4}>
                        {e.tags.map((t) => (
                          <Badge key={t} variant="outline" size="sm" className="tl-clickable" onClick={() => setTag(t)}>
                            {t}
                          </Badge>
                        ))}
                      </Group>
                    </Table.Td>
                    <Table.Td>
                      <Group gap={4}>
                        <Text size="sm">{e.runs_count ?? '—'}</Text>
                        {Object.entries(e.runs_by_state ?? {}).map(([s, n]) => (
                          <Group gap={2} key={s}>
                            <RunStateBadge state={s} testid="state-label" />
                            <Text size="xs">{n}</Text>
                          </Group>
                        ))}
                      </Group>
                    </Table.Td>
                    <Table.Td>{fmtNum(e.best_test_sharpe)}</Table.Td>
                    <Table.Td>{fmtDate(e.created_at)}</Table.Td>
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
