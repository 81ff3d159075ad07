import { Select } from '@mantine/core';
import { useBackends } from '../api/queries';
import { ErrorAlert } from './common';

const LOCAL = { name: 'local', description: '', available: true, workers: 0, reason: null };

/** A compute backend (from /api/compute/backends); the unavailable ones are listed, with why, but disabled. */
export function BackendSelect({
  value,
  onChange,
  testid,
}: {
  value: string;
  onChange: (backend: string) => void;
  testid?: string;
}) {
  const backends = useBackends();
  return (
    <>
      {backends.isError && <ErrorAlert error={backends.error} title="Backends unavailable" />}
      <Select
        label="Backend"
        data={(backends.data?.data ?? [LOCAL]).map((b) => ({
          value: b.name,
          label: `${b.name}${b.available ? '' : ` (unavailable: ${b.reason})`}${b.description ? ` — ${b.description}` : ''}`,
          disabled: !b.available,
        }))}
        value={value}
        onChange={(v) => v !== null && onChange(v)}
        allowDeselect={false}
        data-testid={testid}
      />
    </>
  );
}
