// Budget gauges and the form that sets a budget (a limit, PRODUCT.md "Budgets and limits").

import { useState, type FormEvent } from 'react';
import { request } from '../api';
import { dateTime, metricValue } from '../format';
import { useAction } from '../hooks';
import type { LimitUse, Project } from '../types';
import { validateLimit, type Errors, type LimitFormValues } from '../validate';
import { Gauge } from './charts';
import { Button, ConfirmButton, FormError, SelectField, TextField, fieldError } from './ui';

export const METRICS = ['cost', 'calls', 'input_tokens', 'output_tokens', 'total_tokens'];
export const PERIODS = ['hourly', 'daily', 'weekly', 'monthly', 'yearly'];

/** "project: Support bot", "model: gpt-4o", "global" — the scope in words. */
export function scopeLabel(scope: string, projects: Project[] = []): string {
  if (scope === 'global') return 'Everything';
  return scope
    .split('/')
    .map((part) => {
      const [kind, ...rest] = part.split(':');
      const id = rest.join(':');
      if (kind === 'project') return 'Project ' + (projects.find((project) => project.id === id)?.name ?? id);
      if (kind === 'model') return 'model ' + id;
      if (kind === 'token') return 'token ' + id;
      return part;
    })
    .join(' · ');
}

export function BudgetGauges({ limits, projects, onRemove }: { limits: LimitUse[]; projects?: Project[]; onRemove?: (limit: LimitUse) => Promise<unknown> }) {
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
          />
          {onRemove ? (
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
