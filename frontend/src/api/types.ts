import type { Schemas } from './client';
import type { paths } from './schema';

export type DashboardPublic = Schemas['DashboardPublic'];
export type DashboardRun = Schemas['DashboardRun'];
export type BarsPublic = Schemas['BarsPublic'];
export type ToolPreviewPublic = Schemas['ToolPreviewPublic'];
export type ToolPreview = Schemas['ToolPreview'];

export type Run = Schemas['RunPublic'];
export type RunState = Schemas['RunState'];
export type Dataset = Schemas['DatasetPublic'];
export type StreamStatus = Schemas['StreamStatus'];
export type StreamStart = Schemas['StreamStart'];
export type StreamStarted = Schemas['StreamStarted'];
/** The timeframes a stream can run at (the API's path and body accept only these). */
export type StreamTimeframe = StreamStart['timeframe'];
export const STREAM_TIMEFRAMES: StreamTimeframe[] = ['1m'];
export const isStreamTimeframe = (t: string): t is StreamTimeframe => (STREAM_TIMEFRAMES as string[]).includes(t);
export type DatasetDetail = Schemas['DatasetDetail'];
export type Tool = Schemas['ToolPublic'];
export type EnvConfig = Schemas['EnvConfigPublic'];
export type Equity = Schemas['EquityPublic'];
export type MetricKey = Schemas['MetricKeyPublic'];
export type MetricSeries = Schemas['MetricSeriesPublic'];
export type ComputeBackend = Schemas['ComputeBackendPublic'];
export type Budget = Schemas['BudgetPublic'];
export type RunCreate = Schemas['RunCreate'];
export type RunKind = Schemas['RunKind'];
export type SweepCreate = Schemas['SweepCreate'];
export type EnsembleCreate = Schemas['EnsembleCreate'];
export type EvaluationCreate = Schemas['EvaluationCreate'];
export type Watch = Schemas['WatchPublic'];
export type WatchSet = Schemas['WatchSet'];

/** An experiment as listed, with its runs summary. */
export type Experiment = Schemas['ExperimentSummary'];
export type ExperimentSort = NonNullable<NonNullable<paths['/api/experiments']['get']['parameters']['query']>['sort']>;

export const RUN_STATES: RunState[] = ['queued', 'starting', 'running', 'succeeded', 'failed', 'cancelled'];
/** The kinds whose run holds a trained model (what an ensemble, a re-evaluation or a watch needs). */
export const MODEL_KINDS: RunKind[] = ['train', 'sweep'];
export const ACTIVE_STATES: RunState[] = ['queued', 'starting', 'running'];
export const SPLITS = ['train', 'val', 'test'] as const;
export type Split = (typeof SPLITS)[number];

/** A FastAPI validation problem. */
export interface ValidationItem {
  loc: (string | number)[];
  msg: string;
  type?: string;
}
