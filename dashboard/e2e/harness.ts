// Starts what the end-to-end tests drive: `routerly-mock` (mock providers on loopback),
// `routerly serve` on a fresh ROUTERLY_HOME, and Debian's Chromium through playwright-core.
// Binaries come from ROUTERLY_BIN / ROUTERLY_MOCK_BIN, else the debug build.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const RESULTS = resolve(REPO, 'dashboard/test-results');
export const MOCK_API_KEY = 'sk-mock-upstream-key';

function binary(envVar: string, fallback: string): string {
  return resolve(REPO, process.env[envVar] ?? fallback);
}

function firstLine(child: ChildProcessWithoutNullStreams, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolveLine, reject) => {
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error(`${child.spawnfile} printed nothing within ${timeoutMs} ms`)), timeoutMs);
    lines.once('line', (line) => {
      clearTimeout(timer);
      resolveLine(line);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${child.spawnfile} exited with ${code} before printing its first line`));
    });
  });
}

async function stop(child: ChildProcessWithoutNullStreams | undefined) {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((done) => child.once('exit', done));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export interface Stack {
  url: string;
  mock: { openai: string; anthropic: string };
  browser: Browser;
  home: string;
  stop: () => Promise<void>;
}

/** Mock providers, a fresh Routerly and a browser; `stop` ends all three and removes the home. */
export async function startStack(): Promise<Stack> {
  const root = mkdtempSync(join(tmpdir(), 'routerly-dashboard-e2e-'));
  const home = join(root, 'home');
  mkdirSync(home);
  const mockProcess = spawn(binary('ROUTERLY_MOCK_BIN', 'target/debug/routerly-mock'), ['--host', '127.0.0.1', '--api-key', MOCK_API_KEY], { stdio: 'pipe' });
  let routerlyProcess: ChildProcessWithoutNullStreams | undefined;
  let browser: Browser | undefined;
  try {
    const mock = JSON.parse(await firstLine(mockProcess));
    const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('ROUTERLY_') && !key.startsWith('XDG_')));
    Object.assign(env, { ROUTERLY_HOME: home, XDG_CONFIG_HOME: join(root, 'xdg'), HOME: root, ROUTERLY_LOG: process.env.ROUTERLY_TEST_LOG ?? 'warn' });
    const log = openSync(join(root, 'routerly.log'), 'a');
    routerlyProcess = spawn(binary('ROUTERLY_BIN', 'target/debug/routerly'), ['serve', '--host', '127.0.0.1', '--port', '0'], { env, stdio: ['pipe', 'pipe', log] }) as ChildProcessWithoutNullStreams;
    const line = await firstLine(routerlyProcess);
    const prefix = 'routerly listening on ';
    if (!line.startsWith(prefix)) throw new Error(`routerly did not start: ${line}`);
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      headless: true,
      // Playwright gives every launch a new, empty profile directory of its own. Without the
      // background-networking flags Chromium keeps dialling Google's hosts, which this
      // closed network refuses.
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    const started = { url: line.slice(prefix.length).trim(), mock, browser, home };
    return {
      ...started,
      stop: async () => {
        await browser?.close();
        await stop(routerlyProcess);
        await stop(mockProcess);
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await browser?.close();
    await stop(routerlyProcess);
    await stop(mockProcess);
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
}

/** Creates the first admin through the setup API; their access token. */
export async function firstAdmin(stack: Stack, email: string, password: string): Promise<string> {
  const setup = await fetch(stack.url + '/api/setup/first-admin', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (setup.status !== 201) throw new Error(`first-admin setup answered ${setup.status}: ${await setup.text()}`);
  return ((await setup.json()) as { access_token: string }).access_token;
}

/** Logs `page` in through the dashboard's login form and waits for the overview. */
export async function logIn(stack: Stack, page: Page, email: string, password: string) {
  await page.goto(stack.url + '/dashboard/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL((url) => url.pathname === '/dashboard/');
  await settled(page);
}

/** Waits until the page shows no loading state. */
export async function settled(page: Page) {
  await page.waitForFunction(() => !document.querySelector('.state-loading, [aria-busy="true"]'), undefined, { timeout: 15_000 });
}

export const VIEWPORTS = [375, 1280] as const;
export const SCHEMES = ['light', 'dark'] as const;

/**
 * Screenshots the current page at both widths in both themes (test-results/screenshots) and
 * returns the combinations where the page scrolls sideways or a table is cut without its
 * "scroll sideways" hint.
 */
export async function screenshotAll(page: Page, name: string): Promise<string[]> {
  const wide: string[] = [];
  for (const width of VIEWPORTS) {
    for (const scheme of SCHEMES) {
      await page.setViewportSize({ width, height: 800 });
      await page.emulateMedia({ colorScheme: scheme, reducedMotion: 'reduce' });
      await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
      const theme = await page.evaluate(() => document.documentElement.dataset.theme);
      if (theme !== scheme) wide.push(`${name} at ${width}px: theme is ${theme}, wanted ${scheme}`);
      const sizes = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, body: document.body.scrollWidth, inner: window.innerWidth }));
      if (sizes.scroll > sizes.inner || sizes.body > sizes.inner) {
        // Name the widest elements, so a failure says what to fix.
        const culprits = await page.evaluate(() =>
          Array.from(document.querySelectorAll('body *'))
            .filter((element) => element.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 4)
            .map((element) => `${element.tagName.toLowerCase()}.${element.className}`),
        );
        wide.push(`${name} at ${width}px ${scheme}: scrollWidth ${Math.max(sizes.scroll, sizes.body)} > innerWidth ${sizes.inner} (${culprits.join(', ')})`);
      }
      // A table wider than the screen scrolls inside its card; it must say so.
      await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
      const silent = await page.evaluate(() =>
        Array.from(document.querySelectorAll<HTMLElement>('.table-wrap'))
          .filter((wrap) => wrap.getClientRects().length > 0 && wrap.scrollWidth > wrap.clientWidth + 1 && !wrap.nextElementSibling?.matches('[data-testid="table-hint"]'))
          .map((wrap) => wrap.getAttribute('aria-label')),
      );
      if (silent.length) wide.push(`${name} at ${width}px ${scheme}: tables cut without a hint: ${silent.join(', ')}`);
      await page.screenshot({ path: join(RESULTS, 'screenshots', `${name}-${width}-${scheme}.png`), fullPage: true });
    }
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.emulateMedia({ colorScheme: 'light' });
  return wide;
}
