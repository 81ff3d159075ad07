import { memo, useCallback, useEffect, useMemo, useState } from 'react';
import { Button, Group, NativeSelect, Table, Text, TextInput } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { Link, useNavigate } from 'react-router-dom';
import { useExperiments } from '../api/queries';
import type { Experiment, ExperimentSort } from '../api/types';
import { Empty, PageTitle, QueryState, STATE_COLORS } from '../components/common';
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

/** Experiments per page (rendering a row costs a few ms; 50 keep the list quick). */
export const PAGE_SIZE = 50;

/** The query of one page of the list (also prefetched, so its key must match exactly). */
export const experimentsPageQuery = (name: string, tag: string, sort: ExperimentSort, page: number) => ({
  name,
  tag,
  sort,
  limit: PAGE_SIZE,
  offset: page * PAGE_SIZE,
});

/** Runs by state as one light line of colored counts (title spells it out). */
function StateSummary({ byState }: { byState: Record<string, number> }) {
  const entries = Object.entries(byState).filter(([, n]) => n > 0);
  if (entries.length === 0) return null;
  return (
    <span className="tl-state-summary" title={entries.map(([s, n]) => `${n} ${s}`).join(', ')}>
      {entries.map(([s, n], i) => (
        <span key={s} data-testid="state-label" data-state={s} style={{ color: `var(--mantine-color-${STATE_COLORS[s] ?? 'gray'}-5)`, fontSize: 12 }}>
          {i > 0 ? ' · ' : ' '}
          {n} {s}
        </span>
      ))}
    </span>
  );
}

const ExperimentRow = memo(function ExperimentRow({
  e,
  checked,
  onToggle,
  onTag,
}: {
  e: Experiment;
  checked: boolean;
  onToggle: (id: number) => void;
  onTag: (tag: string) => void;
}) {
  return (
    <Table.Tr data-testid="experiment-row" data-id={e.id}>
      <Table.Td>
        <input
          type="checkbox"
          checked={checked}
          onChange={() => onToggle(e.id)}
          aria-label={`select ${e.name}`}
          data-testid={`select-${e.id}`}
        />
      </Table.Td>
      <Table.Td>
        <Link to={`/experiments/${e.id}`} data-testid="experiment-name" className="tl-link">
          {e.name}
        </Link>
      </Table.Td>
      <Table.Td>
        {e.tags.map((t) => (
          <button key={t} type="button" className="tl-tag tl-clickable" onClick={() => onTag(t)}>
            {t}
          </button>
        ))}
      </Table.Td>
      <Table.Td>
        <span style={{ fontSize: 14 }}>{e.runs_count ?? '—'}</span>
        <StateSummary byState={e.runs_by_state ?? {}} />
      </Table.Td>
      <Table.Td>{fmtNum(e.best_test_sharpe)}</Table.Td>
      <Table.Td>{fmtDate(e.created_at)}</Table.Td>
    </Table.Tr>
  );
});

export function ExperimentsPage() {
  const navigate = useNavigate();
  const [name, setName] = useState('');
  const [tag, setTag] = useState('');
  const [sort, setSort] = useState<ExperimentSort>('-created_at');
  const [selected, setSelected] = useState<number[]>([]);
  const [debouncedName] = useDebouncedValue(name, 250);
  const [debouncedTag] = useDebouncedValue(tag, 250);
  const [page, setPage] = useState(0);
  const qName = debouncedName.trim();
  const qTag = debouncedTag.trim();
  useEffect(() => setPage(0), [qName, qTag, sort]);
  const query = useExperiments(experimentsPageQuery(qName, qTag, sort, page));
  const rows = useMemo(() => (query.data ? sortExperiments(query.data.data, sort) : []), [query.data, sort]);
  const total = query.data?.count ?? rows.length;
  const toggle = useCallback(
    (id: number) => setSelected((s) => (s.includes(id) ? s.filter((x) => x !== id) : [...s, id])),
    [],
  );

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
                  <ExperimentRow key={e.id} e={e} checked={selected.includes(e.id)} onToggle={toggle} onTag={setTag} />
                ))}
              </Table.Tbody>
            </Table>
          )
        }
      </QueryState>
      {total > 0 && (
        <Group justify="flex-end" mt="sm" gap="xs" data-testid="experiments-pager">
          <Text size="sm" c="dimmed" data-testid="page-range">
            {page * PAGE_SIZE + 1}–{Math.min(total, page * PAGE_SIZE + rows.length)} of {total}
          </Text>
          <Button size="xs" variant="default" disabled={page === 0} onClick={() => setPage((p) => Math.max(0, p - 1))} data-testid="page-prev">
            Previous
          </Button>
          <Button
            size="xs"
            variant="default"
            disabled={(page + 1) * PAGE_SIZE >= total}
            onClick={() => setPage((p) => p + 1)}
            data-testid="page-next"
          >
            Next
          </Button>
        </Group>
      )}
    </>
  );
}
