import { useMemo, useState } from 'react';
import { BarList, LineChart } from '../components/charts';
import { BudgetGauges } from '../components/budgets';
import { Card, Empty, ErrorBox, Loading, PageHeader } from '../components/ui';
import { count, ms, percent, shortDate, usd } from '../format';
import { useApi } from '../hooks';
import { Link } from '../router';
import type { LimitUse, ModelUsage, Project, ProjectTotals, Summary, TimelinePoint, Totals } from '../types';

export const PERIODS = {
  '24h': { label: 'Last 24 hours', hours: 24, bucket: 'hour' as const },
  '7d': { label: 'Last 7 days', hours: 24 * 7, bucket: 'day' as const },
  '30d': { label: 'Last 30 days', hours: 24 * 30, bucket: 'day' as const },
};
export type PeriodKey = keyof typeof PERIODS;

export function periodStart(key: PeriodKey, now = Date.now()): string {
  const start = new Date(now - PERIODS[key].hours * 3600_000);
  if (PERIODS[key].bucket === 'day') start.setUTCHours(0, 0, 0, 0);
  else start.setUTCMinutes(0, 0, 0);
  return start.toISOString();
}

/** The timeline with an empty bucket wherever no call happened, from `from` to `now`. */
export function fillBuckets(points: TimelinePoint[], from: string, bucket: 'hour' | 'day', now = Date.now()): TimelinePoint[] {
  const step = bucket === 'hour' ? 3600_000 : 86_400_000;
  const byStart = new Map(points.map((point) => [Math.floor(new Date(point.start).getTime() / step) * step, point]));
  const filled: TimelinePoint[] = [];
  const empty: Totals = {
    calls: 0, errors: 0, provider_calls: 0, provider_errors: 0, refused: 0, provider_avg_latency_ms: 0, by_outcome: {},
    input_tokens: 0, output_tokens: 0, cached_input_tokens: 0, cache_write_tokens: 0, total_tokens: 0,
    cost_usd: 0, input_cost_usd: 0, output_cost_usd: 0, avg_latency_ms: 0, p50_latency_ms: null, p95_latency_ms: null,
    avg_ttft_ms: 0, p50_ttft_ms: null, p95_ttft_ms: null,
  };
  for (let start = Math.floor(new Date(from).getTime() / step) * step; start <= now; start += step) {
    filled.push(byStart.get(start) ?? { ...empty, start: new Date(start).toISOString() });
  }
  return filled;
}

/**
 * The share of provider calls that failed: budget refusals and cancelled calls never reached
 * a provider and are counted apart.
 */
export function errorRate(totals: Pick<Totals, 'provider_calls' | 'provider_errors'>): number {
  const calls = totals.provider_calls;
  return calls === 0 ? 0 : (totals.provider_errors / calls) * 100;
}

/** Mean latency of provider calls (a refusal's 0 ms does not pull it down). */
export function providerLatency(totals: Pick<Totals, 'provider_avg_latency_ms'>): number {
  return totals.provider_avg_latency_ms;
}

/**
 * Top-N rows by spend for models, without the "no model" bucket of calls refused before
 * routing; each links to the calls it served (`calls`: the calls page to filter).
 */
export function topModels(rows: Pick<ModelUsage, 'model_id' | 'cost_usd' | 'calls'>[], limit = 5, calls = '/usage') {
  return rows
    .filter((row) => row.model_id !== '' && row.model_id !== '(none)')
    .slice(0, limit)
    .map((row) => ({ name: row.model_id, value: row.cost_usd, detail: count(row.calls) + ' calls', to: `${calls}?model=${encodeURIComponent(row.model_id)}` }));
}

function Stat({ label, value, raw, testId }: { label: string; value: string; raw: number; testId: string }) {
  return (
    <div className="stat" data-testid={testId} data-value={raw}>
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value}</div>
    </div>
  );
}

/** Spend, calls, tokens, latency and errors over a period, with the top models, projects and budgets. */
export function UsageCharts({ project, periodKey }: { project?: string; periodKey: PeriodKey }) {
  const period = PERIODS[periodKey];
  // Stable within the bucket, so re-renders do not refetch.
  const from = useMemo(() => periodStart(periodKey), [periodKey]);
  const query = { from, project };
  const summary = useApi<Summary>('/api/usage/summary', query);
  const timeline = useApi<{ points: TimelinePoint[]; bucket: 'hour' | 'day' }>('/api/usage/timeline', { ...query, bucket: period.bucket });
  if (summary.error) return <ErrorBox error={summary.error} retry={summary.reload} />;
  if (!summary.data || !timeline.data) return <Loading what="Loading usage" />;
  const totals = summary.data;
  const points = fillBuckets(timeline.data.points, from, timeline.data.bucket);
  const series = (pick: (point: TimelinePoint) => number) => points.map((point) => ({ at: Date.parse(point.start), label: shortDate(point.start, timeline.data!.bucket), value: pick(point) }));
  return (
    <>
      <div className="stats">
        <Stat label="Spend" value={usd(totals.cost_usd)} raw={totals.cost_usd} testId="total-cost" />
        <Stat label="Calls" value={count(totals.calls)} raw={totals.calls} testId="total-calls" />
        <Stat label="Tokens" value={count(totals.total_tokens)} raw={totals.total_tokens} testId="total-tokens" />
        <Stat label="Avg latency (provider calls)" value={ms(providerLatency(totals))} raw={providerLatency(totals)} testId="avg-latency" />
        {totals.p95_latency_ms != null ? <Stat label="p95 latency (provider calls)" value={ms(totals.p95_latency_ms)} raw={totals.p95_latency_ms} testId="p95-latency" /> : null}
        <Stat label="Provider error rate" value={percent(errorRate(totals))} raw={errorRate(totals)} testId="error-rate" />
        {totals.refused !== undefined ? <Stat label="Refused by budgets" value={count(totals.refused)} raw={totals.refused} testId="refused" /> : null}
      </div>
      <div className="chart-grid">
        <LineChart title="Spend" points={series((point) => point.cost_usd)} format={usd} summary={usd(totals.cost_usd)} testId="chart-cost" />
        <LineChart title="Calls" points={series((point) => point.calls)} format={count} summary={count(totals.calls)} testId="chart-calls" />
        <LineChart title="Tokens" points={series((point) => point.total_tokens)} format={count} summary={count(totals.total_tokens)} testId="chart-tokens" />
        <LineChart title="Latency (provider calls)" points={series((point) => providerLatency(point))} format={ms} summary={'avg ' + ms(providerLatency(totals))} testId="chart-latency" />
        <LineChart title="Provider error rate" points={series((point) => errorRate(point))} format={percent} summary={percent(errorRate(totals))} testId="chart-errors" />
      </div>
    </>
  );
}

/** The top projects by spend, from one request whatever the number of projects. */
export function TopProjects({ projects, from }: { projects: Project[]; from: string }) {
  const byProject = useApi<{ projects: ProjectTotals[] }>('/api/usage/by-project', { from });
  if (byProject.error) return <ErrorBox error={byProject.error} retry={byProject.reload} />;
  if (!byProject.data) return <Loading />;
  const names = new Map(projects.map((project) => [project.id, project.name]));
  const rows = byProject.data.projects
    .filter((row) => row.calls > 0)
    .sort((a, b) => b.cost_usd - a.cost_usd || b.calls - a.calls)
    .slice(0, 5)
    .map((row) => ({ name: names.get(row.project_id) ?? row.project_id, value: row.cost_usd, detail: count(row.calls) + ' calls', to: '/usage?project=' + encodeURIComponent(row.project_id) }));
  return <BarList rows={rows} format={usd} label="Top projects by spend" empty="No project has calls in this period." />;
}

export function OverviewPage() {
  const [periodKey, setPeriodKey] = useState<PeriodKey>('30d');
  const from = useMemo(() => periodStart(periodKey), [periodKey]);
  const byModel = useApi<{ models: (Totals & { model_id: string })[] }>('/api/usage/by-model', { from });
  const projects = useApi<{ projects: Project[] }>('/api/projects');
  const limits = useApi<{ limits: LimitUse[] }>('/api/usage/limits');
  return (
    <>
      <PageHeader title="Overview">
        <label className="inline-select">
          <span className="visually-hidden">Period</span>
          <select value={periodKey} onChange={(event) => setPeriodKey(event.target.value as PeriodKey)} data-testid="period-select">
            {Object.entries(PERIODS).map(([key, value]) => (
              <option key={key} value={key}>
                {value.label}
              </option>
            ))}
          </select>
        </label>
      </PageHeader>
      {projects.data && projects.data.projects.length === 0 ? (
        <Empty title="Welcome! Three steps to a first call.">
          <ol className="steps">
            <li>
              <Link to="/models">Add a model</Link> from the provider catalogue.
            </li>
            <li>
              <Link to="/projects">Create a project</Link> and add the model to it.
            </li>
            <li>Create a token in the project, or try a prompt in its playground.</li>
          </ol>
        </Empty>
      ) : null}
      <UsageCharts periodKey={periodKey} />
      <div className="two-columns">
        <Card title="Top models">
          {byModel.error ? (
            <ErrorBox error={byModel.error} retry={byModel.reload} />
          ) : !byModel.data ? (
            <Loading />
          ) : (
            <BarList
              label="Top models by spend"
              rows={topModels(byModel.data.models)}
              format={usd}
              empty="No model has calls in this period."
            />
          )}
        </Card>
        <Card title="Top projects">
          {projects.error ? <ErrorBox error={projects.error} retry={projects.reload} /> : !projects.data ? <Loading /> : <TopProjects projects={projects.data.projects} from={from} />}
        </Card>
      </div>
      <Card title="Budgets" actions={<Link to="/settings/budgets">Manage</Link>}>
        {limits.error ? (
          limits.error.routeMissing ? (
            <p className="muted">Budgets are not available on this server yet.</p>
          ) : (
            <ErrorBox error={limits.error} retry={limits.reload} />
          )
        ) : !limits.data ? (
          <Loading />
        ) : limits.data.limits.length === 0 ? (
          <p className="muted">No budgets yet. Set one on a project's General tab or under Settings → Budgets.</p>
        ) : (
          <BudgetGauges limits={limits.data.limits} projects={projects.data?.projects} />
        )}
      </Card>
    </>
  );
}
