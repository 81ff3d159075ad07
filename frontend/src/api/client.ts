import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema';
import { clearToken, getToken } from './auth';

/** The paths of the generated spec (`npm run spec && npm run gen:api`). */
export type Paths = paths;
export type Schemas = components['schemas'];

/** An API answer that is not 2xx: the status and the parsed body (FastAPI's `{detail}`). */
export class ApiError extends Error {
  constructor(
    public readonly status: number,
    public readonly body: unknown,
  ) {
    super(describe(status, body));
    this.name = 'ApiError';
  }
}

function describe(status: number, body: unknown): string {
  const detail = (body as { detail?: unknown } | undefined)?.detail;
  if (typeof detail === 'string') return `${status}: ${detail}`;
  if (Array.isArray(detail)) {
    return `${status}: ${detail
      .map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).join('.')}: ${d.msg ?? ''}`)
      .join('; ')}`;
  }
  return `HTTP ${status}`;
}

const auth: Middleware = {
  onRequest({ request }) {
    const token = getToken();
    if (token) request.headers.set('Authorization', `Bearer ${token}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401) clearToken('rejected');
    return response;
  },
};

function origin(): string {
  return typeof window !== 'undefined' && window.location?.origin && window.location.origin !== 'null'
    ? window.location.origin
    : '';
}

/** The typed client over the generated spec; `fetch` is looked up per call (tests stub it). */
export const api = createClient<Paths>({
  baseUrl: origin(),
  fetch: (request: Request) => globalThis.fetch(request),
});
api.use(auth);

/** The data of an openapi-fetch answer, or an ApiError. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (!result.response.ok || result.error !== undefined) {
    throw new ApiError(result.response.status, result.error);
  }
  return result.data as T;
}
