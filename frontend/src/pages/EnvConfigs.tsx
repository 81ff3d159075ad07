import { useEffect, useMemo, useState } from 'react';
import { Alert, Anchor, Badge, Button, Checkbox, Grid, Group, Stack, Table, Text, TextInput } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import type { ErrorSchema } from '@rjsf/utils';
import { Link, useNavigate, useParams } from 'react-router-dom';
import { api, unwrap } from '../api/client';
import { keys, useEnvConfigs, useEnvVersions, useSchema } from '../api/queries';
import type { EnvConfig, ValidationItem } from '../api/types';
import { Empty, ErrorAlert, JsonDiffView, Loading, PageTitle, QueryState, Section } from '../components/common';
import { SchemaForm } from '../components/SchemaForm';
import { jsonDiff } from '../lib/diff';
import { toExtraErrors, validationItems } from '../lib/errors';
import { fmtDate } from '../lib/format';

export function EnvConfigsPage() {
  const query = useEnvConfigs();
  return (
    <>
      <PageTitle title="Env configs">
        <Button component={Link} to="/env-configs/new" data-testid="new-env-config">
          New env config
        </Button>
      </PageTitle>
      <QueryState query={query}>
        {(d) => {
          const byName = new Map<string, EnvConfig[]>();
          for (const c of d.data) byName.set(c.name, [...(byName.get(c.name) ?? []), c]);
          if (byName.size === 0) return <Empty>No env configs yet.</Empty>;
          return (
            <Table striped highlightOnHover data-testid="env-configs-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Versions</Table.Th>
                  <Table.Th>Latest</Table.Th>
                  <Table.Th>Updated</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {[...byName.entries()]
                  .sort(([a], [b]) => a.localeCompare(b))
                  .map(([name, versions]) => {
                    const latest = versions.reduce((a, b) => (b.version > a.version ? b : a));
                    return (
                      <Table.Tr key={name} data-testid="env-config-row">
                        <Table.Td>
                          <Anchor component={Link} to={`/env-configs/${encodeURIComponent(name)}`}>
                            {name}
                          </Anchor>
                        </Table.Td>
                        <Table.Td>
                          <Group gap={4}>
                            {versions
                              .map((v) => v.version)
                              .sort((a, b) => a - b)
                              .map((v) => (
                                <Badge key={v} variant="light" size="sm">
                                  v{v}
                                </Badge>
                              ))}
                          </Group>
                        </Table.Td>
                        <Table.Td>v{latest.version}</Table.Td>
                        <Table.Td>{fmtDate(latest.created_at)}</Table.Td>
                      </Table.Tr>
                    );
                  })}
              </Table.Tbody>
            </Table>
          );
        }}
      </QueryState>
    </>
  );
}

function VersionsPanel({
  versions,
  onLoad,
}: {
  versions: EnvConfig[];
  onLoad: (v: EnvConfig) => void;
}) {
  const [picked, setPicked] = useState<number[]>([]);
  const sorted = [...versions].sort((a, b) => b.version - a.version);
  const chosen = picked.map((p) => versions.find((v) => v.version === p)).filter(Boolean) as EnvConfig[];
  chosen.sort((a, b) => a.version - b.version);
  const diff = chosen.length === 2 ? jsonDiff(chosen[0].config, chosen[1].config) : null;
  const toggle = (v: number) =>
    setPicked((p) => (p.includes(v) ? p.filter((x) => x !== v) : [...p, v].slice(-2)));
  return (
    <Stack gap="xs">
      <Table data-testid="env-versions">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Diff</Table.Th>
            <Table.Th>Version</Table.Th>
            <Table.Th>Created</Table.Th>
            <Table.Th />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {sorted.map((v) => (
            <Table.Tr key={v.version}>
              <Table.Td>
                <Checkbox
                  checked={picked.includes(v.version)}
                  onChange={() => toggle(v.version)}
                  aria-label={`diff v${v.version}`}
                  data-testid={`diff-pick-${v.version}`}
                />
              </Table.Td>
              <Table.Td>v{v.version}</Table.Td>
              <Table.Td>{fmtDate(v.created_at)}</Table.Td>
              <Table.Td>
                <Button size="xs" variant="subtle" onClick={() => onLoad(v)}>
                  Load into editor
                </Button>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {diff ? (
        <>
          <Text size="sm">
            v{chosen[0].version} → v{chosen[1].version}
          </Text>
          <JsonDiffView entries={diff} />
        </>
      ) : (
        <Text size="sm" c="dimmed">
          Tick two versions to diff them.
        </Text>
      )}
    </Stack>
  );
}

export function EnvConfigEditorPage() {
  const params = useParams();
  const existing = params.name ? decodeURIComponent(params.name) : undefined;
  const navigate = useNavigate();
  const qc = useQueryClient();
  const schema = useSchema('env');
  const versions = useEnvVersions(existing);
  const [name, setName] = useState(existing ?? '');
  const [formData, setFormData] = useState<unknown>({});
  const [loadedVersion, setLoadedVersion] = useState<number | null>(null);
  const [extraErrors, setExtraErrors] = useState<ErrorSchema | undefined>();
  const [otherErrors, setOtherErrors] = useState<ValidationItem[]>([]);

  const latest = useMemo(
    () => versions.data?.data.reduce<EnvConfig | null>((a, b) => (!a || b.version > a.version ? b : a), null) ?? null,
    [versions.data],
  );
  useEffect(() => {
    if (latest && loadedVersion === null) {
      setFormData(latest.config);
      setLoadedVersion(latest.version);
    }
  }, [latest, loadedVersion]);

  const save = useMutation({
    mutationFn: async (config: unknown) =>
      unwrap(await api.POST('/api/env-configs', { body: { name: name.trim(), config: config as Record<string, unknown> } })),
    onMutate: () => {
      setExtraErrors(undefined);
      setOtherErrors([]);
    },
    onSuccess: (saved) => {
      notifications.show({ color: 'green', message: `Saved ${saved.name} v${saved.version}` });
      void qc.invalidateQueries({ queryKey: keys.envConfigs });
      setLoadedVersion(saved.version);
      if (!existing) navigate(`/env-configs/${encodeURIComponent(saved.name)}`);
    },
    onError: (error) => {
      const items = validationItems(error);
      const { errors, rest } = toExtraErrors(items, ['body', 'config']);
      setExtraErrors(errors);
      setOtherErrors(rest);
    },
  });

  return (
    <>
      <PageTitle title={existing ? `Env config · ${existing}` : 'New env config'} />
      <Grid>
        <Grid.Col span={{ base: 12, lg: 7 }}>
          <Stack>
            <TextInput
              label="Name"
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
              disabled={!!existing}
              data-testid="env-name"
              required
            />
            {loadedVersion !== null && (
              <Text size="sm" c="dimmed">
                Editing from v{loadedVersion}; saving creates the next version.
              </Text>
            )}
            {save.isError && otherErrors.length > 0 && (
              <Alert color="red" title="The server refused the config" data-testid="save-errors">
                {otherErrors.map((e, i) => (
                  <div key={i}>
                    {e.loc.join('.')}: {e.msg}
                  </div>
                ))}
              </Alert>
            )}
            {save.isError && validationItems(save.error).length === 0 && <ErrorAlert error={save.error} title="Save failed" />}
            {save.isError && extraErrors && Object.keys(extraErrors).length > 0 && (
              <Alert color="red" data-testid="save-field-errors">
                The server found problems; they are shown at their fields below.
              </Alert>
            )}
            {schema.isPending || (existing && versions.isPending) ? (
              <Loading label="Loading the env schema…" />
            ) : schema.isError ? (
              <ErrorAlert error={schema.error} />
            ) : versions.isError ? (
              <ErrorAlert error={versions.error} />
            ) : (
              <SchemaForm
                schema={schema.data!}
                formData={formData}
                onChange={setFormData}
                extraErrors={extraErrors}
                onSubmit={(data) => save.mutate(data)}
              >
                <Group mt="md">
                  <Button type="submit" loading={save.isPending} disabled={!name.trim()} data-testid="env-save">
                    Save new version
                  </Button>
                </Group>
              </SchemaForm>
            )}
          </Stack>
        </Grid.Col>
        <Grid.Col span={{ base: 12, lg: 5 }}>
          {existing && (
            <Section title="Versions">
              <QueryState query={versions}>
                {(d) => (
                  <VersionsPanel
                    versions={d.data}
                    onLoad={(v) => {
                      setFormData(v.config);
                      setLoadedVersion(v.version);
                      setExtraErrors(undefined);
                    }}
                  />
                )}
              </QueryState>
            </Section>
          )}
        </Grid.Col>
      </Grid>
    </>
  );
}
