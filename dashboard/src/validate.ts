// Checks that run before a form is sent, so people see what to fix without a round trip.
// Each returns a map of field name to message; an empty map means the form may be sent.

export type Errors = Record<string, string>;

const ID_PATTERN = /^[A-Za-z0-9\-_.:/@]{1,128}$/;

export function isEmail(text: string): boolean {
  return /^[^\s@]+@[^\s@]+$/.test(text.trim());
}

export function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text.trim());
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** A non-negative number written in a text field, or null when it is not one. */
export function parseAmount(text: string): number | null {
  if (text.trim() === '') return null;
  const value = Number(text.trim());
  return Number.isFinite(value) && value >= 0 ? value : null;
}

export function validateCredentials(values: { email: string; password: string; confirm?: string }, isNew: boolean): Errors {
  const errors: Errors = {};
  if (!isEmail(values.email)) errors.email = 'Enter an email address such as admin@example.com.';
  if (isNew && values.password.length < 8) errors.password = 'Use at least 8 characters.';
  if (!isNew && values.password.length === 0) errors.password = 'Enter your password.';
  if (values.confirm !== undefined && values.confirm !== values.password) errors.confirm = 'The two passwords differ.';
  return errors;
}

export interface ModelFormValues {
  id: string;
  provider: string;
  endpoint: string;
  endpointRequired: boolean;
  inputPrice: string;
  outputPrice: string;
  cachedPrice: string;
  contextWindow: string;
}

export function validateModel(values: ModelFormValues, existingIds: string[] = []): Errors {
  const errors: Errors = {};
  const id = values.id.trim();
  if (!id) errors.id = 'Give the model an id; clients send it as `model`.';
  else if (!ID_PATTERN.test(id) || id === 'auto') errors.id = 'Use letters, digits and - _ . : / @ (and not `auto`).';
  else if (existingIds.includes(id)) errors.id = `A model \`${id}\` exists already.`;
  if (!values.provider) errors.provider = 'Choose a provider.';
  if (values.endpoint.trim()) {
    if (!isHttpUrl(values.endpoint)) errors.endpoint = 'Enter an http:// or https:// URL.';
  } else if (values.endpointRequired) {
    errors.endpoint = 'This provider has no default endpoint; enter its base URL.';
  }
  for (const [field, text] of [
    ['inputPrice', values.inputPrice],
    ['outputPrice', values.outputPrice],
    ['cachedPrice', values.cachedPrice],
  ] as const) {
    if (text.trim() !== '' && parseAmount(text) === null) errors[field] = 'Enter a price of 0 or more (USD per million tokens).';
  }
  if (values.contextWindow.trim() !== '') {
    const window = Number(values.contextWindow);
    if (!Number.isInteger(window) || window <= 0) errors.contextWindow = 'Enter a whole number of tokens.';
  }
  return errors;
}

export interface LimitFormValues {
  metric: string;
  windowKind: 'period' | 'rolling';
  period: string;
  rolling: string;
  value: string;
}

export function validateLimit(values: LimitFormValues): Errors {
  const errors: Errors = {};
  const value = parseAmount(values.value);
  if (value === null) errors.value = values.metric === 'cost' ? 'Enter an amount in USD, 0 or more.' : 'Enter a number, 0 or more.';
  else if (values.metric !== 'cost' && !Number.isInteger(value)) errors.value = 'Enter a whole number.';
  if (values.windowKind === 'rolling' && !/^[1-9][0-9]*[smhd]$/.test(values.rolling.trim())) {
    errors.rolling = 'Write a span such as 30s, 15m, 1h or 7d.';
  }
  return errors;
}

export function validateProjectName(name: string): Errors {
  if (!name.trim()) return { name: 'Give the project a name.' };
  if (!/[A-Za-z0-9]/.test(name)) return { name: 'The name needs at least one letter or digit.' };
  return {};
}

export function validateWebhook(values: { url: string }): Errors {
  return isHttpUrl(values.url) ? {} : { url: 'Enter an http:// or https:// URL.' };
}

export function validateSmtp(values: { host: string; port: string; from: string; to: string }): Errors {
  const errors: Errors = {};
  if (!values.host.trim()) errors.host = 'Enter the SMTP server.';
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) errors.port = 'Enter a port between 1 and 65535.';
  if (!isEmail(values.from)) errors.from = 'Enter the sender address.';
  const to = values.to.split(',').map((address) => address.trim()).filter(Boolean);
  if (to.length === 0 || !to.every(isEmail)) errors.to = 'Enter one or more addresses, separated by commas.';
  return errors;
}
