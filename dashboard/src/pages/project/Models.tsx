import { useState } from 'react';
import { request } from '../../api';
import { Button, Card, ConfirmButton, Empty, ErrorBox, FormError, Loading, SelectField, TextAreaField, TextField } from '../../components/ui';
import { useAction, useApi } from '../../hooks';
import { Link } from '../../router';
import type { Model, ProjectModel } from '../../types';
import type { TabProps } from '../Project';
import { missing, usePermissions } from '../../permissions';

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
}

function ProjectModelEditor({ projectId, model, onSaved }: { projectId: string; model: ProjectModel; onSaved: () => void }) {
  const [aliases, setAliases] = useState(model.aliases.join(', '));
  const [prompt, setPrompt] = useState(model.routing_prompt ?? '');
  const action = useAction();
  const changed = aliases !== model.aliases.join(', ') || prompt !== (model.routing_prompt ?? '');
  return (
    <form
      className="stack"
      aria-label={`Settings of ${model.model_id}`}
      onSubmit={async (event) => {
        event.preventDefault();
        const done = await action.run(() =>
          request(`/api/projects/${projectId}/models/${encodeURIComponent(model.model_id)}`, {
            method: 'PATCH',
            body: { aliases: splitList(aliases), routing_prompt: prompt.trim() ? prompt.trim() : null },
          }),
        );
        if (done !== undefined) onSaved();
      }}
    >
      <TextField label="Aliases" value={aliases} onChange={(event) => setAliases(event.target.value)} hint="Other names clients may send as `model`, separated by commas." error={action.error?.field === 'aliases' ? action.error.message : undefined} />
      <TextAreaField label="Routing prompt" rows={2} value={prompt} onChange={(event) => setPrompt(event.target.value)} hint="What this model is good at; the `llm` routing policy reads it." />
      <FormError error={action.error} fields={['aliases']} />
      <div className="row">
        <Button type="submit" busy={action.pending} disabled={!changed}>
          Save
        </Button>
      </div>
    </form>
  );
}

/** `ids` with the one at `from` moved to `to`. */
export function moved(ids: string[], from: number, to: number): string[] {
  if (to < 0 || to >= ids.length) return ids;
  const next = [...ids];
  const [item] = next.splice(from, 1);
  next.splice(to, 0, item);
  return next;
}

export function ProjectModelsTab({ project, reload }: TabProps) {
  const models = useApi<{ models: Model[] }>('/api/models');
  const canWrite = usePermissions().can('project:write', project.id);
  const reorder = useAction();
  const ids = project.models.map((model) => model.model_id);
  const move = async (from: number, to: number) => {
    const done = await reorder.run(() => request(`/api/projects/${project.id}`, { method: 'PATCH', body: { model_order: moved(ids, from, to) } }));
    if (done !== undefined) reload();
  };
  const [modelId, setModelId] = useState('');
  const [aliases, setAliases] = useState('');
  const add = useAction();
  const remove = useAction();
  const available = models.data?.models.filter((model) => !project.models.some((pm) => pm.model_id === model.id)) ?? [];
  const chosen = modelId || available[0]?.id || '';
  return (
    <>
      {canWrite ? null : <p className="muted small" data-testid="no-permission">{missing('project:write', project.name)}</p>}
      {!canWrite ? null : (
      <Card title="Add a model to this project">
        {models.error ? (
          <ErrorBox error={models.error} retry={models.reload} />
        ) : !models.data ? (
          <Loading />
        ) : models.data.models.length === 0 ? (
          <Empty title="No models registered yet.">
            <Link to="/models">Add a model</Link> first.
          </Empty>
        ) : available.length === 0 ? (
          <p className="muted">Every registered model is in this project.</p>
        ) : (
          <form
            className="inline-form"
            noValidate
            aria-label="Add a model to the project"
            onSubmit={async (event) => {
              event.preventDefault();
              const done = await add.run(() => request(`/api/projects/${project.id}/models`, { method: 'POST', body: { model_id: chosen, aliases: splitList(aliases) } }));
              if (done !== undefined) {
                setAliases('');
                setModelId('');
                reload();
              }
            }}
          >
            <SelectField label="Model" value={chosen} onChange={(event) => setModelId(event.target.value)}>
              {available.map((model) => (
                <option key={model.id} value={model.id}>
                  {model.id} ({model.provider})
                </option>
              ))}
            </SelectField>
            <TextField label="Aliases (optional)" value={aliases} onChange={(event) => setAliases(event.target.value)} placeholder="gpt-4o, default" />
            <Button type="submit" variant="primary" busy={add.pending}>
              Add to project
            </Button>
            <FormError error={add.error} />
          </form>
        )}
      </Card>
      )}
      <ErrorBox error={remove.error} />
      <ErrorBox error={reorder.error} />
      {project.models.length > 1 ? <p className="muted small">Calls try the models in this order when no routing policy decides (the fallback order).</p> : null}
      {project.models.length === 0 ? (
        <Empty title="This project has no models yet.">Calls with its tokens can reach only the models added here.</Empty>
      ) : (
        project.models.map((model, index) => (
          <Card
            key={model.model_id}
            title={`${index + 1}. ${model.model_id}`}
            actions={
              !canWrite ? null : (
              <div className="row" data-testid={`project-model-${model.model_id}`}>
              <Button variant="ghost" aria-label={`Move ${model.model_id} up`} disabled={index === 0 || reorder.pending} onClick={() => move(index, index - 1)}>
                ↑
              </Button>
              <Button variant="ghost" aria-label={`Move ${model.model_id} down`} disabled={index === project.models.length - 1 || reorder.pending} onClick={() => move(index, index + 1)}>
                ↓
              </Button>
              <ConfirmButton
                label="Remove"
                title={`Remove ${model.model_id} from ${project.name}?`}
                message="Calls from this project will no longer be routed to it."
                confirmLabel="Remove from project"
                onConfirm={async () => {
                  const done = await remove.run(async () => {
                    await request(`/api/projects/${project.id}/models/${encodeURIComponent(model.model_id)}`, { method: 'DELETE' });
                    return true;
                  });
                  if (done) reload();
                }}
              />
              </div>
              )
            }
          >
            {canWrite ? (
              <ProjectModelEditor projectId={project.id} model={model} onSaved={reload} />
            ) : (
              <p className="muted small">
                Aliases: {model.aliases.join(', ') || '—'}
                {model.routing_prompt ? <> · routing prompt: {model.routing_prompt}</> : null}
              </p>
            )}
          </Card>
        ))
      )}
    </>
  );
}
