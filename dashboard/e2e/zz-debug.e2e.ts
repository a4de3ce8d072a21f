import { test } from 'vitest';
import { startStack, settled } from '/work/main/dashboard/e2e/harness';
test('debug', async () => {
  const stack = await startStack();
  try {
    const r = await fetch(stack.url + '/api/setup/first-admin', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'a@b.c', password: 'a long password' }) });
    const s = await r.json();
    const p = await (await fetch(stack.url + '/api/projects', { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + s.access_token }, body: JSON.stringify({ name: 'X' }) })).json();
    const H = { 'content-type': 'application/json', authorization: 'Bearer ' + s.access_token };
    await fetch(stack.url + '/api/models', { method: 'POST', headers: H, body: JSON.stringify({ id: 'gpt-4o-mini', provider: 'openai', endpoint: stack.mock.openai, api_key: 'sk-mock-upstream-key' }) });
    await fetch(stack.url + `/api/projects/${p.id}/models`, { method: 'POST', headers: H, body: JSON.stringify({ model_id: 'gpt-4o-mini' }) });
    await fetch(stack.url + `/api/projects/${p.id}/tokens`, { method: 'POST', headers: H, body: JSON.stringify({ labels: ['e2e'] }) });
    const page = await stack.browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(stack.url + '/dashboard/login');
    await page.evaluate((t) => localStorage.setItem('routerly.refresh', t), s.refresh_token);
    for (const path of [`/projects/${p.id}/tokens`, '/models', '/settings/users']) {
      await page.goto(stack.url + '/dashboard' + path);
      await settled(page);
      await page.setViewportSize({ width: 375, height: 800 });
      await page.waitForTimeout(100);
      const out = await page.evaluate(() => {
        const res: string[] = [`doc ${document.documentElement.scrollWidth}`];
        for (const el of Array.from(document.querySelectorAll('*'))) {
          const r = el.getBoundingClientRect();
          if (r.right > 380) { res.push(`ALL ${el.tagName}.${el.className} ${Math.round(r.right)}`);
            let anc = el.parentElement; let clipped = false;
            while (anc) { const o = getComputedStyle(anc).overflowX; if (o !== 'visible') { clipped = anc !== document.body && anc !== document.documentElement; break; } anc = anc.parentElement; }
            if (!clipped) res.push(`${el.tagName}.${el.className} right=${Math.round(r.right)} pos=${getComputedStyle(el).position}`);
          }
        }
        return res.slice(0, 30);
      });
      console.log(path, out);
    }
  } finally { await stack.stop(); }
});
