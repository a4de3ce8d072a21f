// The logic behind issue 16's dashboard fixes: money precision, seconds, budget states,
// provider-only rates, the requested model and the failed attempts.

import { describe, expect, it } from 'vitest';
import { budgetState, typicalCall } from './components/budgets';
import { modelCell, priorAttempts } from './components/calls';
import { dateTime, usd } from './format';
import { errorRate, providerLatency, topModels } from './pages/Overview';
import type { LimitUse, Summary } from './types';

describe('money', () => {
  it('shows the precision that matters and never rounds a cost to zero', () => {
    expect(usd(0.0465)).toBe('$0.0465');
    expect(usd(0.05)).toBe('$0.05');
    expect(usd(0.5)).toBe('$0.50');
    expect(usd(1234.567)).toBe('$1,234.57');
    expect(usd(0.000123)).toBe('$0.000123');
    expect(usd(0.0000001)).toBe('$0.0000001');
    expect(usd(-0.0465)).toBe('-$0.0465');
    expect(usd(0)).toBe('$0.00');
  });

  it('times carry seconds', () => {
    expect(dateTime('2026-12-04T10:11:12Z')).toMatch(/:12\b/);
  });
});

describe('budget state', () => {
  const limit: Pick<LimitUse, 'metric' | 'value' | 'used' | 'reserved' | 'percent' | 'mode'> = {
    metric: 'cost',
    value: 0.05,
    used: 0,
    reserved: 0,
    percent: 0,
    mode: 'extend',
  };

  it('a $0 budget refuses every call, in the danger colour, at 0 %', () => {
    const state = budgetState({ ...limit, value: 0 });
    expect(state).toMatchObject({ tone: 'bad', word: 'refusing' });
    expect(state.reason).toContain('refuses every call');
  });

  it('a spent budget is exhausted', () => {
    expect(budgetState({ ...limit, used: 0.05, percent: 100 })).toMatchObject({ tone: 'bad', word: 'exhausted' });
    expect(budgetState({ ...limit, used: 0.04, reserved: 0.01, percent: 80 })).toMatchObject({ tone: 'bad', word: 'exhausted' });
  });

  it('refuses before 100 % once an average call no longer fits, and says why', () => {
    const state = budgetState({ ...limit, used: 0.0485, percent: 97 }, 0.002);
    expect(state).toMatchObject({ tone: 'bad', word: 'refusing' });
    expect(state.reason).toContain('$0.0015 left');
    expect(state.reason).toContain('$0.002');
  });

  it('refuses at any percentage while the last refused call would still not fit', () => {
    const last_refusal = { at: '2026-12-05T10:00:00Z', needed: 0.01 };
    // 90 % used and an average call of $0.001 fits, but the server refused a $0.01 call.
    const state = budgetState({ ...limit, used: 0.045, percent: 90, last_refusal }, 0.001);
    expect(state).toMatchObject({ tone: 'bad', word: 'refusing' });
    expect(state.reason).toContain('needing $0.01 was refused');
    // Once that call fits again (the reservations in flight came back), it admits.
    expect(budgetState({ ...limit, used: 0.03, percent: 60, last_refusal }, 0.001)).toMatchObject({ tone: 'good' });
  });

  it('is amber when nearly used but a call still fits, green otherwise', () => {
    expect(budgetState({ ...limit, used: 0.045, percent: 90 }, 0.001)).toMatchObject({ tone: 'warn', word: 'nearly used' });
    expect(budgetState({ ...limit, used: 0.01, percent: 20 }, 0.001)).toMatchObject({ tone: 'good' });
  });

  it('a lifting limit enforces nothing', () => {
    expect(budgetState({ ...limit, value: 0, mode: 'disable' })).toMatchObject({ tone: 'good', word: 'lifted' });
  });

  it('the average call counts provider calls only', () => {
    const summary = { calls: 10, provider_calls: 4, cost_usd: 0.02, input_tokens: 40, output_tokens: 8, total_tokens: 48 } as Summary;
    expect(typicalCall(summary, 'cost')).toBeCloseTo(0.005);
    expect(typicalCall(summary, 'total_tokens')).toBe(12);
    expect(typicalCall(summary, 'calls')).toBe(1);
    expect(typicalCall({ ...summary, calls: 0, provider_calls: 0 }, 'cost')).toBeUndefined();
  });
});

describe('provider calls', () => {
  it('error rate and latency leave refusals out', () => {
    expect(errorRate({ provider_calls: 5, provider_errors: 1 })).toBe(20);
    expect(errorRate({ provider_calls: 0, provider_errors: 0 })).toBe(0);
    expect(providerLatency({ provider_avg_latency_ms: 100 })).toBe(100);
  });

  it('top models leave out the calls no model was chosen for, and link to their calls', () => {
    const row = (model_id: string, cost_usd: number) => ({ model_id, cost_usd, calls: 1 });
    const rows = topModels([row('(none)', 0), row('gpt-4o', 2), row('', 0)]);
    expect(rows.map((entry) => entry.name)).toEqual(['gpt-4o']);
    expect(rows[0].to).toBe('/usage?model=gpt-4o');
  });
});

describe('one call', () => {
  it('shows the model asked for when another one served', () => {
    expect(modelCell({ model_id: 'claude', requested_model: 'gpt-4o' })).toEqual({ served: 'claude', asked: 'gpt-4o' });
    expect(modelCell({ model_id: 'gpt-4o', requested_model: 'gpt-4o' })).toEqual({ served: 'gpt-4o', asked: null });
    expect(modelCell({ model_id: null, requested_model: undefined })).toEqual({ served: '—', asked: null });
  });

  it('the failed attempts before the answer exclude the answer itself', () => {
    const attempts = [
      { model_id: 'a', error: 'HTTP 500', status: 500 },
      { model_id: 'b', error: 'HTTP 503', status: 503 },
    ];
    expect(priorAttempts({ attempts, outcome: 'error', model_id: 'b' }).map((attempt) => attempt.model_id)).toEqual(['a']);
    expect(priorAttempts({ attempts: attempts.slice(0, 1), outcome: 'success', model_id: 'b' })).toHaveLength(1);
    expect(priorAttempts({ attempts: undefined, outcome: 'error', model_id: null })).toEqual([]);
  });
});

describe('the audit log in words', () => {
  it('names the action and the objects, not the route template and ids', async () => {
    const { describeAudit } = await import('./audit');
    const names = (kind: string, id: string) => (kind === 'project' && id === 'p-1' ? 'Support bot' : kind === 'user' && id === 'u-9' ? 'ann@example.com' : undefined);
    expect(describeAudit({ action: 'POST /api/projects/{project}/tokens', path: '/api/projects/p-1/tokens' }, names)).toBe('Created a token of project “Support bot”');
    expect(describeAudit({ action: 'PATCH /api/users/{user}', path: '/api/users/u-9' }, names)).toBe('Changed user “ann@example.com”');
    expect(describeAudit({ action: 'DELETE /api/projects/{project}/models/{model_id}', path: '/api/projects/p-1/models/gpt-4o' }, names)).toBe('Removed model “gpt-4o” in project “Support bot”');
    expect(describeAudit({ action: 'POST /api/projects', path: '/api/projects', detail: { name: 'New one' } }, names)).toBe('Created project “New one”');
    expect(describeAudit({ action: 'POST /api/system/rotate-key', path: '/api/system/rotate-key' })).toBe('Rotated the master key');
    expect(describeAudit({ action: 'PATCH /api/settings', path: '/api/settings' })).toBe('Changed the settings');
    expect(describeAudit({ action: 'POST /api/unknown/{x}', path: '/api/unknown/1' })).toBe('Created /api/unknown/{x}');
    // What the path cannot name, the entry's changes do: a created user or budget, a removed project.
    const created = (file: string, after: unknown) => [{ file, id: 'x', before: null, after }];
    expect(describeAudit({ action: 'POST /api/users', path: '/api/users', changes: created('users.json', { id: 'u-2', email: 'bo@example.com' }) })).toBe('Created user “bo@example.com”');
    expect(describeAudit({ action: 'POST /api/limits', path: '/api/limits', changes: created('limits.json', { id: 'lim-1', scope: 'project:p-1', metric: 'cost', window: 'monthly', value: 5 }) }, names)).toBe('Created budget “$5.00 monthly on project Support bot”');
    expect(describeAudit({ action: 'DELETE /api/limits/{id}', path: '/api/limits/lim-2', changes: [{ file: 'limits.json', id: 'lim-2', before: { id: 'lim-2', scope: 'global', metric: 'calls', window: 'rolling:1h', value: 100 }, after: null }] })).toBe('Removed budget “100 calls rolling 1h on everything”');
    const project = (models: string[], members: string[]) => ({ id: 'p-1', name: 'Support bot', models: models.map((model_id) => ({ model_id })), members: members.map((user_id) => ({ user_id, role: 'editor' })) });
    const grown = (before: unknown, after: unknown) => [{ file: 'projects.json', id: 'p-1', before, after }];
    expect(describeAudit({ action: 'POST /api/projects/{project}/models', path: '/api/projects/p-1/models', changes: grown(project(['a'], []), project(['a', 'b'], [])) }, names)).toBe('Created model “b” in project “Support bot”');
    expect(describeAudit({ action: 'POST /api/projects/{project}/members', path: '/api/projects/p-1/members', changes: grown(project([], []), project([], ['u-9'])) }, names)).toBe('Created member “ann@example.com” of project “Support bot”');
    expect(describeAudit({ action: 'PATCH /api/limits/{id}', path: '/api/limits/l', changes: [{ file: 'limits.json', id: 'l', before: {}, after: { scope: 'global', metric: 'cost', window: 'daily', value: 0.000002549999999999997 } }] })).toBe('Changed budget “$0.00000255 daily on everything”');
    expect(describeAudit({ action: 'DELETE /api/projects/{project}', path: '/api/projects/p-gone', changes: [{ file: 'projects.json', id: 'p-gone', before: { id: 'p-gone', name: 'Old bot' }, after: null }] }, names)).toBe('Removed project “Old bot”');
  });
});

describe('permissions', () => {
  it('a project role grants only in its project; no /api/me grants everything', async () => {
    const { permissionsOf, canWriteScope } = await import('./permissions');
    const me = { id: 'u', email: 'e', role: 'none', via: 'session' as const, permissions: ['model:read'], projects: [{ id: 'p-1', slug: 'alpha', name: 'Alpha', role: 'editor', permissions: ['model:read', 'project:read', 'project:write'] }] };
    const { can } = permissionsOf(me);
    expect(can('model:read')).toBe(true);
    expect(can('project:write')).toBe(false);
    expect(can('project:write', 'p-1')).toBe(true);
    expect(can('project:write', 'alpha')).toBe(true);
    expect(can('project:write', 'p-2')).toBe(false);
    expect(can('project:members', 'p-1')).toBe(false);
    expect(canWriteScope(can, 'project:p-1')).toBe(true);
    expect(canWriteScope(can, 'global')).toBe(false);
    expect(canWriteScope(can, 'model:gpt-4o')).toBe(false);
    expect(permissionsOf(null).can('settings:write')).toBe(true);
  });

  it("the playground revokes only the same user's live playground tokens", async () => {
    const { stalePlaygroundTokens, playgroundLabels } = await import('./pages/project/Playground');
    const token = (id: string, labels: string[], extra: Record<string, string | null> = {}) => ({ id, snippet: '', labels, models: [], expires_at: null, revoked_at: null, created_at: '', ...extra });
    const tokens = [
      token('mine', playgroundLabels('u1')),
      token('theirs', playgroundLabels('u2')),
      token('ci', ['ci']),
      token('revoked', playgroundLabels('u1'), { revoked_at: '2026-01-01T00:00:00Z' }),
      token('expired', playgroundLabels('u1'), { expires_at: '2020-01-01T00:00:00Z' }),
    ];
    expect(stalePlaygroundTokens(tokens, 'u1').map((item) => item.id)).toEqual(['mine']);
  });
});
