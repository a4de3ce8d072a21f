import { afterEach, describe, expect, test, vi } from 'vitest';
import { ApiError, adoptSession, clearSession, hasStoredSession, onSessionChange, request } from './api';

const session = (access: string, refresh: string) => ({ access_token: access, refresh_token: refresh, expires_in: 900, user: { id: 'u', email: 'a@b.c', role: 'admin' } });

function json(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
});

describe('the session', () => {
  test('an expired access token is refreshed once and the call retried with the new one', async () => {
    adoptSession(session('old-access', 'rt-1'));
    const calls: string[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string, init: RequestInit) => {
        const auth = new Headers(init.headers).get('authorization');
        calls.push(`${url} ${auth ?? init.body}`);
        if (url === '/api/auth/refresh') return json(200, session('new-access', 'rt-2'));
        return auth === 'Bearer new-access' ? json(200, { ok: true }) : json(401, { error: { code: 'unauthenticated', message: 'expired' } });
      }),
    );
    expect(await request('/api/me')).toEqual({ ok: true });
    expect(calls).toEqual(['/api/me Bearer old-access', '/api/auth/refresh {"refresh_token":"rt-1"}', '/api/me Bearer new-access']);
    expect(localStorage.getItem('routerly.refresh'), 'the rotated refresh token is kept').toBe('rt-2');
  });

  test('when the refresh token is refused the session ends, which sends people to login', async () => {
    adoptSession(session('old-access', 'rt-1'));
    const ended = vi.fn();
    const stop = onSessionChange(ended);
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => (url === '/api/auth/refresh' ? json(401, { error: { code: 'unauthenticated', message: 'refresh token reused; log in again' } }) : json(401, { error: { code: 'unauthenticated', message: 'expired' } }))),
    );
    await expect(request('/api/me')).rejects.toBeInstanceOf(ApiError);
    expect(hasStoredSession()).toBe(false);
    expect(ended).toHaveBeenLastCalledWith(null);
    stop();
  });

  test('parallel 401s share one refresh (reusing a rotated token would revoke the session)', async () => {
    adoptSession(session('old-access', 'rt-1'));
    let refreshes = 0;
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string, init: RequestInit) => {
        if (url === '/api/auth/refresh') {
          refreshes++;
          return json(200, session('new-access', 'rt-2'));
        }
        return new Headers(init.headers).get('authorization') === 'Bearer new-access' ? json(200, {}) : json(401, {});
      }),
    );
    await Promise.all([request('/api/a'), request('/api/b'), request('/api/c')]);
    expect(refreshes).toBe(1);
  });

  test('errors carry the server message, field and whether the route exists', async () => {
    adoptSession(session('a', 'r'));
    vi.stubGlobal('fetch', vi.fn(async () => json(404, { error: { code: 'not_found', message: 'no API route /api/projects/p/policies', field: null } })));
    const error = (await request('/api/projects/p/policies').catch((reason) => reason)) as ApiError;
    expect(error).toBeInstanceOf(ApiError);
    expect(error.routeMissing).toBe(true);
    vi.stubGlobal('fetch', vi.fn(async () => json(400, { error: { code: 'invalid_request', message: 'bad id', field: 'id' } })));
    const invalid = (await request('/api/models', { method: 'POST', body: {} }).catch((reason) => reason)) as ApiError;
    expect([invalid.status, invalid.field, invalid.message, invalid.routeMissing]).toEqual([400, 'id', 'bad id', false]);
  });
});
