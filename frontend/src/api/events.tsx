import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { useQueryClient, type QueryClient } from '@tanstack/react-query';
import { clearToken, getToken } from './auth';
import { keys } from './queries';
import type { Run, RunState } from './types';
import { SseParser } from '../lib/sse';

/** An event from `GET /api/events`. */
export interface ServerEvent {
  id: number;
  kind: string;
  run_id: number | null;
  at?: string;
  payload: Record<string, unknown>;
}

export type StreamStatus = 'connecting' | 'open' | 'closed' | 'off';

const EventsContext = createContext<StreamStatus>('off');
export const useStreamStatus = () => useContext(EventsContext);

/** Apply an event to the cache: patch what it says, refetch what it touches. */
export function applyEvent(qc: QueryClient, event: ServerEvent): void {
  const runId = event.run_id;
  if (event.kind === 'run_state' && runId !== null) {
    const state = event.payload?.state as RunState | undefined;
    if (state) {
      qc.setQueryData<Run>(keys.run(runId), (old) => (old ? { ...old, state } : old));
      qc.setQueriesData<{ data: Run[]; count: number }>({ queryKey: ['runs'] }, (old) =>
        old?.data ? { ...old, data: old.data.map((r) => (r.id === runId ? { ...r, state } : r)) } : old,
      );
    }
    void qc.invalidateQueries({ queryKey: keys.run(runId) });
    void qc.invalidateQueries({ queryKey: ['runs'] });
    void qc.invalidateQueries({ queryKey: keys.dashboard });
    void qc.invalidateQueries({ queryKey: ['experiments'] });
    void qc.invalidateQueries({ queryKey: keys.budgets });
    void qc.invalidateQueries({ queryKey: keys.artifacts(runId) });
    void qc.invalidateQueries({ queryKey: ['logs', runId] });
    void qc.invalidateQueries({ queryKey: ['equity', runId] });
    void qc.invalidateQueries({ queryKey: ['trades', runId] });
    void qc.invalidateQueries({ queryKey: ['metrics', runId] });
  } else if (event.kind === 'metrics' && runId !== null) {
    void qc.invalidateQueries({ queryKey: ['metrics', runId] });
    void qc.invalidateQueries({ queryKey: keys.dashboard });
  }
}

function origin(): string {
  return typeof window !== 'undefined' && window.location?.origin && window.location.origin !== 'null'
    ? window.location.origin
    : '';
}

/**
 * Reads `/api/events` with fetch (so the bearer token goes in a header), applies every event to the query cache,
 * and reconnects after a pause from the last event id it saw.
 */
export function EventsProvider({ children, token }: { children: ReactNode; token: string | null }) {
  const qc = useQueryClient();
  const [status, setStatus] = useState<StreamStatus>('off');

  useEffect(() => {
    if (!token) {
      setStatus('off');
      return;
    }
    const abort = new AbortController();
    let lastId: number | null = null;
    let stopped = false;

    async function connect(): Promise<void> {
      setStatus('connecting');
      const query = lastId !== null ? `?after=${lastId}` : '';
      const response = await globalThis.fetch(`${origin()}/api/events${query}`, {
        headers: { Authorization: `Bearer ${getToken() ?? ''}`, Accept: 'text/event-stream' },
        signal: abort.signal,
        cache: 'no-store',
      });
      if (response.status === 401) {
        stopped = true;
        clearToken('rejected');
        return;
      }
      if (!response.ok || !response.body) throw new Error(`events: HTTP ${response.status}`);
      setStatus('open');
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const message of parser.push(decoder.decode(value, { stream: true }))) {
          try {
            const event = JSON.parse(message.data) as ServerEvent;
            if (typeof event.id === 'number') lastId = event.id;
            applyEvent(qc, { ...event, kind: event.kind ?? message.event });
          } catch {
            // a malformed event is skipped
          }
        }
      }
    }

    void (async () => {
      let delay = 1000;
      while (!stopped && !abort.signal.aborted) {
        try {
          await connect();
          delay = 1000;
        } catch {
          if (abort.signal.aborted) return;
        }
        if (stopped || abort.signal.aborted) break;
        setStatus('closed');
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 30_000);
      }
    })();

    return () => {
      stopped = true;
      abort.abort();
    };
  }, [token, qc]);

  return <EventsContext.Provider value={status}>{children}</EventsContext.Provider>;
}
