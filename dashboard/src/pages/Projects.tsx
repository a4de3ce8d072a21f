import { useState, type FormEvent } from 'react';
import { request } from '../api';
import { Button, Card, Empty, ErrorBox, FormError, Loading, PageHeader, Table, TextField, fieldError } from '../components/ui';
import { dateTime } from '../format';
import { useAction, useApi } from '../hooks';
import { Link, navigate } from '../router';
import type { Project } from '../types';
import { validateProjectName, type Errors } from '../validate';
import { usePermissions } from '../permissions';

export function ProjectForm({ onSubmit }: { onSubmit: (name: string) => Promise<unknown> }) {
  const [name, setName] = useState('');
  const [errors, setErrors] = useState<Errors>({});
  const action = useAction();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const found = validateProjectName(name);
    setErrors(found);
    if (Object.keys(found).length === 0) await action.run(() => onSubmit(name.trim()));
  };
  return (
    <form className="inline-form" onSubmit={submit} noValidate aria-label="Create a project">
      <TextField label="Project name" value={name} onChange={(event) => setName(event.target.value)} error={fieldError(errors, action.error, 'name')} placeholder="Support bot" />
      <Button type="submit" variant="primary" busy={action.pending}>
        Create project
      </Button>
      <FormError error={action.error} fields={['name']} />
    </form>
  );
}

export function ProjectsPage() {
  const projects = useApi<{ projects: Project[] }>('/api/projects');
  const canCreate = usePermissions().can('project:write');
  return (
    <>
      <PageHeader title="Projects" />
      {canCreate ? (
      <Card title="New project">
        <ProjectForm
          onSubmit={async (name) => {
            const project = await request<Project>('/api/projects', { method: 'POST', body: { name } });
            navigate(`/projects/${project.id}/models`);
          }}
        />
      </Card>
      ) : null}
      <Card>
        {projects.error ? (
          <ErrorBox error={projects.error} retry={projects.reload} />
        ) : !projects.data ? (
          <Loading what="Loading projects" />
        ) : projects.data.projects.length === 0 ? (
          <Empty title="No projects yet.">A project groups models, routing, tokens and budgets for one application.</Empty>
        ) : (
          <Table label="Projects">
            <thead>
              <tr>
                <th>Name</th>
                <th>Models</th>
                <th>Active tokens</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {projects.data.projects.map((project) => (
                <tr key={project.id}>
                  <td>
                    <Link to={`/projects/${project.id}/general`}>{project.name}</Link>
                    <div className="muted small">{project.slug}</div>
                  </td>
                  <td>{project.models.map((model) => model.model_id).join(', ') || '—'}</td>
                  <td>{project.tokens.filter((token) => !token.revoked_at).length}</td>
                  <td>{dateTime(project.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </Table>
        )}
      </Card>
    </>
  );
}
