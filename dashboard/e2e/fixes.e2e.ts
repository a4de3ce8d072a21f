// Issue 16's dashboard fixes, each checked as an operator would, on one service seeded
// through the API: budget gauges that say when calls are refused, finding a call by its
// trace id, the requested model, what viewers and project editors see, the audit log, a
// role change that asks first, no blank scroll, and the 375 px layout. Pages are
// screenshotted at 375 and 1280 px in both themes.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { firstAdmin, logIn, MOCK_API_KEY, RESULTS, screenshotAll, settled, startStack, type Stack } from './harness';

const PASSWORD = 'a long password';
const ADMIN = 'admin@example.com';
const VIEWER = 'viewer@example.com';
const EDITOR = 'editor@example.com';
const MODEL = 'gpt-4o-mini';

let stack: Stack;
let admin = '';
let projectId = '';
let projectToken = '';
let traceId = '';
let limitId = '';
const sideways: string[] = [];
const browserErrors: string[] = [];
const contexts: BrowserContext[] = [];

async function call<T = Record<string, unknown>>(method: string, path: string, body?: unknown, token = admin): Promise<{ status: number; body: T }> {
  const response = await fetch(stack.url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as T };
}

async function chat(model: string, content: string): Promise<Response> {
  const response = await fetch(stack.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { authorization: `Bearer ${projectToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content }] }),
  });
  await response.text();
  return response;
}

/** A browser page logged in as `email`, in its own context (its own storage). */
async function pageAs(email: string): Promise<Page> {
  const context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (error) => browserErrors.push(`${email}: ${error}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) browserErrors.push(`${email}: ${message.text()}`);
  });
  await logIn(stack, page, email, PASSWORD);
  return page;
}

async function open(page: Page, path: string) {
  await page.goto(stack.url + '/dashboard' + path);
  await settled(page);
}

async function shoot(page: Page, name: string) {
  await settled(page);
  sideways.push(...(await screenshotAll(page, name)));
}

let adminPage: Page;

/** Every entry of the audit log page in words, paging through it with "Older". */
async function auditLog(page: Page): Promise<string> {
  const texts: string[] = [];
  for (;;) {
    texts.push(...(await page.getByTestId('audit-what').allTextContents()));
    const older = page.getByRole('button', { name: 'Older' });
    if (await older.isDisabled()) break;
    const loaded = page.waitForResponse((response) => response.url().includes(`/api/audit?`) && response.url().includes(`offset=${texts.length}`));
    await older.click();
    await (await loaded).finished();
    await settled(page);
  }
  return texts.join(' | ');
}

beforeAll(async () => {
  mkdirSync(join(RESULTS, 'screenshots'), { recursive: true });
  stack = await startStack();
  admin = await firstAdmin(stack, ADMIN, PASSWORD);
  expect((await call('POST', '/api/models', { id: MODEL, provider: 'openai', endpoint: stack.mock.openai, api_key: MOCK_API_KEY })).status).toBe(201);
  const project = await call<{ id: string }>('POST', '/api/projects', { name: 'Support bot' });
  projectId = project.body.id;
  expect((await call('POST', `/api/projects/${projectId}/models`, { model_id: MODEL, aliases: ['smart'] })).status).toBe(201);
  projectToken = (await call<{ token: string }>('POST', `/api/projects/${projectId}/tokens`, { labels: ['e2e'] })).body.token;
  for (const [email, role] of [
    [VIEWER, 'viewer'],
    [EDITOR, 'none'],
  ]) {
    expect((await call('POST', '/api/users', { email, password: PASSWORD, role })).status).toBe(201);
  }
  expect((await call('POST', `/api/projects/${projectId}/members`, { email: EDITOR, role: 'editor' })).status).toBe(201);
  // Calls: one by the model's id, a few by its alias (served by the model it names).
  const first = await chat(MODEL, 'find me later');
  expect(first.status).toBe(200);
  traceId = first.headers.get('x-routerly-trace-id') ?? '';
  for (let index = 0; index < 3; index++) expect((await chat('smart', `alias call ${index}`)).status).toBe(200);
  adminPage = await pageAs(ADMIN);
});

afterAll(async () => {
  for (const context of contexts) await context.close();
  await stack?.stop();
});

describe("issue 16's dashboard fixes", () => {
  afterEach(async () => {
    // The budget test's $0 limit would refuse the later tests' calls.
    if (limitId) await call('DELETE', `/api/limits/${limitId}`);
    limitId = '';
  });

  test('a budget goes from healthy to refusing, and the gauge says so in the danger colour', async () => {
    const page = adminPage;
    await open(page, `/projects/${projectId}/general`);
    await page.getByLabel('Limit (USD)').fill('5');
    await page.getByRole('button', { name: 'Set budget' }).click();
    await expect.poll(() => page.getByTestId('gauge').getAttribute('data-state')).toBe('admitting');
    expect(await page.getByTestId('gauge').getAttribute('class')).toContain('gauge-good');
    // The same budget again is refused by the API, and the form says why.
    await page.getByLabel('Limit (USD)').fill('5');
    await page.getByRole('button', { name: 'Set budget' }).click();
    await expect.poll(() => page.getByText(/the same limit exists already/).isVisible()).toBe(true);
    expect(await page.getByTestId('gauge').count()).toBe(1);
    // A call counts against it; then lower it under what was spent: every call is refused.
    expect((await chat(MODEL, 'counted')).status).toBe(200);
    let limit = { id: '', used: 0 };
    await expect
      .poll(async () => {
        limit = (await call<{ limits: { id: string; used: number }[] }>('GET', '/api/usage/limits')).body.limits[0];
        return limit.used;
      })
      .toBeGreaterThan(0);
    limitId = limit.id;
    // Room for far more than an average call ($0.0002 against some $0.00001) but not for a
    // call's worst-case estimate (1,024 output tokens at $0.60/M): the gauge cannot tell
    // from the past calls, the server's last refusal tells it.
    expect((await call('PATCH', `/api/limits/${limit.id}`, { value: limit.used + 0.0002 })).status).toBe(200);
    await page.reload();
    await settled(page);
    await expect.poll(() => page.getByTestId('gauge').getAttribute('data-state')).not.toBe('refusing');
    expect((await chat(MODEL, 'refused by its estimate')).status).toBe(503);
    await page.reload();
    await settled(page);
    await expect.poll(() => page.getByTestId('gauge').getAttribute('data-state')).toBe('refusing');
    expect(await page.getByTestId('gauge').getAttribute('class')).toContain('gauge-bad');
    expect(await page.getByTestId('gauge-reason').textContent()).toMatch(/a call needing \$0\.000\d+ was refused at/);
    // The refusal sent the budget's exhausted alert: the project's page lists it.
    await expect
      .poll(async () => {
        await page.reload();
        await settled(page);
        return page.getByTestId('alert-row').filter({ hasText: 'exhausted' }).count();
      })
      .toBe(1);
    expect(await page.getByTestId('alert-row').first().textContent()).toContain('Project Support bot');
    expect((await call('PATCH', `/api/limits/${limit.id}`, { value: limit.used / 2 })).status).toBe(200);
    expect((await chat(MODEL, 'refused')).status).toBe(503);
    await page.reload();
    await settled(page);
    await expect.poll(() => page.getByTestId('gauge').getAttribute('data-state')).toBe('exhausted');
    expect(await page.getByTestId('gauge').getAttribute('class')).toContain('gauge-bad');
    expect(await page.getByTestId('gauge-reason').textContent()).toContain('every call is refused');
    await shoot(page, 'fix-budget-exhausted');
    // A $0 budget refuses everything at "0 %": it reads refusing, not a calm zero.
    expect((await call('PATCH', `/api/limits/${limit.id}`, { value: 0 })).status).toBe(200);
    await page.reload();
    await settled(page);
    await expect.poll(() => page.getByTestId('gauge').getAttribute('data-state')).toBe('refusing');
    expect(await page.getByTestId('gauge-reason').textContent()).toContain('refuses every call');
    // The overview counts the refusal apart from provider errors.
    await open(page, '/');
    await expect.poll(() => page.getByTestId('refused').getAttribute('data-value')).toBe('2');
    expect(await page.getByTestId('error-rate').getAttribute('data-value')).toBe('0');
    expect(await page.getByTestId('gauge').getAttribute('data-state')).toBe('refusing');
    expect(await page.locator('[aria-label="Top models by spend"]').textContent()).not.toContain('(none)');
    // Charts (uPlot, on canvas) carry a value axis in their unit and a date axis: the labels
    // uPlot was given to draw are mirrored on the figure.
    await expect.poll(() => page.getByTestId('chart-cost').getAttribute('data-y-ticks')).toContain('$');
    expect(await page.getByTestId('chart-latency').getAttribute('data-y-ticks')).toMatch(/ms|s/);
    expect(await page.getByTestId('chart-calls').getAttribute('data-x-ticks')).toMatch(/[A-Z][a-z]{2}/);
    expect(await page.getByTestId('p95-latency').count()).toBe(1);
    // Hovering the latest point reads its date and value in the chart's unit.
    const over = page.getByTestId('chart-cost').locator('.u-over');
    const overBox = (await over.boundingBox())!;
    await over.hover({ position: { x: overBox.width - 1, y: overBox.height / 2 } });
    await expect.poll(() => page.getByTestId('chart-cost').locator('.chart-summary').textContent()).toMatch(/^\d\d [A-Z][a-z]{2}.*: \$\d/);
    // No provider error yet: one zero on the scale, not "0 % 0 % 0 %".
    expect(await page.getByTestId('chart-errors').getAttribute('data-y-ticks')).toBe('0 %');
    // A top-N bar opens the calls it sums.
    await page.locator('[aria-label="Top models by spend"]').getByRole('link', { name: MODEL }).click();
    await page.waitForURL(`**/dashboard/usage?model=${MODEL}`);
    await expect.poll(() => page.getByTestId('call-row').count()).toBeGreaterThan(0);
    expect(await page.getByLabel('Model', { exact: true }).inputValue()).toBe(MODEL);
    await open(page, '/');
    // A blank page below the content would be the hidden screen-reader tables.
    const blank = await page.evaluate(() => document.documentElement.scrollHeight - (document.querySelector('main')!.getBoundingClientRect().bottom + window.scrollY));
    expect(blank, 'pixels of blank scroll below the overview').toBeLessThan(40);
    await shoot(page, 'fix-overview');
    // The project's usage lists its models without the refusals' "(none)", each a link to
    // the project's calls it served.
    await open(page, `/projects/${projectId}/usage`);
    const byModel = page.locator('[aria-label="Spend by model"]');
    await expect.poll(() => byModel.textContent()).toContain(MODEL);
    expect(await byModel.textContent()).not.toContain('(none)');
    await byModel.getByRole('link', { name: MODEL }).click();
    await page.waitForURL(`**/dashboard/projects/${projectId}/logs?model=${MODEL}`);
    await expect.poll(() => page.getByTestId('call-row').count()).toBeGreaterThan(0);
    expect(await page.getByLabel('Model', { exact: true }).inputValue()).toBe(MODEL);
  });

  test('a call is found by the trace id its client received, with status, error and the model asked for', async () => {
    const page = adminPage;
    await open(page, '/usage');
    await expect.poll(() => page.getByTestId('call-row').count()).toBeGreaterThan(3);
    const refused = page.locator('[data-testid="call-row"]', { hasText: 'budget exceeded' }).first();
    expect(await refused.getByTestId('call-error').textContent()).not.toBe('—');
    expect(await refused.locator('td').nth(5).textContent(), 'the status column').toBe('503');
    // Calls by the alias show what was asked for next to the model that served.
    await expect.poll(() => page.getByTestId('call-model').filter({ hasText: 'asked for smart' }).count()).toBe(3);
    // Times carry seconds.
    expect(await page.getByTestId('call-row').first().locator('td').first().textContent()).toMatch(/\d\d:\d\d:\d\d/);
    // At 1280 px, with error rows on the page, the table fits its card: every column is in
    // view (no sideways scroll hiding Latency) and no model name wraps letter by letter.
    const [scrollWidth, clientWidth] = await page.locator('.calls-table').evaluate((wrap) => [wrap.scrollWidth, wrap.clientWidth]);
    expect(scrollWidth, `the calls table (${scrollWidth} px) fits its ${clientWidth} px card`).toBeLessThanOrEqual(clientWidth);
    // The served model is each cell's first text node; its line boxes are its lines.
    const lines = await page.getByTestId('call-model').evaluateAll((cells) =>
      cells.map((cell) => {
        const range = document.createRange();
        range.selectNodeContents(cell.firstChild!);
        return range.getClientRects().length;
      }),
    );
    expect(Math.max(...lines), 'lines of the longest served model name').toBe(1);
    await page.getByLabel('Trace id', { exact: true }).fill(traceId);
    await expect.poll(() => page.getByTestId('call-row').count()).toBe(1);
    expect(await page.getByTestId('call-row').getAttribute('data-trace-id')).toBe(traceId);
    // Money to the precision that matters: a call of a fraction of a cent is not "$0.00".
    const found = page.getByTestId('call-row');
    expect(Number(await found.getAttribute('data-cost'))).toBeGreaterThan(0);
    expect(await found.locator('td').nth(2).textContent(), 'the cost column').toMatch(/^\$0\.0*[1-9]\d/);
    await shoot(page, 'fix-usage-trace-search');
    await page.getByLabel('Trace id', { exact: true }).fill('');
    await expect.poll(() => page.getByTestId('call-row').count()).toBeGreaterThan(3);
    // The detail of a row low on the page opens where the user is, and takes focus.
    await page.setViewportSize({ width: 1280, height: 500 });
    const last = page.getByTestId('call-row').last();
    await last.scrollIntoViewIfNeeded();
    await last.getByRole('button').click();
    await expect.poll(() => page.getByTestId('call-detail').isVisible()).toBe(true);
    const box = await page.getByTestId('call-detail').boundingBox();
    expect(box && box.y >= -1 && box.y < 500, `the detail is on screen (y ${box?.y})`).toBe(true);
    expect(await page.evaluate(() => document.activeElement?.closest('[data-testid="call-detail"]') !== null), 'focus is in the detail').toBe(true);
    await page.keyboard.press('Escape');
    await expect.poll(() => page.getByTestId('call-detail').count()).toBe(0);
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  test('at 375 px the top bar stays compact and the usage table keeps outcome and cost', async () => {
    const page = adminPage;
    await open(page, '/usage');
    await page.setViewportSize({ width: 375, height: 800 });
    await expect.poll(() => page.getByTestId('call-row').count()).toBeGreaterThan(0);
    const bar = await page.locator('.topbar').boundingBox();
    expect(bar!.height, 'top bar height').toBeLessThan(80);
    const row = page.getByTestId('call-row').first();
    for (const index of [1, 2]) {
      const cell = await row.locator('td').nth(index).boundingBox();
      expect(cell && cell.x + cell.width <= 375 + 1, `column ${index} (outcome, cost) is visible at 375 px`).toBe(true);
    }
    await open(page, `/projects/${projectId}/usage`);
    const tab = await page.locator('[aria-current="page"]', { hasText: 'Usage' }).boundingBox();
    expect(tab && tab.x >= 0 && tab.x + tab.width <= 375 + 1, 'the active project tab is visible').toBe(true);
    const blank = await page.evaluate(() => document.documentElement.scrollHeight - (document.querySelector('main')!.getBoundingClientRect().bottom + window.scrollY));
    expect(blank, 'pixels of blank scroll below project usage').toBeLessThan(40);
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  test('models show their health and can be edited after creation; the project order changes', async () => {
    const page = adminPage;
    await open(page, '/models');
    await expect.poll(() => page.getByTestId('model-health').first().textContent()).toContain('circuit closed');
    expect(await page.getByTestId('model-health').first().textContent()).toMatch(/p95 \d/);
    await page.getByRole('button', { name: 'Edit', exact: true }).click();
    await page.getByLabel('Endpoint').fill('not a url');
    await page.getByRole('button', { name: 'Save model' }).click();
    await expect.poll(() => page.getByText('Enter an http(s) URL.').isVisible()).toBe(true);
    // Abuse: the cloud metadata address is refused by the server, in words, and not stored.
    const before = (await call<{ endpoint: string }>('GET', `/api/models/${MODEL}`)).body.endpoint;
    await page.getByLabel('Endpoint').fill('http://169.254.169.254/latest');
    await page.getByRole('button', { name: 'Save model' }).click();
    await expect.poll(() => page.getByText(/link-local address/).first().isVisible()).toBe(true);
    expect((await call<{ endpoint: string }>('GET', `/api/models/${MODEL}`)).body.endpoint).toBe(before);
    // The same mock under another loopback name: calls keep working.
    const moved = stack.mock.openai.replace('127.0.0.1', 'localhost');
    await page.getByLabel('Endpoint').fill(moved);
    await page.getByRole('button', { name: 'Save model' }).click();
    await expect.poll(async () => (await call<{ endpoint: string }>('GET', `/api/models/${MODEL}`)).body.endpoint).toBe(moved);
    await shoot(page, 'fix-models');
    // A second model, then move it first in the project.
    expect((await call('POST', '/api/models', { id: 'second', provider: 'openai', endpoint: stack.mock.openai, api_key: MOCK_API_KEY, upstream_model: MODEL })).status).toBe(201);
    expect((await call('POST', `/api/projects/${projectId}/models`, { model_id: 'second' })).status).toBe(201);
    await open(page, `/projects/${projectId}/models`);
    await page.getByRole('button', { name: 'Move second up' }).click();
    await expect
      .poll(async () => (await call<{ models: { model_id: string }[] }>('GET', `/api/projects/${projectId}`)).body.models.map((model) => model.model_id))
      .toEqual(['second', MODEL]);
    await open(page, `/projects/${projectId}/routing`);
    await expect.poll(() => page.getByTestId(`routing-health-${MODEL}`).textContent()).toContain('circuit closed');
    // Routing keeps one record per model, whatever the project: the tab says whose calls
    // each figure counts.
    const health = page.getByTestId(`routing-health-${MODEL}`);
    expect(await health.getByTestId('model-routing').textContent()).toMatch(/^now, all projects: \d+ of \d+ calls failed/);
    expect(await health.getByTestId('model-day').textContent()).toMatch(/^24 h, Support bot: p50/);
  });

  test('test connection makes one call to the provider; a failing model shows its circuit open', async () => {
    const page = adminPage;
    await open(page, '/models');
    await page.getByRole('button', { name: `Test the connection of ${MODEL}` }).click();
    const result = page.getByTestId(`model-row-${MODEL}`).getByTestId('connection-result');
    await expect.poll(() => result.textContent()).toMatch(/^✓ the provider answered \(\d+ ms\)$/);
    // A wrong key: the provider's refusal, in words, and never the key itself.
    expect((await call('POST', '/api/models', { id: 'wrong-key', provider: 'openai', endpoint: stack.mock.openai, api_key: 'sk-not-the-mock-key', upstream_model: MODEL })).status).toBe(201);
    await open(page, '/models');
    await page.getByRole('button', { name: 'Test the connection of wrong-key' }).click();
    const wrong = page.getByTestId('model-row-wrong-key').getByTestId('connection-result');
    await expect.poll(() => wrong.textContent()).toContain('refused the API key (HTTP 401)');
    const answer = await call<Record<string, unknown>>('POST', '/api/models/wrong-key/test');
    expect(JSON.stringify(answer.body)).not.toContain('sk-not-the-mock-key');
    // Abuse: a model cannot be pointed at the cloud metadata address, in any written form (the
    // test call refuses it too, names resolved: proxy/probe.rs); a viewer may not spend the
    // provider key.
    for (const endpoint of ['http://169.254.169.254/v1', 'http://2852039166/v1', 'http://[::ffff:169.254.169.254]/v1']) {
      const metadata = await call<{ error: { message: string; field: string } }>('PATCH', '/api/models/wrong-key', { endpoint });
      expect(metadata.status, endpoint).toBe(400);
      expect(metadata.body.error.field).toBe('endpoint');
      expect(metadata.body.error.message).toContain('link-local');
    }
    expect((await call<{ endpoint: string }>('GET', '/api/models/wrong-key')).body.endpoint).toBe(stack.mock.openai);
    const viewerToken = ((await (await fetch(stack.url + '/api/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: VIEWER, password: PASSWORD }) })).json()) as { access_token: string }).access_token;
    expect((await call('POST', `/api/models/${MODEL}/test`, undefined, viewerToken)).status).toBe(403);
    expect((await call('DELETE', '/api/models/wrong-key')).status).toBe(204);
    // A model nothing answers on (a closed port), under the health policy: routing opens its
    // circuit (the calls fall back to the working model), and the page says so.
    expect((await call('POST', '/api/models', { id: 'flaky', provider: 'openai', endpoint: 'http://127.0.0.1:9/v1', api_key: MOCK_API_KEY, upstream_model: MODEL })).status).toBe(201);
    expect((await call('POST', `/api/projects/${projectId}/models`, { model_id: 'flaky' })).status).toBe(201);
    expect((await call('PUT', `/api/projects/${projectId}/policies`, { policies: [{ type: 'health', enabled: true, config: {} }] })).status).toBe(200);
    let circuit = 'closed';
    for (let index = 0; index < 8 && circuit !== 'open'; index++) {
      await chat('flaky', 'fail over');
      const health = await call<{ models: { model_id: string; circuit: string }[] }>('GET', '/api/routing/health');
      circuit = health.body.models.find((model) => model.model_id === 'flaky')?.circuit ?? '';
    }
    expect(circuit).toBe('open');
    await open(page, '/models');
    const flaky = page.getByTestId('model-row-flaky').getByTestId('model-health');
    expect(await flaky.getAttribute('data-circuit')).toBe('open');
    expect(await flaky.locator('.badge-bad').textContent()).toBe('circuit open');
    expect(await flaky.getByTestId('model-routing').textContent()).toMatch(/(\d+) of \1 calls failed/);
    await shoot(page, 'fix-models-circuit-open');
    await open(page, `/projects/${projectId}/routing`);
    await expect.poll(() => page.getByTestId('routing-health-flaky').textContent()).toContain('circuit open');
    // A call routed while that circuit is open names the reason in its routing trace, verbatim
    // (not just "excluded").
    const routed = await fetch(stack.url + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${projectToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'routed around the open circuit' }] }),
    });
    await routed.text();
    expect(routed.status).toBe(200);
    await open(page, '/usage');
    await page.getByLabel('Trace id', { exact: true }).fill(routed.headers.get('x-routerly-trace-id') ?? '');
    await expect.poll(() => page.getByTestId('call-row').count()).toBe(1);
    await page.getByTestId('call-row').getByRole('button').click();
    await expect.poll(() => page.getByTestId('exclusion').first().textContent()).toMatch(/^circuit open/);
    await shoot(page, 'fix-trace-exclusion-reason');
    const unreachable = await call<{ ok: boolean; status: number | null; message: string }>('POST', '/api/models/flaky/test');
    expect(unreachable.body).toMatchObject({ ok: false, status: null });
    expect(unreachable.body.message).toContain('could not connect');
    expect((await call('PUT', `/api/projects/${projectId}/policies`, { policies: [] })).status).toBe(200);
    expect((await call('DELETE', `/api/projects/${projectId}/models/flaky`)).status).toBe(204);
  });

  test('tokens show last use and spend; the playground reuses one token per user', async () => {
    const page = adminPage;
    await open(page, `/projects/${projectId}/tokens`);
    await expect.poll(() => page.getByTestId('token-last-use').first().textContent()).toMatch(/\d\d:\d\d:\d\d/);
    await expect.poll(() => page.getByTestId('token-spend').first().textContent()).toMatch(/\$0\.0\d*[1-9]/);
    const before = (await call<{ tokens: unknown[] }>('GET', `/api/projects/${projectId}/tokens`)).body.tokens.length;
    for (const prompt of ['one', 'two']) {
      await open(page, `/projects/${projectId}/playground`);
      await page.getByLabel('Prompt').fill(prompt);
      await page.getByRole('button', { name: 'Send' }).click();
      await expect.poll(() => page.getByTestId('playground-answer').textContent(), { timeout: 15_000 }).toContain(`You said: ${prompt}`);
    }
    const after = (await call<{ tokens: unknown[] }>('GET', `/api/projects/${projectId}/tokens`)).body.tokens.length;
    expect(after - before, 'two playground sessions, one token').toBe(1);
    await open(page, `/projects/${projectId}/tokens`);
    // The playground's token names its user by email, not by a raw user id.
    await expect.poll(async () => (await page.getByTestId('token-labels').allTextContents()).join(' | ')).toContain(`playground, user: ${ADMIN}`);
    expect((await page.getByTestId('token-labels').allTextContents()).join(' | ')).not.toMatch(/user:[0-9a-f-]{8}/);
    await shoot(page, 'fix-tokens');
  });

  test('the audit log reads as actions on named objects, and a role change asks first', async () => {
    const page = adminPage;
    await open(page, '/settings/audit');
    // Names replace ids once the projects have loaded (the entries may come first).
    await expect
      .poll(async () => (await page.getByTestId('audit-what').allTextContents()).join(' | '))
      .toContain('Created a token of project “Support bot”');
    // Creations name what they created, from the entry's changes; the route stays a tooltip.
    const what = await auditLog(page);
    expect(what).toContain(`Created user “${VIEWER}”`);
    expect(what).toContain('Created budget “$5.00 monthly on project Support bot”');
    expect(what).toContain('Removed budget “$0.00 monthly on project Support bot”');
    expect(what).toContain(`Created member “${EDITOR}” of project “Support bot”`);
    expect(what).toContain(`Created model “${MODEL}” in project “Support bot”`);
    expect(what).not.toContain('/api/');
    await shoot(page, 'fix-audit');
    await open(page, '/settings/general');
    expect(await page.getByTestId('listen-address').textContent()).toContain(new URL(stack.url).host);
    await open(page, '/settings/users');
    await page.getByLabel(`Role of ${VIEWER}`).selectOption('operator');
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect.poll(() => page.getByRole('alertdialog').isVisible()).toBe(true);
    expect(await page.getByRole('alertdialog').textContent()).toContain(`Change ${VIEWER} from viewer to operator?`);
    await page.getByRole('button', { name: 'Cancel' }).click();
    const users = (await call<{ users: { email: string; role: string }[] }>('GET', '/api/users')).body.users;
    expect(users.find((user) => user.email === VIEWER)?.role, 'cancelled: the role is unchanged').toBe('viewer');
    // A project role too, confirmed this time.
    await open(page, `/projects/${projectId}/members`);
    await page.getByLabel(`Role of ${EDITOR}`).selectOption('viewer');
    await page.getByRole('button', { name: 'Apply' }).click();
    expect(await page.getByRole('alertdialog').textContent()).toContain(`Make ${EDITOR} viewer of Support bot?`);
    await page.getByRole('button', { name: 'Change role' }).click();
    const role = async () => (await call<{ members: { email: string; role: string; user_id: string }[] }>('GET', `/api/projects/${projectId}/members`)).body.members.find((member) => member.email === EDITOR)!;
    await expect.poll(async () => (await role()).role).toBe('viewer');
    expect((await call('PATCH', `/api/projects/${projectId}/members/${(await role()).user_id}`, { role: 'editor' })).status).toBe(200);
  });

  test('a viewer sees only what they may use, and no Settings tab fails', async () => {
    const page = await pageAs(VIEWER);
    await open(page, '/models');
    expect(await page.getByRole('button', { name: 'Add a model' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Edit', exact: true }).count()).toBe(0);
    await open(page, '/projects');
    expect(await page.getByLabel('Project name').count()).toBe(0);
    await open(page, `/projects/${projectId}/tokens`);
    expect(await page.getByRole('button', { name: 'Create token' }).count()).toBe(0);
    expect(await page.getByTestId('no-permission').count()).toBe(1);
    await open(page, `/projects/${projectId}/playground`);
    expect(await page.getByTestId('no-permission').textContent()).toContain('project:write');
    const tabs = await page.locator('[aria-label="Main"] a').allTextContents();
    expect(tabs).toContain('Settings');
    await open(page, '/settings/budgets');
    const settingsTabs = await page.locator('[aria-label="Settings sections"] a').allTextContents();
    expect(settingsTabs).toEqual(['Budgets']);
    expect(await page.getByText('Add a budget').count()).toBe(0);
    for (const tab of ['general', 'notifications', 'users', 'audit']) {
      await open(page, `/settings/${tab}`);
      expect(await page.getByText('Something went wrong').count(), tab).toBe(0);
      expect(await page.getByTestId('no-permission').count(), tab).toBe(1);
    }
    // The routing policies are shown, and nothing in them can be changed only to be lost.
    await open(page, `/projects/${projectId}/routing`);
    const cheapest = page.getByTestId('policy-cheapest');
    await expect.poll(() => cheapest.count()).toBe(1);
    expect(await cheapest.getByRole('checkbox').isDisabled()).toBe(true);
    expect(await page.getByRole('button', { name: 'Move cheapest up' }).isDisabled()).toBe(true);
    expect(await cheapest.getAttribute('draggable')).toBe('false');
    const health = page.getByTestId('policy-health');
    await health.getByRole('button', { name: 'Settings' }).click();
    const inputs = await health.locator('.policy-config input, .policy-config select').all();
    expect(inputs.length).toBeGreaterThan(0);
    for (const input of inputs) expect(await input.isDisabled()).toBe(true);
    expect(await page.getByRole('button', { name: 'Save order and settings' }).count()).toBe(0);
    await open(page, `/projects/${projectId}/models`);
    await shoot(page, 'fix-viewer-project-models');
  });

  test('a project editor changes their project but not its members, models or settings', async () => {
    const page = await pageAs(EDITOR);
    await open(page, `/projects/${projectId}/tokens`);
    expect(await page.getByRole('button', { name: 'Create token' }).count()).toBe(1);
    await open(page, `/projects/${projectId}/models`);
    expect(await page.getByRole('button', { name: `Move ${MODEL} up` }).count()).toBe(1);
    await open(page, `/projects/${projectId}/members`);
    expect(await page.getByRole('button', { name: 'Add member' }).count()).toBe(0);
    expect(await page.getByTestId('no-permission').textContent()).toContain('project:members');
    await open(page, '/models');
    expect(await page.getByRole('button', { name: 'Add a model' }).count()).toBe(0);
    await open(page, '/settings/budgets');
    // Only the project's own level is offered.
    // (The options follow the projects list, which may arrive after the page settles.)
    await expect.poll(() => page.getByLabel('Applies to').locator('option').allTextContents()).toEqual(['Project Support bot']);
    await shoot(page, 'fix-editor-budgets');
    // A project they are not a member of, opened by its URL: the page says so, no failure.
    const other = await call<{ id: string }>('POST', '/api/projects', { name: 'Other team' });
    try {
      await open(page, `/projects/${other.body.id}/general`);
      await expect.poll(() => page.getByTestId('project-unavailable').textContent()).toContain('You are not a member of this project.');
      expect(await page.getByText('Something went wrong').count()).toBe(0);
      await page.getByTestId('project-unavailable').getByRole('link', { name: 'Your projects' }).click();
      await page.waitForURL('**/dashboard/projects');
      // A project that does not exist says that instead.
      await open(adminPage, '/projects/no-such-project/general');
      await expect.poll(() => adminPage.getByTestId('project-unavailable').textContent()).toContain('There is no such project.');
    } finally {
      expect((await call('DELETE', `/api/projects/${other.body.id}`)).status).toBe(204);
    }
    expect(sideways, 'pages that scroll sideways').toEqual([]);
    expect(browserErrors, 'errors in the browser console').toEqual([]);
  });
});

// The fixes above were driven at 1280 px in the light theme; each variant here checks them
// again, at both widths in both themes, on the state they left: what changes state (creating
// models, the playground's token, confirming a role) is not repeated, what reads or is
// cancelled is.
describe.each([
  [375, 'light'],
  [375, 'dark'],
  [1280, 'light'],
  [1280, 'dark'],
] as const)('the fixes at %i px, %s theme', (width, scheme) => {
  test('a refusing budget, the charts in this theme, a call found by trace id with its outcome and cost, model health', async () => {
    const page = adminPage;
    await page.setViewportSize({ width, height: 800 });
    await page.emulateMedia({ colorScheme: scheme, reducedMotion: 'reduce' });
    const zero = await call<{ id: string }>('POST', '/api/limits', { scope: `project:${projectId}`, metric: 'cost', value: 0, period: 'monthly' });
    expect(zero.status).toBe(201);
    try {
      await open(page, `/projects/${projectId}/general`);
      expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe(scheme);
      const gauge = page.getByTestId('gauge');
      expect(await gauge.getAttribute('data-state')).toBe('refusing');
      // The reason is in this theme's danger colour, and on screen.
      const [reasonColour, dangerColour] = await page.getByTestId('gauge-reason').evaluate((reason) => {
        const probe = document.createElement('span');
        probe.style.color = 'var(--bad)';
        document.body.append(probe);
        const colours = [getComputedStyle(reason).color, getComputedStyle(probe).color];
        probe.remove();
        return colours;
      });
      expect(reasonColour).toBe(dangerColour);
      const reasonBox = await page.getByTestId('gauge-reason').boundingBox();
      expect(reasonBox && reasonBox.x >= 0 && reasonBox.x + reasonBox.width <= width + 1, 'the reason fits the screen').toBe(true);
    } finally {
      expect((await call('DELETE', `/api/limits/${zero.body.id}`)).status).toBe(204);
    }
    await open(page, '/usage');
    await page.getByLabel('Trace id', { exact: true }).fill(traceId);
    await expect.poll(() => page.getByTestId('call-row').count()).toBe(1);
    const row = page.getByTestId('call-row');
    for (const [index, what] of [
      [1, 'outcome'],
      [2, 'cost'],
    ] as const) {
      const cell = row.locator('td').nth(index);
      const box = await cell.boundingBox();
      expect(box && box.x >= 0 && box.x + box.width <= width + 1, `the ${what} is on screen`).toBe(true);
      expect((await cell.textContent())?.trim(), what).not.toBe('');
    }
    expect(await row.locator('td').nth(1).textContent()).toContain('success');
    expect(await row.locator('td').nth(2).textContent()).toMatch(/\$0\.0+[1-9]/);
    // The detail opens on screen with focus in it.
    await row.getByRole('button').click();
    await expect.poll(() => page.getByTestId('call-detail').isVisible()).toBe(true);
    const detail = await page.getByTestId('call-detail').boundingBox();
    expect(detail && detail.y >= -1 && detail.y < 800, `the detail is on screen (y ${detail?.y})`).toBe(true);
    expect(await page.evaluate(() => document.activeElement?.closest('[data-testid="call-detail"]') !== null)).toBe(true);
    await page.keyboard.press('Escape');
    // The overview's charts are drawn in this theme's chart colour, within the screen.
    await open(page, '/');
    const cost = page.getByTestId('chart-cost');
    await expect.poll(() => cost.getAttribute('data-y-ticks')).toContain('$');
    const drawn = await cost.evaluate((figure) => {
      const canvas = figure.querySelector('canvas')!;
      const probe = document.createElement('span');
      probe.style.color = 'var(--chart)';
      document.body.append(probe);
      const [r, g, b] = getComputedStyle(probe).color.match(/\d+/g)!.map(Number);
      probe.remove();
      const pixels = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let line = 0;
      for (let at = 0; at < pixels.length; at += 4) {
        if (Math.abs(pixels[at] - r) + Math.abs(pixels[at + 1] - g) + Math.abs(pixels[at + 2] - b) < 30 && pixels[at + 3] > 200) line++;
      }
      return { line, right: canvas.getBoundingClientRect().right };
    });
    expect(drawn.line, 'pixels of the line in the theme colour').toBeGreaterThan(50);
    expect(drawn.right, 'the chart fits the screen').toBeLessThanOrEqual(width + 1);
    await open(page, '/models');
    const health = page.getByTestId(`model-row-${MODEL}`).getByTestId('model-health');
    expect(await health.getAttribute('data-circuit')).toBe('closed');
    expect(await health.textContent()).toMatch(/p95 \d/);
    const healthBox = await health.boundingBox();
    expect(healthBox && healthBox.x + healthBox.width <= width + 1, 'the health is in the first screen').toBe(true);
    expect(await page.getByRole('button', { name: `Test the connection of ${MODEL}` }).count()).toBe(1);
    if (width === 375) {
      // A page shorter than the screen: the top bar keeps its height.
      const bar = await page.locator('.topbar').boundingBox();
      expect(bar!.height, 'top bar height on a short page').toBeLessThan(80);
    }
    const sizes = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
    expect(sizes.scroll, 'the page does not scroll sideways').toBeLessThanOrEqual(sizes.inner);
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: 'light' });
  });

  test('the calls list, tokens, audit log, role confirmation, and what a viewer and a project editor see', async () => {
    const onScreen = async (locator: ReturnType<Page['locator']>, what: string) => {
      await locator.scrollIntoViewIfNeeded();
      const box = await locator.boundingBox();
      expect(box && box.x >= -1 && box.x + box.width <= width + 1, `${what} is on screen at ${width} px`).toBe(true);
    };
    const dress = async (page: Page) => {
      await page.setViewportSize({ width, height: 800 });
      await page.emulateMedia({ colorScheme: scheme, reducedMotion: 'reduce' });
    };
    const page = adminPage;
    await dress(page);
    try {
      // Calls: seconds in times, the status and error of a refusal, the model asked for.
      await open(page, '/usage');
      await expect.poll(() => page.getByTestId('call-row').count()).toBeGreaterThan(3);
      expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe(scheme);
      const refused = page.locator('[data-testid="call-row"]', { hasText: 'budget exceeded' }).first();
      expect(await refused.locator('td').nth(5).textContent(), 'the status column').toBe('503');
      expect(await refused.getByTestId('call-error').textContent()).not.toBe('—');
      await expect.poll(() => page.getByTestId('call-model').filter({ hasText: 'asked for smart' }).count()).toBeGreaterThanOrEqual(3);
      expect(await page.getByTestId('call-row').first().locator('td').first().textContent()).toMatch(/\d\d:\d\d:\d\d/);
      // Tokens: last use and spend.
      await open(page, `/projects/${projectId}/tokens`);
      await expect.poll(() => page.getByTestId('token-last-use').first().textContent()).toMatch(/\d\d:\d\d:\d\d/);
      await expect.poll(() => page.getByTestId('token-spend').first().textContent()).toMatch(/\$0\.0\d*[1-9]/);
      // The project's model order can be changed from here.
      await open(page, `/projects/${projectId}/models`);
      await onScreen(page.getByRole('button', { name: /^Move .* (up|down)$/ }).first(), 'a reorder button');
      // The audit log in words, the real listen address, a role change that asks first.
      await open(page, '/settings/audit');
      // Names replace ids once the projects have loaded (the entries may come first).
      await expect
        .poll(async () => (await page.getByTestId('audit-what').allTextContents()).join(' | '))
        .toContain('Created a token of project “Support bot”');
      // A removed project keeps its name (the entry's changes hold it), not its id.
      expect(await auditLog(page)).toContain('Removed project “Other team”');
      await open(page, '/settings/general');
      // Never the settings' address while the real one loads.
      expect(await page.getByTestId('listen-address').textContent()).toContain(new URL(stack.url).host);
      await open(page, '/settings/users');
      await page.getByLabel(`Role of ${VIEWER}`).selectOption('operator');
      await page.getByRole('button', { name: 'Apply' }).click();
      await expect.poll(() => page.getByRole('alertdialog').isVisible()).toBe(true);
      await onScreen(page.getByRole('alertdialog'), 'the confirmation');
      await page.getByRole('button', { name: 'Cancel' }).click();
      const users = (await call<{ users: { email: string; role: string }[] }>('GET', '/api/users')).body.users;
      expect(users.find((user) => user.email === VIEWER)?.role, 'cancelled: the role is unchanged').toBe('viewer');
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
      await page.emulateMedia({ colorScheme: 'light' });
    }
    // A viewer: no write control, no failing Settings tab.
    const viewer = await pageAs(VIEWER);
    await dress(viewer);
    await open(viewer, '/models');
    expect(await viewer.getByRole('button', { name: 'Add a model' }).count()).toBe(0);
    await open(viewer, `/projects/${projectId}/tokens`);
    expect(await viewer.getByRole('button', { name: 'Create token' }).count()).toBe(0);
    await onScreen(viewer.getByTestId('no-permission'), "the viewer's missing permission");
    for (const tab of ['general', 'users']) {
      await open(viewer, `/settings/${tab}`);
      expect(await viewer.getByText('Something went wrong').count(), tab).toBe(0);
      expect(await viewer.getByTestId('no-permission').count(), tab).toBe(1);
    }
    // A project editor: the project's tokens, not its members.
    const editor = await pageAs(EDITOR);
    await dress(editor);
    await open(editor, `/projects/${projectId}/tokens`);
    await onScreen(editor.getByRole('button', { name: 'Create token' }), "the editor's Create token");
    await open(editor, `/projects/${projectId}/members`);
    expect(await editor.getByRole('button', { name: 'Add member' }).count()).toBe(0);
    expect(await editor.getByTestId('no-permission').textContent()).toContain('project:members');
    const sizes = await editor.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
    expect(sizes.scroll, 'the page does not scroll sideways').toBeLessThanOrEqual(sizes.inner);
    for (const other of [viewer, editor]) await other.context().close();
  });
});
