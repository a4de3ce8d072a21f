// Usage records: the table of calls and the detail of one call with its trace.

import { dateTime, ms, usd, count } from '../format';
import type { Project, UsageRecord } from '../types';
import { TraceView } from './trace';
import { Badge, Button, Table, outcomeTone } from './ui';

export function CallsTable({ records, projects = [], onOpen, label = 'Calls' }: { records: UsageRecord[]; projects?: Project[]; onOpen: (record: UsageRecord) => void; label?: string }) {
  const projectName = (id: string) => projects.find((project) => project.id === id)?.name ?? id;
  return (
    <Table label={label}>
      <thead>
        <tr>
          <th>When</th>
          <th>Project</th>
          <th>Model</th>
          <th>Outcome</th>
          <th>Tokens in / out</th>
          <th>Cost</th>
          <th>Latency</th>
        </tr>
      </thead>
      <tbody>
        {records.map((record) => (
          <tr key={record.id} data-testid="call-row" data-cost={record.cost_usd} data-trace-id={record.trace_id}>
            <td>
              <Button variant="ghost" onClick={() => onOpen(record)} aria-label={`Details of the call at ${dateTime(record.timestamp)}`}>
                {dateTime(record.timestamp)}
              </Button>
            </td>
            <td>{projectName(record.project_id)}</td>
            <td>{record.model_id ?? '—'}</td>
            <td>
              <Badge tone={outcomeTone(record.outcome)}>{record.outcome.replace('_', ' ')}</Badge>
            </td>
            <td>
              {count(record.input_tokens)} / {count(record.output_tokens)}
            </td>
            <td>{usd(record.cost_usd)}</td>
            <td>{ms(record.latency_ms)}</td>
          </tr>
        ))}
      </tbody>
    </Table>
  );
}

export function CallDetail({ record, onClose }: { record: UsageRecord; onClose: () => void }) {
  const facts: [string, React.ReactNode][] = [
    ['When', dateTime(record.timestamp)],
    ['Model', `${record.model_id ?? '—'} (${record.provider ?? '—'})`],
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
    <section className="card call-detail" aria-label="Call details" data-testid="call-detail">
      <header className="card-header">
        <h2>Call details</h2>
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
      {record.attempts && record.attempts.length > 0 ? (
        <>
          <h3>Failed attempts before this answer</h3>
          <ol className="attempts">
            {record.attempts.map((attempt, index) => (
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
