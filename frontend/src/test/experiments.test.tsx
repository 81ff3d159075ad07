import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { idleEvents, json, renderApp, stubFetch } from './utils';

const experiments = [
  { id: 1, name: 'beta', tags: ['ppo'], notes: '', config: {}, cloned_from: null, created_at: '2024-01-01T00:00:00Z', runs_count: 2, runs_by_state: { succeeded: 2 }, best_test_sharpe: 0.5 },
  { id: 2, name: 'alpha', tags: ['dqn'], notes: '', config: {}, cloned_from: null, created_at: '2024-01-03T00:00:00Z', runs_count: 1, runs_by_state: { failed: 1 }, best_test_sharpe: null },
  { id: 3, name: 'gamma', tags: ['ppo'], notes: '', config: {}, cloned_from: null, created_at: '2024-01-02T00:00:00Z', runs_count: 3, runs_by_state: { succeeded: 3 }, best_test_sharpe: 1.7 },
];

const names = () => screen.getAllByTestId('experiment-name').map((e) => e.textContent);

describe('experiments list', () => {
  it('sorts, filters and enables Compare on multi-select', async () => {
    const { calls } = stubFetch((_req, url) => {
      if (url.pathname === '/api/events') return idleEvents();
      if (url.pathname === '/api/experiments') {
        const name = url.searchParams.get('name') ?? '';
        const tag = url.searchParams.get('tag') ?? '';
        const data = experiments.filter((e) => e.name.includes(name) && (!tag || e.tags.includes(tag)));
        return json({ data, count: data.length });
      }
      return undefined;
    });
    renderApp('/experiments');
    await waitFor(() => expect(names()).toEqual(['alpha', 'gamma', 'beta'])); // newest first

    await userEvent.selectOptions(screen.getByTestId('sort-select'), '-best_sharpe');
    await waitFor(() => expect(names()).toEqual(['gamma', 'beta', 'alpha']));
    expect(calls.some((c) => new URL(c.url).searchParams.get('sort') === '-best_sharpe')).toBe(true);

    await userEvent.selectOptions(screen.getByTestId('sort-select'), 'name');
    await waitFor(() => expect(names()).toEqual(['alpha', 'beta', 'gamma']));

    await userEvent.type(screen.getByTestId('filter-tag'), 'ppo');
    await waitFor(() => expect(names()).toEqual(['beta', 'gamma']));
    expect(calls.some((c) => new URL(c.url).searchParams.get('tag') === 'ppo')).toBe(true);

    const compare = screen.getByTestId('compare-button');
    expect(compare).toBeDisabled();
    await userEvent.click(screen.getByTestId('select-1'));
    expect(compare).toBeDisabled();
    await userEvent.click(screen.getByTestId('select-3'));
    expect(compare).toBeEnabled();
    expect(screen.getByTestId('selected-count')).toHaveTextContent('2 selected');
    await userEvent.click(compare);
    expect(await screen.findByText('Compare runs')).toBeInTheDocument();
  });

  it('shows an empty state and a name filter reaches the server', async () => {
    const { calls } = stubFetch((_req, url) => {
      if (url.pathname === '/api/events') return idleEvents();
      if (url.pathname === '/api/experiments') return json({ data: [], count: 0 });
      return undefined;
    });
    renderApp('/experiments');
    await userEvent.type(await screen.findByTestId('filter-name'), 'zeta');
    await waitFor(() => expect(calls.some((c) => new URL(c.url).searchParams.get('name') === 'zeta')).toBe(true));
    expect(await screen.findByTestId('empty-state')).toHaveTextContent('No experiments match');
  });
});
