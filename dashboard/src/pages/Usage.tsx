import { useRef, useState } from 'react';
import { authorizedFetch, withQuery } from '../api';
import { CallDetail, CallsTable } from '../components/calls';
import { Button, Card, Empty, ErrorBox, Loading, PageHeader, SelectField, TextField } from '../components/ui';
import { count, usd } from '../format';
import { useApi } from '../hooks';
import { useLocation } from '../router';
import type { Model, Project, UsagePage as Page, UsageRecord } from '../types';

const PAGE_SIZE = 25;
const OUTCOMES = ['success', 'error', 'timeout', 'budget_exceeded', 'cancelled'];

interface Filters {
  project: string;
  model: string;
  outcome: string;
  from: string;
  to: string;
  token: string;
  user: string;
  tag: string;
  trace: string;
}

export const NO_FILTERS: Filters = { project: '', model: '', outcome: '', from: '', to: '', token: '', user: '', tag: '', trace: '' };

/** The query of `/api/usage` for the filters: dates are whole days in UTC, `to` inclusive. */
export function usageQuery(filters: Filters, fixedProject?: string): Record<string, string | undefined> {
  const nextDay = (date: string) => new Date(new Date(date + 'T00:00:00Z').getTime() + 86_400_000).toISOString();
  return {
    project: fixedProject ?? (filters.project || undefined),
    model: filters.model || undefined,
    outcome: filters.outcome || undefined,
    from: filters.from ? new Date(filters.from + 'T00:00:00Z').toISOString() : undefined,
    to: filters.to ? nextDay(filters.to) : undefined,
    token: filters.token || undefined,
    user: filters.user.trim() || undefined,
    tag: filters.tag.trim() || undefined,
    // The `x-routerly-trace-id` a client received: finds that call whatever the other filters.
    trace: filters.trace.trim() || undefined,
  };
}

export function CallsExplorer({ fixedProject }: { fixedProject?: string }) {
  // Other pages link here with a filter (`/usage?model=gpt-4o`, `?trace=…`).
  const search = useLocation().search;
  const [filters, setFilters] = useState<Filters>(() => ({
    ...NO_FILTERS,
    project: search.get('project') ?? '',
    model: search.get('model') ?? '',
    outcome: search.get('outcome') ?? '',
    trace: search.get('trace') ?? '',
  }));
  const [offset, setOffset] = useState(0);
  const [open, setOpen] = useState<UsageRecord | null>(null);
  const opener = useRef<HTMLElement | null>(null);
  const openCall = (record: UsageRecord, row: HTMLElement | null) => {
    opener.current = row?.querySelector('button') ?? null;
    setOpen(record);
  };
  const closeCall = () => {
    setOpen(null);
    opener.current?.focus();
  };
  const [exportError, setExportError] = useState<Error | null>(null);
  const [exporting, setExporting] = useState(false);
  const projects = useApi<{ projects: Project[] }>('/api/projects');
  const models = useApi<{ models: Model[] }>('/api/models');
  const query = usageQuery(filters, fixedProject);
  const page = useApi<Page>('/api/usage', { ...query, limit: PAGE_SIZE, offset });
  const set = (patch: Partial<Filters>) => {
    setFilters((current) => ({ ...current, ...patch }));
    setOffset(0);
  };
  const exportCsv = async () => {
    setExporting(true);
    setExportError(null);
    try {
      const response = await authorizedFetch(withQuery('/api/usage/export', query));
      if (!response.ok) throw new Error(`the export failed (${response.status})`);
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement('a');
      link.href = url;
      link.download = `routerly-usage-${new Date().toISOString().slice(0, 10)}.csv`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (error) {
      setExportError(error as Error);
    } finally {
      setExporting(false);
    }
  };
  const data = page.data;
  const tokens = (projects.data?.projects ?? []).filter((project) => !fixedProject || project.id === fixedProject).flatMap((project) => project.tokens ?? []);
  return (
    <>
      <Card>
        <form className="trace-search" role="search" aria-label="Find a call by trace id" onSubmit={(event) => event.preventDefault()}>
          <TextField
            label="Trace id"
            value={filters.trace}
            onChange={(event) => set({ trace: event.target.value })}
            hint="the x-routerly-trace-id header a client received"
            placeholder="0193…"
          />
          {filters.trace ? (
            <Button variant="ghost" onClick={() => set({ trace: '' })}>
              Clear
            </Button>
          ) : null}
        </form>
        <form className="filters" aria-label="Filters" onSubmit={(event) => event.preventDefault()}>
          {fixedProject ? null : (
            <SelectField label="Project" value={filters.project} onChange={(event) => set({ project: event.target.value })}>
              <option value="">All projects</option>
              {projects.data?.projects.map((project) => (
                <option key={project.id} value={project.id}>
                  {project.name}
                </option>
              ))}
            </SelectField>
          )}
          <SelectField label="Model" value={filters.model} onChange={(event) => set({ model: event.target.value })}>
            <option value="">All models</option>
            {models.data?.models.map((model) => (
              <option key={model.id}>{model.id}</option>
            ))}
          </SelectField>
          <SelectField label="Outcome" value={filters.outcome} onChange={(event) => set({ outcome: event.target.value })}>
            <option value="">Any outcome</option>
            {OUTCOMES.map((outcome) => (
              <option key={outcome} value={outcome}>
                {outcome.replace('_', ' ')}
              </option>
            ))}
          </SelectField>
          {tokens.length > 0 ? (
            <SelectField label="Token" value={filters.token} onChange={(event) => set({ token: event.target.value })}>
              <option value="">Any token</option>
              {tokens.map((token) => (
                <option key={token.id} value={token.id}>
                  {token.labels.length ? token.labels.join(', ') + ' · ' : ''}
                  {token.snippet}
                </option>
              ))}
            </SelectField>
          ) : null}
          <TextField label="User" value={filters.user} onChange={(event) => set({ user: event.target.value })} hint="the request's user field" />
          <TextField label="Tag" value={filters.tag} onChange={(event) => set({ tag: event.target.value })} />
          <TextField label="From (UTC)" type="date" value={filters.from} onChange={(event) => set({ from: event.target.value })} />
          <TextField label="To (UTC)" type="date" value={filters.to} onChange={(event) => set({ to: event.target.value })} />
          <div className="form-actions">
            <Button onClick={exportCsv} busy={exporting}>
              Export CSV
            </Button>
          </div>
        </form>
        <ErrorBox error={exportError} />
      </Card>
      {open ? <CallDetail record={open} onClose={closeCall} /> : null}
      <Card>
        {page.error ? (
          <ErrorBox error={page.error} retry={page.reload} />
        ) : !data ? (
          <Loading what="Loading calls" />
        ) : data.records.length === 0 ? (
          <Empty title="No calls match.">Calls appear here as soon as a client sends one with a project token.</Empty>
        ) : (
          <>
            <p className="muted small" data-testid="page-summary">
              {data.total === null ? 'Calls' : `${count(data.total)} ${data.total === 1 ? 'call' : 'calls'}`}; this page {usd(data.records.reduce((sum, record) => sum + record.cost_usd, 0))}
            </p>
            <CallsTable records={data.records} projects={projects.data?.projects} onOpen={openCall} />
            <div className="pager">
              <Button onClick={() => setOffset(Math.max(0, offset - PAGE_SIZE))} disabled={offset === 0}>
                Newer
              </Button>
              <span>
                {offset + 1}–{offset + data.records.length}
                {data.total === null ? '' : ` of ${data.total}`}
              </span>
              <Button onClick={() => setOffset(offset + PAGE_SIZE)} disabled={!data.has_more}>
                Older
              </Button>
            </div>
          </>
        )}
      </Card>
    </>
  );
}

export function UsagePage() {
  return (
    <>
      <PageHeader title="Usage" />
      <CallsExplorer />
    </>
  );
}
