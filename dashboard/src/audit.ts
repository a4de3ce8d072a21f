// The audit log in words: "Created a token in project Support bot" instead of
// "POST /api/projects/{project}/tokens" and a path of UUIDs.

import { metricValue, scopeInWords } from './format';

const VERBS: Record<string, string> = { POST: 'Created', PUT: 'Replaced', PATCH: 'Changed', DELETE: 'Removed' };

/**
 * What each route template changes, in words (the method gives the verb), and the config
 * file holding the object its `{id}` names (the entry's `changes` name it when the path
 * cannot: a create, a removed object).
 */
const OBJECTS: [RegExp, string, string?][] = [
  [/^\/api\/models\/\{id\}\/key$/, 'read the API key of model {id}'],
  [/^\/api\/models(\/\{id\})?$/, 'model {id}', 'models.json'],
  [/^\/api\/projects\/\{project\}\/models(\/\{model_id\})?$/, 'model {model_id} in project {project}'],
  [/^\/api\/projects\/\{project\}\/tokens(\/\{token_id\})?$/, 'a token of project {project}'],
  [/^\/api\/projects\/\{project\}\/members(\/\{user\})?$/, 'member {user} of project {project}'],
  [/^\/api\/projects\/\{project\}\/policies$/, 'the routing policies of project {project}'],
  [/^\/api\/projects(\/\{project\})?$/, 'project {project}'],
  [/^\/api\/limits(\/\{id\})?$/, 'budget {id}', 'limits.json'],
  [/^\/api\/channels\/\{id\}\/test$/, 'sent a test alert to channel {id}'],
  [/^\/api\/channels(\/\{id\})?$/, 'notification channel {id}'],
  [/^\/api\/users(\/\{user\})?$/, 'user {user}'],
  [/^\/api\/roles(\/\{id\})?$/, 'role {id}', 'roles.json'],
  [/^\/api\/api-keys(\/\{id\})?$/, 'API key {id}'],
  [/^\/api\/settings$/, 'the settings'],
  [/^\/api\/system\/rotate-key$/, 'rotated the master key'],
  [/^\/api\/me$/, 'their own password'],
  [/^\/api\/setup\/first-admin$/, 'the first administrator'],
];

/** The config file of the objects the other path parameters name. */
const PARAM_FILES: Record<string, string> = { project: 'projects.json', user: 'users.json', model_id: 'models.json' };

/** What a create under a project adds, by path parameter: the project's list and its key. */
const PROJECT_LISTS: Record<string, [string, string]> = { model_id: ['models', 'model_id'], user: ['members', 'user_id'] };

/** A config entity an audit entry touched. */
export interface AuditedChange {
  file: string;
  id: string | null;
  before: unknown;
  after: unknown;
}

type Names = (kind: string, id: string) => string | undefined;

/** A budget in words: "$5.00 monthly on project Support bot". */
function limitWords(limit: Record<string, unknown>, name: Names): string {
  const amount = metricValue(String(limit.metric), Number(limit.value));
  const scope = scopeInWords(String(limit.scope ?? ''), (id) => name('project', id));
  return `${amount} ${String(limit.window ?? '').replace(':', ' ')} on ${scope.charAt(0).toLowerCase()}${scope.slice(1)}`;
}

/** What people call the entity `file` holds: a budget in words, a user's email, a name. */
function entityName(file: string, entity: Record<string, unknown>, name: Names): string | undefined {
  if (file === 'limits.json') return limitWords(entity, name);
  for (const key of ['name', 'email', 'id']) if (typeof entity[key] === 'string') return entity[key] as string;
  return undefined;
}

/** The values of a route template's `{name}` segments in a concrete path. */
export function pathParams(template: string, path: string): Record<string, string> {
  const names = template.split('/');
  const values = path.split('?')[0].split('/');
  const params: Record<string, string> = {};
  names.forEach((name, index) => {
    const found = /^\{(.+)\}$/.exec(name);
    if (found && values[index] !== undefined) params[found[1]] = decodeURIComponent(values[index]);
  });
  return params;
}

/**
 * One audit entry in words. `name` turns an id into what people call it (a project's name,
 * a user's email). Where it cannot (a removed project) or the path has no id (a create),
 * the entity the entry's `changes` hold names it; then the entry's detail (an API key
 * created); else the id stays as it is.
 */
export function describeAudit(entry: { action: string; path: string; detail?: unknown; changes?: AuditedChange[] }, name: Names = () => undefined): string {
  const [method, template = ''] = entry.action.split(' ');
  const params = pathParams(template, entry.path);
  const detail = (entry.detail ?? {}) as Record<string, unknown>;
  const created = typeof detail.name === 'string' ? detail.name : typeof detail.email === 'string' ? detail.email : typeof detail.id === 'string' ? detail.id : undefined;
  const rule = OBJECTS.find(([pattern]) => pattern.test(template));
  if (!rule) return `${VERBS[method] ?? method} ${template}`;
  // The entity of `file` this entry touched: the one with `id`, else the one it created.
  const touched = (file: string | undefined, id: string | undefined) => {
    if (!file) return undefined;
    const change = (entry.changes ?? []).find((candidate) => candidate.file === file && (id === undefined ? candidate.before === null : candidate.id === id));
    const entity = (change?.after ?? change?.before) as Record<string, unknown> | null | undefined;
    return entity ? entityName(file, entity, name) : undefined;
  };
  // What a create under a project added to its `list` (a model, a member), by `key`.
  const addedToProject = (list: string, key: string) => {
    const change = (entry.changes ?? []).find((candidate) => candidate.file === 'projects.json' && candidate.id !== null && candidate.before && candidate.after);
    const ids = (side: unknown) => (((side as Record<string, unknown>)?.[list] ?? []) as Record<string, unknown>[]).map((item) => String(item[key]));
    const before = new Set(ids(change?.before));
    return change ? ids(change.after).find((id) => !before.has(id)) : undefined;
  };
  let words = rule[1].replace(/\{(\w+)\}/g, (_, key: string) => {
    const file = key === 'id' ? rule[2] : PARAM_FILES[key];
    const list = params.project === undefined ? undefined : PROJECT_LISTS[key];
    const value = params[key] ?? (list ? addedToProject(...list) : undefined);
    const known = value === undefined ? undefined : name(key, value);
    const shown = known ?? touched(file, value) ?? value ?? (key === 'id' || key === 'project' || key === 'user' || key === 'model_id' ? created : undefined);
    return shown === undefined ? '' : `“${shown}”`;
  });
  words = words.replace(/\s+/g, ' ').trim();
  // Routes whose words already hold their verb ("rotated the master key").
  if (/^(read|sent|rotated)\b/.test(words)) return words.charAt(0).toUpperCase() + words.slice(1);
  return `${VERBS[method] ?? method} ${words}`;
}
