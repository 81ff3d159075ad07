import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { idleEvents, json, renderApp, stubFetch } from './utils';

const envSchema = {
  type: 'object',
  title: 'EnvConfig',
  properties: {
    dataset: {
      type: 'object',
      title: 'Dataset',
      properties: {
        symbol: { type: 'string', title: 'Symbol' },
        timeframe: { type: 'string', title: 'Timeframe', default: '1m' },
      },
    },
    window: { type: 'integer', title: 'Window', default: 64 },
  },
};

describe('env config editor', () => {
  it('shows a server 422 at the field it names', async () => {
    let posted: unknown = null;
    stubFetch(async (req, url) => {
      if (url.pathname === '/api/events') return idleEvents();
      if (url.pathname === '/api/schemas/env') return json(envSchema);
      if (url.pathname === '/api/env-configs' && req.method === 'POST') {
        posted = await req.json();
        return json(
          {
            detail: [
              { loc: ['body', 'config', 'dataset', 'symbol'], msg: 'unknown symbol NOPE', type: 'value_error' },
              { loc: ['body', 'config', 'window'], msg: 'window must be at least 2', type: 'value_error' },
            ],
          },
          422,
        );
      }
      return undefined;
    });
    renderApp('/env-configs/new');
    await userEvent.type(await screen.findByTestId('env-name'), 'my-env');
    const symbol = await screen.findByLabelText(/Symbol/);
    await userEvent.type(symbol, 'NOPE');
    await userEvent.click(screen.getByTestId('env-save'));

    const errors = await screen.findAllByTestId('field-error');
    const byField = Object.fromEntries(errors.map((e) => [e.getAttribute('data-field'), e.textContent]));
    expect(byField['root_dataset_symbol']).toContain('unknown symbol NOPE');
    expect(byField['root_window']).toContain('window must be at least 2');
    expect(posted).toMatchObject({ name: 'my-env', config: { dataset: { symbol: 'NOPE' } } });
    // the error sits inside the symbol field's own wrapper
    const field = document.getElementById('root_dataset_symbol')!.closest('.form-group, [class*="field"]') ?? document.body;
    expect(within(field as HTMLElement).getAllByText(/unknown symbol NOPE/).length).toBeGreaterThan(0);
  });

  it('lists versions and diffs two of them', async () => {
    stubFetch((_req, url) => {
      if (url.pathname === '/api/events') return idleEvents();
      if (url.pathname === '/api/schemas/env') return json(envSchema);
      if (url.pathname === '/api/env-configs/base/versions')
        return json({
          count: 2,
          data: [
            { id: 1, name: 'base', version: 1, created_at: '2024-01-01T00:00:00Z', config: { window: 32, dataset: { symbol: 'BTC' } } },
            { id: 2, name: 'base', version: 2, created_at: '2024-01-02T00:00:00Z', config: { window: 64, fee: 1 } },
          ],
        });
      return undefined;
    });
    renderApp('/env-configs/base');
    await userEvent.click(await screen.findByTestId('diff-pick-1'));
    await userEvent.click(screen.getByTestId('diff-pick-2'));
    const rows = await screen.findAllByTestId('diff-row');
    const kinds = Object.fromEntries(rows.map((r) => [r.querySelector('code')!.textContent, r.getAttribute('data-kind')]));
    expect(kinds).toEqual({ window: 'changed', 'dataset.symbol': 'removed', fee: 'added' });
    await waitFor(() => expect(screen.getByText(/Editing from v2/)).toBeInTheDocument());
  });
});
