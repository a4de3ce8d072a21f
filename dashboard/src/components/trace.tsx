// The routing trace of one call (PRODUCT.md: candidates, each policy's scores and
// exclusions, the attempts), in the shape the API's generated types give it. The trace API
// is newer than this page; a server without it gets an honest "not available yet" instead
// of an empty box.

import type { TraceView as TraceBody } from '../api-types';
import { requestFirst } from '../api';
import { useEffect, useState } from 'react';
import { ApiError } from '../api';
import { ErrorBox, Loading, Table, Unavailable } from './ui';

export type Trace = TraceBody;

export function tracePaths(projectId: string, traceId: string): string[] {
  const id = encodeURIComponent(traceId);
  return [`/api/projects/${encodeURIComponent(projectId)}/traces/${id}`, `/api/traces/${id}`];
}

interface PolicyRow {
  type: string;
  scores: Record<string, number>;
  /** Excluded models with the policy's reason, verbatim ("circuit open: cooling down"). */
  excluded: Record<string, string>;
  note?: string;
}

/** Each policy of a trace as a row: its score per model, its exclusions and a note (its
 * weight, a status other than weighted, what it decided or why it failed). */
export function policyRows(trace: Trace): PolicyRow[] {
  return trace.policies.map((policy) => {
    const scores: Record<string, number> = {};
    const excluded: Record<string, string> = {};
    for (const score of policy.scores) {
      scores[score.model] = score.score;
      if (score.excluded) excluded[score.model] = score.excluded;
    }
    const note = [
      policy.weight !== null ? `weight ${policy.weight}` : '',
      policy.status !== 'weighted' ? policy.status : '',
      policy.detail ?? '',
    ]
      .filter(Boolean)
      .join(' — ');
    return { type: policy.type, scores, excluded, note: note || undefined };
  });
}

export function TraceDetails({ trace }: { trace: Trace }) {
  const candidates = trace.candidates;
  const ranking = trace.ranking.map((ranked) => ranked.model);
  const attempts = trace.attempts;
  const policies = policyRows(trace);
  const models = Array.from(new Set([...candidates, ...policies.flatMap((policy) => Object.keys(policy.scores))]));
  return (
    <div className="trace" data-testid="trace">
      {candidates.length > 0 ? (
        <p>
          <strong>Candidates:</strong> {candidates.join(', ')}
          <span className="muted small"> · chosen in {trace.routing_us} µs</span>
        </p>
      ) : null}
      {trace.requested_model ? (
        <p>
          <strong>Asked for:</strong> {trace.requested_model}
        </p>
      ) : null}
      {trace.dropped_by_budget && trace.dropped_by_budget.length > 0 ? (
        <p>
          <strong>Left out by their budgets:</strong> {trace.dropped_by_budget.join(', ')}
        </p>
      ) : null}
      {trace.served_by !== null ? (
        <p>
          <strong>Served by:</strong> {trace.served_by}
          {trace.outcome !== null ? <span className="muted small"> ({trace.outcome})</span> : null}
        </p>
      ) : null}
      {policies.length === 0 ? <p className="muted small">No routing policy is enabled in this project: candidates were tried in their configured order.</p> : null}
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
              {attempt.model}: {attempt.outcome}
              {attempt.status !== null ? ` (${attempt.status})` : ''}
              {attempt.duration_ms !== null ? ` in ${Math.round(attempt.duration_ms)} ms` : ''}
              {attempt.retry > 0 ? ` (retry ${attempt.retry})` : ''}
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
