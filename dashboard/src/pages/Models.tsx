import { useMemo, useState, type FormEvent } from 'react';
import { request } from '../api';
import { Badge, Button, Card, Checkbox, ConfirmButton, Empty, ErrorBox, FormError, Loading, PageHeader, SelectField, Table, TextField, fieldError } from '../components/ui';
import { count, dateTime, ms, percent, usd } from '../format';
import type { ConnectionTest, ModelHealth as RoutedHealth, RoutingHealth } from '../api-types';
import { errorRate } from './Overview';
import { usePermissions } from '../permissions';
import { useAction, useApi } from '../hooks';
import { CAPABILITY_NAMES, type Capabilities, type Catalogue, type CatalogueProvider, type Model, type Totals } from '../types';
import { parseAmount, validateModel, type Errors } from '../validate';

const OTHER = '__other__';

interface Draft {
  provider: string;
  catalogueModel: string;
  id: string;
  upstreamModel: string;
  endpoint: string;
  apiKey: string;
  inputPrice: string;
  outputPrice: string;
  cachedPrice: string;
  contextWindow: string;
  capabilities: Capabilities;
}

function emptyDraft(provider = ''): Draft {
  return { provider, catalogueModel: OTHER, id: '', upstreamModel: '', endpoint: '', apiKey: '', inputPrice: '', outputPrice: '', cachedPrice: '', contextWindow: '', capabilities: {} };
}

/** The body of `POST /api/models` for a valid draft. */
export function modelBody(draft: Draft): Record<string, unknown> {
  const body: Record<string, unknown> = { id: draft.id.trim(), provider: draft.provider };
  if (draft.endpoint.trim()) body.endpoint = draft.endpoint.trim();
  if (draft.apiKey.trim()) body.api_key = draft.apiKey.trim();
  if (draft.upstreamModel.trim()) body.upstream_model = draft.upstreamModel.trim();
  const pricing: Record<string, number> = {};
  const input = parseAmount(draft.inputPrice);
  const output = parseAmount(draft.outputPrice);
  const cached = parseAmount(draft.cachedPrice);
  if (input !== null) pricing.input = input;
  if (output !== null) pricing.output = output;
  if (cached !== null) pricing.cached_input = cached;
  if (Object.keys(pricing).length > 0) body.pricing = pricing;
  if (draft.contextWindow.trim()) body.context_window = Number(draft.contextWindow);
  const capabilities = Object.fromEntries(Object.entries(draft.capabilities).filter(([, value]) => value !== undefined && value !== null));
  if (Object.keys(capabilities).length > 0) body.capabilities = capabilities;
  return body;
}

/** Adds a model: pick a provider and a model from the catalogue (prices filled in), or type one. */
export function ModelForm({ catalogue, existingIds, onSubmit, onCancel }: { catalogue: Catalogue; existingIds: string[]; onSubmit: (body: Record<string, unknown>) => Promise<unknown>; onCancel?: () => void }) {
  const [draft, setDraft] = useState<Draft>(() => emptyDraft(catalogue.providers[0]?.id ?? ''));
  const [errors, setErrors] = useState<Errors>({});
  const action = useAction();
  const provider: CatalogueProvider | undefined = catalogue.providers.find((candidate) => candidate.id === draft.provider);
  const set = (patch: Partial<Draft>) => setDraft((current) => ({ ...current, ...patch }));

  const pickModel = (modelId: string) => {
    const known = provider?.models.find((model) => model.id === modelId);
    if (!known) return set({ catalogueModel: OTHER });
    set({
      catalogueModel: modelId,
      id: existingIds.includes(known.id) ? '' : known.id,
      upstreamModel: known.id,
      inputPrice: String(known.pricing.input),
      outputPrice: String(known.pricing.output),
      cachedPrice: known.pricing.cached_input != null ? String(known.pricing.cached_input) : '',
      contextWindow: known.context_window ? String(known.context_window) : '',
      capabilities: { ...known.capabilities },
    });
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const found = validateModel({ ...draft, endpointRequired: !provider?.default_endpoint }, existingIds);
    setErrors(found);
    if (Object.keys(found).length > 0) return;
    const done = await action.run(() => onSubmit(modelBody(draft)));
    if (done !== undefined) setDraft(emptyDraft(draft.provider));
  };

  return (
    <form onSubmit={submit} noValidate aria-label="Add a model" className="stack">
      <div className="form-grid">
        <SelectField label="Provider" value={draft.provider} onChange={(event) => setDraft(emptyDraft(event.target.value))} error={errors.provider}>
          {catalogue.providers.map((candidate) => (
            <option key={candidate.id} value={candidate.id}>
              {candidate.name}
            </option>
          ))}
        </SelectField>
        <SelectField label="Model from the catalogue" value={draft.catalogueModel} onChange={(event) => pickModel(event.target.value)}>
          <option value={OTHER}>Another model (type its name)</option>
          {provider?.models.map((model) => (
            <option key={model.id} value={model.id}>
              {model.id} — {usd(model.pricing.input)} / {usd(model.pricing.output)}
            </option>
          ))}
        </SelectField>
        <TextField label="Id in Routerly" value={draft.id} onChange={(event) => set({ id: event.target.value })} error={fieldError(errors, action.error, 'id')} hint="What clients send as `model`." />
        <TextField label="Provider's model name" value={draft.upstreamModel} onChange={(event) => set({ upstreamModel: event.target.value })} placeholder={draft.id || 'same as the id'} error={fieldError(errors, action.error, 'upstreamModel', 'upstream_model')} />
        <TextField
          label="Endpoint"
          value={draft.endpoint}
          onChange={(event) => set({ endpoint: event.target.value })}
          placeholder={provider?.default_endpoint ?? 'https://…'}
          error={fieldError(errors, action.error, 'endpoint')}
          hint={provider?.default_endpoint ? 'Leave empty for the provider’s own.' : 'Required for this provider.'}
        />
        <TextField
          label="API key"
          type="password"
          autoComplete="off"
          value={draft.apiKey}
          onChange={(event) => set({ apiKey: event.target.value })}
          error={fieldError(errors, action.error, 'apiKey', 'api_key')}
          hint="Stored encrypted and never shown again; env:NAME reads it from the environment."
        />
        <TextField label="Input price (USD / M tokens)" inputMode="decimal" value={draft.inputPrice} onChange={(event) => set({ inputPrice: event.target.value })} error={fieldError(errors, action.error, 'inputPrice', 'pricing')} />
        <TextField label="Output price (USD / M tokens)" inputMode="decimal" value={draft.outputPrice} onChange={(event) => set({ outputPrice: event.target.value })} error={errors.outputPrice} />
        <TextField label="Cached input price" inputMode="decimal" value={draft.cachedPrice} onChange={(event) => set({ cachedPrice: event.target.value })} error={errors.cachedPrice} />
        <TextField label="Context window (tokens)" inputMode="numeric" value={draft.contextWindow} onChange={(event) => set({ contextWindow: event.target.value })} error={fieldError(errors, action.error, 'contextWindow', 'context_window')} />
      </div>
      <fieldset className="capabilities">
        <legend>Capabilities</legend>
        {CAPABILITY_NAMES.map((name) => (
          <Checkbox
            key={name}
            label={name}
            checked={draft.capabilities[name] === true}
            onChange={(event) => set({ capabilities: { ...draft.capabilities, [name]: event.target.checked } })}
          />
        ))}
      </fieldset>
      <FormError error={action.error} fields={['id', 'endpoint', 'api_key', 'upstream_model', 'pricing', 'context_window']} />
      <div className="row">
        <Button type="submit" variant="primary" busy={action.pending}>
          Add model
        </Button>
        {onCancel ? <Button onClick={onCancel}>Cancel</Button> : null}
      </div>
    </form>
  );
}

function capabilityBadges(capabilities: Capabilities) {
  const on = CAPABILITY_NAMES.filter((name) => capabilities[name]);
  return on.length === 0 ? <span className="muted">—</span> : on.map((name) => <Badge key={name}>{name}</Badge>);
}

/** Edits a model after creation: where it is reached, with which key, under which name, at which prices. */
function ModelEditor({ model, onSaved }: { model: Model; onSaved: () => void }) {
  const [endpoint, setEndpoint] = useState(model.endpoint);
  const [upstream, setUpstream] = useState(model.upstream_model);
  const [apiKey, setApiKey] = useState('');
  const [input, setInput] = useState(String(model.pricing.input));
  const [output, setOutput] = useState(String(model.pricing.output));
  const [errors, setErrors] = useState<Errors>({});
  const action = useAction();
  return (
    <form
      className="inline-form"
      noValidate
      aria-label={`Edit ${model.id}`}
      onSubmit={async (event) => {
        event.preventDefault();
        const found: Errors = {};
        if (parseAmount(input) === null) found.input = 'Enter 0 or more.';
        if (parseAmount(output) === null) found.output = 'Enter 0 or more.';
        if (!/^https?:\/\/\S+$/.test(endpoint.trim())) found.endpoint = 'Enter an http(s) URL.';
        if (!upstream.trim()) found.upstream_model = 'Enter the provider\'s model name.';
        setErrors(found);
        if (Object.keys(found).length) return;
        const body: Record<string, unknown> = { pricing: { ...model.pricing, input: Number(input), output: Number(output) } };
        if (endpoint.trim() !== model.endpoint) body.endpoint = endpoint.trim();
        if (upstream.trim() !== model.upstream_model) body.upstream_model = upstream.trim();
        if (apiKey.trim()) body.api_key = apiKey.trim();
        const done = await action.run(() => request(`/api/models/${encodeURIComponent(model.id)}`, { method: 'PATCH', body }));
        if (done !== undefined) onSaved();
      }}
    >
      <TextField label="Endpoint" value={endpoint} onChange={(event) => setEndpoint(event.target.value)} error={fieldError(errors, action.error, 'endpoint')} />
      <TextField label="Provider's model name" value={upstream} onChange={(event) => setUpstream(event.target.value)} error={fieldError(errors, action.error, 'upstream_model')} />
      <TextField label="New API key" type="password" autoComplete="off" value={apiKey} onChange={(event) => setApiKey(event.target.value)} error={fieldError(errors, action.error, 'api_key')} hint="leave empty to keep the current key; env:NAME reads a variable" />
      <TextField label="Input USD/M" value={input} onChange={(event) => setInput(event.target.value)} error={errors.input} inputMode="decimal" />
      <TextField label="Output USD/M" value={output} onChange={(event) => setOutput(event.target.value)} error={errors.output} inputMode="decimal" />
      <Button type="submit" busy={action.pending}>
        Save model
      </Button>
      <FormError error={action.error} fields={['endpoint', 'upstream_model', 'api_key']} />
    </form>
  );
}

/** A model's health now: its circuit and recent calls as routing sees them (every project's
 * calls: routing keeps one record per model), and its latency percentiles and error rate
 * over the last day (provider calls only; `project`: the name of the project `totals` are
 * limited to, said so beside them). */
export function ModelHealth({ health, totals, project }: { health?: RoutedHealth; totals?: Totals; project?: string }) {
  const circuit = health?.circuit ?? 'closed';
  const tone = circuit === 'open' ? 'bad' : circuit === 'half_open' ? 'warn' : 'good';
  const words: Record<string, string> = { open: 'circuit open', half_open: 'circuit half-open', closed: 'circuit closed' };
  const calls = totals ? (totals.provider_calls ?? totals.calls) : 0;
  return (
    <div className="model-health" data-testid="model-health" data-circuit={circuit}>
      <Badge tone={tone}>{words[circuit]}</Badge>
      {health?.circuit_since && circuit !== 'closed' ? <span className="muted small"> since {dateTime(health.circuit_since)}</span> : null}
      {health && health.calls > 0 ? (
        <div className="small" data-testid="model-routing">
          now{project ? ', all projects' : ''}: {count(health.failures)} of {count(health.calls)} calls failed · health {health.score.toFixed(2)}
          {health.mean_latency_ms != null ? ` · mean ${ms(health.mean_latency_ms)}` : ''}
        </div>
      ) : null}
      {totals && calls > 0 ? (
        <div className="muted small" data-testid="model-day">
          24 h{project ? `, ${project}` : ''}: p50 {ms(totals.p50_latency_ms)} · p95 {ms(totals.p95_latency_ms)} · errors {percent(errorRate(totals))} of {count(calls)}
        </div>
      ) : (
        <div className="muted small" data-testid="model-day">no call served{project ? ` for ${project}` : ''} in 24 h</div>
      )}
    </div>
  );
}

/** Runs one minimal call to the model's provider and says what came back. */
function TestConnection({ model }: { model: Model }) {
  const action = useAction();
  const [result, setResult] = useState<ConnectionTest | null>(null);
  return (
    <div className="test-connection">
      <Button
        variant="ghost"
        busy={action.pending}
        aria-label={`Test the connection of ${model.id}`}
        onClick={async () => {
          setResult(null);
          const found = await action.run(() => request<ConnectionTest>(`/api/models/${encodeURIComponent(model.id)}/test`, { method: 'POST' }));
          if (found) setResult(found);
        }}
      >
        Test connection
      </Button>
      <div role="status" data-testid="connection-result">
        {result ? (
          <span className={result.ok ? 'ok' : 'bad'}>
            {result.ok ? '✓' : '✗'} {result.message} ({ms(result.latency_ms)})
          </span>
        ) : null}
      </div>
      <FormError error={action.error} />
    </div>
  );
}

export function ModelsPage() {
  const models = useApi<{ models: Model[] }>('/api/models');
  const dayAgo = useMemo(() => new Date(Date.now() - 86_400_000).toISOString().slice(0, 13) + ':00:00Z', []);
  const usage = useApi<{ models: (Totals & { model_id: string })[] }>('/api/usage/by-model', { from: dayAgo });
  const usageOf = (id: string) => usage.data?.models.find((row) => row.model_id === id);
  const routing = useApi<RoutingHealth>('/api/routing/health');
  const healthOf = (id: string) => routing.data?.models.find((row) => row.model_id === id);
  const canWrite = usePermissions().can('model:write');
  const catalogue = useApi<Catalogue>('/api/catalogue');
  const [adding, setAdding] = useState(false);
  const [editing, setEditing] = useState<string | null>(null);
  const [removeError, setRemoveError] = useState<Error | null>(null);
  const ids = useMemo(() => models.data?.models.map((model) => model.id) ?? [], [models.data]);
  return (
    <>
      <PageHeader title="Models">
        {canWrite ? (
          <Button variant="primary" onClick={() => setAdding(true)} disabled={adding}>
            Add a model
          </Button>
        ) : null}
      </PageHeader>
      {adding ? (
        <Card title="Add a model">
          {catalogue.error ? (
            <ErrorBox error={catalogue.error} retry={catalogue.reload} />
          ) : !catalogue.data ? (
            <Loading what="Loading the catalogue" />
          ) : (
            <>
              <p className="muted small">Prices as of {catalogue.data.prices_as_of}. {catalogue.data.note}</p>
              <ModelForm
                catalogue={catalogue.data}
                existingIds={ids}
                onCancel={() => setAdding(false)}
                onSubmit={async (body) => {
                  const created = await request('/api/models', { method: 'POST', body });
                  setAdding(false);
                  models.reload();
                  return created;
                }}
              />
            </>
          )}
        </Card>
      ) : null}
      <ErrorBox error={removeError} />
      <Card>
        {models.error ? (
          <ErrorBox error={models.error} retry={models.reload} />
        ) : !models.data ? (
          <Loading what="Loading models" />
        ) : models.data.models.length === 0 ? (
          <Empty title="No models yet.">Add one from the catalogue of known providers; its prices and capabilities are filled in for you.</Empty>
        ) : (
          <Table label="Models">
            <thead>
              <tr>
                <th>Id</th>
                <th>Health</th>
                <th>Provider</th>
                <th>Input / output (USD/M)</th>
                <th>Context</th>
                <th>Capabilities</th>
                <th>API key</th>
                <th>
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {models.data.models.map((model) => (
                <tr key={model.id} data-testid={`model-row-${model.id}`}>
                  <td>
                    <strong>{model.id}</strong>
                    {model.upstream_model !== model.id ? <div className="muted small">{model.upstream_model}</div> : null}
                  </td>
                  <td>
                    <ModelHealth health={healthOf(model.id)} totals={usageOf(model.id)} />
                  </td>
                  <td>
                    {model.provider}
                    <div className="muted small break">{model.endpoint}</div>
                  </td>
                  <td>
                    {editing === model.id ? (
                      <ModelEditor
                        model={model}
                        onSaved={() => {
                          setEditing(null);
                          models.reload();
                        }}
                      />
                    ) : (
                      <>
                        {usd(model.pricing.input)} / {usd(model.pricing.output)}
                      </>
                    )}
                  </td>
                  <td>{model.context_window ? count(model.context_window) : '—'}</td>
                  <td className="badges">{capabilityBadges(model.capabilities)}</td>
                  <td>
                    <code>{model.api_key ?? 'none'}</code>
                  </td>
                  <td className="actions">
                    {canWrite ? (
                    <>
                    <TestConnection model={model} />
                    <Button variant="ghost" onClick={() => setEditing(editing === model.id ? null : model.id)}>
                      {editing === model.id ? 'Close' : 'Edit'}
                    </Button>
                    <ConfirmButton
                      label="Remove"
                      title={`Remove ${model.id}?`}
                      message="Clients will no longer reach it. A model that a project uses must first be removed from the project."
                      confirmLabel="Remove model"
                      onConfirm={async () => {
                        setRemoveError(null);
                        try {
                          await request(`/api/models/${encodeURIComponent(model.id)}`, { method: 'DELETE' });
                          models.reload();
                        } catch (error) {
                          setRemoveError(error as Error);
                        }
                      }}
                    />
                    </>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </Table>
        )}
      </Card>
    </>
  );
}
