import type { ReactElement } from 'react';
import { render } from '@testing-library/react';
import { MemoryRouter } from 'react-router-dom';
import { vi } from 'vitest';
import { App, makeQueryClient } from '../App';

export type Handler = (req: Request, url: URL) => Response | undefined | Promise<Response | undefined>;

export const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

/** Stub `fetch` (the only network the app has): each call goes to `handler`; an unhandled one is a 404. */
export function stubFetch(handler: Handler) {
  const calls: Request[] = [];
  const fetchStub = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = input instanceof Request ? input : new Request(String(input), init);
    calls.push(req);
    const url = new URL(req.url);
    const res = await handler(req, url);
    return res ?? json({ detail: 'Not Found' }, 404);
  });
  vi.stubGlobal('fetch', fetchStub);
  return { fetch: fetchStub, calls };
}

/** An events stream that never sends anything (most tests). */
export const idleEvents = () =>
  new Response(new ReadableStream({ start() {} }), { headers: { 'Content-Type': 'text/event-stream' } });

export function renderApp(path: string, { token = 'secret' }: { token?: string | null } = {}): ReturnType<typeof render> {
  if (token) window.localStorage.setItem('tradelab.token', token);
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { ...client.getDefaultOptions().queries, retry: false } });
  return render(
    <MemoryRouter initialEntries={[path]}>
      <App client={client} />
    </MemoryRouter>,
  );
}

export function renderWith(ui: ReactElement) {
  return render(ui);
}
