import { render, screen, waitFor } from '@testing-library/react';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { adoptSession, clearSession } from './api';
import { TopProjects } from './pages/Overview';
import type { Project } from './types';

function json(body: unknown) {
  return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
}

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
});

const totals = { errors: 0, input_tokens: 1, output_tokens: 1, cached_input_tokens: 0, total_tokens: 2, avg_latency_ms: 1 };

describe('the overview', () => {
  test('the top projects come from one request, however many projects there are', async () => {
    adoptSession({ access_token: 'a', refresh_token: 'r', expires_in: 900, user: { id: 'u', email: 'a@b.c', role: 'admin' } });
    const projects = Array.from({ length: 60 }, (_, index) => ({ id: `p${index}`, name: `Project ${index}` }) as Project);
    const urls: string[] = [];
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        urls.push(url);
        return json({
          projects: [
            { ...totals, project_id: 'p7', calls: 3, cost_usd: 0.5 },
            { ...totals, project_id: 'p42', calls: 9, cost_usd: 2.25 },
            { ...totals, project_id: 'p-gone', calls: 1, cost_usd: 0.1 },
            { ...totals, project_id: 'p3', calls: 0, cost_usd: 0 },
          ],
        });
      }),
    );
    render(<TopProjects projects={projects} from="2026-01-01T00:00:00.000Z" />);
    await waitFor(() => expect(screen.getByText('Project 42')).toBeTruthy());
    expect(urls).toEqual(['/api/usage/by-project?from=2026-01-01T00%3A00%3A00.000Z']);
    const names = screen.getAllByText(/^(Project \d+|p-gone)$/).map((element) => element.textContent);
    expect(names, 'most expensive first; a deleted project keeps its id; no empty rows').toEqual(['Project 42', 'Project 7', 'p-gone']);
  });
});
