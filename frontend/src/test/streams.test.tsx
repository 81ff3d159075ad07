import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { StreamStatus } from '../api/types';
import { idleEvents, json, renderApp, stubFetch, type Handler } from './utils';

const stream = (over: Partial<StreamStatus>): StreamStatus => ({
  pid: 100, host: 'box', state: 'streaming', symbol: 'BTCUSDT', timeframe: '1m', live: true,
  ws_url: 'wss://stream.binance.com:9443', rest_url: 'https://api.binance.com',
  started_at: '2024-01-02T00:00:00Z', updated_at: '2024-01-02T01:00:05Z', last_bar_ts: '2024-01-02T00:59:00Z',
  lag_s: 4.6, bars_written: 1234, backfilled: 60, duplicates: 2, out_of_order: 3, conflicts: 0, malformed: 5,
  last_malformed: 'bad kline', reconnects: 7, updates: 900, heartbeat_s: 5, error: null, ...over,
});

const live = stream({});
const stopped = stream({
  pid: 101, symbol: 'ETHUSDT', state: 'stopped', live: false, lag_s: null, bars_written: 10, duplicates: 0,
  out_of_order: 0, malformed: 0, reconnects: 1, error: 'connection reset',
});

/** The API with the given streams; `start` answers the POST (a 202 by default). */
function api(streams: StreamStatus[], start?: () => Response): Handler {
  return (req, url) => {
    const p = decodeURIComponent(url.pathname);
    if (p === '/api/events') return idleEvents();
    if (p === '/api/datasets') return json({ data: [], count: 0 });
    if (p === '/api/datasets/streams' && req.method === 'GET') return json(streams);
    if (p === '/api/datasets/streams' && req.method === 'POST')
      return start?.() ?? json({ pid: 200, log: '/tmp/stream.log', status: null }, 202);
    if (p === '/api/datasets/streams/BTCUSDT/1m' && req.method === 'DELETE')
      return json({ ...live, state: 'stopped', live: false });
    return undefined;
  };
}

const row = async (symbol: string) =>
  (await screen.findAllByTestId('stream-row')).find((r) => r.getAttribute('data-symbol') === symbol)!;

describe('live streams', () => {
  it('lists a live and a stopped stream with their counters', async () => {
    stubFetch(api([live, stopped]));
    renderApp('/datasets');
    const btc = await row('BTCUSDT');
    const eth = await row('ETHUSDT');
    expect(within(btc).getByTestId('stream-state')).toHaveTextContent('streaming');
    expect(within(btc).getByTestId('stream-live')).toHaveTextContent(/^live$/);
    expect(btc).toHaveTextContent('2024-01-02 00:59:00');
    expect(btc).toHaveTextContent('5 s');
    expect(within(btc).getByTestId('stream-bars_written')).toHaveTextContent('1,234');
    expect(within(btc).getByTestId('stream-duplicates')).toHaveTextContent('2');
    expect(within(btc).getByTestId('stream-out_of_order')).toHaveTextContent('3');
    expect(within(btc).getByTestId('stream-malformed')).toHaveTextContent('5');
    expect(within(btc).getByTestId('stream-malformed')).toHaveAttribute('title', 'bad kline');
    expect(within(btc).getByTestId('stream-reconnects')).toHaveTextContent('7');
    expect(within(btc).getByTestId('stream-stop')).toBeInTheDocument();

    expect(within(eth).getByTestId('stream-state')).toHaveTextContent('stopped');
    expect(within(eth).getByTestId('stream-live')).toHaveTextContent('not live');
    expect(within(eth).getByTestId('stream-bars_written')).toHaveTextContent('10');
    expect(within(eth).getByTestId('stream-reconnects')).toHaveTextContent('1');
    expect(within(eth).getByTestId('stream-error')).toHaveTextContent('connection reset');
    expect(within(eth).queryByTestId('stream-stop')).not.toBeInTheDocument();
  });

  it('says so when there are no streams', async () => {
    stubFetch(api([]));
    renderApp('/datasets');
    await waitFor(() =>
      expect(within(screen.getByTestId('streams-section')).getByTestId('empty-state')).toHaveTextContent('No streams'),
    );
  });

  it('Stop sends a DELETE for the stream and refetches the streams', async () => {
    const { calls } = stubFetch(api([live, stopped]));
    renderApp('/datasets');
    await userEvent.click(within(await row('BTCUSDT')).getByTestId('stream-stop'));
    await waitFor(() => expect(calls.some((c) => c.method === 'DELETE')).toBe(true));
    const del = calls.find((c) => c.method === 'DELETE')!;
    expect(new URL(del.url).pathname).toBe('/api/datasets/streams/BTCUSDT/1m');
    const gets = () => calls.filter((c) => c.method === 'GET' && new URL(c.url).pathname === '/api/datasets/streams');
    const before = calls.indexOf(del);
    await waitFor(() => expect(gets().some((c) => calls.indexOf(c) > before)).toBe(true));
  });

  it('the form POSTs the stream to start and refetches datasets and streams', async () => {
    const { calls } = stubFetch(api([]));
    renderApp('/datasets');
    const form = await screen.findByTestId('stream-form');
    expect(within(form).getByTestId('stream-start')).toBeDisabled();
    await userEvent.type(within(form).getByTestId('stream-symbol'), 'BTCUSDT');
    await userEvent.click(within(form).getByTestId('stream-start'));
    await waitFor(() => expect(calls.some((c) => c.method === 'POST')).toBe(true));
    const post = calls.find((c) => c.method === 'POST')!;
    expect(await post.clone().json()).toEqual({ exchange: 'binance', symbol: 'BTCUSDT', timeframe: '1m' });
    const after = calls.indexOf(post);
    const refetched = (path: string) =>
      calls.some((c, i) => i > after && c.method === 'GET' && new URL(c.url).pathname === path);
    await waitFor(() => expect(refetched('/api/datasets') && refetched('/api/datasets/streams')).toBe(true));
    await waitFor(() => expect(within(form).getByTestId('stream-symbol')).toHaveValue(''));
  });

  it('sends the optional since', async () => {
    const { calls } = stubFetch(api([]));
    renderApp('/datasets');
    const form = await screen.findByTestId('stream-form');
    await userEvent.type(within(form).getByTestId('stream-symbol'), 'ethusdt');
    await userEvent.type(within(form).getByTestId('stream-since'), '2024-01-01T00:00:00Z');
    await userEvent.click(within(form).getByTestId('stream-start'));
    await waitFor(() => expect(calls.some((c) => c.method === 'POST')).toBe(true));
    expect(await calls.find((c) => c.method === 'POST')!.clone().json()).toEqual({
      exchange: 'binance', symbol: 'ETHUSDT', timeframe: '1m', since: '2024-01-01T00:00:00Z',
    });
  });

  it("shows a 409's detail", async () => {
    stubFetch(api([live], () => json({ detail: 'a live stream into BTCUSDT/1m exists already' }, 409)));
    renderApp('/datasets');
    const form = await screen.findByTestId('stream-form');
    await userEvent.type(within(form).getByTestId('stream-symbol'), 'BTCUSDT');
    await userEvent.click(within(form).getByTestId('stream-start'));
    expect(await within(form).findByTestId('error-alert')).toHaveTextContent('409: a live stream into BTCUSDT/1m exists already');
  });

  it('shows a 422 at its field', async () => {
    stubFetch(
      api([], () =>
        json({ detail: [{ loc: ['body', 'since'], msg: 'Input should be a valid datetime', type: 'datetime_parsing' }] }, 422),
      ),
    );
    renderApp('/datasets');
    const form = await screen.findByTestId('stream-form');
    await userEvent.type(within(form).getByTestId('stream-symbol'), 'BTCUSDT');
    await userEvent.type(within(form).getByTestId('stream-since'), 'yesterday');
    await userEvent.click(within(form).getByTestId('stream-start'));
    expect(await within(form).findByText('Input should be a valid datetime')).toBeInTheDocument();
    expect(within(form).getByTestId('stream-since')).toHaveAttribute('aria-invalid', 'true');
    expect(within(form).queryByTestId('error-alert')).not.toBeInTheDocument();
  });
});
