import { useState, type FormEvent } from 'react';
import { request } from '../api';
import { AlertHistory, BudgetGauges, LimitForm, scopeLabel } from '../components/budgets';
import {
  Badge,
  Button,
  Card,
  Checkbox,
  ConfirmButton,
  Empty,
  ErrorBox,
  FormError,
  Loading,
  PageHeader,
  SecretOnce,
  SelectField,
  Table,
  Tabs,
  TextField,
  Unavailable,
  fieldError,
} from '../components/ui';
import { dateTime } from '../format';
import { describeAudit } from '../audit';
import { useAction, useApi } from '../hooks';
import { canWriteScope, usePermissions } from '../permissions';
import type { ApiKeyList, AuditActor, AuditPage, Channel, SettingsView, UpdateSettings, CreateApiKey, CreatedApiKey, CreateUser, LimitUse, Model, Project, Role, UpdateUser, User, UserList } from '../types';
import { isHttpUrl, validateCredentials, validateSmtp, validateWebhook, type Errors } from '../validate';

/** Each tab with the permission its page needs to load (budgets: anyone who reads usage). */
const TABS = [
  ['general', 'General', 'settings:write'],
  ['budgets', 'Budgets', null],
  ['notifications', 'Notifications', 'settings:write'],
  ['users', 'Users', 'user:read'],
  ['roles', 'Roles', 'user:read'],
  ['api-keys', 'API keys', 'user:write'],
  ['audit', 'Audit log', 'settings:write'],
] as const;

/** The tabs the user may open: a viewer never meets "Something went wrong" behind one. */
export function settingsTabs(can: (permission: string) => boolean) {
  return TABS.filter(([, , permission]) => permission === null || can(permission));
}

export function SettingsPage({ tab }: { tab: string }) {
  const { can } = usePermissions();
  const tabs = settingsTabs(can);
  const allowed = tabs.some(([id]) => id === tab);
  const needed = TABS.find(([id]) => id === tab)?.[2];
  return (
    <>
      <PageHeader title="Settings" />
      <Tabs label="Settings sections" active={tab} items={tabs.map(([id, label]) => ({ id, label, to: `/settings/${id}` }))} />
      <div className="tab-panel">
        {!allowed && needed ? <p className="state" data-testid="no-permission">This section needs the {needed} permission, which your role does not have.</p>
        : tab === 'general' ? <GeneralSettings />
        : tab === 'budgets' ? <GlobalBudgets />
        : tab === 'notifications' ? <Notifications />
        : tab === 'users' ? <Users />
        : tab === 'roles' ? <Roles />
        : tab === 'api-keys' ? <ApiKeys />
        : tab === 'audit' ? <Audit />
        : <ErrorBox error={`there is no settings tab “${tab}”`} />}
      </div>
    </>
  );
}

function GeneralSettings() {
  const loaded = useApi<SettingsView>('/api/settings');
  if (loaded.error) return <ErrorBox error={loaded.error} retry={loaded.reload} />;
  if (!loaded.data) return <Loading what="Loading settings" />;
  return <GeneralForm settings={loaded.data} onSaved={loaded.reload} />;
}

/** Where the service really listens (a flag or ROUTERLY_HOST/PORT may override the settings). */
function ListenAddress({ configured }: { configured: string }) {
  const system = useApi<{ listen: string }>('/api/system');
  const actual = system.data?.listen;
  // Until the service answers, claim no address: the settings' one may not be where it listens.
  if (!actual && !system.error) {
    return (
      <p className="muted small" data-testid="listen-address" aria-busy="true">
        Reading where the service listens…
      </p>
    );
  }
  return (
    <p className="muted small" data-testid="listen-address">
      Listening on <code>{actual ?? configured}</code>
      {actual && actual !== configured ? <> (the settings say {configured}; a start option overrides them)</> : null}; change the address with <code>routerly service configure</code>.
    </p>
  );
}

function GeneralForm({ settings, onSaved }: { settings: SettingsView; onSaved: () => void }) {
  const [publicUrl, setPublicUrl] = useState(settings.public_url ?? '');
  const [thresholds, setThresholds] = useState(settings.alert_thresholds.join(', '));
  const [timeZone, setTimeZone] = useState(settings.budget_time_zone);
  const [logLevel, setLogLevel] = useState(settings.log_level);
  const [privateWebhooks, setPrivateWebhooks] = useState(settings.allow_private_webhooks);
  const [dashboard, setDashboard] = useState(settings.dashboard);
  const [errors, setErrors] = useState<Errors>({});
  const [saved, setSaved] = useState(false);
  const action = useAction();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const found: Errors = {};
    if (publicUrl.trim() && !isHttpUrl(publicUrl)) found.public_url = 'Enter an http:// or https:// URL, or leave it empty.';
    const parsed = thresholds.split(',').map((item) => item.trim()).filter(Boolean).map(Number);
    if (parsed.some((value) => !Number.isInteger(value) || value < 1 || value > 1000)) found.alert_thresholds = 'Enter whole percentages from 1 to 1000, separated by commas.';
    if (!timeZone.trim()) found.budget_time_zone = 'Enter a time zone such as UTC or Europe/Rome.';
    setErrors(found);
    setSaved(false);
    if (Object.keys(found).length) return;
    const body: UpdateSettings = {
      public_url: publicUrl.trim() || null,
      alert_thresholds: parsed,
      budget_time_zone: timeZone.trim(),
      log_level: logLevel,
      allow_private_webhooks: privateWebhooks,
      dashboard,
    };
    if ((await action.run(() => request('/api/settings', { method: 'PATCH', body }))) !== undefined) {
      setSaved(true);
      onSaved();
    }
  };
  return (
    <Card title="General">
      <form className="stack" onSubmit={submit} noValidate aria-label="General settings">
        <div className="form-grid">
          <TextField label="Public URL" value={publicUrl} onChange={(event) => setPublicUrl(event.target.value)} error={fieldError(errors, action.error, 'public_url')} placeholder="https://routerly.example.com" hint="How people and webhooks reach this service." />
          <TextField label="Alert thresholds (%)" value={thresholds} onChange={(event) => setThresholds(event.target.value)} error={fieldError(errors, action.error, 'alert_thresholds')} hint="A notification is sent when a budget crosses each." />
          <TextField label="Budget time zone" value={timeZone} onChange={(event) => setTimeZone(event.target.value)} error={fieldError(errors, action.error, 'budget_time_zone')} hint="Calendar budget windows start at midnight here." />
          <SelectField label="Log level" value={logLevel} onChange={(event) => setLogLevel(event.target.value)} hint="Applies at the next start.">
            {['error', 'warn', 'info', 'debug', 'trace'].map((level) => (
              <option key={level}>{level}</option>
            ))}
          </SelectField>
        </div>
        <Checkbox label="Allow webhooks to private and loopback addresses" checked={privateWebhooks} onChange={(event) => setPrivateWebhooks(event.target.checked)} />
        <Checkbox label="Serve this dashboard (turning it off leaves the API and the CLI)" checked={dashboard} onChange={(event) => setDashboard(event.target.checked)} />
        <ListenAddress configured={`${settings.host}:${settings.port}`} />
        <FormError error={action.error} fields={['public_url', 'alert_thresholds', 'budget_time_zone']} />
        <div className="row">
          <Button type="submit" variant="primary" busy={action.pending}>
            Save settings
          </Button>
          {saved ? <span role="status">Saved.</span> : null}
        </div>
      </form>
    </Card>
  );
}

function GlobalBudgets() {
  const limits = useApi<{ limits: LimitUse[] }>('/api/limits');
  const projects = useApi<{ projects: Project[] }>('/api/projects');
  const models = useApi<{ models: Model[] }>('/api/models');
  const [scope, setScope] = useState('global');
  const { can } = usePermissions();
  if (limits.error?.routeMissing) return <Unavailable what="Budgets" />;
  // Only the levels the user may write (settings:write global, model:write models, project:write projects).
  const scopes = [
    ['global', 'Everything (global)'],
    ...(models.data?.models.map((model) => [`model:${model.id}`, `Model ${model.id}`]) ?? []),
    ...(projects.data?.projects.map((project) => [`project:${project.id}`, `Project ${project.name}`]) ?? []),
  ].filter(([value]) => canWriteScope(can, value));
  const chosen = scopes.some(([value]) => value === scope) ? scope : (scopes[0]?.[0] ?? '');
  return (
    <>
      {scopes.length === 0 ? null : (
      <Card title="Add a budget">
        <SelectField label="Applies to" value={chosen} onChange={(event) => setScope(event.target.value)}>
          {scopes.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </SelectField>
        <LimitForm scope={chosen} onSaved={limits.reload} />
      </Card>
      )}
      <Card title="Budgets">
        {limits.error ? (
          <ErrorBox error={limits.error} retry={limits.reload} />
        ) : !limits.data ? (
          <Loading />
        ) : limits.data.limits.length === 0 ? (
          <Empty title="No budgets.">Without budgets, calls are limited only by the providers.</Empty>
        ) : (
          <BudgetGauges
            limits={limits.data.limits}
            projects={projects.data?.projects}
            canRemove={(limit) => canWriteScope(can, limit.scope)}
            onRemove={async (limit) => {
              await request(`/api/limits/${encodeURIComponent(limit.id)}`, { method: 'DELETE' });
              limits.reload();
            }}
          />
        )}
      </Card>
      <Card title="Alerts sent">
        <AlertHistory projects={projects.data?.projects} />
      </Card>
    </>
  );
}

export function ChannelForm({ onSubmit }: { onSubmit: (body: Record<string, unknown>) => Promise<unknown> }) {
  const [kind, setKind] = useState<'webhook' | 'smtp'>('webhook');
  const [values, setValues] = useState({ url: '', secret: '', host: '', port: '587', tls: 'starttls', username: '', password: '', from: '', to: '' });
  const [errors, setErrors] = useState<Errors>({});
  const action = useAction();
  const set = (patch: Partial<typeof values>) => setValues((current) => ({ ...current, ...patch }));
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const found = kind === 'webhook' ? validateWebhook(values) : validateSmtp(values);
    setErrors(found);
    if (Object.keys(found).length) return;
    const body =
      kind === 'webhook'
        ? { type: 'webhook', url: values.url.trim(), ...(values.secret ? { secret: values.secret } : {}) }
        : {
            type: 'smtp',
            host: values.host.trim(),
            port: Number(values.port),
            tls: values.tls,
            ...(values.username ? { username: values.username, password: values.password } : {}),
            from: values.from.trim(),
            to: values.to.split(',').map((address) => address.trim()).filter(Boolean),
          };
    if ((await action.run(() => onSubmit(body))) !== undefined) setValues({ ...values, url: '', secret: '', password: '' });
  };
  return (
    <form className="stack" onSubmit={submit} noValidate aria-label="Add a notification channel">
      <SelectField label="Kind" value={kind} onChange={(event) => setKind(event.target.value as 'webhook' | 'smtp')}>
        <option value="webhook">Webhook</option>
        <option value="smtp">Email (SMTP)</option>
      </SelectField>
      {kind === 'webhook' ? (
        <div className="form-grid">
          <TextField label="URL" value={values.url} onChange={(event) => set({ url: event.target.value })} error={fieldError(errors, action.error, 'url')} placeholder="https://hooks.example.com/routerly" />
          <TextField label="Signing secret (optional)" type="password" autoComplete="off" value={values.secret} onChange={(event) => set({ secret: event.target.value })} hint="Bodies are signed as X-Routerly-Signature: sha256=…; never shown again." />
        </div>
      ) : (
        <div className="form-grid">
          <TextField label="SMTP server" value={values.host} onChange={(event) => set({ host: event.target.value })} error={fieldError(errors, action.error, 'host')} />
          <TextField label="Port" inputMode="numeric" value={values.port} onChange={(event) => set({ port: event.target.value })} error={fieldError(errors, action.error, 'port')} />
          <SelectField label="TLS" value={values.tls} onChange={(event) => set({ tls: event.target.value })}>
            <option value="starttls">STARTTLS</option>
            <option value="tls">TLS</option>
            <option value="none">none</option>
          </SelectField>
          <TextField label="Username (optional)" autoComplete="off" value={values.username} onChange={(event) => set({ username: event.target.value })} />
          <TextField label="Password" type="password" autoComplete="off" value={values.password} onChange={(event) => set({ password: event.target.value })} />
          <TextField label="From" value={values.from} onChange={(event) => set({ from: event.target.value })} error={fieldError(errors, action.error, 'from')} />
          <TextField label="To" value={values.to} onChange={(event) => set({ to: event.target.value })} error={fieldError(errors, action.error, 'to')} hint="Addresses separated by commas." />
        </div>
      )}
      <FormError error={action.error} fields={['url', 'host', 'port', 'from', 'to']} />
      <div className="row">
        <Button type="submit" variant="primary" busy={action.pending}>
          Add channel
        </Button>
      </div>
    </form>
  );
}

function Notifications() {
  const channels = useApi<{ channels: Channel[] }>('/api/channels');
  const [results, setResults] = useState<Record<string, { ok: boolean; message: string }>>({});
  const [testing, setTesting] = useState<string | null>(null);
  if (channels.error?.routeMissing) return <Unavailable what="Notification channels" />;
  return (
    <>
      <Card title="Add a channel">
        <ChannelForm
          onSubmit={async (body) => {
            const created = await request('/api/channels', { method: 'POST', body });
            channels.reload();
            return created;
          }}
        />
      </Card>
      <Card title="Channels">
        {channels.error ? (
          <ErrorBox error={channels.error} retry={channels.reload} />
        ) : !channels.data ? (
          <Loading />
        ) : channels.data.channels.length === 0 ? (
          <Empty title="No channels.">Budget alerts (thresholds crossed, budgets exhausted and reset) go to every channel.</Empty>
        ) : (
          <ul className="list">
            {channels.data.channels.map((channel) => (
              <li key={channel.id} className="list-item">
                <div>
                  <Badge>{channel.type}</Badge> <strong className="break">{channel.type === 'webhook' ? channel.url : `${channel.host}:${channel.port} → ${channel.to?.join(', ')}`}</strong>
                  <div className="muted small">
                    {channel.id}
                    {channel.type === 'webhook' ? (channel.secret_set ? ' · signed' : ' · unsigned') : channel.password_set ? ' · with password' : ''}
                  </div>
                  {results[channel.id] ? (
                    <div className={results[channel.id].ok ? 'ok' : 'field-error'} role="status">
                      {results[channel.id].message}
                    </div>
                  ) : null}
                </div>
                <div className="actions">
                  <Button
                    busy={testing === channel.id}
                    onClick={async () => {
                      setTesting(channel.id);
                      try {
                        await request(`/api/channels/${channel.id}/test`, { method: 'POST' });
                        setResults({ ...results, [channel.id]: { ok: true, message: 'Test alert delivered.' } });
                      } catch (error) {
                        setResults({ ...results, [channel.id]: { ok: false, message: (error as Error).message } });
                      } finally {
                        setTesting(null);
                      }
                    }}
                  >
                    Send test
                  </Button>
                  <ConfirmButton
                    label="Remove"
                    title="Remove this channel?"
                    message="Alerts will no longer be sent to it."
                    confirmLabel="Remove channel"
                    onConfirm={async () => {
                      await request(`/api/channels/${channel.id}`, { method: 'DELETE' });
                      channels.reload();
                    }}
                  />
                </div>
              </li>
            ))}
          </ul>
        )}
      </Card>
    </>
  );
}

/** A user's role, changed only after a confirmation that says what the new role grants. */
function RoleChanger({ user, roleNames, roles, change, onChanged }: { user: User; roleNames: string[]; roles: Role[]; change: (next: string) => Promise<unknown>; onChanged: () => void }) {
  const [next, setNext] = useState(user.role);
  const grants = roles.find((role) => role.id === next)?.permissions;
  return (
    <div className="inline-form">
      <select aria-label={`Role of ${user.email}`} value={next} onChange={(event) => setNext(event.target.value)}>
        {Array.from(new Set([...roleNames, user.role])).map((name) => (
          <option key={name}>{name}</option>
        ))}
      </select>
      {next !== user.role ? (
        <>
          <ConfirmButton
            label="Apply"
            variant="secondary"
            title={`Change ${user.email} from ${user.role} to ${next}?`}
            message={<>The new role applies at once{grants ? <>: it grants {grants.length ? grants.join(', ') : 'no permission'}</> : null}.</>}
            confirmLabel="Change role"
            onConfirm={async () => {
              if ((await change(next)) !== undefined) onChanged();
            }}
          />
          <Button variant="ghost" onClick={() => setNext(user.role)}>
            Undo
          </Button>
        </>
      ) : null}
    </div>
  );
}

function Users() {
  const users = useApi<UserList>('/api/users');
  const roles = useApi<{ roles: Role[] }>('/api/roles');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState('viewer');
  const [errors, setErrors] = useState<Errors>({});
  const add = useAction();
  const change = useAction();
  const roleNames = roles.data?.roles.map((candidate) => candidate.id) ?? ['admin', 'operator', 'viewer'];
  const canWrite = usePermissions().can('user:write');
  return (
    <>
      {canWrite ? (
      <Card title="Add a user">
        <form
          className="inline-form"
          noValidate
          aria-label="Add a user"
          onSubmit={async (event) => {
            event.preventDefault();
            const found = validateCredentials({ email, password }, true);
            setErrors(found);
            if (Object.keys(found).length) return;
            if ((await add.run(() => request('/api/users', { method: 'POST', body: { email: email.trim(), password, role } satisfies CreateUser }))) !== undefined) {
              setEmail('');
              setPassword('');
              users.reload();
            }
          }}
        >
          <TextField label="Email" type="email" value={email} onChange={(event) => setEmail(event.target.value)} error={fieldError(errors, add.error, 'email')} />
          <TextField label="Initial password" type="password" autoComplete="new-password" value={password} onChange={(event) => setPassword(event.target.value)} error={fieldError(errors, add.error, 'password')} />
          <SelectField label="Role" value={role} onChange={(event) => setRole(event.target.value)}>
            {roleNames.map((name) => (
              <option key={name}>{name}</option>
            ))}
          </SelectField>
          <Button type="submit" variant="primary" busy={add.pending}>
            Add user
          </Button>
          <FormError error={add.error} fields={['email', 'password']} />
        </form>
      </Card>
      ) : null}
      <ErrorBox error={change.error} />
      <Card title="Users">
        {users.error ? (
          <ErrorBox error={users.error} retry={users.reload} />
        ) : !users.data ? (
          <Loading />
        ) : (
          <Table label="Users">
            <thead>
              <tr>
                <th>Email</th>
                <th>Role</th>
                <th>Projects</th>
                <th>Created</th>
                <th>
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.data.users.map((user) => (
                <tr key={user.id}>
                  <td>{user.email}</td>
                  <td>{canWrite ? <RoleChanger user={user} roleNames={roleNames} roles={roles.data?.roles ?? []} change={(next) => change.run(() => request(`/api/users/${user.id}`, { method: 'PATCH', body: { role: next } satisfies UpdateUser }))} onChanged={users.reload} /> : user.role}</td>
                  <td>{user.projects.map((project) => `${project.slug} (${project.role})`).join(', ') || '—'}</td>
                  <td>{dateTime(user.created_at)}</td>
                  <td className="actions">
                    {canWrite ? (
                    <ConfirmButton
                      label="Remove"
                      title={`Remove ${user.email}?`}
                      message="They are logged out everywhere and can no longer log in."
                      confirmLabel="Remove user"
                      onConfirm={async () => {
                        const done = await change.run(async () => {
                          await request(`/api/users/${user.id}`, { method: 'DELETE' });
                          return true;
                        });
                        if (done) users.reload();
                      }}
                    />
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

function Roles() {
  const roles = useApi<{ roles: Role[]; permissions: string[] }>('/api/roles');
  const [id, setId] = useState('');
  const [name, setName] = useState('');
  const [permissions, setPermissions] = useState<string[]>([]);
  const [errors, setErrors] = useState<Errors>({});
  const add = useAction();
  const remove = useAction();
  const allPermissions = roles.data?.permissions ?? [];
  const canWrite = usePermissions().can('user:write');
  return (
    <>
      {canWrite ? (
      <Card title="Add a custom role">
        <form
          className="stack"
          noValidate
          aria-label="Add a role"
          onSubmit={async (event) => {
            event.preventDefault();
            const found: Errors = {};
            if (!/^[a-z0-9][a-z0-9_-]*$/.test(id)) found.id = 'Use lower-case letters, digits, - and _.';
            if (!name.trim()) found.name = 'Give the role a name.';
            if (permissions.length === 0) found.permissions = 'Tick at least one permission.';
            setErrors(found);
            if (Object.keys(found).length) return;
            if ((await add.run(() => request('/api/roles', { method: 'POST', body: { id, name: name.trim(), permissions } }))) !== undefined) {
              setId('');
              setName('');
              setPermissions([]);
              roles.reload();
            }
          }}
        >
          <div className="form-grid">
            <TextField label="Id" value={id} onChange={(event) => setId(event.target.value)} error={fieldError(errors, add.error, 'id')} placeholder="auditor" />
            <TextField label="Name" value={name} onChange={(event) => setName(event.target.value)} error={fieldError(errors, add.error, 'name')} placeholder="Auditor" />
          </div>
          <fieldset className="capabilities">
            <legend>Permissions</legend>
            {allPermissions.map((permission) => (
              <Checkbox
                key={permission}
                label={permission}
                checked={permissions.includes(permission)}
                onChange={(event) => setPermissions(event.target.checked ? [...permissions, permission] : permissions.filter((item) => item !== permission))}
              />
            ))}
            {errors.permissions ? <div className="field-error">{errors.permissions}</div> : null}
          </fieldset>
          <FormError error={add.error} fields={['id', 'name']} />
          <div className="row">
            <Button type="submit" variant="primary" busy={add.pending}>
              Add role
            </Button>
          </div>
        </form>
      </Card>
      ) : null}
      <ErrorBox error={remove.error} />
      <Card title="Roles">
        {roles.error ? (
          <ErrorBox error={roles.error} retry={roles.reload} />
        ) : !roles.data ? (
          <Loading />
        ) : (
          <Table label="Roles">
            <thead>
              <tr>
                <th>Role</th>
                <th>Permissions</th>
                <th>
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {roles.data.roles.map((role) => (
                <tr key={role.id}>
                  <td>
                    <strong>{role.name}</strong> <span className="muted small">{role.id}</span> {role.builtin ? <Badge>built-in</Badge> : null}
                  </td>
                  <td className="badges">{role.permissions.length ? role.permissions.map((permission) => <Badge key={permission}>{permission}</Badge>) : <span className="muted">none</span>}</td>
                  <td className="actions">
                    {role.builtin || !canWrite ? null : (
                      <ConfirmButton
                        label="Remove"
                        title={`Remove the role ${role.name}?`}
                        message="A role that users still hold cannot be removed."
                        confirmLabel="Remove role"
                        onConfirm={async () => {
                          const done = await remove.run(async () => {
                            await request(`/api/roles/${role.id}`, { method: 'DELETE' });
                            return true;
                          });
                          if (done) roles.reload();
                        }}
                      />
                    )}
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

function ApiKeys() {
  const keys = useApi<ApiKeyList>('/api/api-keys');
  const roles = useApi<{ roles: Role[] }>('/api/roles');
  const [name, setName] = useState('');
  const [role, setRole] = useState('admin');
  const [nameError, setNameError] = useState<string | undefined>();
  const [secret, setSecret] = useState<string | null>(null);
  const create = useAction();
  const revoke = useAction();
  return (
    <>
      <Card title="Create an API key">
        {secret ? (
          <SecretOnce secret={secret} what="API key" onDone={() => setSecret(null)} />
        ) : (
          <form
            className="inline-form"
            noValidate
            aria-label="Create an API key"
            onSubmit={async (event) => {
              event.preventDefault();
              if (!name.trim()) return setNameError('Name the key after what uses it, such as “CI”.');
              setNameError(undefined);
              const body: CreateApiKey = { name: name.trim(), role };
              const created = await create.run(() => request<CreatedApiKey>('/api/api-keys', { method: 'POST', body }));
              if (created) {
                setSecret(created.key);
                setName('');
                keys.reload();
              }
            }}
          >
            <TextField label="Name" value={name} onChange={(event) => setName(event.target.value)} error={nameError ?? (create.error?.field === 'name' ? create.error.message : undefined)} />
            <SelectField label="Role" value={role} onChange={(event) => setRole(event.target.value)}>
              {(roles.data?.roles.map((candidate) => candidate.id) ?? ['admin', 'operator', 'viewer']).map((candidate) => (
                <option key={candidate}>{candidate}</option>
              ))}
            </SelectField>
            <Button type="submit" variant="primary" busy={create.pending}>
              Create key
            </Button>
            <FormError error={create.error} fields={['name']} />
          </form>
        )}
      </Card>
      <ErrorBox error={revoke.error} />
      <Card title="API keys">
        {keys.error ? (
          <ErrorBox error={keys.error} retry={keys.reload} />
        ) : !keys.data ? (
          <Loading />
        ) : keys.data.api_keys.length === 0 ? (
          <Empty title="No API keys.">Scripts and CI use API keys instead of passwords.</Empty>
        ) : (
          <Table label="API keys">
            <thead>
              <tr>
                <th>Name</th>
                <th>Key</th>
                <th>Role</th>
                <th>Created</th>
                <th>Status</th>
                <th>
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.data.api_keys.map((key) => (
                <tr key={key.id}>
                  <td>{key.name}</td>
                  <td>
                    <code>{key.snippet}</code>
                  </td>
                  <td>{key.role}</td>
                  <td>{dateTime(key.created_at)}</td>
                  <td>{key.revoked_at ? <Badge tone="bad">revoked</Badge> : <Badge tone="good">active</Badge>}</td>
                  <td className="actions">
                    {key.revoked_at ? null : (
                      <ConfirmButton
                        label="Revoke"
                        title={`Revoke ${key.name}?`}
                        message="Whatever uses it is refused from now on."
                        confirmLabel="Revoke key"
                        onConfirm={async () => {
                          const done = await revoke.run(async () => {
                            await request(`/api/api-keys/${key.id}`, { method: 'DELETE' });
                            return true;
                          });
                          if (done) keys.reload();
                        }}
                      />
                    )}
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

function actorLabel(actor: AuditActor): string {
  switch (actor.via) {
    case 'session':
      return actor.email;
    case 'api_key':
      return `API key “${actor.name}”`;
    case 'setup':
      return 'first-admin setup';
  }
}

function Audit() {
  const [offset, setOffset] = useState(0);
  const page = useApi<AuditPage>('/api/audit', { limit: 25, offset });
  // Names for the ids in paths; each list is only what the auditor may read anyway.
  const projects = useApi<{ projects: Project[] }>('/api/projects');
  const { can } = usePermissions();
  const users = useApi<UserList>(can('user:read') ? '/api/users' : null);
  const name = (kind: string, id: string) => {
    if (kind === 'project') return projects.data?.projects.find((project) => project.id === id || project.slug === id)?.name;
    if (kind === 'user') return users.data?.users.find((user) => user.id === id)?.email;
    return undefined;
  };
  return (
    <Card title="Audit log">
      {page.error ? (
        <ErrorBox error={page.error} retry={page.reload} />
      ) : !page.data ? (
        <Loading />
      ) : page.data.entries.length === 0 ? (
        <Empty title="Nothing recorded yet.">Every change made through the API is recorded here.</Empty>
      ) : (
        <>
          <Table label="Audit log">
            <thead>
              <tr>
                <th>When</th>
                <th>Who</th>
                <th>What</th>
                <th>Status</th>
              </tr>
            </thead>
            <tbody>
              {page.data.entries.map((entry) => (
                <tr key={entry.id}>
                  <td>{dateTime(entry.at)}</td>
                  <td>{actorLabel(entry.actor)}</td>
                  <td data-testid="audit-what" title={`${entry.action} (${entry.path})`}>
                    {describeAudit(entry, name)}
                  </td>
                  <td>{entry.status}</td>
                </tr>
              ))}
            </tbody>
          </Table>
          <div className="pager">
            <Button onClick={() => setOffset(Math.max(0, offset - 25))} disabled={offset === 0}>
              Newer
            </Button>
            <span>
              {offset + 1}–{offset + page.data.entries.length} of {page.data.total}
            </span>
            <Button onClick={() => setOffset(offset + 25)} disabled={offset + page.data.entries.length >= page.data.total}>
              Older
            </Button>
          </div>
        </>
      )}
    </Card>
  );
}

export { scopeLabel };
