import type { QueryClient } from '@tanstack/react-query';
import { getToken } from './api/auth';
import { dashboardQuery, equityQuery, experimentsQuery, runQuery, tradesQuery } from './api/queries';
import { experimentsPageQuery } from './pages/Experiments';

/** Loads the run page's code (page + charts) without waiting for React to ask for it. */
export function preloadRunPage(): void {
  void import('./pages/RunPage').catch(() => undefined);
  void import('./components/charts/Chart').catch(() => undefined);
}

/**
 * Starts the first page's requests before React renders (they do not depend on each other, so no waterfall):
 * on /runs/:id the run, its test equity and trades, and the page's code; on / the dashboard.
 */
export function prefetchForPath(client: QueryClient, pathname: string): void {
  if (!getToken()) return; // the token prompt comes first; a request now would only be rejected
  const run = /^\/runs\/(\d+)\/?$/.exec(pathname);
  if (run) {
    const id = Number(run[1]);
    preloadRunPage();
    // the equity first (the chart waits for it); trades once it is in, so they do not compete
    void client.prefetchQuery(runQuery(id));
    void client.prefetchQuery(equityQuery(id, 'test')).finally(() => client.prefetchQuery(tradesQuery(id, 'test')));
  } else if (pathname === '/' || pathname === '') {
    void client.prefetchQuery(dashboardQuery());
  }
}

/** Once the first page is loaded and the browser idle: the experiment list's first page (the likely next page). */
export function prefetchWhenIdle(client: QueryClient, pathname: string): void {
  if (typeof window === 'undefined' || pathname.startsWith('/experiments')) return;
  const go = () => {
    if (!getToken()) return;
    void client.prefetchQuery(experimentsQuery(experimentsPageQuery('', '', '-created_at', 0)));
  };
  const idle = (f: () => void) =>
    typeof window.requestIdleCallback === 'function' ? window.requestIdleCallback(f, { timeout: 3000 }) : setTimeout(f, 1000);
  // after the first page's own requests are done, so this never competes with them
  const later = (): void => {
    window.setTimeout(() => (client.isFetching() > 0 ? later() : idle(go)), 300);
  };
  if (document.readyState === 'complete') later();
  else window.addEventListener('load', later, { once: true });
}
