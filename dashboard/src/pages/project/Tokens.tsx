import { useMemo, useState, type FormEvent } from 'react';
import { request, sessionUser } from '../../api';
import { Badge, Button, Card, Checkbox, ConfirmButton, Empty, ErrorBox, FormError, SecretOnce, Table, TextField } from '../../components/ui';
import { count, dateTime, usd } from '../../format';
import { missing, usePermissions } from '../../permissions';
import { useAction, useApi, type Loaded } from '../../hooks';
import type { MemberList, ProjectToken, Totals, UsageLastUse } from '../../types';
import type { TabProps } from '../Project';

export function tokenStatus(token: ProjectToken, now = Date.now()): { label: string; tone: 'good' | 'warn' | 'bad' } {
  if (token.revoked_at) return { label: 'revoked', tone: 'bad' };
  if (token.expires_at && new Date(token.expires_at).getTime() <= now) return { label: 'expired', tone: 'warn' };
  return { label: 'active', tone: 'good' };
}

/** When a token was last used, from the one answer of `/api/usage/last-use` for the project. */
function LastUse({ lastUse, tokenId }: { lastUse: Loaded<UsageLastUse>; tokenId: string }) {
  if (lastUse.error) return <span className="muted">—</span>;
  if (!lastUse.data) return <span className="muted">…</span>;
  const last = lastUse.data.tokens.find((row) => row.token_id === tokenId);
  return <span data-testid="token-last-use">{last ? dateTime(last.last_used_at) : 'never'}</span>;
}

export function TokensTab({ project, reload }: TabProps) {
  const canWrite = usePermissions().can('project:write', project.id);
  const since = useMemo(() => new Date(Date.now() - 30 * 86_400_000).toISOString().slice(0, 10) + 'T00:00:00Z', []);
  const spend = useApi<{ tokens: (Totals & { token_id: string })[] }>('/api/usage/by-token', { project: project.id, from: since });
  // Every token's last use in one request, however many tokens the project has.
  const lastUse = useApi<UsageLastUse>('/api/usage/last-use', { project: project.id });
  // A playground token is labelled `user:<id>`: shown with the email of that member (or of
  // the caller, who may use the playground without being a member).
  const members = useApi<MemberList>(`/api/projects/${project.id}/members`);
  const labelText = (label: string) => {
    if (!label.startsWith('user:')) return label;
    const id = label.slice('user:'.length);
    const me = sessionUser();
    const email = members.data?.members.find((member) => member.user_id === id)?.email ?? (me?.id === id ? me.email : undefined);
    return email ? `user: ${email}` : label;
  };
  const spendOf = (id: string) => spend.data?.tokens.find((row) => row.token_id === id);
  const [labels, setLabels] = useState('');
  const [models, setModels] = useState<string[]>([]);
  const [expires, setExpires] = useState('');
  const [expiryError, setExpiryError] = useState<string | undefined>();
  const [secret, setSecret] = useState<string | null>(null);
  const create = useAction();
  const revoke = useAction();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    let expiresAt: string | undefined;
    if (expires) {
      const date = new Date(expires + 'T23:59:59Z');
      if (Number.isNaN(date.getTime()) || date.getTime() <= Date.now()) {
        setExpiryError('Choose a date in the future, or leave it empty for a token that does not expire.');
        return;
      }
      expiresAt = date.toISOString();
    }
    setExpiryError(undefined);
    const created = await create.run(() =>
      request<{ token: string }>(`/api/projects/${project.id}/tokens`, {
        method: 'POST',
        body: {
          labels: labels.split(',').map((label) => label.trim()).filter(Boolean),
          models,
          ...(expiresAt ? { expires_at: expiresAt } : {}),
        },
      }),
    );
    if (created) {
      setSecret(created.token);
      setLabels('');
      setModels([]);
      setExpires('');
      reload();
    }
  };
  const tokens = [...project.tokens].sort((a, b) => b.created_at.localeCompare(a.created_at));
  return (
    <>
      {canWrite ? (
      <Card title="Create a token">
        {secret ? (
          <SecretOnce secret={secret} what="token" onDone={() => setSecret(null)} />
        ) : (
          <form className="stack" onSubmit={submit} noValidate aria-label="Create a token">
            <div className="form-grid">
              <TextField label="Labels (optional)" value={labels} onChange={(event) => setLabels(event.target.value)} placeholder="ci, staging" />
              <TextField label="Expires on (optional)" type="date" value={expires} onChange={(event) => setExpires(event.target.value)} error={expiryError ?? (create.error?.field === 'expires_at' ? create.error.message : undefined)} />
            </div>
            {project.models.length > 0 ? (
              <fieldset className="capabilities">
                <legend>Only these models (none ticked: all of the project's)</legend>
                {project.models.map((model) => (
                  <Checkbox
                    key={model.model_id}
                    label={model.model_id}
                    checked={models.includes(model.model_id)}
                    onChange={(event) => setModels((current) => (event.target.checked ? [...current, model.model_id] : current.filter((id) => id !== model.model_id)))}
                  />
                ))}
              </fieldset>
            ) : null}
            <FormError error={create.error} fields={['expires_at']} />
            <div className="row">
              <Button type="submit" variant="primary" busy={create.pending}>
                Create token
              </Button>
            </div>
          </form>
        )}
      </Card>
      ) : <p className="muted small" data-testid="no-permission">{missing('project:write', project.name)}</p>}
      <ErrorBox error={revoke.error} />
      <Card title="Tokens">
        {tokens.length === 0 ? (
          <Empty title="No tokens yet.">Clients authenticate with a project token: `Authorization: Bearer sk-lr-…`.</Empty>
        ) : (
          <Table label="Tokens">
            <thead>
              <tr>
                <th>Token</th>
                <th>Status</th>
                <th>Labels</th>
                <th>Models</th>
                <th>Last used</th>
                <th>Spend (30 days)</th>
                <th>Expires</th>
                <th>Created</th>
                <th>
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {tokens.map((token) => {
                const status = tokenStatus(token);
                return (
                  <tr key={token.id}>
                    <td>
                      <code>{token.snippet}</code>
                      <div className="muted small">{token.id}</div>
                    </td>
                    <td>
                      <Badge tone={status.tone}>{status.label}</Badge>
                    </td>
                    <td data-testid="token-labels">{token.labels.map(labelText).join(', ') || '—'}</td>
                    <td>{token.models.join(', ') || 'all'}</td>
                    <td>
                      <LastUse lastUse={lastUse} tokenId={token.id} />
                    </td>
                    <td data-testid="token-spend">
                      {spend.data ? (
                        <>
                          {usd(spendOf(token.id)?.cost_usd ?? 0)}
                          <div className="muted small">{count(spendOf(token.id)?.calls ?? 0)} calls</div>
                        </>
                      ) : (
                        // Not "$0.00, 0 calls" while the figures load or when they cannot be read.
                        <span className="muted">{spend.error ? '—' : '…'}</span>
                      )}
                    </td>
                    <td>{token.expires_at ? dateTime(token.expires_at) : 'never'}</td>
                    <td>{dateTime(token.created_at)}</td>
                    <td className="actions">
                      {status.label === 'active' && canWrite ? (
                        <ConfirmButton
                          label="Revoke"
                          title="Revoke this token?"
                          message={<>Clients using <code>{token.snippet}</code> are refused from now on.</>}
                          confirmLabel="Revoke token"
                          onConfirm={async () => {
                            const done = await revoke.run(async () => {
                              await request(`/api/projects/${project.id}/tokens/${token.id}`, { method: 'DELETE' });
                              return true;
                            });
                            if (done) reload();
                          }}
                        />
                      ) : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </Table>
        )}
      </Card>
    </>
  );
}
