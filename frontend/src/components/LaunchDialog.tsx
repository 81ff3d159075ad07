import { useState } from 'react';
import { Alert, Button, Group, Modal, NumberInput, Stack, TextInput } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useLaunch, type LaunchRequest } from '../api/queries';
import type { RunCreate } from '../api/types';
import { BackendSelect } from './BackendSelect';
import { ErrorAlert } from './common';

/** What the dialog launches: a training run, or a sweep of the experiment's `sweep` section. */
export type LaunchKind = 'train' | 'sweep';

const TITLES: Record<LaunchKind, string> = { train: 'Launch a run', sweep: 'Launch a sweep' };
const DEFAULT_TRIALS = 20;

const num = (v: number | string) => (v === '' ? null : Number(v));

/** Launch a run or a sweep of an experiment: backend (from /api/compute/backends), seed, GPU type, limits. */
export function LaunchDialog({
  experimentId,
  kind = 'train',
  opened,
  onClose,
}: {
  experimentId: number;
  kind?: LaunchKind;
  opened: boolean;
  onClose: () => void;
}) {
  const launch = useLaunch(experimentId);
  const [backend, setBackend] = useState('local');
  const [trials, setTrials] = useState<number | string>(DEFAULT_TRIALS);
  const [seed, setSeed] = useState<number | string>('');
  const [gpuType, setGpuType] = useState('');
  const [maxCost, setMaxCost] = useState<number | string>('');
  const [maxWall, setMaxWall] = useState<number | string>('');
  const remote = backend !== 'local';
  const submit = () => {
    const options: RunCreate = {
      backend,
      seed: num(seed),
      gpu_type: remote && gpuType ? gpuType : null,
      max_cost: num(maxCost),
      max_wall_time_s: num(maxWall),
    };
    const request: LaunchRequest =
      kind === 'sweep' ? { kind, body: { ...options, trials: Number(trials) } } : { kind, body: options };
    launch.mutate(request, {
      onSuccess: (run) => {
        notifications.show({ color: 'green', message: `${kind === 'sweep' ? 'Sweep' : 'Run'} #${run.id} queued` });
        onClose();
      },
    });
  };
  return (
    <Modal opened={opened} onClose={onClose} title={TITLES[kind]} data-testid="launch-dialog">
      <Stack>
        {kind === 'sweep' && (
          <NumberInput label="Trials" min={1} max={1000} value={trials} onChange={setTrials} data-testid="launch-trials" />
        )}
        <BackendSelect value={backend} onChange={setBackend} testid="launch-backend" />
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
          <Button loading={launch.isPending} data-testid="launch-submit" onClick={submit}>
            Launch
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
