import { useState } from 'react';
import { request } from '../../api';
import { AlertHistory, BudgetGauges, LimitForm } from '../../components/budgets';
import { Button, Card, ConfirmButton, ErrorBox, FormError, Loading, TextField, Unavailable } from '../../components/ui';
import { dateTime } from '../../format';
import { useAction, useApi } from '../../hooks';
import { navigate } from '../../router';
import type { LimitUse } from '../../types';
import { validateProjectName, type Errors } from '../../validate';
import type { TabProps } from '../Project';
import { usePermissions } from '../../permissions';

export function GeneralTab({ project, reload }: TabProps) {
  const [name, setName] = useState(project.name);
  const [errors, setErrors] = useState<Errors>({});
  const rename = useAction();
  const remove = useAction();
  const limits = useApi<{ limits: LimitUse[] }>('/api/usage/limits');
  const mine = limits.data?.limits.filter((limit) => limit.scope === `project:${project.id}` || limit.scope.startsWith(`project:${project.id}/`)) ?? [];
  const canWrite = usePermissions().can('project:write', project.id);
  return (
    <>
      <Card title="Project">
        {canWrite ? (
        <form
          className="inline-form"
          noValidate
          aria-label="Rename the project"
          onSubmit={async (event) => {
            event.preventDefault();
            const found = validateProjectName(name);
            setErrors(found);
            if (Object.keys(found).length) return;
            if ((await rename.run(() => request(`/api/projects/${project.id}`, { method: 'PATCH', body: { name: name.trim() } }))) !== undefined) reload();
          }}
        >
          <TextField label="Name" value={name} onChange={(event) => setName(event.target.value)} error={errors.name ?? (rename.error?.field === 'name' ? rename.error.message : undefined)} />
          <Button type="submit" busy={rename.pending} disabled={name === project.name}>
            Rename
          </Button>
          <FormError error={rename.error} fields={['name']} />
        </form>
        ) : null}
        <dl className="facts">
          <dt>Id</dt>
          <dd>
            <code>{project.id}</code>
          </dd>
          <dt>Slug</dt>
          <dd>
            <code>{project.slug}</code>
          </dd>
          <dt>Created</dt>
          <dd>{dateTime(project.created_at)}</dd>
        </dl>
      </Card>
      <Card title="Budgets">
        {limits.error ? (
          limits.error.routeMissing ? (
            <Unavailable what="Budgets" />
          ) : (
            <ErrorBox error={limits.error} retry={limits.reload} />
          )
        ) : !limits.data ? (
          <Loading />
        ) : (
          <>
            {mine.length === 0 ? <p className="muted">No budget on this project yet: its calls are limited only by global and model budgets.</p> : null}
            <BudgetGauges
              limits={mine}
              projects={[project]}
              canRemove={() => canWrite}
              onRemove={async (limit) => {
                await request(`/api/limits/${encodeURIComponent(limit.id)}`, { method: 'DELETE' });
                limits.reload();
              }}
            />
            {canWrite ? (
              <>
                <h3>Add a budget</h3>
                <LimitForm scope={`project:${project.id}`} onSaved={limits.reload} />
              </>
            ) : null}
          </>
        )}
      </Card>
      <Card title="Budget alerts">
        <AlertHistory projects={[project]} scope={`project:${project.id}`} />
      </Card>
      {canWrite ? (
      <Card title="Danger zone">
        <p className="muted">Deleting the project revokes its tokens at once. Its usage records stay.</p>
        <ErrorBox error={remove.error} />
        <ConfirmButton
          label="Delete project"
          title={`Delete ${project.name}?`}
          message="Every token of this project stops working at once. This cannot be undone."
          confirmLabel="Delete project"
          onConfirm={async () => {
            const done = await remove.run(async () => {
              await request(`/api/projects/${project.id}`, { method: 'DELETE' });
              return true;
            });
            if (done) navigate('/projects');
          }}
        />
      </Card>
      ) : null}
    </>
  );
}
