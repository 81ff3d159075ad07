import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { idleEvents, json, renderApp, stubFetch, type Handler } from './utils';

const dataset = {
  id: 1, symbol: 'BTCUSDT', timeframe: '1m', version: 'v1', rows: 1000, start: '2024-01-01T00:00:00Z',
  end: '2024-01-02T00:00:00Z', ok: false, registered_at: '2024-01-03T00:00:00Z',
};
const t0 = 1_704_067_200;
const bars = {
  symbol: 'BTCUSDT', timeframe: '1m', start: dataset.start, end: dataset.end, bucket_seconds: 60,
  time: [t0, t0 + 60, t0 + 120, t0 + 300], open: [1, 2, 3, 4], high: [2, 3, 4, 5], low: [0.5, 1, 2, 3],
  close: [2, 3, 4, 5], volume: [10, 11, 12, 13], gaps: [{ start: '2024-01-01T00:03:00Z', end: '2024-01-01T00:05:00Z', missing: 2 }],
};
const run = {
  id: 7, experiment_id: 3, state: 'succeeded', kind: 'train', params: null, seed: 1, attempts: 1, max_attempts: 3, backend: 'local',
  idempotency_key: null, compute_id: null, cancel_requested: false, max_wall_time_s: null, gpu_type: null,
  max_cost: null, cost: 0.5, reserved: 0, preemptions: 0, artifact_url: null, error: null,
  queued_at: '2024-01-01T00:00:00Z', started_at: null, heartbeat_at: null, active_at: null, ended_at: '2024-01-01T01:00:00Z',
};
const experiment = {
  id: 3, name: 'ppo-btc', tags: ['ppo'], notes: 'first try', cloned_from: null, created_at: '2024-01-01T00:00:00Z',
  config: { env: { dataset: { symbol: 'BTCUSDT', timeframe: '1m', version: null } } },
};
const tool = {
  name: 'sma', version: '1', description: 'simple moving average', group: 'trend', origin: 'builtin', kind: 'indicator',
  causal: true, inputs: ['close'], outputs: ['sma'], warmup: 10,
  params_schema: { type: 'object', properties: { window: { type: 'integer', title: 'Window', default: 10 } } },
};

const api: Handler = (req, url) => {
  const p = decodeURIComponent(url.pathname);
  if (p === '/api/events') return idleEvents();
  if (p === '/api/dashboard')
    return json({
      runs_by_state: { running: 2, succeeded: 5 },
      budget: { monthly_cap: 100, spent: 25, remaining: 75 },
      recent_runs: [{ id: 7, experiment_id: 3, experiment_name: 'ppo-btc', state: 'running', backend: 'local', seed: 1, cost: 0.5, queued_at: run.queued_at, ended_at: null, test_sharpe: null, test_total_return: null }],
      best_runs: [{ id: 6, experiment_id: 3, experiment_name: 'ppo-btc', state: 'succeeded', backend: 'local', seed: 0, cost: 0.2, queued_at: run.queued_at, ended_at: run.ended_at, test_sharpe: 1.234, test_total_return: 0.12 }],
    });
  if (p === '/api/datasets') return json({ data: [dataset], count: 1 });
  if (p === '/api/datasets/streams')
    return json([{ symbol: 'BTCUSDT', timeframe: '1m', state: 'streaming', live: true, last_bar_ts: '2024-01-02T00:00:00Z', lag_s: 4.2 }]);
  if (p === '/api/datasets/1') return json({ ...dataset, report: { missing_bars: 2, duplicates: 0 } });
  if (p === '/api/datasets/1/bars') return json(bars);
  if (p === '/api/tools') return json({ data: [tool], count: 1 });
  if (p === '/api/tools/sma') return json(tool);
  if (p === '/api/tools/sma/preview' && req.method === 'POST')
    return json({ tool: 'sma', columns: ['sma'], time: bars.time, values: { sma: [null, 1.5, 2.5, 3.5] }, warmup: 1 });
  if (p === '/api/experiments/3') return json(experiment);
  if (p === '/api/runs') return json({ data: [run], count: 1 });
  if (p === '/api/runs/7') return json(run);
  if (p === '/api/runs/7/metrics')
    return json({ data: [{ key: 'val/sharpe', count: 3, last_step: 300 }, { key: 'test/sharpe', count: 1, last_step: 300 }], count: 2 });
  if (p === '/api/runs/7/metrics/val/sharpe') return json({ key: 'val/sharpe', steps: [100, 200, 300], values: [0.1, 0.3, 0.2], total: 3 });
  if (p === '/api/runs/7/metrics/test/sharpe') return json({ key: 'test/sharpe', steps: [300], values: [1.5], total: 1 });
  if (p === '/api/runs/7/equity')
    return json({ split: 'test', ts: bars.time.map((t) => t * 1000), equity: { agent: [100, 101, 99, 103], buy_and_hold: [100, 100.5, 101, 100] }, total: 4 });
  if (p === '/api/runs/7/trades')
    return json({ data: [{ side: 'long', entry_time: '2024-01-01T00:01:00Z', entry_price: 3, exit_time: '2024-01-01T00:05:00Z', exit_price: 5, size: 1, net_pnl: 2, reason: 'signal' }], count: 1 });
  if (p === '/api/runs/7/artifacts') return json({ data: [{ name: 'model.zip', size: 2048 }], count: 1 });
  if (p === '/api/runs/7/logs') return json({ data: [{ id: 1, at: '2024-01-01T00:00:00Z', line: 'training started' }], count: 1 });
  return undefined;
};

describe('pages', () => {
  it('dashboard: runs by state, budget, recent and best runs', async () => {
    stubFetch(api);
    renderApp('/');
    expect(await screen.findByTestId('state-count-running')).toHaveTextContent('2');
    expect(screen.getByTestId('state-count-failed')).toHaveTextContent('0');
    expect(screen.getByTestId('budget')).toHaveTextContent('$25.00 spent of $100.00');
    expect(screen.getByTestId('best-runs')).toHaveTextContent('1.23');
    expect(screen.getByTestId('recent-runs')).toHaveTextContent('ppo-btc');
  });

  it('dataset list and detail with candles, gaps and the validation report', async () => {
    stubFetch(api);
    renderApp('/datasets');
    expect(await screen.findByTestId('dataset-quality')).toHaveTextContent('problems');
    const live = await screen.findByTestId('stream-badge');
    expect(live).toHaveTextContent('live');
    expect(live).toHaveAttribute('title', expect.stringContaining('lag 4 s'));
    await userEvent.click(screen.getByText('BTCUSDT'));
    const chart = await screen.findByTestId('candles-chart');
    expect(chart).toHaveAttribute('data-points', '4');
    expect(chart).toHaveAttribute('data-markers', '1');
    expect(screen.getByTestId('validation-report')).toHaveTextContent('missing_bars');
    expect(screen.getByTestId('gaps-table')).toHaveTextContent('2');
  });

  it('tool detail renders the parameter form and previews the output', async () => {
    const { calls } = stubFetch(api);
    renderApp('/tools/sma');
    expect(await screen.findByLabelText(/Window/)).toBeInTheDocument();
    await userEvent.click(screen.getByTestId('preview-dataset'));
    await userEvent.click(await screen.findByRole('option', { name: /BTCUSDT/, hidden: true }));
    await userEvent.click(screen.getByTestId('preview-run'));
    expect(await screen.findByTestId('preview-chart')).toBeInTheDocument();
    const post = calls.find((c) => c.method === 'POST');
    expect(await post!.clone().json()).toMatchObject({ dataset_id: 1, params: { window: 10 } });
  });

  it('experiment detail: runs, equity vs baselines, drawdown, trades, curves', async () => {
    stubFetch(api);
    renderApp('/experiments/3');
    expect(await screen.findByTestId('runs-table')).toHaveTextContent('#7');
    const equity = await screen.findByTestId('equity-chart');
    expect(equity).toHaveAttribute('data-series', '2');
    expect(await screen.findByTestId('drawdown-chart')).toBeInTheDocument();
    expect(await screen.findByTestId('trades-table')).toHaveTextContent('signal');
    await waitFor(() => expect(screen.getByTestId('trades-chart')).toHaveAttribute('data-markers', '2'));
    await userEvent.click(screen.getByRole('tab', { name: 'Training curves' }));
    expect(await screen.findByTestId('training-chart')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('tab', { name: 'Metrics' }));
    expect(await screen.findByTestId('metrics-table')).toHaveTextContent('1.5000');
    await userEvent.click(screen.getByRole('tab', { name: 'Logs' }));
    expect(await screen.findByTestId('run-logs')).toHaveTextContent('training started');
  });

  it('compare: metrics side by side and overlaid equity', async () => {
    stubFetch(api);
    renderApp('/compare?runs=7');
    await waitFor(() => expect(screen.getByTestId('compare-table')).toHaveTextContent('test/sharpe'));
    expect(await screen.findByTestId('compare-equity-chart')).toHaveAttribute('data-series', '1');
  });

  it('an unknown route says so', async () => {
    stubFetch(api);
    renderApp('/nope');
    expect(await screen.findByTestId('page-title')).toHaveTextContent('Not found');
  });
});
