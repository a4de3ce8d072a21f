import { useState } from 'react';
import { adoptSession, logout, request } from '../api';
import { Badge, Button, Card, ErrorBox, FormError, Loading, PageHeader, TextField, fieldError } from '../components/ui';
import { useAction, useApi } from '../hooks';
import { Link } from '../router';
import type { Me } from '../types';
import type { Errors } from '../validate';

export function ProfilePage() {
  const me = useApi<Me>('/api/me');
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [repeat, setRepeat] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const [changed, setChanged] = useState(false);
  const action = useAction();
  return (
    <>
      <PageHeader title="Profile">
        <Button onClick={() => logout()}>Log out</Button>
      </PageHeader>
      <Card title="You">
        {me.error ? (
          <ErrorBox error={me.error} retry={me.reload} />
        ) : !me.data ? (
          <Loading />
        ) : (
          <dl className="facts">
            <dt>Email</dt>
            <dd data-testid="profile-email">{me.data.email}</dd>
            <dt>Role</dt>
            <dd>{me.data.role}</dd>
            <dt>Permissions</dt>
            <dd className="badges">{me.data.permissions.map((permission) => <Badge key={permission}>{permission}</Badge>)}</dd>
            <dt>Projects</dt>
            <dd>
              {me.data.projects.length === 0
                ? 'No project memberships (your global role applies).'
                : me.data.projects.map((project) => (
                    <div key={project.id}>
                      <Link to={`/projects/${project.id}/general`}>{project.name}</Link> ({project.role})
                    </div>
                  ))}
            </dd>
          </dl>
        )}
      </Card>
      <Card title="Change your password">
        <form
          className="stack"
          noValidate
          aria-label="Change your password"
          onSubmit={async (event) => {
            event.preventDefault();
            const found: Errors = {};
            if (!current) found.current_password = 'Enter your current password.';
            if (next.length < 8) found.new_password = 'Use at least 8 characters.';
            if (repeat !== next) found.repeat = 'The two passwords differ.';
            setErrors(found);
            setChanged(false);
            if (Object.keys(found).length) return;
            const session = await action.run(() => request<Parameters<typeof adoptSession>[0]>('/api/me', { method: 'PUT', body: { current_password: current, new_password: next } }));
            if (session) {
              adoptSession(session);
              setCurrent('');
              setNext('');
              setRepeat('');
              setChanged(true);
            }
          }}
        >
          <div className="form-grid">
            <TextField label="Current password" type="password" autoComplete="current-password" value={current} onChange={(event) => setCurrent(event.target.value)} error={fieldError(errors, action.error, 'current_password')} />
            <TextField label="New password" type="password" autoComplete="new-password" value={next} onChange={(event) => setNext(event.target.value)} error={fieldError(errors, action.error, 'new_password', 'password')} />
            <TextField label="Repeat the new password" type="password" autoComplete="new-password" value={repeat} onChange={(event) => setRepeat(event.target.value)} error={errors.repeat} />
          </div>
          <FormError error={action.error} fields={['current_password', 'password']} />
          <div className="row">
            <Button type="submit" variant="primary" busy={action.pending}>
              Change password
            </Button>
            {changed ? <span role="status">Password changed; your other sessions were logged out.</span> : null}
          </div>
        </form>
      </Card>
    </>
  );
}
