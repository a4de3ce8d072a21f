// The playground sends a prompt through the real proxy (/v1/chat/completions, streaming) so
// that the answer, its usage record and its routing trace are exactly what a client gets.
// The proxy takes project tokens, not sessions, so the playground uses one token per user
// and project, labelled "playground" and "user:<id>": created on first use (30 days), kept
// in this browser's storage next to the session's refresh token, never shown, and reused by
// every later session. Minting a new one (another browser, or the old one expired or was
// revoked) first revokes the user's previous playground tokens of the project, so there is
// never more than one per user and project in the Tokens tab.

import { useRef, useState, type FormEvent } from 'react';
import { request, sessionUser } from '../../api';
import { TraceView } from '../../components/trace';
import { Button, Card, Empty, ErrorBox, SelectField, TextAreaField } from '../../components/ui';
import { count, ms } from '../../format';
import { missing, usePermissions } from '../../permissions';
import { Link } from '../../router';
import type { ProjectToken } from '../../types';
import type { TabProps } from '../Project';

const TOKEN_TTL_MS = 30 * 86_400_000;

function storageKey(userId: string, projectId: string) {
  return `routerly.playground.${userId}.${projectId}`;
}

/** The labels that mark `userId`'s playground token. */
export function playgroundLabels(userId: string): string[] {
  return ['playground', `user:${userId}`];
}

/** The user's earlier playground tokens still active in `tokens` (to revoke before minting). */
export function stalePlaygroundTokens(tokens: ProjectToken[], userId: string, now = Date.now()): ProjectToken[] {
  const [kind, owner] = playgroundLabels(userId);
  return tokens.filter(
    (token) => token.labels.includes(kind) && token.labels.includes(owner) && !token.revoked_at && (!token.expires_at || new Date(token.expires_at).getTime() > now),
  );
}

async function playgroundToken(projectId: string, fresh = false): Promise<string> {
  const userId = sessionUser()?.id ?? 'unknown';
  const key = storageKey(userId, projectId);
  const stored = localStorage.getItem(key);
  if (stored && !fresh) {
    const { token, expires } = JSON.parse(stored) as { token: string; expires: number };
    if (expires - Date.now() > 60_000) return token;
  }
  const { tokens } = await request<{ tokens: ProjectToken[] }>(`/api/projects/${projectId}/tokens`);
  for (const stale of stalePlaygroundTokens(tokens, userId)) {
    await request(`/api/projects/${projectId}/tokens/${stale.id}`, { method: 'DELETE' });
  }
  const expires = Date.now() + TOKEN_TTL_MS;
  const created = await request<{ token: string }>(`/api/projects/${projectId}/tokens`, {
    method: 'POST',
    body: { labels: playgroundLabels(userId), expires_at: new Date(expires).toISOString() },
  });
  localStorage.setItem(key, JSON.stringify({ token: created.token, expires }));
  return created.token;
}

/** The text and usage in a chunk of an OpenAI chat-completions stream (`data: …` lines). */
export function parseSseChunk(buffer: string): { events: { content?: string; usage?: { prompt_tokens: number; completion_tokens: number }; model?: string; error?: string }[]; rest: string } {
  const events: { content?: string; usage?: { prompt_tokens: number; completion_tokens: number }; model?: string; error?: string }[] = [];
  const lines = buffer.split('\n');
  const rest = lines.pop() ?? '';
  for (const line of lines) {
    const trimmed = line.trim();
    if (!trimmed.startsWith('data:')) continue;
    const data = trimmed.slice(5).trim();
    if (data === '[DONE]' || data === '') continue;
    try {
      const chunk = JSON.parse(data);
      if (chunk.error) {
        events.push({ error: chunk.error.message ?? String(chunk.error) });
        continue;
      }
      events.push({ content: chunk.choices?.[0]?.delta?.content ?? undefined, usage: chunk.usage ?? undefined, model: chunk.model });
    } catch {
      // A partial line is completed by the next read.
    }
  }
  return { events, rest };
}

interface Result {
  answer: string;
  traceId: string | null;
  model: string | null;
  usage: { prompt_tokens: number; completion_tokens: number } | null;
  firstByteMs: number | null;
  totalMs: number | null;
  done: boolean;
}

export function PlaygroundTab({ project }: TabProps) {
  const choices = project.models.flatMap((model) => [model.model_id, ...model.aliases]);
  const [model, setModel] = useState(choices[0] ?? '');
  const [prompt, setPrompt] = useState('');
  const [promptError, setPromptError] = useState<string | undefined>();
  const [result, setResult] = useState<Result | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [sending, setSending] = useState(false);
  const abort = useRef<AbortController | null>(null);
  const canWrite = usePermissions().can('project:write', project.id);

  if (!canWrite)
    return (
      <p className="state" data-testid="no-permission">
        The playground sends real calls with a project token, which only project editors may create. {missing('project:write', project.name)}
      </p>
    );
  if (project.models.length === 0)
    return (
      <Empty title="Add a model to this project first.">
        <Link to={`/projects/${project.id}/models`}>Go to the Models tab</Link>.
      </Empty>
    );

  const send = async (event: FormEvent) => {
    event.preventDefault();
    if (!prompt.trim()) return setPromptError('Write a prompt.');
    setPromptError(undefined);
    setError(null);
    setSending(true);
    const controller = new AbortController();
    abort.current = controller;
    const started = performance.now();
    const current: Result = { answer: '', traceId: null, model: null, usage: null, firstByteMs: null, totalMs: null, done: false };
    setResult({ ...current });
    try {
      const call = async (fresh: boolean) =>
        fetch('/v1/chat/completions', {
          method: 'POST',
          signal: controller.signal,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${await playgroundToken(project.id, fresh)}`, 'x-routerly-tags': 'playground' },
          body: JSON.stringify({ model, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: prompt }] }),
        });
      let response = await call(false);
      if (response.status === 401) response = await call(true);
      current.traceId = response.headers.get('x-routerly-trace-id');
      if (!response.ok || !response.body) {
        const body = await response.json().catch(() => null);
        throw new Error(body?.error?.message ?? `the proxy answered ${response.status}`);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const parsed = parseSseChunk(buffer);
        buffer = parsed.rest;
        for (const chunk of parsed.events) {
          if (chunk.error) throw new Error(chunk.error);
          if (chunk.content) {
            if (current.firstByteMs === null) current.firstByteMs = performance.now() - started;
            current.answer += chunk.content;
          }
          if (chunk.usage) current.usage = chunk.usage;
          if (chunk.model) current.model = chunk.model;
        }
        setResult({ ...current });
      }
      current.totalMs = performance.now() - started;
      current.done = true;
      setResult({ ...current });
    } catch (reason) {
      if ((reason as Error).name !== 'AbortError') setError(reason as Error);
      setResult({ ...current, done: true });
    } finally {
      setSending(false);
      abort.current = null;
    }
  };

  return (
    <div className="playground">
      <Card title="Prompt">
        <form className="stack" onSubmit={send} noValidate aria-label="Playground">
          <SelectField label="Model" value={model} onChange={(event) => setModel(event.target.value)}>
            {choices.map((choice) => (
              <option key={choice}>{choice}</option>
            ))}
          </SelectField>
          <TextAreaField
            label="Prompt"
            rows={5}
            value={prompt}
            onChange={(event) => setPrompt(event.target.value)}
            error={promptError}
            onKeyDown={(event) => {
              if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) (event.currentTarget.form as HTMLFormElement).requestSubmit();
            }}
            hint="Ctrl+Enter sends. The call is real: it is billed, counted against budgets and logged, tagged “playground”."
          />
          <div className="row">
            <Button type="submit" variant="primary" busy={sending}>
              Send
            </Button>
            {sending ? <Button onClick={() => abort.current?.abort()}>Stop</Button> : null}
          </div>
        </form>
      </Card>
      <div className="playground-output">
        <Card title="Answer">
          <ErrorBox error={error} />
          {result ? (
            <>
              <div className="answer" data-testid="playground-answer" aria-live="polite" aria-busy={!result.done}>
                {result.answer || (result.done ? '' : '…')}
              </div>
              {result.done && result.usage ? (
                <p className="muted small" data-testid="playground-usage">
                  {result.model} · {count(result.usage.prompt_tokens)} in / {count(result.usage.completion_tokens)} out · first token {ms(result.firstByteMs)} · total {ms(result.totalMs)}
                </p>
              ) : null}
            </>
          ) : (
            <p className="muted">The answer streams here.</p>
          )}
        </Card>
        <Card title="Routing trace">
          {result?.traceId && result.done ? <TraceView projectId={project.id} traceId={result.traceId} /> : <p className="muted">{result?.traceId ? 'Waiting for the answer to finish…' : 'The trace of the call shows here.'}</p>}
        </Card>
      </div>
    </div>
  );
}
