// The audit log in words: "Created a token in project Support bot" instead of
// "POST /api/projects/{project}/tokens" and a path of UUIDs.

const VERBS: Record<string, string> = { POST: 'Created', PUT: 'Replaced', PATCH: 'Changed', DELETE: 'Removed' };

/** What each route template changes, in words (the method gives the verb). */
const OBJECTS: [RegExp, string][] = [
  [/^\/api\/models\/\{id\}\/key$/, 'read the API key of model {id}'],
  [/^\/api\/models(\/\{id\})?$/, 'model {id}'],
  [/^\/api\/projects\/\{project\}\/models(\/\{model_id\})?$/, 'model {model_id} in project {project}'],
  [/^\/api\/projects\/\{project\}\/tokens(\/\{token_id\})?$/, 'a token of project {project}'],
  [/^\/api\/projects\/\{project\}\/members(\/\{user\})?$/, 'member {user} of project {project}'],
  [/^\/api\/projects\/\{project\}\/policies$/, 'the routing policies of project {project}'],
  [/^\/api\/projects(\/\{project\})?$/, 'project {project}'],
  [/^\/api\/limits(\/\{id\})?$/, 'budget {id}'],
  [/^\/api\/channels\/\{id\}\/test$/, 'sent a test alert to channel {id}'],
  [/^\/api\/channels(\/\{id\})?$/, 'notification channel {id}'],
  [/^\/api\/users(\/\{user\})?$/, 'user {user}'],
  [/^\/api\/roles(\/\{id\})?$/, 'role {id}'],
  [/^\/api\/api-keys(\/\{id\})?$/, 'API key {id}'],
  [/^\/api\/settings$/, 'the settings'],
  [/^\/api\/system\/rotate-key$/, 'rotated the master key'],
  [/^\/api\/me$/, 'their own password'],
  [/^\/api\/setup\/first-admin$/, 'the first administrator'],
];

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
 * a user's email); unknown ids stay as they are, and a create names the created object when
 * its detail carries an id or name.
 */
export function describeAudit(entry: { action: string; path: string; detail?: unknown }, name: (kind: string, id: string) => string | undefined = () => undefined): string {
  const [method, template = ''] = entry.action.split(' ');
  const params = pathParams(template, entry.path);
  const detail = (entry.detail ?? {}) as Record<string, unknown>;
  const created = typeof detail.name === 'string' ? detail.name : typeof detail.email === 'string' ? detail.email : typeof detail.id === 'string' ? detail.id : undefined;
  const rule = OBJECTS.find(([pattern]) => pattern.test(template));
  if (!rule) return `${VERBS[method] ?? method} ${template}`;
  let words = rule[1].replace(/\{(\w+)\}/g, (_, key: string) => {
    const value = params[key] ?? (key === 'id' || key === 'project' || key === 'user' || key === 'model_id' ? created : undefined);
    if (value === undefined) return '';
    return `“${name(key, value) ?? value}”`;
  });
  words = words.replace(/\s+/g, ' ').trim();
  // Routes whose words already hold their verb ("rotated the master key").
  if (/^(read|sent|rotated)\b/.test(words)) return words.charAt(0).toUpperCase() + words.slice(1);
  return `${VERBS[method] ?? method} ${words}`;
}
