// Budget gauges and the form that sets a budget (a limit, PRODUCT.md "Budgets and limits").

import { useMemo, useState, type FormEvent } from 'react';
import { request } from '../api';
import { dateTime, metricValue, scopeInWords } from '../format';
import { useAction, useApi } from '../hooks';
import type { AlertList, AlertRecord, LimitUse, Project, Summary } from '../types';
import { validateLimit, type Errors, type LimitFormValues } from '../validate';
import { Gauge } from './charts';
import { Badge, Button, ConfirmButton, Empty, ErrorBox, FormError, Loading, SelectField, Table, TextField, Unavailable, fieldError } from './ui';

export const METRICS = ['cost', 'calls', 'input_tokens', 'output_tokens', 'total_tokens'];
export const PERIODS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'];

/** "Project Support bot · model gpt-4o", "Everything": the scope in words. */
export function scopeLabel(scope: string, projects: Project[] = []): string {
  return scopeInWords(scope, (id) => projects.find((project) => project.id === id)?.name);
}

/** What a budget means for the next call: its colour, a word, and why. */
export interface BudgetState {
  tone: 'good' | 'warn' | 'bad';
  word: string;
  reason: string;
}

/**
 * The state of a limit for callers: refusing whenever the next call cannot be admitted. A
 * call is admitted only when its whole estimate (prompt plus `max_tokens` at the model's
 * prices) fits in what is left, so a budget refuses before it reads 100 %. The server says
 * what the last call it refused in this window needed (`last_refusal`): while what is left
 * is less, calls like it are refused. Before any refusal, `typical` (the average amount of
 * one call, from the usage summary) is the best guess of the next call's estimate.
 */
export function budgetState(limit: Pick<LimitUse, 'metric' | 'value' | 'used' | 'reserved' | 'percent' | 'mode' | 'last_refusal'>, typical?: number): BudgetState {
  const format = (value: number) => metricValue(limit.metric, value);
  if (limit.mode === 'disable') return { tone: 'good', word: 'lifted', reason: 'lifts the limit above it; enforces nothing' };
  if (limit.value <= 0) return { tone: 'bad', word: 'refusing', reason: 'a limit of 0 refuses every call' };
  // Sums of floating-point amounts: what is left within a billionth of the limit is nothing.
  const left = limit.value - limit.used - limit.reserved;
  if (left <= limit.value * 1e-9 || (limit.metric === 'calls' && left < 1)) return { tone: 'bad', word: 'exhausted', reason: 'every call is refused until the window resets' };
  if (limit.last_refusal && left < limit.last_refusal.needed) {
    return {
      tone: 'bad',
      word: 'refusing',
      reason: `${format(left)} left; a call needing ${format(limit.last_refusal.needed)} was refused at ${dateTime(limit.last_refusal.at)}: calls like it are refused until the window resets`,
    };
  }
  if (typical !== undefined && typical > 0 && left < typical) {
    return {
      tone: 'bad',
      word: 'refusing',
      reason: `${format(left)} left, less than an average call (${format(typical)}): calls whose estimate does not fit are refused`,
    };
  }
  if (limit.percent >= 80) return { tone: 'warn', word: 'nearly used', reason: `${format(left)} left; a call is refused when its estimate does not fit` };
  return { tone: 'good', word: 'admitting', reason: `${format(left)} left` };
}

/** The average amount of one call for `metric`, from a usage summary. */
export function typicalCall(summary: Summary | undefined, metric: string): number | undefined {
  if (!summary) return undefined;
  const calls = summary.provider_calls ?? summary.calls;
  if (!calls) return undefined;
  if (metric === 'cost') return summary.cost_usd / calls;
  if (metric === 'calls') return 1;
  if (metric === 'input_tokens') return summary.input_tokens / calls;
  if (metric === 'output_tokens') return summary.output_tokens / calls;
  if (metric === 'total_tokens') return summary.total_tokens / calls;
  return undefined;
}

export function BudgetGauges({ limits, projects, onRemove, canRemove }: { limits: LimitUse[]; projects?: Project[]; onRemove?: (limit: LimitUse) => Promise<unknown>; canRemove?: (limit: LimitUse) => boolean }) {
  // The last week's average call, the best guess of what the next call will reserve.
  const from = useMemo(() => new Date(Date.now() - 7 * 86_400_000).toISOString().slice(0, 13) + ':00:00Z', []);
  const summary = useApi<Summary>('/api/usage/summary', { from });
  return (
    <div className="gauges">
      {limits.map((limit) => (
        <div key={limit.id} className="gauge-item">
          <Gauge
            label={`${scopeLabel(limit.scope, projects)} · ${limit.metric.replace('_', ' ')} · ${limit.window}`}
            used={limit.used}
            limit={limit.value}
            percent={limit.percent}
            format={(value) => metricValue(limit.metric, value)}
            detail={'resets ' + dateTime(limit.resets_at)}
            state={budgetState(limit, typicalCall(summary.data, limit.metric))}
          />
          {onRemove && (canRemove?.(limit) ?? true) ? (
            <ConfirmButton
              label="Remove"
              variant="ghost"
              title="Remove this budget?"
              message={<>Calls will no longer be limited by {metricValue(limit.metric, limit.value)} per {limit.window} window.</>}
              confirmLabel="Remove budget"
              onConfirm={() => onRemove(limit)}
            />
          ) : null}
        </div>
      ))}
    </div>
  );
}

/** How many alerts the history shows; the API has them all. */
const ALERTS_SHOWN = 50;

function alertWhat(alert: AlertRecord): { tone: 'warn' | 'bad' | 'good'; word: string } {
  if (alert.event === 'budget.exhausted') return { tone: 'bad', word: 'exhausted' };
  if (alert.event === 'budget.reset') return { tone: 'good', word: 'reset' };
  return { tone: 'warn', word: `${alert.threshold ?? '?'} % used` };
}

function deliveryText(alert: AlertRecord): string {
  if (alert.deliveries.length === 0) return 'no channel';
  const count = (outcome: string) => alert.deliveries.filter((delivery) => delivery.outcome === outcome).length;
  return [
    [count('delivered'), 'delivered'],
    [count('pending'), 'pending'],
    [count('failed'), 'failed'],
  ]
    .filter(([n]) => n)
    .map(([n, word]) => `${n} ${word}`)
    .join(', ');
}

/**
 * The budget alerts sent, newest first: when, about which budget, what happened and how
 * the delivery went. `scope` keeps those about one scope and the scopes inside it (a
 * project's page: `project:ID`).
 */
export function AlertHistory({ projects, scope }: { projects?: Project[]; scope?: string }) {
  const alerts = useApi<AlertList>('/api/alerts');
  if (alerts.error?.routeMissing) return <Unavailable what="Alert history" />;
  if (alerts.error) return <ErrorBox error={alerts.error} retry={alerts.reload} />;
  if (!alerts.data) return <Loading />;
  const about = (alert: AlertRecord) => !scope || alert.scope === scope || (alert.scope?.startsWith(scope + '/') ?? false);
  const mine = alerts.data.alerts.filter(about);
  if (mine.length === 0) return <Empty title="No alerts yet.">An alert is sent when a budget crosses a threshold, runs out, or resets after running out.</Empty>;
  return (
    <>
      <Table label="Alerts sent" className="alerts-table">
        <thead>
          <tr>
            <th scope="col">Sent</th>
            <th scope="col">Budget</th>
            <th scope="col">Event</th>
            <th scope="col">Delivery</th>
          </tr>
        </thead>
        <tbody>
          {mine.slice(0, ALERTS_SHOWN).map((alert) => {
            const what = alertWhat(alert);
            return (
              <tr key={`${alert.limit_id}-${alert.event}-${alert.threshold}-${alert.window_start}`} data-testid="alert-row">
                <td>{dateTime(alert.fired_at)}</td>
                <td>
                  {alert.scope ? scopeLabel(alert.scope, projects) : <code>{alert.limit_id}</code>}
                  {alert.message ? <div className="muted small">{alert.message}</div> : null}
                </td>
                <td>
                  <Badge tone={what.tone}>{what.word}</Badge>
                </td>
                <td>{deliveryText(alert)}</td>
              </tr>
            );
          })}
        </tbody>
      </Table>
      {mine.length > ALERTS_SHOWN ? <p className="muted">
          The newest {ALERTS_SHOWN} of {mine.length}; <code>GET /api/alerts</code> has them all.
        </p> : null}
    </>
  );
}

/** Adds a limit on `scope`; `onSaved` gets the new limit. */
export function LimitForm({ scope, onSaved, submit }: { scope: string; onSaved: () => void; submit?: (body: Record<string, unknown>) => Promise<unknown> }) {
  const [values, setValues] = useState<LimitFormValues>({ metric: 'cost', windowKind: 'period', period: 'monthly', rolling: '1h', value: '' });
  const [errors, setErrors] = useState<Errors>({});
  const action = useAction();
  const set = (patch: Partial<LimitFormValues>) => setValues((current) => ({ ...current, ...patch }));
  const send = submit ?? ((body: Record<string, unknown>) => request('/api/limits', { method: 'POST', body }));
  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    const found = validateLimit(values);
    setErrors(found);
    if (Object.keys(found).length > 0) return;
    const body: Record<string, unknown> = { scope, metric: values.metric, value: Number(values.value) };
    if (values.windowKind === 'period') body.period = values.period;
    else body.rolling = values.rolling.trim();
    const done = await action.run(() => send(body));
    if (done !== undefined) {
      set({ value: '' });
      onSaved();
    }
  };
  return (
    <form className="form-grid" onSubmit={onSubmit} noValidate aria-label="Add a budget">
      <SelectField label="Measure" value={values.metric} onChange={(event) => set({ metric: event.target.value })}>
        {METRICS.map((metric) => (
          <option key={metric} value={metric}>
            {metric === 'cost' ? 'cost (USD)' : metric.replace('_', ' ')}
          </option>
        ))}
      </SelectField>
      <SelectField label="Window" value={values.windowKind} onChange={(event) => set({ windowKind: event.target.value as 'period' | 'rolling' })}>
        <option value="period">calendar period</option>
        <option value="rolling">rolling span</option>
      </SelectField>
      {values.windowKind === 'period' ? (
        <SelectField label="Period" value={values.period} onChange={(event) => set({ period: event.target.value })}>
          {PERIODS.map((period) => (
            <option key={period}>{period}</option>
          ))}
        </SelectField>
      ) : (
        <TextField label="Span" value={values.rolling} onChange={(event) => set({ rolling: event.target.value })} error={fieldError(errors, action.error, 'rolling')} hint="30s, 15m, 1h, 7d" />
      )}
      <TextField
        label={values.metric === 'cost' ? 'Limit (USD)' : 'Limit'}
        inputMode="decimal"
        value={values.value}
        onChange={(event) => set({ value: event.target.value })}
        error={fieldError(errors, action.error, 'value')}
      />
      <div className="form-actions">
        <FormError error={action.error} fields={['rolling', 'value']} />
        <Button type="submit" variant="primary" busy={action.pending}>
          Set budget
        </Button>
      </div>
    </form>
  );
}
