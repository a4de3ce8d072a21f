// How numbers, money and times read on every page.

export function usd(value: number): string {
  if (!Number.isFinite(value)) return '—';
  if (value === 0) return '$0.00';
  if (Math.abs(value) < 0.01) return '$' + value.toFixed(6).replace(/0+$/, '');
  return '$' + value.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
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
  return date.toLocaleString('en-GB', { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit' });
}

export function shortDate(text: string, bucket: 'hour' | 'day'): string {
  const date = new Date(text);
  return bucket === 'hour'
    ? date.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString('en-GB', { month: 'short', day: '2-digit' });
}

/** A metric's value in its unit: USD for cost, a count otherwise. */
export function metricValue(metric: string, value: number): string {
  return metric === 'cost' ? usd(value) : count(value) + ' ' + metric.replace('_', ' ');
}
