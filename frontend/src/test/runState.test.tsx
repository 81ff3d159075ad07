import { screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { json, renderApp, stubFetch } from './utils';

const run = (state: string) => ({
  id: 7, experiment_id: 1, state, kind: 'train', params: null, seed: 0, attempts: 1, max_attempts: 3, backend: 'local', idempotency_key: null,
  compute_id: null, cancel_requested: false, max_wall_time_s: null, gpu_type: null, max_cost: null, cost: 0,
  reserved: 0, preemptions: 0, artifact_url: null, error: null, queued_at: '2024-01-01T00:00:00Z',
  started_at: null, heartbeat_at: null, active_at: null, ended_at: null,
});

describe('live run state', () => {
  it('updates the run state badge when an SSE event arrives', async () => {
    let state = 'running';
    let push: ((text: string) => void) | null = null;
    let eventsAuth: string | null = null;
    const encoder = new TextEncoder();
    stubFetch((req, url) => {
      if (url.pathname === '/api/events') {
        eventsAuth = req.headers.get('Authorization');
        return new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              push = (text) => controller.enqueue(encoder.encode(text));
            },
          }),
          { headers: { 'Content-Type': 'text/event-stream' } },
        );
      }
      if (url.pathname === '/api/runs/7') return json(run(state));
      if (url.pathname === '/api/runs/7/metrics') return json({ data: [], count: 0 });
      if (url.pathname === '/api/runs/7/equity') return json({ detail: 'no equity yet' }, 404);
      if (url.pathname === '/api/runs/7/trades') return json({ detail: 'no trades yet' }, 404);
      return undefined;
    });
    renderApp('/runs/7');
    await waitFor(() => expect(screen.getByTestId('run-state')).toHaveTextContent('running'));
    await waitFor(() => expect(push).not.toBeNull());
    expect(eventsAuth).toBe('Bearer secret');

    state = 'succeeded';
    const event = { id: 42, at: '2024-01-01T00:01:00Z', kind: 'run_state', run_id: 7, payload: { state: 'succeeded', previous: 'running' } };
    push!(`: ping\n\nid: 42\nevent: run_state\ndata: ${JSON.stringify(event)}\n\n`);
    await waitFor(() => expect(screen.getByTestId('run-state')).toHaveTextContent('succeeded'));
    expect(screen.getByTestId('stream-status')).toHaveTextContent('open');
  });
});
