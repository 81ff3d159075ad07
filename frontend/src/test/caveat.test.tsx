import { MantineProvider } from '@mantine/core';
import { QueryClientProvider } from '@tanstack/react-query';
import { render, screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { makeQueryClient } from '../App';
import { LatestMetricsTable } from '../components/LatestMetrics';
import { windowCaveat } from '../lib/metrics';
import { json, stubFetch } from './utils';

const keys = ['test/calmar', 'test/total_return', 'test/window_days'].map((key) => ({ key, count: 1, last_step: 1 }));

function renderTable(windowDays: number) {
  const values: Record<string, number> = { 'test/calmar': 8e6, 'test/total_return': 0.05, 'test/window_days': windowDays };
  stubFetch((_req, url) => {
    const key = decodeURIComponent(url.pathname).replace('/api/runs/7/metrics/', '');
    return key in values ? json({ key, steps: [1], values: [values[key]], total: 1 }) : undefined;
  });
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { retry: false } });
  render(
    <MantineProvider>
      <QueryClientProvider client={client}>
        <LatestMetricsTable runId={7} metricKeys={keys} prefix="test/" testid="latest" empty="none" />
      </QueryClientProvider>
    </MantineProvider>,
  );
}

describe('annualised metrics of a short window', () => {
  it('marks them with a caveat when the window is under 30 traded days', async () => {
    renderTable(7);
    await waitFor(() => expect(screen.getByTestId('latest')).toHaveTextContent('test/calmar †'));
    const marked = screen.getAllByTestId('annualised-caveat');
    expect(marked).toHaveLength(1); // calmar; total_return is not annualised
    expect(marked[0].getAttribute('title')).toContain('annualised from 7.0 traded days (under 30)');
  });

  it('leaves them alone on a month or more', async () => {
    renderTable(45);
    await waitFor(() => expect(screen.getByTestId('latest')).toHaveTextContent('test/window_days45.0000'));
    expect(screen.queryByTestId('annualised-caveat')).toBeNull();
  });

  it('says nothing without window_days (runs from before it existed)', () => {
    expect(windowCaveat([{ key: 'test/calmar', value: 8e6 }], 'test/')).toBeNull();
  });
});
