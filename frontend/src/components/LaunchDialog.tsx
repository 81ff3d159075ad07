import { useState } from 'react';
import { Alert, Button, Group, Modal, NumberInput, Select, Stack, TextInput } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useBackends, useLaunchRun } from '../api/queries';
import { ErrorAlert } from './common';

/** Launch a run of an experiment: backend (from /api/compute/backends), seed, GPU type, limits. */
export function LaunchDialog({ experimentId, opened, onClose }: { experimentId: number; opened: boolean; onClose: () => void }) {
  const backends = useBackends();
  const launch = useLaunchRun(experimentId);
  const [backend, setBackend] = useState<string | null>('local');
  const [seed, setSeed] = useState<number | string>('');
  const [gpuType, setGpuType] = useState('');
  const [maxCost, setMaxCost] = useState<number | string>('');
  const [maxWall, setMaxWall] = useState<number | string>('');
  const num = (v: number | string) => (v === '' ? null : Number(v));
  const remote = backend !== null && backend !== 'local';
  return (
    <Modal opened={opened} onClose={onClose} title="Launch a run" data-testid="launch-dialog">
      <Stack>
        {backends.isError && <ErrorAlert error={backends.error} title="Backends unavailable" />}
        <Select
          label="Backend"
          data={(backends.data?.data ?? [{ name: 'local', description: '', available: true }]).map((b) => ({
            value: b.name,
            label: `${b.name}${b.available ? '' : ' (unavailable)'}${b.description ? ` — ${b.description}` : ''}`,
            disabled: !b.available,
          }))}
          value={backend}
          onChange={setBackend}
          allowDeselect={false}
          data-testid="launch-backend"
        />
        <NumberInput label="Seed (optional)" min={0} value={seed} onChange={setSeed} />
        {remote && (
          <TextInput
            label="GPU type"
            placeholder="e.g. NVIDIA RTX A5000"
            value={gpuType}
            onChange={(e) => setGpuType(e.currentTarget.value)}
            data-testid="launch-gpu"
          />
        )}
        <NumberInput label="Max cost ($)" min={0} decimalScale={2} value={maxCost} onChange={setMaxCost} data-testid="launch-max-cost" />
        <NumberInput label="Max wall time (s)" min={0} value={maxWall} onChange={setMaxWall} />
        {launch.isError && <ErrorAlert error={launch.error} title="Launch refused" />}
        {remote && !maxCost && <Alert color="yellow">A remote run without a max cost is bounded only by the budget.</Alert>}
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Close
          </Button>
          <Button
            loading={launch.isPending}
            data-testid="launch-submit"
            onClick={() =>
              launch.mutate(
                {
                  backend: backend ?? 'local',
                  seed: num(seed),
                  gpu_type: remote && gpuType ? gpuType : null,
                  max_cost: num(maxCost),
                  max_wall_time_s: num(maxWall),
                },
                {
                  onSuccess: (run) => {
                    notifications.show({ color: 'green', message: `Run #${run.id} queued` });
                    onClose();
                  },
                },
              )
            }
          >
            Launch
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
