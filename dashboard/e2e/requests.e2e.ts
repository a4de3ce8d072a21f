// The dashboard reads rollups: the overview, the usage explorer and a project's pages make
// the same small number of API requests with 2 projects as with 12 (the overview's
// top-projects panel once asked for each project's usage in turn). Each page is opened,
// left to settle, and every /api request it made is counted, URL by URL.

import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { firstAdmin, logIn, MOCK_API_KEY, settled, startStack, type Stack } from './harness';

const PASSWORD = 'a long password';
const ADMIN = 'admin@example.com';
const MODEL = 'gpt-4o-mini';
/** More distinct requests than any of these pages needs; a page past it fetches per row. */
const FEW = 15;

let stack: Stack;
let admin = '';
let page: Page;
const projects: string[] = [];

async function call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(stack.url + path, {
    method,
    headers: { authorization: `Bearer ${admin}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as T };
}

/** A project with the model, a token and one call through it, so every panel has a row. */
async function addProject(index: number) {
  const project = await call<{ id: string }>('POST', '/api/projects', { name: `Project ${index}` });
  expect(project.status).toBe(201);
  const id = project.body.id;
  expect((await call('POST', `/api/projects/${id}/models`, { model_id: MODEL })).status).toBe(201);
  const token = (await call<{ token: string }>('POST', `/api/projects/${id}/tokens`, { labels: ['e2e'] })).body.token;
  const answer = await fetch(stack.url + '/v1/chat/completions', {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: `call for project ${index}` }] }),
  });
  await answer.text();
  expect(answer.status).toBe(200);
  projects.push(id);
}

/** The distinct /api URLs (path and query) the page asks for while opening `path`. */
async function requestsOf(path: string): Promise<string[]> {
  const seen = new Set<string>();
  const listener = (request: { url: () => string }) => {
    const url = new URL(request.url());
    if (url.pathname.startsWith('/api/')) seen.add(url.pathname + url.search);
  };
  page.on('request', listener);
  await page.goto(stack.url + '/dashboard' + path);
  await settled(page);
  // Panels that load after the first ones (e.g. once a summary is known) get their turn.
  await page.waitForLoadState('networkidle');
  await settled(page);
  page.off('request', listener);
  return [...seen].sort();
}

const PAGES = () => ['/', '/usage', `/projects/${projects[0]}`, `/projects/${projects[0]}/usage`, `/projects/${projects[0]}/tokens`];

beforeAll(async () => {
  stack = await startStack();
  admin = await firstAdmin(stack, ADMIN, PASSWORD);
  expect((await call('POST', '/api/models', { id: MODEL, provider: 'openai', endpoint: stack.mock.openai, api_key: MOCK_API_KEY })).status).toBe(201);
  for (let index = 0; index < 2; index++) await addProject(index);
  const context = await stack.browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  await logIn(stack, page, ADMIN, PASSWORD);
});

afterAll(async () => {
  await stack?.stop();
});

describe('the dashboard reads rollups', () => {
  test('the overview, usage and project pages make as many requests with 12 projects as with 2', async () => {
    const few: Record<string, string[]> = {};
    for (const path of PAGES()) few[path] = await requestsOf(path);
    for (let index = 2; index < 12; index++) await addProject(index);
    for (const path of PAGES()) {
      const many = await requestsOf(path);
      expect(many.length, `${path} with 12 projects asked for:\n${many.join('\n')}\nwith 2:\n${few[path].join('\n')}`).toBe(few[path].length);
      expect(many.length, `${path} asked for:\n${many.join('\n')}`).toBeLessThanOrEqual(FEW);
      // No request names a project other than the page's own.
      const others = many.filter((url) => projects.slice(1).some((id) => url.includes(id)));
      expect(others, `${path} asked about other projects`).toEqual([]);
    }
    // The overview does show the projects, from its one breakdown request.
    await page.goto(stack.url + '/dashboard/');
    await settled(page);
    await expect.poll(() => page.getByText(/^Project \d+$/).count()).toBeGreaterThan(0);
  });

  test("a project's tokens page asks the same with 8 tokens as with 1, and shows each token's last use", async () => {
    const tokensPage = `/projects/${projects[0]}/tokens`;
    const before = await requestsOf(tokensPage);
    // Seven more tokens: three used once, four never.
    for (let index = 0; index < 7; index++) {
      const created = await call<{ token: string }>('POST', `/api/projects/${projects[0]}/tokens`, { labels: [`extra-${index}`] });
      expect(created.status).toBe(201);
      if (index >= 3) continue;
      const answer = await fetch(stack.url + '/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${created.body.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: `token ${index}` }] }),
      });
      await answer.text();
      expect(answer.status).toBe(200);
    }
    const after = await requestsOf(tokensPage);
    expect(after, `with 8 tokens:\n${after.join('\n')}\nwith 1:\n${before.join('\n')}`).toEqual(before);
    // Four tokens used (the first and three extra ones) show a time to the second; four say never.
    const cells = page.getByTestId('token-last-use');
    await expect.poll(() => cells.count()).toBe(8);
    const texts = await cells.allTextContents();
    expect(texts.filter((text) => /\d\d:\d\d:\d\d/.test(text)), texts.join(' | ')).toHaveLength(4);
    expect(texts.filter((text) => text === 'never'), texts.join(' | ')).toHaveLength(4);
  });
});
