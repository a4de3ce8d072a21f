// Usage records: the table of calls and the detail of one call with its trace.

import { useEffect, useRef } from 'react';
import { dateTime, ms, usd, count } from '../format';
import type { Project, UsageRecord } from '../types';
import { TraceView } from './trace';
import { Badge, Button, Table, outcomeTone } from './ui';

/** The model a call was served by, with the name the client asked for when it differs. */
export function modelCell(record: Pick<UsageRecord, 'model_id' | 'requested_model'>): { served: string; asked: string | null } {
  const served = record.model_id ?? '—';
  const asked = record.requested_model && record.requested_model !== record.model_id ? record.requested_model : null;
  return { served, asked };
}

/**
 * The failed tries before the call's answer: when the call itself failed, its last try is
 * that answer (shown as the call's error), not a failure before it.
 */
export function priorAttempts(record: Pick<UsageRecord, 'attempts' | 'outcome' | 'model_id'>): NonNullable<UsageRecord['attempts']> {
  const attempts = record.attempts ?? [];
  const last = attempts[attempts.length - 1];
  if (record.outcome !== 'success' && last && last.model_id === record.model_id) return attempts.slice(0, -1);
  return attempts;
}

export function CallsTable({ records, projects = [], onOpen, label = 'Calls' }: { records: UsageRecord[]; projects?: Project[]; onOpen: (record: UsageRecord, row: HTMLElement | null) => void; label?: string }) {
  const projectName = (id: string) => projects.find((project) => project.id === id)?.name ?? id;
  return (
    <Table label={label} className="calls-table">
      <thead>
        <tr>
          <th>When</th>
          <th>Outcome</th>
          <th>Cost</th>
          <th className="col-project">Project</th>
          <th className="col-model">Model</th>
          <th>Status</th>
          <th className="col-error">Error</th>
          <th className="col-tokens">Tokens in / out</th>
          <th className="col-latency">Latency</th>
        </tr>
      </thead>
      <tbody>
        {records.map((record) => {
          const model = modelCell(record);
          return (
            <tr key={record.id} data-testid="call-row" data-cost={record.cost_usd} data-trace-id={record.trace_id}>
              <td>
                <Button variant="ghost" onClick={(event) => onOpen(record, (event.currentTarget as HTMLElement).closest('tr'))} aria-label={`Details of the call at ${dateTime(record.timestamp)}`}>
                  {dateTime(record.timestamp)}
                </Button>
              </td>
              <td>
                <Badge tone={outcomeTone(record.outcome)}>{record.outcome.replace('_', ' ')}</Badge>
              </td>
              <td>{usd(record.cost_usd)}</td>
              <td className="col-project">{projectName(record.project_id)}</td>
              <td className="col-model" data-testid="call-model">
                {model.served}
                {model.asked ? <div className="muted small">asked for {model.asked}</div> : null}
              </td>
              <td>{record.status}</td>
              <td className="col-error" data-testid="call-error">
                {record.error ? <span className="error-text" title={record.error}>{record.error}</span> : <span className="muted">—</span>}
              </td>
              <td className="col-tokens">
                {count(record.input_tokens)} / {count(record.output_tokens)}
              </td>
              <td className="col-latency">{ms(record.latency_ms)}</td>
            </tr>
          );
        })}
      </tbody>
    </Table>
  );
}

export function CallDetail({ record, onClose }: { record: UsageRecord; onClose: () => void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  // The detail opens where the user is (next to the row) and takes focus, so keyboard and
  // screen-reader users land in it; closing gives focus back to the table.
  useEffect(() => {
    heading.current?.focus();
    heading.current?.scrollIntoView?.({ block: 'nearest' });
  }, [record.id]);
  const model = modelCell(record);
  const failed = priorAttempts(record);
  const facts: [string, React.ReactNode][] = [
    ['When', dateTime(record.timestamp)],
    ['Model', `${model.served} (${record.provider ?? '—'})`],
    ['Asked for', record.requested_model ?? '—'],
    ['Surface', `${record.surface} · ${record.call_type}${record.stream ? ' · streamed' : ''}`],
    ['Outcome', `${record.outcome} (HTTP ${record.status})`],
    ['Input tokens', `${count(record.input_tokens)} (cached ${count(record.cached_input_tokens)})`],
    ['Output tokens', count(record.output_tokens)],
    ['Cost', `${usd(record.cost_usd)} (input ${usd(record.input_cost_usd)}, output ${usd(record.output_cost_usd)})`],
    ['Latency', `${ms(record.latency_ms)}; first byte ${ms(record.ttft_ms)}; Routerly ${ms(record.overhead_ms)}`],
    ['Token', record.token_id],
    ['User / tags', `${record.user ?? '—'} / ${record.tags.join(', ') || '—'}`],
    ['Trace id', <code key="trace">{record.trace_id}</code>],
  ];
  return (
    <section
      className="card call-detail"
      role="dialog"
      aria-label="Call details"
      data-testid="call-detail"
      onKeyDown={(event) => {
        if (event.key === 'Escape') onClose();
      }}
    >
      <header className="card-header">
        <h2 ref={heading} tabIndex={-1}>
          Call details
        </h2>
        <Button variant="ghost" onClick={onClose}>
          Close
        </Button>
      </header>
      <dl className="facts">
        {facts.map(([term, value]) => (
          <div key={term} className="fact">
            <dt>{term}</dt>
            <dd>{value}</dd>
          </div>
        ))}
      </dl>
      {record.error ? <p className="state state-error">{record.error}</p> : null}
      {failed.length > 0 ? (
        <>
          <h3>Failed attempts before this answer</h3>
          <ol className="attempts" data-testid="failed-attempts">
            {failed.map((attempt, index) => (
              <li key={index}>
                {attempt.model_id}: {attempt.error} {attempt.status ? `(HTTP ${attempt.status})` : ''}
              </li>
            ))}
          </ol>
        </>
      ) : null}
      <h3>Routing trace</h3>
      <TraceView projectId={record.project_id} traceId={record.trace_id} />
    </section>
  );
}
