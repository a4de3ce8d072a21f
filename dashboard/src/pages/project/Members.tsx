import { useState } from 'react';
import { request } from '../../api';
import { Button, Card, ConfirmButton, Empty, ErrorBox, FormError, Loading, SelectField, Table, TextField } from '../../components/ui';
import { useAction, useApi } from '../../hooks';
import type { AddMember, MemberList, UpdateMember } from '../../types';
import { isEmail } from '../../validate';
import type { TabProps } from '../Project';
import { missing, usePermissions } from '../../permissions';

const ROLES = ['viewer', 'editor', 'admin'];

/** A member's project role, changed only after a confirmation. */
function MemberRole({ who, role, projectName, change, onChanged }: { who: string; role: string; projectName: string; change: (next: string) => Promise<unknown>; onChanged: () => void }) {
  const [next, setNext] = useState(role);
  return (
    <div className="inline-form">
      <select aria-label={`Role of ${who}`} value={next} onChange={(event) => setNext(event.target.value)}>
        {ROLES.map((name) => (
          <option key={name}>{name}</option>
        ))}
      </select>
      {next !== role ? (
        <>
          <ConfirmButton
            label="Apply"
            variant="secondary"
            title={`Make ${who} ${next} of ${projectName}?`}
            message={<>They are {role} now; the new role applies at once.</>}
            confirmLabel="Change role"
            onConfirm={async () => {
              if ((await change(next)) !== undefined) onChanged();
            }}
          />
          <Button variant="ghost" onClick={() => setNext(role)}>
            Undo
          </Button>
        </>
      ) : null}
    </div>
  );
}

export function MembersTab({ project }: TabProps) {
  const members = useApi<MemberList>(`/api/projects/${project.id}/members`);
  const [email, setEmail] = useState('');
  const [role, setRole] = useState('viewer');
  const [emailError, setEmailError] = useState<string | undefined>();
  const add = useAction();
  const change = useAction();
  const canManage = usePermissions().can('project:members', project.id);
  return (
    <>
      {!canManage ? <p className="muted small" data-testid="no-permission">{missing('project:members', project.name)}</p> : (
      <Card title="Add a member">
        <form
          className="inline-form"
          noValidate
          aria-label="Add a member"
          onSubmit={async (event) => {
            event.preventDefault();
            if (!isEmail(email)) return setEmailError('Enter the email of an existing user.');
            setEmailError(undefined);
            if ((await add.run(() => request(`/api/projects/${project.id}/members`, { method: 'POST', body: { email: email.trim(), role } satisfies AddMember }))) !== undefined) {
              setEmail('');
              members.reload();
            }
          }}
        >
          <TextField label="User's email" type="email" value={email} onChange={(event) => setEmail(event.target.value)} error={emailError} hint="Users are created under Settings → Users." />
          <SelectField label="Role in this project" value={role} onChange={(event) => setRole(event.target.value)}>
            {ROLES.map((name) => (
              <option key={name}>{name}</option>
            ))}
          </SelectField>
          <Button type="submit" variant="primary" busy={add.pending}>
            Add member
          </Button>
          <FormError error={add.error} />
        </form>
      </Card>
      )}
      <ErrorBox error={change.error} />
      <Card title="Members">
        {members.error ? (
          <ErrorBox error={members.error} retry={members.reload} />
        ) : !members.data ? (
          <Loading />
        ) : members.data.members.length === 0 ? (
          <Empty title="No members.">Global admins and operators reach every project; add others here.</Empty>
        ) : (
          <Table label="Members">
            <thead>
              <tr>
                <th>User</th>
                <th>Role</th>
                <th>
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {members.data.members.map((member) => (
                <tr key={member.user_id}>
                  <td>{member.email ?? member.user_id}</td>
                  <td>
                    {!canManage ? member.role : (
                    <MemberRole
                      who={member.email ?? member.user_id}
                      role={member.role}
                      projectName={project.name}
                      change={(next) => change.run(() => request(`/api/projects/${project.id}/members/${member.user_id}`, { method: 'PATCH', body: { role: next } satisfies UpdateMember }))}
                      onChanged={members.reload}
                    />
                    )}
                  </td>
                  <td className="actions">
                    {canManage ? (
                    <ConfirmButton
                      label="Remove"
                      title="Remove this member?"
                      message={<>{member.email} loses access to {project.name}.</>}
                      confirmLabel="Remove member"
                      onConfirm={async () => {
                        const done = await change.run(async () => {
                          await request(`/api/projects/${project.id}/members/${member.user_id}`, { method: 'DELETE' });
                          return true;
                        });
                        if (done) members.reload();
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
