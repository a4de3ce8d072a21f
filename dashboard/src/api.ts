// The management API client: one `request` that adds the session, refreshes it once on a
// 401 (single-flight, and serialised across tabs, because refresh tokens rotate and reusing
// an old one revokes the whole session), and turns error bodies into `ApiError`s in words.

const REFRESH_KEY = 'routerly.refresh';

/** An answer of the management API that was not a success, with the server's words. */
export class ApiError extends Error {
  status: number;
  code: string;
  field: string | null;

  constructor(status: number, code: string, message: string, field: string | null = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }

  /** True when the route itself does not exist (a feature this server does not have yet). */
  get routeMissing(): boolean {
    return this.status === 404 && this.message.startsWith('no API route');
  }
}

export interface SessionUser {
  id: string;
  email: string;
  role: string;
}

interface SessionBody {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  user: SessionUser;
}

type Listener = (user: SessionUser | null) => void;

let accessToken: string | null = null;
let accessExpires = 0;
let currentUser: SessionUser | null = null;
let refreshing: Promise<boolean> | null = null;
const listeners = new Set<Listener>();

/** Called with the user on login and with null when the session ends. */
export function onSessionChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function notify() {
  for (const listener of listeners) listener(currentUser);
}

export function hasStoredSession(): boolean {
  return localStorage.getItem(REFRESH_KEY) !== null;
}

export function sessionUser(): SessionUser | null {
  return currentUser;
}

/** Keeps a session answer: the access token in memory only, the refresh token in storage. */
export function adoptSession(body: SessionBody) {
  accessToken = body.access_token;
  accessExpires = Date.now() + body.expires_in * 1000;
  currentUser = body.user;
  localStorage.setItem(REFRESH_KEY, body.refresh_token);
  notify();
}

export function clearSession() {
  accessToken = null;
  accessExpires = 0;
  currentUser = null;
  localStorage.removeItem(REFRESH_KEY);
  notify();
}

async function withRefreshLock<T>(work: () => Promise<T>): Promise<T> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  if (locks?.request) return locks.request('routerly-refresh', work) as Promise<T>;
  return work();
}

/** Exchanges the stored refresh token for a new session; false when it cannot. */
export function refreshSession(): Promise<boolean> {
  refreshing ??= withRefreshLock(async () => {
    // Read inside the lock: another tab may have rotated the token meanwhile.
    const refreshToken = localStorage.getItem(REFRESH_KEY);
    if (!refreshToken) return false;
    const response = await fetch('/api/auth/refresh', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: refreshToken }),
    }).catch(() => null);
    if (!response) return false;
    if (!response.ok) {
      if (response.status === 401) clearSession();
      return false;
    }
    adoptSession((await response.json()) as SessionBody);
    return true;
  }).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function errorOf(response: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: fall back to the status text.
  }
  const error = (body as { error?: { code?: string; message?: string; field?: string | null; type?: string } } | null)
    ?.error;
  if (error?.message) {
    return new ApiError(response.status, error.code ?? error.type ?? 'error', error.message, error.field ?? null);
  }
  const words: Record<number, string> = {
    401: 'your session has ended; log in again',
    403: 'you are not allowed to do this',
    404: 'not found',
    429: 'too many requests; wait a moment and try again',
    502: 'the service could not be reached',
    503: 'the service is unavailable',
  };
  return new ApiError(response.status, 'http_' + response.status, words[response.status] ?? `the service answered ${response.status} ${response.statusText}`);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  query?: Record<string, string | number | undefined | null>;
  raw?: boolean;
  signal?: AbortSignal;
}

export function withQuery(path: string, query?: RequestOptions['query']): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** A fetch with the session's access token, refreshed first when it is about to expire. */
export async function authorizedFetch(url: string, init: RequestInit = {}): Promise<Response> {
  if (accessToken === null || Date.now() > accessExpires - 30_000) {
    if (hasStoredSession()) await refreshSession();
  }
  const send = () => {
    const headers = new Headers(init.headers);
    if (accessToken) headers.set('authorization', `Bearer ${accessToken}`);
    return fetch(url, { ...init, headers });
  };
  let response = await send();
  if (response.status === 401 && hasStoredSession()) {
    if (await refreshSession()) response = await send();
  }
  if (response.status === 401) clearSession();
  return response;
}

/** Calls the management API and returns its JSON (or the Response with `raw`). */
export async function request<T = unknown>(path: string, options: RequestOptions = {}): Promise<T> {
  const init: RequestInit = { method: options.method ?? 'GET', signal: options.signal };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers = { 'content-type': 'application/json' };
  }
  let response: Response;
  try {
    response = await authorizedFetch(withQuery(path, options.query), init);
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiError(0, 'network', 'the service cannot be reached; check that routerly is running');
  }
  if (!response.ok) throw await errorOf(response);
  if (options.raw) return response as T;
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** Calls without a session (setup, login). */
export async function publicRequest<T>(path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'the service cannot be reached; check that routerly is running');
  }
  if (!response.ok) throw await errorOf(response);
  return (await response.json()) as T;
}

export async function login(email: string, password: string): Promise<SessionUser> {
  const body = await publicRequest<SessionBody>('/api/auth/login', { email, password });
  adoptSession(body);
  return body.user;
}

export async function createFirstAdmin(email: string, password: string, setupToken?: string): Promise<SessionUser> {
  const body = await publicRequest<SessionBody>('/api/setup/first-admin', {
    email,
    password,
    ...(setupToken ? { setup_token: setupToken } : {}),
  });
  adoptSession(body);
  return body.user;
}

export async function logout() {
  const refreshToken = localStorage.getItem(REFRESH_KEY);
  clearSession();
  if (refreshToken) {
    await fetch('/api/auth/logout', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: refreshToken }),
    }).catch(() => undefined);
  }
}

/** Tries each path in turn while the server answers that the route does not exist. */
export async function requestFirst<T>(paths: string[], options: RequestOptions = {}): Promise<T> {
  let last: unknown = null;
  for (const path of paths) {
    try {
      return await request<T>(path, options);
    } catch (error) {
      last = error;
      if (!(error instanceof ApiError && error.routeMissing)) throw error;
    }
  }
  throw last;
}
