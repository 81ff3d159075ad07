import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { json, renderApp, stubFetch } from './utils';

describe('token prompt', () => {
  it('asks for a token when there is none', async () => {
    stubFetch(() => json({}));
    renderApp('/', { token: null });
    expect(await screen.findByTestId('token-prompt')).toBeInTheDocument();
  });

  it('returns to the token prompt on a 401, saying the token was rejected', async () => {
    const { calls } = stubFetch(() => json({ detail: 'invalid token' }, 401));
    renderApp('/experiments', { token: 'expired' });
    expect(await screen.findByTestId('token-prompt')).toBeInTheDocument();
    expect(screen.getByTestId('token-rejected')).toBeInTheDocument();
    expect(window.localStorage.getItem('tradelab.token')).toBeNull();
    const api = calls.find((c) => new URL(c.url).pathname === '/api/experiments');
    expect(api?.headers.get('Authorization')).toBe('Bearer expired');
  });

  it('stores the entered token and shows the app', async () => {
    stubFetch((_req, url) => {
      if (url.pathname === '/api/experiments') return json({ data: [], count: 0 });
      if (url.pathname === '/api/events') return new Response(new ReadableStream(), { status: 200 });
      return undefined;
    });
    renderApp('/experiments', { token: null });
    await userEvent.type(await screen.findByTestId('token-input'), 'tok-123');
    await userEvent.click(screen.getByTestId('token-submit'));
    await waitFor(() => expect(screen.getByTestId('page-title')).toHaveTextContent('Experiments'));
    expect(window.localStorage.getItem('tradelab.token')).toBe('tok-123');
    expect(await screen.findByTestId('empty-state')).toBeInTheDocument();
  });
});
