import { useEffect, useMemo, useState, type DragEvent, type KeyboardEvent } from 'react';
import { ApiError, request, requestFirst } from '../../api';
import { Button, Card, Checkbox, ErrorBox, FormError, Loading, SelectField, Table, TextAreaField, TextField, Unavailable } from '../../components/ui';
import { useAction, useApi } from '../../hooks';
import type { Model, Policy, Totals } from '../../types';
import { missing, usePermissions } from '../../permissions';
import { ModelHealth } from '../Models';
import type { RoutingHealth } from '../../api-types';
import type { TabProps } from '../Project';

type FieldKind = 'number' | 'boolean' | 'model' | 'models' | 'json';

interface PolicyField {
  key: string;
  label: string;
  kind: FieldKind;
  default?: unknown;
  hint?: string;
}

/** Every policy PRODUCT.md ("Routing policies") names, with its settings and their defaults. */
export const POLICY_DEFINITIONS: { type: string; title: string; summary: string; fields: PolicyField[] }[] = [
  { type: 'cheapest', title: 'Cheapest', summary: 'Prefers the lowest price; free models first.', fields: [] },
  {
    type: 'health',
    title: 'Health',
    summary: 'Avoids models with recent errors and timeouts; a circuit breaker excludes failing ones.',
    fields: [
      { key: 'windowMinutes', label: 'Window (minutes)', kind: 'number', default: 20 },
      { key: 'halfLifeMinutes', label: 'Half-life (minutes)', kind: 'number', default: 5 },
      { key: 'pseudoCounts', label: 'Pseudo-counts', kind: 'number', default: 2 },
      { key: 'circuitBreaker', label: 'Circuit breaker (error rate 0–1)', kind: 'number', default: 0.9 },
    ],
  },
  {
    type: 'performance',
    title: 'Performance',
    summary: 'Prefers low recent latency (time to first token for streams).',
    fields: [
      { key: 'windowMinutes', label: 'Window (minutes)', kind: 'number', default: 20 },
      { key: 'halfLifeMinutes', label: 'Half-life (minutes)', kind: 'number', default: 5 },
      { key: 'minSamples', label: 'Minimum samples', kind: 'number', default: 1 },
    ],
  },
  { type: 'capability', title: 'Capability', summary: 'Excludes models that lack what the request uses: images, tools, JSON, thinking.', fields: [] },
  { type: 'context', title: 'Context', summary: 'Excludes models whose context window cannot fit the prompt.', fields: [] },
  {
    type: 'rate-limit',
    title: 'Rate limit',
    summary: 'Counts calls per model in a window and excludes models at their limit.',
    fields: [
      { key: 'windowMinutes', label: 'Window (minutes)', kind: 'number', default: 1 },
      { key: 'maxCallsPerWindow', label: 'Most calls per window', kind: 'number' },
    ],
  },
  { type: 'fairness', title: 'Fairness', summary: 'Spreads calls evenly across models.', fields: [{ key: 'windowMinutes', label: 'Window (minutes)', kind: 'number', default: 60 }] },
  { type: 'budget-remaining', title: 'Budget remaining', summary: 'Prefers models with more of their tightest budget left.', fields: [] },
  {
    type: 'llm',
    title: 'LLM router',
    summary: 'Asks a routing model to score candidates against their routing prompts.',
    fields: [
      { key: 'routingModelId', label: 'Routing model', kind: 'model' },
      { key: 'fallbackModelIds', label: 'Fallback routing models', kind: 'models', default: [] },
      { key: 'maxCompletionTokens', label: 'Max completion tokens', kind: 'number', default: 200 },
      { key: 'maxUserMessageChars', label: 'Max user message characters', kind: 'number', default: 4000 },
      { key: 'includeReason', label: 'Ask for a reason', kind: 'boolean', default: false },
      { key: 'memory', label: 'Conversation memory', kind: 'boolean', default: false },
      { key: 'memoryCount', label: 'Choices remembered', kind: 'number', default: 5 },
    ],
  },
  {
    type: 'semantic-intent',
    title: 'Semantic intent',
    summary: 'Embeds the last user message and keeps the models of the closest intent.',
    fields: [
      { key: 'embeddingModelId', label: 'Embedding model', kind: 'model' },
      { key: 'intents', label: 'Intents (JSON)', kind: 'json', default: {}, hint: '{"code": {"examples": ["fix this bug"], "models": ["gpt-4o"]}}' },
      { key: 'absoluteThreshold', label: 'Absolute threshold', kind: 'number', default: 0.6 },
      { key: 'ambiguityThreshold', label: 'Ambiguity threshold', kind: 'number', default: 0.08 },
    ],
  },
];

export function defaultConfig(type: string): Record<string, unknown> {
  const definition = POLICY_DEFINITIONS.find((candidate) => candidate.type === type);
  const config: Record<string, unknown> = {};
  for (const field of definition?.fields ?? []) if (field.default !== undefined) config[field.key] = field.default;
  return config;
}

/** The project's policies in its order, then every other known policy, disabled, with defaults. */
export function withAllPolicies(policies: Policy[]): Policy[] {
  const known = policies.map((policy) => ({ ...policy, config: { ...defaultConfig(policy.type), ...(policy.config ?? {}) } }));
  for (const definition of POLICY_DEFINITIONS) {
    if (!known.some((policy) => policy.type === definition.type)) known.push({ type: definition.type, enabled: false, config: defaultConfig(definition.type) });
  }
  return known;
}

/** `list` with the item at `from` moved to `to`. */
export function reorder<T>(list: T[], from: number, to: number): T[] {
  if (from === to || from < 0 || to < 0 || from >= list.length || to >= list.length) return list;
  const next = [...list];
  const [moved] = next.splice(from, 1);
  next.splice(to, 0, moved);
  return next;
}

/** The weight the routing maths gives each enabled policy: n − i for position i of n. */
export function policyWeights(policies: Policy[]): Map<string, number> {
  const enabled = policies.filter((policy) => policy.enabled);
  return new Map(enabled.map((policy, index) => [policy.type, enabled.length - index]));
}

function policiesOf(body: unknown): Policy[] {
  if (Array.isArray(body)) return body as Policy[];
  const record = (body ?? {}) as Record<string, unknown>;
  if (Array.isArray(record.policies)) return record.policies as Policy[];
  const routing = record.routing as Record<string, unknown> | undefined;
  if (routing && Array.isArray(routing.policies)) return routing.policies as Policy[];
  return [];
}

function PolicyConfigForm({ policy, models, onChange }: { policy: Policy; models: Model[]; onChange: (config: Record<string, unknown>) => void }) {
  const definition = POLICY_DEFINITIONS.find((candidate) => candidate.type === policy.type);
  if (!definition || definition.fields.length === 0) return <p className="muted small">No settings.</p>;
  const set = (key: string, value: unknown) => onChange({ ...policy.config, [key]: value });
  return (
    <div className="form-grid">
      {definition.fields.map((field) => {
        const value = policy.config[field.key];
        const label = field.label + (field.default !== undefined && field.kind === 'number' ? ` (default ${field.default})` : '');
        if (field.kind === 'boolean') return <Checkbox key={field.key} label={field.label} checked={value === true} onChange={(event) => set(field.key, event.target.checked)} />;
        if (field.kind === 'model')
          return (
            <SelectField key={field.key} label={field.label} value={String(value ?? '')} onChange={(event) => set(field.key, event.target.value || undefined)}>
              <option value="">Choose a model</option>
              {models.map((model) => (
                <option key={model.id}>{model.id}</option>
              ))}
            </SelectField>
          );
        if (field.kind === 'models')
          return (
            <TextField
              key={field.key}
              label={field.label}
              value={Array.isArray(value) ? value.join(', ') : ''}
              onChange={(event) => set(field.key, event.target.value.split(',').map((item) => item.trim()).filter(Boolean))}
              hint="Model ids, separated by commas."
            />
          );
        if (field.kind === 'json') return <JsonField key={field.key} label={field.label} hint={field.hint} value={value} onChange={(parsed) => set(field.key, parsed)} />;
        return (
          <TextField
            key={field.key}
            label={label}
            inputMode="decimal"
            value={value === undefined || value === null ? '' : String(value)}
            onChange={(event) => {
              const text = event.target.value.trim();
              set(field.key, text === '' ? undefined : Number.isFinite(Number(text)) ? Number(text) : text);
            }}
            error={value !== undefined && typeof value !== 'number' ? 'Enter a number.' : undefined}
          />
        );
      })}
    </div>
  );
}

function JsonField({ label, hint, value, onChange }: { label: string; hint?: string; value: unknown; onChange: (value: unknown) => void }) {
  const [text, setText] = useState(() => JSON.stringify(value ?? {}, null, 2));
  const [error, setError] = useState<string | undefined>();
  return (
    <TextAreaField
      label={label}
      rows={4}
      value={text}
      hint={hint}
      error={error}
      onChange={(event) => {
        setText(event.target.value);
        try {
          onChange(JSON.parse(event.target.value));
          setError(undefined);
        } catch {
          setError('This is not valid JSON yet.');
        }
      }}
    />
  );
}

/** The ordered policy list: drag a row, or focus its handle and press ↑/↓, or use the buttons. */
/** The policies in order; `readOnly` (a caller without `project:write`) shows them with every
 * control disabled, settings included, so nothing can be changed only to be lost. */
export function PolicyList({ policies, models, onChange, readOnly = false }: { policies: Policy[]; models: Model[]; onChange: (policies: Policy[]) => void; readOnly?: boolean }) {
  const [dragging, setDragging] = useState<number | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [announcement, setAnnouncement] = useState('');
  const weights = policyWeights(policies);
  const move = (from: number, to: number) => {
    if (readOnly || to < 0 || to >= policies.length) return;
    onChange(reorder(policies, from, to));
    setAnnouncement(`${policies[from].type} moved to position ${to + 1} of ${policies.length}`);
  };
  const onHandleKey = (event: KeyboardEvent<HTMLButtonElement>, index: number) => {
    if (event.key === 'ArrowUp' || event.key === 'ArrowDown') {
      event.preventDefault();
      const to = event.key === 'ArrowUp' ? index - 1 : index + 1;
      move(index, to);
      // Keep focus on the moved row's handle.
      requestAnimationFrame(() => document.querySelector<HTMLButtonElement>(`[data-handle="${policies[index].type}"]`)?.focus());
    }
  };
  return (
    <>
      <div className="visually-hidden" aria-live="polite">
        {announcement}
      </div>
      <ol className="policy-list" aria-label="Routing policies, most important first">
        {policies.map((policy, index) => {
          const definition = POLICY_DEFINITIONS.find((candidate) => candidate.type === policy.type);
          return (
            <li
              key={policy.type}
              className={'policy' + (dragging === index ? ' policy-dragging' : '') + (policy.enabled ? '' : ' policy-disabled')}
              data-testid={`policy-${policy.type}`}
              draggable={!readOnly}
              onDragStart={(event: DragEvent) => {
                setDragging(index);
                event.dataTransfer.effectAllowed = 'move';
                event.dataTransfer.setData('text/plain', String(index));
              }}
              onDragOver={(event) => {
                event.preventDefault();
                event.dataTransfer.dropEffect = 'move';
              }}
              onDrop={(event) => {
                event.preventDefault();
                const from = Number(event.dataTransfer.getData('text/plain'));
                if (Number.isInteger(from)) move(from, index);
                setDragging(null);
              }}
              onDragEnd={() => setDragging(null)}
            >
              <div className="policy-row">
                <button
                  type="button"
                  className="drag-handle"
                  data-handle={policy.type}
                  disabled={readOnly}
                  aria-label={`Move ${definition?.title ?? policy.type}; position ${index + 1} of ${policies.length}. Press up or down arrow to move.`}
                  onKeyDown={(event) => onHandleKey(event, index)}
                >
                  ⋮⋮
                </button>
                <div className="policy-title">
                  <strong>{definition?.title ?? policy.type}</strong>
                  <span className="muted small">{definition?.summary ?? 'A policy this dashboard does not know.'}</span>
                </div>
                <span className="policy-weight muted small">{weights.has(policy.type) ? `weight ${weights.get(policy.type)}` : 'off'}</span>
                <Checkbox
                  label="On"
                  disabled={readOnly}
                  checked={policy.enabled}
                  onChange={(event) => onChange(policies.map((candidate, at) => (at === index ? { ...candidate, enabled: event.target.checked } : candidate)))}
                />
                <div className="policy-buttons">
                  <Button variant="ghost" aria-label={`Move ${policy.type} up`} onClick={() => move(index, index - 1)} disabled={readOnly || index === 0}>
                    ↑
                  </Button>
                  <Button variant="ghost" aria-label={`Move ${policy.type} down`} onClick={() => move(index, index + 1)} disabled={readOnly || index === policies.length - 1}>
                    ↓
                  </Button>
                  <Button variant="ghost" aria-expanded={open === policy.type} onClick={() => setOpen(open === policy.type ? null : policy.type)}>
                    Settings
                  </Button>
                </div>
              </div>
              {open === policy.type ? (
                <fieldset className="policy-config" disabled={readOnly}>
                  <PolicyConfigForm
                    policy={policy}
                    models={models}
                    onChange={(config) => onChange(policies.map((candidate, at) => (at === index ? { ...candidate, config } : candidate)))}
                  />
                </fieldset>
              ) : null}
            </li>
          );
        })}
      </ol>
    </>
  );
}

export function RoutingTab({ project }: TabProps) {
  const paths = [`/api/projects/${project.id}/policies`, `/api/projects/${project.id}/routing`];
  const models = useApi<{ models: Model[] }>('/api/models');
  const [state, setState] = useState<{ policies?: Policy[]; fromServer?: string[]; saved?: string; path?: string; error?: ApiError; loading: boolean }>({ loading: true });
  const save = useAction();
  const [savedAt, setSavedAt] = useState<string | null>(null);
  const canWrite = usePermissions().can('project:write', project.id);
  const dayAgo = useMemo(() => new Date(Date.now() - 86_400_000).toISOString().slice(0, 13) + ':00:00Z', []);
  const usage = useApi<{ models: (Totals & { model_id: string })[] }>('/api/usage/by-model', { project: project.id, from: dayAgo });
  const routing = useApi<RoutingHealth>('/api/routing/health');
  useEffect(() => {
    let cancelled = false;
    (async () => {
      for (const path of paths) {
        try {
          const body = await request<unknown>(path);
          const configured = policiesOf(body);
          const policies = withAllPolicies(configured);
          if (!cancelled) setState({ policies, fromServer: configured.map((policy) => policy.type), saved: JSON.stringify(policies), path, loading: false });
          return;
        } catch (error) {
          if (!(error instanceof ApiError && error.routeMissing)) {
            if (!cancelled) setState({ error: error as ApiError, loading: false });
            return;
          }
          if (path === paths[paths.length - 1] && !cancelled) setState({ error, loading: false });
        }
      }
    })();
    return () => {
      cancelled = true;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [project.id]);
  if (state.loading) return <Loading what="Loading the routing policies" />;
  if (state.error?.routeMissing)
    return (
      <Unavailable what="Routing configuration">
        When it is, this tab orders the project's policies by drag and drop and sets each policy's options. Until then the project routes by its default policies.
      </Unavailable>
    );
  if (state.error) return <ErrorBox error={state.error} />;
  const policies = state.policies!;
  const dirty = JSON.stringify(policies) !== state.saved;
  return (
    <>
    <Card title="Model health">
      <Table label="Model health">
        <thead>
          <tr>
            <th>Model</th>
            <th>Circuit, latency, errors</th>
          </tr>
        </thead>
        <tbody>
          {project.models.map((entry) => (
            <tr key={entry.model_id} data-testid={`routing-health-${entry.model_id}`}>
              <td>{entry.model_id}</td>
              <td>
                <ModelHealth health={routing.data?.models.find((model) => model.model_id === entry.model_id)} totals={usage.data?.models.find((row) => row.model_id === entry.model_id)} project={project.name} />
              </td>
            </tr>
          ))}
        </tbody>
      </Table>
    </Card>
    <Card
      title="Routing policies"
      actions={
        !canWrite ? <span className="muted small" data-testid="no-permission">{missing('project:write', project.name)}</span> : <Button
          variant="primary"
          busy={save.pending}
          disabled={!dirty}
          onClick={async () => {
            // Policies never configured and still off are left out: the server needs the
            // required settings (such as the llm policy's routing model) of every listed one.
            const kept = policies.filter((policy) => policy.enabled || state.fromServer?.includes(policy.type));
            const body = { policies: kept.map(({ type, enabled, config }) => ({ type, enabled, config: Object.fromEntries(Object.entries(config).filter(([, value]) => value !== undefined)) })) };
            const done = await save.run(async () => {
              await requestFirst([state.path!, ...paths.filter((path) => path !== state.path)], { method: 'PUT', body });
              return true;
            });
            if (done) {
              setState({ ...state, fromServer: kept.map((policy) => policy.type), saved: JSON.stringify(policies) });
              setSavedAt(new Date().toLocaleTimeString());
            }
          }}
        >
          Save order and settings
        </Button>
      }
    >
      <p className="muted small">
        Every enabled policy scores each candidate model; the first counts most (weight n − i). The ranking is also the fallback order. {savedAt && !dirty ? <span role="status">Saved at {savedAt}.</span> : null}
      </p>
      <FormError error={save.error} />
      <PolicyList policies={policies} models={models.data?.models ?? []} readOnly={!canWrite} onChange={(next) => setState({ ...state, policies: next })} />
    </Card>
    </>
  );
}
