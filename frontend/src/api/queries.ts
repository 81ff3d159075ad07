import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from './client';
import type {
  EnsembleCreate,
  EvaluationCreate,
  ExperimentSort,
  Run,
  RunCreate,
  RunState,
  Split,
  StreamStart,
  StreamTimeframe,
  SweepCreate,
  WatchSet,
} from './types';

/** Query keys, shared with the SSE handler (events.tsx) that invalidates them. */
export const keys = {
  dashboard: ['dashboard'] as const,
  budgets: ['budgets'] as const,
  backends: ['backends'] as const,
  datasets: ['datasets'] as const,
  streams: ['datasets', 'streams'] as const,
  dataset: (id: number) => ['dataset', id] as const,
  bars: (id: number, start?: string, end?: string) => ['bars', id, start ?? '', end ?? ''] as const,
  tools: (search: string) => ['tools', search] as const,
  tool: (name: string) => ['tool', name] as const,
  envConfigs: ['env-configs'] as const,
  envVersions: (name: string) => ['env-configs', name, 'versions'] as const,
  envVersion: (name: string, version: number) => ['env-configs', name, 'versions', version] as const,
  schema: (which: 'env' | 'experiment') => ['schema', which] as const,
  experiments: (q: ExperimentQuery) => ['experiments', q] as const,
  experiment: (id: number) => ['experiment', id] as const,
  runs: (q: RunsQuery) => ['runs', q] as const,
  run: (id: number) => ['run', id] as const,
  metricKeys: (runId: number) => ['metrics', runId, 'keys'] as const,
  metric: (runId: number, key: string) => ['metrics', runId, 'series', key] as const,
  artifacts: (runId: number) => ['artifacts', runId] as const,
  equity: (runId: number, split: Split) => ['equity', runId, split] as const,
  trades: (runId: number, split: Split) => ['trades', runId, split] as const,
  watch: (runId: number) => ['watch', runId] as const,
};

export interface ExperimentQuery {
  name?: string;
  tag?: string;
  sort?: ExperimentSort;
  limit?: number;
  offset?: number;
}

export interface RunsQuery {
  experiment_id?: number;
  state?: RunState;
  limit?: number;
}

const clean = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== '' && v !== null)) as T;

export const dashboardQuery = () => ({ queryKey: keys.dashboard, queryFn: async () => unwrap(await api.GET('/api/dashboard')) });

export const useDashboard = () => useQuery(dashboardQuery());

export const useBudgets = () =>
  useQuery({ queryKey: keys.budgets, queryFn: async () => unwrap(await api.GET('/api/budgets')) });

export const useBackends = () =>
  useQuery({ queryKey: keys.backends, queryFn: async () => unwrap(await api.GET('/api/compute/backends')) });

export const useDatasets = () =>
  useQuery({
    queryKey: keys.datasets,
    queryFn: async () => unwrap(await api.GET('/api/datasets', { params: { query: { limit: 500 } } })),
  });

/** Live ingestion status of every streamed dataset, refreshed every 5 s. */
export const useStreams = () =>
  useQuery({
    queryKey: keys.streams,
    queryFn: async () => unwrap(await api.GET('/api/datasets/streams')),
    refetchInterval: 5_000,
  });

/** Start streaming into a dataset; its list and the streams (`keys.streams` lies under `keys.datasets`) refetch. */
export function useStartStream() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: async (body: StreamStart) => unwrap(await api.POST('/api/datasets/streams', { body })),
    onSuccess: () => void qc.invalidateQueries({ queryKey: keys.datasets }),
  });
}

/** Stop a live stream; the streams refetch. */
export function useStopStream() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: async (stream: { symbol: string; timeframe: StreamTimeframe }) =>
      unwrap(await api.DELETE('/api/datasets/streams/{symbol}/{timeframe}', { params: { path: stream } })),
    onSuccess: () => void qc.invalidateQueries({ queryKey: keys.streams }),
  });
}

export const useDataset = (id: number) =>
  useQuery({
    queryKey: keys.dataset(id),
    queryFn: async () => unwrap(await api.GET('/api/datasets/{dataset_id}', { params: { path: { dataset_id: id } } })),
  });

export const useBars = (id: number | undefined, start?: string, end?: string, maxPoints = 2000) =>
  useQuery({
    queryKey: keys.bars(id ?? -1, start, end),
    enabled: id !== undefined,
    placeholderData: keepPreviousData,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/datasets/{dataset_id}/bars', {
          params: { path: { dataset_id: id! }, query: clean({ start, end, max_points: maxPoints }) },
        }),
      ),
  });

export const useTools = (search: string) =>
  useQuery({
    queryKey: keys.tools(search),
    placeholderData: keepPreviousData,
    queryFn: async () => unwrap(await api.GET('/api/tools', { params: { query: clean({ search }) } })),
  });

export const useTool = (name: string) =>
  useQuery({
    queryKey: keys.tool(name),
    queryFn: async () => unwrap(await api.GET('/api/tools/{name}', { params: { path: { name } } })),
  });

export const useEnvConfigs = () =>
  useQuery({
    queryKey: keys.envConfigs,
    queryFn: async () => unwrap(await api.GET('/api/env-configs', { params: { query: { limit: 500 } } })),
  });

export const useEnvVersions = (name: string | undefined) =>
  useQuery({
    queryKey: keys.envVersions(name ?? ''),
    enabled: !!name,
    queryFn: async () =>
      unwrap(await api.GET('/api/env-configs/{name}/versions', { params: { path: { name: name! } } })),
  });

export const useSchema = (which: 'env' | 'experiment') =>
  useQuery({
    queryKey: keys.schema(which),
    staleTime: Infinity,
    queryFn: async () =>
      unwrap(await (which === 'env' ? api.GET('/api/schemas/env') : api.GET('/api/schemas/experiment'))) as Record<
        string,
        unknown
      >,
  });

export const experimentsQuery = (q: ExperimentQuery) => ({
  queryKey: keys.experiments(q),
  queryFn: async () =>
    unwrap(
      await api.GET('/api/experiments', {
        params: { query: clean({ limit: 200, ...q }) },
      }),
    ),
});

export const useExperiments = (q: ExperimentQuery) =>
  useQuery({ ...experimentsQuery(q), placeholderData: keepPreviousData });

export const useExperiment = (id: number) =>
  useQuery({
    queryKey: keys.experiment(id),
    queryFn: async () =>
      unwrap(await api.GET('/api/experiments/{experiment_id}', { params: { path: { experiment_id: id } } })),
  });

export const useRuns = (q: RunsQuery, enabled = true) =>
  useQuery({
    queryKey: keys.runs(q),
    enabled,
    queryFn: async () => unwrap(await api.GET('/api/runs', { params: { query: clean({ limit: 200, ...q }) } })),
  });

export const useRun = (id: number) => useQuery(runQuery(id));

export const useMetricKeys = (runId: number) =>
  useQuery({
    queryKey: keys.metricKeys(runId),
    queryFn: async () => unwrap(await api.GET('/api/runs/{run_id}/metrics', { params: { path: { run_id: runId } } })),
  });

export const metricSeriesQuery = (runId: number, key: string) => ({
  queryKey: keys.metric(runId, key),
  queryFn: async () =>
    unwrap(
      await api.GET('/api/runs/{run_id}/metrics/{key}', {
        params: { path: { run_id: runId, key }, query: { max_points: 2000 } },
      }),
    ),
});

export const useMetricSeries = (runId: number, key: string, enabled = true) =>
  useQuery({ ...metricSeriesQuery(runId, key), enabled });

export const useArtifacts = (runId: number) =>
  useQuery({
    queryKey: keys.artifacts(runId),
    queryFn: async () =>
      unwrap(await api.GET('/api/runs/{run_id}/artifacts', { params: { path: { run_id: runId } } })),
  });

export const equityQuery = (runId: number, split: Split) => ({
  queryKey: keys.equity(runId, split),
  retry: false as const,
  queryFn: async () =>
    unwrap(
      await api.GET('/api/runs/{run_id}/equity', {
        params: { path: { run_id: runId }, query: { split, max_points: 2000 } },
      }),
    ),
});

export const tradesQuery = (runId: number, split: Split) => ({
  queryKey: keys.trades(runId, split),
  retry: false as const,
  queryFn: async () =>
    unwrap(await api.GET('/api/runs/{run_id}/trades', { params: { path: { run_id: runId }, query: { split } } })),
});

export const runQuery = (id: number) => ({
  queryKey: keys.run(id),
  queryFn: async () => unwrap(await api.GET('/api/runs/{run_id}', { params: { path: { run_id: id } } })),
});

export const useEquity = (runId: number, split: Split, enabled = true) => useQuery({ ...equityQuery(runId, split), enabled });

export const useTrades = (runId: number, split: Split, enabled = true) => useQuery({ ...tradesQuery(runId, split), enabled });

/** A mutation that queues a run: the lists that show runs are refetched once it is queued. */
function useQueueRun<V>(queue: (variables: V) => Promise<Run>) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: queue,
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ['runs'] });
      void qc.invalidateQueries({ queryKey: keys.dashboard });
      void qc.invalidateQueries({ queryKey: ['experiments'] });
    },
  });
}

/** What an experiment can launch: a training run, a sweep, or an ensemble of its finished runs. */
export type LaunchRequest =
  | { kind: 'train'; body: RunCreate }
  | { kind: 'sweep'; body: SweepCreate }
  | { kind: 'ensemble'; body: EnsembleCreate };

export function useLaunch(experimentId: number) {
  return useQueueRun(async (request: LaunchRequest) => {
    const params = { path: { experiment_id: experimentId } };
    switch (request.kind) {
      case 'train':
        return unwrap(await api.POST('/api/experiments/{experiment_id}/runs', { params, body: request.body }));
      case 'sweep':
        return unwrap(await api.POST('/api/experiments/{experiment_id}/sweeps', { params, body: request.body }));
      case 'ensemble':
        return unwrap(await api.POST('/api/experiments/{experiment_id}/ensembles', { params, body: request.body }));
    }
  });
}

/** Queue a re-evaluation of a run on its dataset's newest days. */
export const useEvaluateRun = (runId: number) =>
  useQueueRun(async (body: EvaluationCreate) =>
    unwrap(await api.POST('/api/runs/{run_id}/evaluations', { params: { path: { run_id: runId } }, body })),
  );

/** The run's watch, or null when it is not watched (a 404). */
export const useWatch = (runId: number) =>
  useQuery({
    queryKey: keys.watch(runId),
    queryFn: async () => {
      const result = await api.GET('/api/runs/{run_id}/watch', { params: { path: { run_id: runId } } });
      return result.response.status === 404 ? null : unwrap(result);
    },
  });

export function useSetWatch(runId: number) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: async (body: WatchSet) =>
      unwrap(await api.PUT('/api/runs/{run_id}/watch', { params: { path: { run_id: runId } }, body })),
    onSuccess: (watch) => qc.setQueryData(keys.watch(runId), watch),
  });
}

export function useRemoveWatch(runId: number) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: async () =>
      unwrap(await api.DELETE('/api/runs/{run_id}/watch', { params: { path: { run_id: runId } } })),
    onSuccess: () => qc.setQueryData(keys.watch(runId), null),
  });
}

export function useCancelRun() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: async (runId: number) =>
      unwrap(await api.POST('/api/runs/{run_id}/cancel', { params: { path: { run_id: runId } } })),
    onSuccess: (run) => {
      qc.setQueryData(keys.run(run.id), run);
      void qc.invalidateQueries({ queryKey: ['runs'] });
    },
  });
}

export function useCloneExperiment() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: async (experimentId: number) =>
      unwrap(
        await api.POST('/api/experiments/{experiment_id}/clone', {
          params: { path: { experiment_id: experimentId } },
          body: {},
        }),
      ),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['experiments'] }),
  });
}
