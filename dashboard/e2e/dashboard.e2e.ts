// A new user's whole path in the browser, against the real binary and mock providers:
// first admin, login, a model, a project and its token, routing, the playground, usage,
// a budget, and the overview's totals checked against the usage records. Every page is
// screenshotted at 375 px and 1280 px in both themes and must not scroll sideways.
//
// The tests run in order and share one service and one browser page (each step builds on
// the one before, as a person would).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MOCK_API_KEY, RESULTS, screenshotAll, settled, startStack, type Stack } from './harness';

const ADMIN = { email: 'admin@example.com', password: 'a long password' };
const MODEL_ID = 'gpt-4o-mini';
const PROJECT = 'Support bot';

let stack: Stack;
let page: Page;
let projectId = '';
let projectToken = '';
const sideways: string[] = [];
const browserErrors: string[] = [];

async function open(path: string) {
  await page.goto(stack.url + '/dashboard' + path);
  await settled(page);
}

async function shoot(name: string) {
  await settled(page);
  sideways.push(...(await screenshotAll(page, name)));
}

/** A management API session for checks made outside the browser. */
async function apiToken(): Promise<string> {
  const response = await fetch(stack.url + '/api/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(ADMIN),
  });
  expect(response.status, 'the admin can log in through the API').toBe(200);
  return ((await response.json()) as { access_token: string }).access_token;
}

async function api<T>(path: string): Promise<T> {
  const response = await fetch(stack.url + path, { headers: { authorization: `Bearer ${await apiToken()}` } });
  expect(response.ok, `GET ${path} answers 2xx`).toBe(true);
  return (await response.json()) as T;
}

beforeAll(async () => {
  mkdirSync(join(RESULTS, 'screenshots'), { recursive: true });
  stack = await startStack();
  const context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.on('pageerror', (error) => browserErrors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) browserErrors.push(message.text());
  });
});

afterAll(async () => {
  await stack?.stop();
});

describe('the dashboard, from an empty ROUTERLY_HOME to a visible first call', () => {
  test('/ redirects to the dashboard, which asks for the first admin', async () => {
    await page.goto(stack.url + '/');
    await page.waitForURL('**/dashboard/setup');
    await expect.poll(() => page.getByRole('heading', { name: 'Welcome to Routerly' }).isVisible()).toBe(true);
    // On loopback no setup token is needed.
    expect(await page.getByLabel('Setup token').count()).toBe(0);
    await shoot('setup');
  });

  test('the setup form checks its fields before sending', async () => {
    await page.getByRole('button', { name: 'Create admin and continue' }).click();
    await expect.poll(() => page.getByText('Enter an email address').isVisible()).toBe(true);
    await page.getByLabel('Email').fill(ADMIN.email);
    await page.getByLabel('Password', { exact: true }).fill('short');
    await page.getByRole('button', { name: 'Create admin and continue' }).click();
    await expect.poll(() => page.getByText('Use at least 8 characters.').isVisible()).toBe(true);
  });

  test('first-admin setup logs the admin in', async () => {
    await page.getByLabel('Password', { exact: true }).fill(ADMIN.password);
    await page.getByLabel('Repeat the password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Create admin and continue' }).click();
    await page.waitForURL((url) => url.pathname === '/dashboard/');
    await expect.poll(() => page.getByRole('heading', { name: 'Overview' }).isVisible()).toBe(true);
    await settled(page);
    await shoot('overview-empty');
  });

  test('log out, a wrong password is refused in words, then log in', async () => {
    await page.getByRole('button', { name: 'Log out' }).first().click();
    await page.waitForURL('**/dashboard/login');
    await shoot('login');
    await page.getByLabel('Email').fill(ADMIN.email);
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.getByText('Wrong email or password').isVisible()).toBe(true);
    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.getByRole('heading', { name: 'Overview' }).isVisible()).toBe(true);
  });

  test('the session survives a reload (the refresh token rotates)', async () => {
    await open('/profile');
    await expect.poll(() => page.getByTestId('profile-email').textContent()).toBe(ADMIN.email);
    await shoot('profile');
  });

  test('add a model from the catalogue, pointed at the mock provider', async () => {
    await open('/models');
    await shoot('models-empty');
    await page.getByRole('button', { name: 'Add a model' }).click();
    await settled(page);
    await page.getByLabel('Provider', { exact: true }).selectOption('openai');
    await page.getByLabel('Model from the catalogue').selectOption(MODEL_ID);
    expect(await page.getByLabel('Input price (USD / M tokens)').inputValue(), 'the catalogue fills in the price').toBe('0.15');
    await page.getByLabel('Endpoint').fill('not a url');
    await page.getByRole('button', { name: 'Add model', exact: true }).click();
    await expect.poll(() => page.getByText('Enter an http:// or https:// URL.').isVisible()).toBe(true);
    await page.getByLabel('Endpoint').fill(stack.mock.openai);
    await page.getByLabel('API key').fill(MOCK_API_KEY);
    await shoot('models-add');
    await page.getByRole('button', { name: 'Add model', exact: true }).click();
    await expect.poll(() => page.getByTestId(`model-row-${MODEL_ID}`).isVisible()).toBe(true);
    const row = (await page.getByTestId(`model-row-${MODEL_ID}`).textContent()) ?? '';
    expect(row, 'the provider key is masked, never shown in clear').not.toContain(MOCK_API_KEY);
    await shoot('models');
  });

  test('create a project, add the model, and create a token shown once', async () => {
    await open('/projects');
    await shoot('projects-empty');
    await page.getByLabel('Project name').fill(PROJECT);
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.waitForURL('**/models');
    projectId = page.url().split('/projects/')[1].split('/')[0];
    await settled(page);
    await page.getByRole('button', { name: 'Add to project' }).click();
    await expect.poll(() => page.getByRole('heading', { name: MODEL_ID }).isVisible()).toBe(true);
    await shoot('project-models');

    await page.getByRole('link', { name: 'Tokens' }).click();
    await settled(page);
    await page.getByLabel('Labels (optional)').fill('e2e');
    await page.getByRole('button', { name: 'Create token' }).click();
    await expect.poll(() => page.getByTestId('secret-value').isVisible()).toBe(true);
    projectToken = ((await page.getByTestId('secret-value').textContent()) ?? '').trim();
    expect(projectToken.startsWith('sk-lr-'), `a project token, got ${projectToken.slice(0, 8)}…`).toBe(true);
    await shoot('project-token-created');
    await page.getByRole('button', { name: 'I have copied it' }).click();
    await expect.poll(() => page.getByTestId('secret-value').count()).toBe(0);
    await page.reload();
    await settled(page);
    expect(await page.content(), 'the token is never rendered again').not.toContain(projectToken);
    await shoot('project-tokens');
  });

  test('reorder routing policies by drag and drop', async (context) => {
    await open(`/projects/${projectId}/routing`);
    if (await page.getByTestId('unavailable').isVisible()) {
      await shoot('project-routing');
      context.skip(true, 'the server has no routing-policy API yet (GET /api/projects/{p}/policies and /routing answer "no API route"); the tab shows its "not available yet" state');
      return;
    }
    const order = () => page.locator('.policy-list > li').evaluateAll((items) => items.map((item) => item.getAttribute('data-testid')));
    // A new project has no policy on: turn three on, then drag the third onto the first.
    for (const type of ['cheapest', 'health', 'performance']) await page.getByTestId(`policy-${type}`).getByLabel('On', { exact: true }).check();
    await page.getByTestId('policy-performance').dragTo(page.getByTestId('policy-cheapest'));
    const after = (await order()).slice(0, 3);
    expect(after, 'the dragged policy is first').toEqual(['policy-performance', 'policy-cheapest', 'policy-health']);
    await page.getByRole('button', { name: 'Save order and settings' }).click();
    await expect.poll(() => page.getByText(/Saved at/).isVisible()).toBe(true);
    await page.reload();
    await settled(page);
    expect((await order()).slice(0, 3), 'the saved order survives a reload').toEqual(after);
    const saved = await api<{ policies: { type: string; enabled: boolean }[] }>(`/api/projects/${projectId}/policies`);
    expect(saved.policies.map((policy) => policy.type)).toEqual(['performance', 'cheapest', 'health']);
    await shoot('project-routing');
  });

  test('the playground streams the answer and shows the trace', async () => {
    await open(`/projects/${projectId}/playground`);
    await shoot('project-playground');
    await page.getByLabel('Prompt').fill('What is Routerly?');
    await page.getByRole('button', { name: 'Send' }).click();
    await expect
      .poll(() => page.getByTestId('playground-answer').textContent(), { timeout: 15_000 })
      .toBe(`Hello from mock openai ${MODEL_ID}! You said: What is Routerly?`);
    await expect.poll(() => page.getByTestId('playground-usage').isVisible()).toBe(true);
    // The trace, or its honest "not available yet" state while the trace API is missing.
    await expect.poll(async () => (await page.getByTestId('trace').count()) + (await page.getByTestId('unavailable').count())).toBe(1);
    await shoot('project-playground-answer');
  });

  test('the call is in the usage explorer with its detail', async () => {
    await open('/usage');
    await expect.poll(() => page.getByTestId('call-row').count()).toBeGreaterThan(0);
    const usage = await api<{ records: { stream: boolean; model_id: string; tags: string[] }[] }>('/api/usage');
    expect(usage.records[0].stream, 'the playground call was streamed').toBe(true);
    expect(usage.records[0].tags).toContain('playground');
    await shoot('usage');
    await page.getByTestId('call-row').first().getByRole('button').click();
    await expect.poll(() => page.getByTestId('call-detail').isVisible()).toBe(true);
    expect(await page.getByTestId('call-detail').textContent()).toContain(MODEL_ID);
    await settled(page);
    await shoot('usage-call-detail');
    await open(`/projects/${projectId}/logs`);
    await expect.poll(() => page.getByTestId('call-row').count()).toBeGreaterThan(0);
    await shoot('project-logs');
  });

  test('set a budget on the project and see its gauge', async (context) => {
    await open(`/projects/${projectId}/general`);
    if (await page.getByTestId('unavailable').isVisible()) {
      context.skip(true, 'the server has no /api/usage/limits yet');
      return;
    }
    await page.getByLabel('Limit (USD)').fill('-1');
    await page.getByRole('button', { name: 'Set budget' }).click();
    await expect.poll(() => page.getByText('Enter an amount in USD, 0 or more.').isVisible()).toBe(true);
    await page.getByLabel('Limit (USD)').fill('5');
    await page.getByRole('button', { name: 'Set budget' }).click();
    await expect.poll(() => page.getByTestId('gauge').count()).toBe(1);
    const meter = page.getByRole('meter');
    expect(Number(await meter.getAttribute('aria-valuemax'))).toBe(5);
    // A call after the budget was set counts against it.
    const response = await fetch(stack.url + '/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${projectToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL_ID, messages: [{ role: 'user', content: 'count me' }] }),
    });
    expect(response.status).toBe(200);
    await response.text();
    await expect
      .poll(async () => {
        await page.reload();
        await settled(page);
        return Number(await page.getByRole('meter').getAttribute('aria-valuenow'));
      }, { timeout: 10_000 })
      .toBeGreaterThan(0);
    await shoot('project-general');
    await open('/');
    await expect.poll(() => page.getByTestId('gauge').count()).toBe(1);
  });

  test('after N known calls the overview totals equal the sum of the usage records', async () => {
    const calls = 6;
    const before = (await api<{ total: number }>('/api/usage')).total;
    for (let index = 0; index < calls; index++) {
      const response = await fetch(stack.url + '/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${projectToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL_ID, stream: index % 2 === 0, messages: [{ role: 'user', content: `call number ${index} ${'x'.repeat(index * 40)}` }] }),
      });
      expect(response.status, `call ${index} succeeds`).toBe(200);
      await response.text();
    }
    await expect.poll(async () => (await api<{ total: number }>('/api/usage')).total, { timeout: 10_000 }).toBe(before + calls);
    const { records } = await api<{ records: { cost_usd: number; input_tokens: number; output_tokens: number }[] }>('/api/usage?limit=1000');
    const cost = records.reduce((sum, record) => sum + record.cost_usd, 0);
    const tokens = records.reduce((sum, record) => sum + record.input_tokens + record.output_tokens, 0);
    // The overview reads rollups with a fixed set of requests, whatever the number of projects.
    const usageRequests: string[] = [];
    const countUsage = (request: { url(): string }) => {
      const path = new URL(request.url()).pathname;
      if (path.startsWith('/api/usage')) usageRequests.push(path);
    };
    page.on('request', countUsage);
    await open('/');
    await expect.poll(() => page.getByTestId('total-calls').count()).toBe(1);
    await expect.poll(() => page.locator('[aria-label="Top projects by spend"]').count()).toBe(1);
    page.off('request', countUsage);
    expect([...new Set(usageRequests)].sort(), 'one request per panel').toEqual(['/api/usage/by-model', '/api/usage/by-project', '/api/usage/limits', '/api/usage/summary', '/api/usage/timeline']);
    expect(usageRequests.length, `overview usage requests: ${usageRequests.join(', ')}`).toBeLessThanOrEqual(10);
    const value = async (id: string) => Number(await page.getByTestId(id).getAttribute('data-value'));
    expect(await value('total-calls')).toBe(records.length);
    expect(await value('total-tokens')).toBe(tokens);
    expect(Math.abs((await value('total-cost')) - cost), `overview spend ${await value('total-cost')} vs records ${cost}`).toBeLessThan(1e-9);
    expect(await value('error-rate')).toBe(0);
    expect(cost, 'the mock calls cost something at the catalogue price').toBeGreaterThan(0);
    await shoot('overview');
  });

  test('screenshots of every other page, none scrolling sideways', async () => {
    for (const tab of ['members', 'usage']) {
      await open(`/projects/${projectId}/${tab}`);
      await shoot(`project-${tab}`);
    }
    await open('/projects');
    await shoot('projects');
    for (const tab of ['general', 'budgets', 'notifications', 'users', 'roles', 'api-keys', 'audit']) {
      await open(`/settings/${tab}`);
      await shoot(`settings-${tab}`);
    }
    expect(sideways, 'pages that scroll sideways').toEqual([]);
    expect(browserErrors, 'errors in the browser console').toEqual([]);
  });
});
