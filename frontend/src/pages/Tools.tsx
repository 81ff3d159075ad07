import { useMemo, useState } from 'react';
import { Alert, Anchor, Badge, Button, Group, Select, Stack, Table, Text, TextInput } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useMutation } from '@tanstack/react-query';
import type { ErrorSchema } from '@rjsf/utils';
import { Link, useParams } from 'react-router-dom';
import { api, unwrap } from '../api/client';
import { useDatasets, useTool, useTools } from '../api/queries';
import type { ToolPreviewPublic } from '../api/types';
import { LineChart } from '../components/charts/Chart';
import { Empty, ErrorAlert, PageTitle, QueryState, Section } from '../components/common';
import { SchemaForm } from '../components/SchemaForm';
import { toExtraErrors, validationItems } from '../lib/errors';

export function ToolsPage() {
  const [search, setSearch] = useState('');
  const [debounced] = useDebouncedValue(search, 250);
  const query = useTools(debounced);
  return (
    <>
      <PageTitle title="Tools" />
      <TextInput
        placeholder="Search tools (name, description)…"
        value={search}
        onChange={(e) => setSearch(e.currentTarget.value)}
        mb="md"
        data-testid="tools-search"
      />
      <QueryState query={query}>
        {(d) => {
          const q = search.trim().toLowerCase();
          const rows = d.data.filter(
            (t) => !q || t.name.toLowerCase().includes(q) || t.description.toLowerCase().includes(q) || t.group.toLowerCase().includes(q),
          );
          return rows.length === 0 ? (
            <Empty>No tools match.</Empty>
          ) : (
            <Table striped highlightOnHover data-testid="tools-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Group</Table.Th>
                  <Table.Th>Kind</Table.Th>
                  <Table.Th>Outputs</Table.Th>
                  <Table.Th>Description</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {rows.map((t) => (
                  <Table.Tr key={t.name} data-testid="tool-row">
                    <Table.Td>
                      <Anchor component={Link} to={`/tools/${encodeURIComponent(t.name)}`}>
                        {t.name}
                      </Anchor>
                    </Table.Td>
                    <Table.Td>{t.group}</Table.Td>
                    <Table.Td>
                      <Badge variant="light">{t.kind}</Badge>
                    </Table.Td>
                    <Table.Td>{(t.outputs as unknown[]).map(String).join(', ')}</Table.Td>
                    <Table.Td>
                      <Text size="sm" lineClamp={2}>
                        {t.description}
                      </Text>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          );
        }}
      </QueryState>
    </>
  );
}

function previewCharts(p: ToolPreviewPublic) {
  return p.columns.map((col) => ({
    col,
    series: [{ name: col, points: p.time.map((t, i) => ({ time: t, value: p.values[col]?.[i] ?? null })) }],
  }));
}

function ToolPreview({ name, params, onErrors }: { name: string; params: unknown; onErrors: (e: ErrorSchema) => void }) {
  const datasets = useDatasets();
  const [datasetId, setDatasetId] = useState<string | null>(null);
  const [start, setStart] = useState('');
  const [end, setEnd] = useState('');
  const preview = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.POST('/api/tools/{name}/preview', {
          params: { path: { name } },
          body: {
            dataset_id: Number(datasetId),
            params: (params ?? {}) as Record<string, unknown>,
            start: start || null,
            end: end || null,
            max_points: 2000,
          },
        }),
      ),
    onMutate: () => onErrors({}),
    onError: (error) => onErrors(toExtraErrors(validationItems(error), ['body', 'params']).errors),
  });
  const charts = useMemo(() => (preview.data ? previewCharts(preview.data) : []), [preview.data]);
  return (
    <Stack gap="xs">
      <Group align="end">
        <Select
          label="Dataset"
          placeholder={datasets.isPending ? 'Loading…' : 'Pick a dataset'}
          data={(datasets.data?.data ?? []).map((d) => ({
            value: String(d.id),
            label: `${d.symbol} ${d.timeframe} ${d.version}`,
          }))}
          value={datasetId}
          onChange={setDatasetId}
          data-testid="preview-dataset"
        />
        <TextInput label="Start (ISO)" value={start} onChange={(e) => setStart(e.currentTarget.value)} />
        <TextInput label="End (ISO)" value={end} onChange={(e) => setEnd(e.currentTarget.value)} />
        <Button onClick={() => preview.mutate()} disabled={!datasetId} loading={preview.isPending} data-testid="preview-run">
          Preview
        </Button>
      </Group>
      {preview.isError && <ErrorAlert error={preview.error} title="Preview failed" />}
      {preview.data && (
        <Stack data-testid="tool-preview">
          <Text size="sm" c="dimmed">
            {preview.data.time.length} points · warmup {preview.data.warmup} bars
          </Text>
          {charts.length === 0 && <Empty>The tool produced no columns.</Empty>}
          {charts.map((c) => (
            <LineChart key={c.col} series={c.series} height={200} testid="preview-chart" />
          ))}
        </Stack>
      )}
    </Stack>
  );
}

export function ToolDetailPage() {
  const name = decodeURIComponent(useParams().name ?? '');
  const query = useTool(name);
  const [params, setParams] = useState<unknown>({});
  const [errors, setErrors] = useState<ErrorSchema>({});
  return (
    <QueryState query={query}>
      {(tool) => (
        <>
          <PageTitle title={`Tool · ${tool.name}`} />
          <Stack gap={4}>
            <Text>{tool.description}</Text>
            <Group gap="xs">
              <Badge variant="light">{tool.group}</Badge>
              <Badge variant="light">{tool.kind}</Badge>
              <Badge variant="light" color={tool.causal ? 'green' : 'red'}>
                {tool.causal ? 'causal' : 'not causal'}
              </Badge>
              <Badge variant="outline">v{tool.version}</Badge>
              <Badge variant="outline">warmup {tool.warmup}</Badge>
              <Badge variant="outline">{tool.origin}</Badge>
            </Group>
            <Text size="sm">
              Inputs: {(tool.inputs as unknown[]).map(String).join(', ') || '—'} · Outputs:{' '}
              {(tool.outputs as unknown[]).map(String).join(', ') || '—'}
            </Text>
          </Stack>
          <Section title="Parameters" testid="tool-params">
            {Object.keys((tool.params_schema as { properties?: object }).properties ?? {}).length === 0 ? (
              <Alert color="gray">This tool has no parameters.</Alert>
            ) : (
              <SchemaForm schema={tool.params_schema} formData={params} onChange={setParams} extraErrors={errors} />
            )}
          </Section>
          <Section title="Preview over a dataset">
            <ToolPreview name={tool.name} params={params} onErrors={setErrors} />
          </Section>
        </>
      )}
    </QueryState>
  );
}
