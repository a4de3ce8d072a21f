import { render, screen } from '@testing-library/react';
import { describe, expect, test } from 'vitest';
import { fillBuckets, errorRate } from '../pages/Overview';
import type { TimelinePoint } from '../types';
import type uPlot from 'uplot';
import { drawnCharts } from '../test/setup';
import { BarList, Gauge, LineChart, axisLabels, axisTicks, chartData, chartOptions, gaugeTone } from './charts';

describe('charts', () => {
  const colours = { line: 'blue', fill: 'lightblue', text: 'grey', grid: 'silver', font: '11px sans-serif' };
  const at = (hour: number) => Date.parse('2026-01-01T00:00:00Z') + hour * 3600_000;
  test('uPlot gets times in seconds and the values, in order', () => {
    const points = [{ at: at(0), label: 'a', value: 1 }, { at: at(1), label: 'b', value: 3 }];
    expect(chartData(points)).toEqual([[at(0) / 1000, at(1) / 1000], [1, 3]]);
  });
  test("the axes show the chart's unit and dates at the first, middle and last points", () => {
    const points = ['a', 'b', 'c', 'd', 'e'].map((label, index) => ({ at: at(index), label, value: index * 0.01 }));
    const drawn: Record<string, string[]> = {};
    const options = chartOptions({ points, format: (value) => `$${value.toFixed(2)}`, width: 300, colours, drawn: (axis, labels) => (drawn[axis] = labels) });
    const [x, y] = options.axes!;
    const chart = {} as uPlot;
    const ySplits = (y.splits as (u: uPlot) => number[])(chart);
    expect(ySplits).toEqual([0, 0.02, 0.04]);
    expect((y.values as (u: uPlot, splits: number[]) => string[])(chart, ySplits)).toEqual(['$0.00', '$0.02', '$0.04']);
    expect(drawn.y).toEqual(['$0.04', '$0.02', '$0.00']);
    expect((x.splits as (u: uPlot) => number[])(chart)).toEqual([at(0) / 1000, at(2) / 1000, at(4) / 1000]);
    expect((x.values as (u: uPlot, splits: number[]) => string[])(chart, [])).toEqual(['a', 'c', 'e']);
    expect(drawn.x).toEqual(['a', 'c', 'e']);
    // The scale starts at zero and ends at the largest value; an all-zero chart still has a scale.
    expect((options.scales!.y.range as unknown as () => number[])()).toEqual([0, 0.04]);
    const zero = chartOptions({ points: points.map((point) => ({ ...point, value: 0 })), format: String, width: 300, colours });
    expect((zero.scales!.y.range as unknown as () => number[])()).toEqual([0, 1]);
    expect((zero.axes![1].splits as (u: uPlot) => number[])(chart)).toEqual([0]);
    // Colours come from the theme.
    expect(options.series[1].stroke).toBe('blue');
    expect(options.axes![1].stroke).toBe('grey');
    expect(options.legend!.show).toBe(false);
  });
  test('the cursor reports the point under it, and nothing when it leaves', () => {
    const seen: (number | null)[] = [];
    const points = [{ at: at(0), label: 'a', value: 1 }];
    const options = chartOptions({ points, format: String, width: 300, colours, onHover: (index) => seen.push(index) });
    const hook = options.hooks!.setCursor![0]!;
    hook({ cursor: { idx: 0 } } as unknown as uPlot);
    hook({ cursor: { idx: null } } as unknown as uPlot);
    expect(seen).toEqual([0, null]);
  });
  test('a line chart hands its points to uPlot and lists the values for screen readers', () => {
    const points = [{ at: at(0), label: 'Mon', value: 1 }, { at: at(24), label: 'Tue', value: 3 }];
    const { unmount } = render(<LineChart title="Calls" points={points} format={(value) => `${value} calls`} summary="4 calls" />);
    expect(drawnCharts).toHaveLength(1);
    expect(drawnCharts[0].data).toEqual(chartData(points));
    expect(screen.getByRole('img', { name: /Calls/ })).toBeTruthy();
    expect(screen.getByRole('table').textContent).toContain('3 calls');
    expect(screen.getByText('4 calls')).toBeTruthy();
    unmount();
    expect(drawnCharts[0].destroyed).toBe(true);
  });
  test('the date axis names the first, middle and last points', () => {
    const points = ['a', 'b', 'c', 'd', 'e'].map((label, value) => ({ at: value, label, value }));
    expect(axisLabels(points)).toEqual(['a', 'c', 'e']);
    expect(axisTicks(points)).toEqual([4, 2, 0]);
    expect(axisTicks([])).toEqual([null, null, 0]);
    expect(axisTicks([{ at: 0, label: 'a', value: 0 }, { at: 1, label: 'b', value: 0 }])).toEqual([null, null, 0]);
  });
  test('an empty chart says so', () => {
    render(<LineChart title="Spend" points={[]} format={String} />);
    expect(screen.getByText('No calls in this period.')).toBeTruthy();
    expect(drawnCharts).toHaveLength(0);
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
