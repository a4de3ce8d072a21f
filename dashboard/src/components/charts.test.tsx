import { render, screen } from '@testing-library/react';
import { describe, expect, test } from 'vitest';
import { fillBuckets, errorRate } from '../pages/Overview';
import type { TimelinePoint } from '../types';
import { BarList, Gauge, LineChart, axisLabels, axisTicks, gaugeTone, layoutPoints } from './charts';

describe('charts', () => {
  test('points are laid out left to right with the largest at the top', () => {
    const laid = layoutPoints([{ label: 'a', value: 0 }, { label: 'b', value: 5 }, { label: 'c', value: 10 }], 100, 100);
    expect(laid[0].x).toBeLessThan(laid[1].x);
    expect(laid[1].x).toBeLessThan(laid[2].x);
    expect(laid[2].y).toBeLessThan(laid[1].y);
    expect(laid[1].y).toBeLessThan(laid[0].y);
  });
  test('all-zero series stay on the baseline instead of dividing by zero', () => {
    const laid = layoutPoints([{ label: 'a', value: 0 }, { label: 'b', value: 0 }]);
    expect(laid.every((point) => Number.isFinite(point.y))).toBe(true);
    expect(laid[0].y).toBe(laid[1].y);
  });
  test('a line chart draws one segment per point and lists the values for screen readers', () => {
    const { container } = render(<LineChart title="Calls" points={[{ label: 'Mon', value: 1 }, { label: 'Tue', value: 3 }]} format={(value) => `${value} calls`} summary="4 calls" />);
    expect(container.querySelector('path.chart-line')?.getAttribute('d')?.match(/[ML]/g)).toHaveLength(2);
    expect(screen.getByRole('img', { name: /Calls/ })).toBeTruthy();
    expect(screen.getByRole('table').textContent).toContain('3 calls');
    expect(screen.getByText('4 calls')).toBeTruthy();
    // Axes: the scale in the chart's unit, and the dates.
    expect(screen.getByTestId('chart-y').textContent).toBe('3 calls1.5 calls0 calls');
    expect(screen.getByTestId('chart-x').textContent).toBe('MonTue');
  });
  test('the date axis names the first, middle and last points', () => {
    const points = ['a', 'b', 'c', 'd', 'e'].map((label, value) => ({ label, value }));
    expect(axisLabels(points)).toEqual(['a', 'c', 'e']);
    expect(axisTicks(points)).toEqual([4, 2, 0]);
    expect(axisTicks([])).toEqual([0, 0, 0]);
  });
  test('an empty chart says so', () => {
    render(<LineChart title="Spend" points={[]} format={String} />);
    expect(screen.getByText('No calls in this period.')).toBeTruthy();
  });
  test('bars are scaled to the largest value', () => {
    const { container } = render(<BarList label="Top" rows={[{ name: 'a', value: 10 }, { name: 'b', value: 5 }]} format={String} />);
    const widths = Array.from(container.querySelectorAll<HTMLElement>('.bar-fill')).map((bar) => bar.style.width);
    expect(widths).toEqual(['100%', '50%']);
  });
  test('a gauge exposes its value as a meter and colours by fullness', () => {
    const { container } = render(<Gauge label="Project cost" used={4} limit={5} percent={80} format={(value) => `$${value}`} />);
    const meter = screen.getByRole('meter', { name: 'Project cost' });
    expect(meter.getAttribute('aria-valuenow')).toBe('4');
    expect(meter.getAttribute('aria-valuetext')).toBe('$4 of $5');
    expect(container.querySelector('.gauge-warn')).toBeTruthy();
    expect([gaugeTone(10), gaugeTone(80), gaugeTone(100), gaugeTone(150)]).toEqual(['good', 'warn', 'bad', 'bad']);
  });
  test('an over-budget gauge is clamped to a full bar', () => {
    const { container } = render(<Gauge label="x" used={7} limit={5} percent={140} format={String} />);
    expect((container.querySelector('.gauge-fill') as HTMLElement).style.width).toBe('100%');
  });
  test('the timeline gets an empty bucket for every hour without calls', () => {
    const point = { calls: 2, errors: 1, provider_calls: 2, provider_errors: 1, input_tokens: 1, output_tokens: 1, cached_input_tokens: 0, total_tokens: 2, cost_usd: 1, avg_latency_ms: 5, start: '2026-01-01T02:00:00Z' } as TimelinePoint;
    const filled = fillBuckets([point], '2026-01-01T00:00:00Z', 'hour', Date.parse('2026-01-01T04:30:00Z'));
    expect(filled.map((entry) => entry.calls)).toEqual([0, 0, 2, 0, 0]);
    expect(errorRate(point)).toBe(50);
    expect(errorRate({ provider_calls: 0, provider_errors: 0 })).toBe(0);
  });
});
