// How numbers, money and times read on every page.

/**
 * Dollars to the precision that matters: cents from $1, four decimals below it ($0.0465),
 * three significant digits below a cent ($0.000123). Never rounds a non-zero amount to $0.
 */
export function usd(value: number): string {
  if (!Number.isFinite(value)) return '—';
  if (value === 0) return '$0.00';
  const sign = value < 0 ? '-' : '';
  const size = Math.abs(value);
  if (size >= 1) return sign + '$' + size.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  if (size >= 0.01) return sign + '$' + size.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 4 });
  return sign + '$' + size.toLocaleString('en-US', { maximumSignificantDigits: 3, maximumFractionDigits: 20 });
}

export function count(value: number): string {
  if (!Number.isFinite(value)) return '—';
  if (Math.abs(value) >= 1_000_000) return (value / 1_000_000).toFixed(1).replace(/\.0$/, '') + 'M';
  if (Math.abs(value) >= 10_000) return (value / 1000).toFixed(1).replace(/\.0$/, '') + 'k';
  return value.toLocaleString('en-US');
}

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  if (value >= 1000) return (value / 1000).toFixed(2) + ' s';
  return Math.round(value) + ' ms';
}

export function percent(value: number): string {
  if (!Number.isFinite(value)) return '—';
  return (value >= 10 || value === 0 ? value.toFixed(0) : value.toFixed(1)) + ' %';
}

export function dateTime(text: string | null | undefined): string {
  if (!text) return '—';
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return text;
  return date.toLocaleString('en-GB', { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function shortDate(text: string, bucket: 'hour' | 'day'): string {
  const date = new Date(text);
  return bucket === 'hour'
    ? date.toLocaleString('en-GB', { day: '2-digit', month: 'short', hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString('en-GB', { month: 'short', day: '2-digit' });
}

/** A metric's value in its unit: USD for cost, a count otherwise. */
export function metricValue(metric: string, value: number): string {
  return metric === 'cost' ? usd(value) : count(value) + ' ' + metric.replace('_', ' ');
}

/**
 * A limit's scope in words ("Project Support bot · model gpt-4o", "Everything"), a project
 * named by `projectName` (its id when that does not know it).
 */
export function scopeInWords(scope: string, projectName: (id: string) => string | undefined): string {
  if (scope === 'global') return 'Everything';
  return scope
    .split('/')
    .map((part) => {
      const [kind, ...rest] = part.split(':');
      const id = rest.join(':');
      if (kind === 'project') return 'Project ' + (projectName(id) ?? id);
      if (kind === 'model') return 'model ' + id;
      if (kind === 'token') return 'token ' + id;
      return part;
    })
    .join(' · ');
}
