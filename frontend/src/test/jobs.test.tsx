import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { idleEvents, json, renderApp, stubFetch, type Handler } from './utils';

const runOf = (id: number, fields: Record<string, unknown> = {}) => ({
  id, experiment_id: 3, state: 'succeeded', kind: 'train', params: null, seed: 1, attempts: 1, max_attempts: 3,
  backend: 'local', idempotency_key: null, compute_id: null, cancel_requested: false, max_wall_time_s: null,
  gpu_type: null, max_cost: null, cost: 0, reserved: 0, preemptions: 0, artifact_url: `file:///runs/${id}`, error: null,
  queued_at: '2024-01-01T00:00:00Z', started_at: null, heartbeat_at: null, active_at: null, ended_at: '2024-01-01T01:00:00Z',
  ...fields,
});
const experiment = {
  id: 3, name: 'ppo-btc', tags: [], notes: '', cloned_from: null, created_at: '2024-01-01T00:00:00Z', config: {},
};
const day = 86_400;
const t0 = 1_717_200_000; // window ends, epoch seconds
const oosSeries: Record<string, number[]> = {
  'oos/sharpe': [0.8, 1.1, 0.9],
  'oos/excess_return': [0.01, 0.03, -0.02],
  'oos/n_trades': [12, 15, 9],
};

/** The API of experiment 3; `extra` answers first (a test's own routes). */
function api(runs: ReturnType<typeof runOf>[], extra: Handler = () => undefined, oos = true): Handler {
  return async (req, url) => {
    const answer = await extra(req, url);
    if (answer) return answer;
    const p = decodeURIComponent(url.pathname);
    if (p === '/api/events') return idleEvents();
    if (p === '/api/compute/backends')
      return json({ data: [{ name: 'local', description: '', available: true }, { name: 'runpod', description: 'GPUs', available: true }], count: 2 });
    if (p === '/api/experiments/3') return json(experiment);
    if (p === '/api/runs') return json({ data: runs, count: runs.length });
    const run = runs.find((r) => p.startsWith(`/api/runs/${r.id}`));
    if (!run) return undefined;
    const rest = p.slice(`/api/runs/${run.id}`.length);
    if (rest === '') return json(run);
    if (rest === '/metrics') {
      const data = oos ? Object.keys(oosSeries).map((key) => ({ key, count: 3, last_step: t0 + 2 * day })) : [];
      return json({ data, count: data.length });
    }
    const key = rest.replace('/metrics/', '');
    if (oos && oosSeries[key]) return json({ key, steps: [t0, t0 + day, t0 + 2 * day], values: oosSeries[key], total: 3 });
    return undefined;
  };
}

const body = async (calls: Request[], method: string, path: string) => {
  const call = calls.find((c) => c.method === method && new URL(c.url).pathname === path);
  expect(call, `${method} ${path}`).toBeDefined();
  return call!.clone().json();
};

const openOos = async () => userEvent.click(await screen.findByRole('tab', { name: 'Out-of-sample' }));

describe('run kinds', () => {
  it('shows an ensemble run’s kind with links to its members', async () => {
    stubFetch(api([runOf(9, { kind: 'ensemble', params: { members: [5, 6] } })]));
    renderApp('/runs/9');
    expect(await screen.findByTestId('run-kind')).toHaveTextContent('ensemble');
    const links = screen.getAllByTestId('run-link');
    expect(links.map((a) => a.getAttribute('href'))).toEqual(['/runs/5', '/runs/6']);
    expect(screen.queryByRole('tab', { name: 'Out-of-sample' })).not.toBeInTheDocument();
  });

  it('links an evaluation to the run it scores and charts its own out-of-sample metrics', async () => {
    stubFetch(api([runOf(9, { kind: 'evaluate', params: { run_id: 5, days: 30 } })]));
    renderApp('/runs/9');
    expect(await screen.findByTestId('run-kind')).toHaveAttribute('data-kind', 'evaluate');
    expect(screen.getByTestId('run-link')).toHaveAttribute('href', '/runs/5');
    expect(screen.getByTestId('run-kind-info')).toHaveTextContent('on the last 30 days');
    await openOos();
    expect(await screen.findByTestId('oos-chart')).toBeInTheDocument();
    expect(screen.queryByTestId('reevaluate-button')).not.toBeInTheDocument();
  });

  it('a sweep shows its trial count', async () => {
    stubFetch(api([runOf(8, { kind: 'sweep', params: { trials: 40 } })]));
    renderApp('/runs/8');
    expect(await screen.findByTestId('run-kind-info')).toHaveTextContent('sweep40 trials');
  });
});

describe('out-of-sample', () => {
  it('charts oos/sharpe and oos/excess_return over time and shows the latest values', async () => {
    stubFetch(api([runOf(5)]));
    renderApp('/runs/5');
    await openOos();
    const chart = await screen.findByTestId('oos-chart');
    expect(chart).toHaveAttribute('data-points', '3');
    expect(chart).toHaveAttribute('data-series', '2');
    await waitFor(() => expect(screen.getByTestId('oos-latest')).toHaveTextContent('oos/sharpe0.9000'));
    expect(screen.getByTestId('oos-latest')).toHaveTextContent('oos/n_trades9.0000');
  });

  it('says when the run has not been re-evaluated yet', async () => {
    stubFetch(api([runOf(5)], undefined, false));
    renderApp('/runs/5');
    await openOos();
    expect(await screen.findByText('Not re-evaluated yet.')).toBeInTheDocument();
    expect(screen.queryByTestId('oos-chart')).not.toBeInTheDocument();
  });

  it('re-evaluates now with the days and backend given, and shows a refusal', async () => {
    let refuse = false;
    const { calls } = stubFetch(
      api([runOf(5)], (req, url) => {
        if (url.pathname !== '/api/runs/5/evaluations' || req.method !== 'POST') return undefined;
        return refuse ? json({ detail: 'run 5 is failed; only a succeeded run with artifacts has a model' }, 409) : json(runOf(12, { kind: 'evaluate', state: 'queued' }), 201);
      }),
    );
    renderApp('/runs/5');
    await openOos();
    const days = await screen.findByTestId('reevaluate-days');
    await userEvent.clear(days);
    await userEvent.type(days, '60');
    await userEvent.click(screen.getByTestId('reevaluate-button'));
    expect(await body(calls, 'POST', '/api/runs/5/evaluations')).toEqual({ days: 60, backend: 'local' });
    expect(await screen.findByText('queued as')).toBeInTheDocument();
    refuse = true;
    await userEvent.click(screen.getByTestId('reevaluate-button'));
    expect(await screen.findByText(/409: run 5 is failed/)).toBeInTheDocument();
  });

  it('sets a watch (PUT) and removes it (DELETE)', async () => {
    let watch: Record<string, unknown> | null = null;
    const { calls } = stubFetch(
      api([runOf(5)], async (req, url) => {
        if (url.pathname !== '/api/runs/5/watch') return undefined;
        if (req.method === 'PUT') {
          watch = { ...(await req.clone().json()), run_id: 5, created_at: '2024-06-01T00:00:00Z', last_queued_at: null };
          return json(watch);
        }
        if (req.method === 'DELETE') {
          watch = null;
          return new Response(null, { status: 204 });
        }
        return watch ? json(watch) : json({ detail: 'run 5 is not watched' }, 404);
      }),
    );
    renderApp('/runs/5');
    await openOos();
    const form = await screen.findByTestId('watch-form');
    expect(within(form).getByTestId('watch-status')).toHaveTextContent('Not watched.');
    expect(screen.queryByTestId('watch-remove')).not.toBeInTheDocument();
    await userEvent.clear(screen.getByTestId('watch-window'));
    await userEvent.type(screen.getByTestId('watch-window'), '14');
    await userEvent.clear(screen.getByTestId('watch-every'));
    await userEvent.type(screen.getByTestId('watch-every'), '6');
    await userEvent.click(screen.getByTestId('watch-save'));
    expect(await body(calls, 'PUT', '/api/runs/5/watch')).toEqual({ window_days: 14, every_s: 21_600, backend: 'local' });
    await waitFor(() => expect(screen.getByTestId('watch-status')).toHaveTextContent('last 14 days every 6 h on local'));
    await userEvent.click(screen.getByTestId('watch-remove'));
    await waitFor(() => expect(screen.getByTestId('watch-status')).toHaveTextContent('Not watched.'));
    expect(calls.some((c) => c.method === 'DELETE' && new URL(c.url).pathname === '/api/runs/5/watch')).toBe(true);
  });
});

describe('experiment detail: sweeps and ensembles', () => {
  it('launches a sweep with the dialog’s values and shows the 422', async () => {
    const { calls } = stubFetch(
      api([runOf(7)], (req, url) =>
        url.pathname === '/api/experiments/3/sweeps' && req.method === 'POST'
          ? json({ detail: [{ type: 'value_error', loc: ['body', 'config', 'sweep'], msg: 'the experiment has no sweep section' }] }, 422)
          : undefined,
      ),
    );
    renderApp('/experiments/3');
    await userEvent.click(await screen.findByTestId('launch-sweep-button'));
    const dialog = await screen.findByRole('dialog', { name: 'Launch a sweep' });
    const trials = within(dialog).getByTestId('launch-trials');
    await userEvent.clear(trials);
    await userEvent.type(trials, '5');
    await userEvent.type(within(dialog).getByTestId('launch-max-cost'), '2.5');
    await userEvent.click(within(dialog).getByTestId('launch-submit'));
    expect(await body(calls, 'POST', '/api/experiments/3/sweeps')).toEqual({
      trials: 5, backend: 'local', seed: null, gpu_type: null, max_cost: 2.5, max_wall_time_s: null,
    });
    expect(await within(dialog).findByTestId('error-alert')).toHaveTextContent('body.config.sweep: the experiment has no sweep section');
  });

  it('queues an ensemble of the selected succeeded runs and shows each run’s kind', async () => {
    const runs = [runOf(7), runOf(8, { kind: 'sweep', params: { trials: 4 } }), runOf(9, { state: 'failed', artifact_url: null })];
    const { calls } = stubFetch(
      api(runs, (req, url) =>
        url.pathname === '/api/experiments/3/ensembles' && req.method === 'POST'
          ? json(runOf(10, { kind: 'ensemble', state: 'queued', params: { members: [7, 8] } }), 201)
          : undefined,
      ),
    );
    renderApp('/experiments/3');
    await screen.findByTestId('runs-table');
    expect(screen.getAllByTestId('run-row-kind').map((b) => b.textContent)).toEqual(['train', 'sweep', 'train']); // newest first
    const ensemble = screen.getByTestId('ensemble-button');
    expect(ensemble).toBeDisabled();
    await userEvent.click(screen.getByLabelText('pick run 7'));
    await userEvent.click(screen.getByLabelText('pick run 9'));
    expect(ensemble).toBeDisabled(); // run 9 failed: one model only
    await userEvent.click(screen.getByLabelText('pick run 8'));
    expect(ensemble).toBeEnabled();
    await userEvent.click(ensemble);
    expect(await body(calls, 'POST', '/api/experiments/3/ensembles')).toEqual({ members: [7, 8], backend: 'local' });
  });
});
