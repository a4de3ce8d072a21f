// The routing trace of one call (PRODUCT.md: candidates, each policy's scores and
// exclusions, the attempts). The trace API is newer than this page; a server without it
// gets an honest "not available yet" instead of an empty box.

import { requestFirst } from '../api';
import { useEffect, useState } from 'react';
import { ApiError } from '../api';
import { ErrorBox, Loading, Table, Unavailable } from './ui';

export type Trace = Record<string, unknown>;

export function tracePaths(projectId: string, traceId: string): string[] {
  const id = encodeURIComponent(traceId);
  return [`/api/projects/${encodeURIComponent(projectId)}/traces/${id}`, `/api/traces/${id}`];
}

function modelName(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return String(record.model_id ?? record.model ?? record.id ?? JSON.stringify(value));
  }
  return String(value);
}

interface PolicyRow {
  type: string;
  scores: Record<string, number>;
  /** Excluded models with the policy's reason, verbatim ("circuit open: cooling down"). */
  excluded: Record<string, string>;
  note?: string;
}

/** The policies of a trace in one shape, whatever the server's exact field names. */
export function policyRows(trace: Trace): PolicyRow[] {
  const policies = (trace.policies ?? trace.policy_results ?? []) as unknown[];
  if (!Array.isArray(policies)) return [];
  return policies.map((entry) => {
    const policy = (entry ?? {}) as Record<string, unknown>;
    const scores: Record<string, number> = {};
    const excluded: Record<string, string> = {};
    const rawScores = policy.scores;
    if (Array.isArray(rawScores)) {
      for (const score of rawScores as Record<string, unknown>[]) {
        scores[modelName(score)] = Number(score.score ?? score.value ?? score.point ?? 0);
        if (score.excluded) excluded[modelName(score)] = typeof score.excluded === 'string' ? score.excluded : 'excluded';
      }
    } else if (rawScores && typeof rawScores === 'object') {
      for (const [model, score] of Object.entries(rawScores)) scores[model] = Number(score);
    }
    const excludedRaw = (policy.excluded ?? policy.exclusions ?? []) as unknown;
    if (Array.isArray(excludedRaw)) {
      for (const entry of excludedRaw) excluded[modelName(entry)] ??= typeof (entry as { reason?: unknown })?.reason === 'string' ? String((entry as { reason: string }).reason) : 'excluded';
    } else if (excludedRaw && typeof excludedRaw === 'object') {
      for (const [model, reason] of Object.entries(excludedRaw)) excluded[model] ??= typeof reason === 'string' ? reason : 'excluded';
    }
    const weight = typeof policy.weight === 'number' ? `weight ${policy.weight}` : '';
    const status = typeof policy.status === 'string' && policy.status !== 'weighted' ? String(policy.status) : '';
    const note = [weight, status, policy.skipped ? 'skipped' : '', typeof policy.detail === 'string' ? policy.detail : '', typeof policy.reason === 'string' ? policy.reason : '', typeof policy.error === 'string' ? policy.error : ''].filter(Boolean).join(' — ');
    return { type: String(policy.type ?? policy.policy ?? 'policy'), scores, excluded, note: note || undefined };
  });
}

export function TraceDetails({ trace }: { trace: Trace }) {
  const candidates = Array.isArray(trace.candidates) ? (trace.candidates as unknown[]).map(modelName) : [];
  const ranking = Array.isArray(trace.ranking) ? (trace.ranking as unknown[]).map(modelName) : Array.isArray(trace.ranked) ? (trace.ranked as unknown[]).map(modelName) : [];
  const attempts = Array.isArray(trace.attempts) ? (trace.attempts as Record<string, unknown>[]) : [];
  const policies = policyRows(trace);
  const models = Array.from(new Set([...candidates, ...policies.flatMap((policy) => Object.keys(policy.scores))]));
  return (
    <div className="trace" data-testid="trace">
      {candidates.length > 0 ? (
        <p>
          <strong>Candidates:</strong> {candidates.join(', ')}
          {typeof trace.routing_us === 'number' ? <span className="muted small"> · chosen in {String(trace.routing_us)} µs</span> : null}
        </p>
      ) : null}
      {typeof trace.requested_model === 'string' ? (
        <p>
          <strong>Asked for:</strong> {trace.requested_model}
        </p>
      ) : null}
      {Array.isArray(trace.dropped_by_budget) && trace.dropped_by_budget.length > 0 ? (
        <p>
          <strong>Left out by their budgets:</strong> {(trace.dropped_by_budget as unknown[]).map(modelName).join(', ')}
        </p>
      ) : null}
      {typeof trace.served_by === 'string' ? (
        <p>
          <strong>Served by:</strong> {trace.served_by}
          {typeof trace.outcome === 'string' ? <span className="muted small"> ({trace.outcome})</span> : null}
        </p>
      ) : null}
      {policies.length === 0 && Array.isArray(trace.policies) ? <p className="muted small">No routing policy is enabled in this project: candidates were tried in their configured order.</p> : null}
      {policies.length > 0 ? (
        <Table label="Policy scores">
          <thead>
            <tr>
              <th>Policy</th>
              {models.map((model) => (
                <th key={model}>{model}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {policies.map((policy, index) => (
              <tr key={policy.type + index}>
                <th scope="row">
                  {policy.type}
                  {policy.note ? <div className="muted small">{policy.note}</div> : null}
                </th>
                {models.map((model) => (
                  <td key={model}>{model in policy.excluded ? <span className="badge badge-bad" data-testid="exclusion">{policy.excluded[model]}</span> : model in policy.scores ? policy.scores[model].toFixed(2) : '—'}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </Table>
      ) : null}
      {ranking.length > 0 ? (
        <p>
          <strong>Order tried:</strong> {ranking.join(' → ')}
        </p>
      ) : null}
      {attempts.length > 0 ? (
        <ol className="attempts">
          {attempts.map((attempt, index) => (
            <li key={index}>
              {modelName(attempt)}: {String(attempt.outcome ?? attempt.error ?? attempt.status ?? 'tried')}
              {typeof attempt.duration_ms === 'number' ? ` in ${Math.round(attempt.duration_ms)} ms` : ''}
              {typeof attempt.retry === 'number' && attempt.retry > 0 ? ` (retry ${attempt.retry})` : ''}
            </li>
          ))}
        </ol>
      ) : null}
      <details>
        <summary>Raw trace</summary>
        <pre className="raw">{JSON.stringify(trace, null, 2)}</pre>
      </details>
    </div>
  );
}

export function TraceView({ projectId, traceId }: { projectId: string; traceId: string }) {
  const [state, setState] = useState<{ trace?: Trace; error?: ApiError; loading: boolean }>({ loading: true });
  useEffect(() => {
    let cancelled = false;
    setState({ loading: true });
    requestFirst<Trace>(tracePaths(projectId, traceId))
      .then((trace) => !cancelled && setState({ trace, loading: false }))
      .catch((error: ApiError) => !cancelled && setState({ error, loading: false }));
    return () => {
      cancelled = true;
    };
  }, [projectId, traceId]);
  if (state.loading) return <Loading what="Loading the routing trace" />;
  if (state.error?.routeMissing)
    return (
      <Unavailable what="The routing trace">
        Trace id <code>{traceId}</code>.
      </Unavailable>
    );
  if (state.error?.status === 404) return <p className="muted">No trace is kept for this call any more (trace id <code>{traceId}</code>).</p>;
  if (state.error) return <ErrorBox error={state.error} />;
  return <TraceDetails trace={state.trace!} />;
}
