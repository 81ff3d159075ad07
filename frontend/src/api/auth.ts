/** The API token: kept in localStorage, with listeners so the UI can return to the token prompt on a 401. */

const KEY = 'tradelab.token';

export type AuthReason = 'missing' | 'rejected';

type Listener = () => void;
const listeners = new Set<Listener>();
let reason: AuthReason = 'missing';

function read(): string | null {
  try {
    return window.localStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function getToken(): string | null {
  const token = read();
  return token && token.trim() ? token : null;
}

export function getAuthReason(): AuthReason {
  return reason;
}

export function setToken(token: string): void {
  window.localStorage.setItem(KEY, token.trim());
  reason = 'missing';
  listeners.forEach((l) => l());
}

/** Forget the token; `rejected` when the server answered 401 (the prompt says so). */
export function clearToken(why: AuthReason = 'missing'): void {
  reason = why;
  window.localStorage.removeItem(KEY);
  listeners.forEach((l) => l());
}

export function subscribeToken(listener: Listener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}
