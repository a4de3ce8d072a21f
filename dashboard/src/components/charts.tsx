// Charts: lines over time drawn by uPlot (a maintained canvas chart library: axes, dates,
// units, a hover readout) and top-N bars as plain HTML. They scale with their container (no
// fixed widths, so phones never scroll sideways), take the theme's colours, and carry their
// numbers as text for screen readers and tests.

import { useEffect, useId, useRef, useState } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { Link } from '../router';

export interface Point {
  /** The bucket's start, in milliseconds since the epoch. */
  at: number;
  label: string;
  value: number;
}

const HEIGHT = 130;

/** The value-axis ticks, top to bottom: the largest value, its half, and zero; only zero
 * when every value is zero (three "0 %" would read as a broken scale). */
export function axisTicks(points: Point[]): (number | null)[] {
  const max = Math.max(0, ...points.map((point) => point.value));
  return max === 0 ? [null, null, 0] : [max, max / 2, 0];
}

/** The date-axis points: the first, middle and last (fewer when there are fewer points). */
export function axisPoints(points: Point[]): Point[] {
  if (points.length <= 3) return points;
  return [points[0], points[Math.floor((points.length - 1) / 2)], points[points.length - 1]];
}

/** The date-axis labels, in the order of [`axisPoints`]. */
export function axisLabels(points: Point[]): string[] {
  return axisPoints(points).map((point) => point.label);
}

/** uPlot's columns: times in seconds, then values. */
export function chartData(points: Point[]): uPlot.AlignedData {
  return [points.map((point) => point.at / 1000), points.map((point) => point.value)];
}

/** The theme's colours and font, read from CSS so both themes are followed. */
export interface ChartColours {
  line: string;
  fill: string;
  text: string;
  grid: string;
  font: string;
}

function themeColours(element: HTMLElement): ChartColours {
  const style = getComputedStyle(element);
  const read = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  return {
    line: read('--chart', '#4f46e5'),
    fill: read('--chart-fill', 'rgba(79, 70, 229, 0.12)'),
    text: read('--muted', '#6b7280'),
    grid: read('--border', '#e5e7eb'),
    font: `11px ${style.fontFamily || 'sans-serif'}`,
  };
}

/**
 * uPlot's options for `points`: a value axis with the ticks of [`axisTicks`] in the chart's
 * unit, a date axis with the labels of [`axisLabels`] at their points, one filled line, and a
 * cursor whose point is reported to `onHover` (no legend: the caption reads the point).
 * `drawn` receives the labels uPlot is given to draw.
 */
export function chartOptions({
  points,
  format,
  width,
  colours,
  onHover,
  drawn,
}: {
  points: Point[];
  format: (value: number) => string;
  width: number;
  colours: ChartColours;
  onHover?: (index: number | null) => void;
  drawn?: (axis: 'x' | 'y', labels: string[]) => void;
}): uPlot.Options {
  const ticks = axisTicks(points).filter((value): value is number => value !== null);
  const dates = axisPoints(points);
  const max = Math.max(0, ...points.map((point) => point.value));
  const yLabels = (values: number[]) => values.map((value) => format(value));
  const widest = Math.max(...yLabels(ticks).map((label) => label.length), 1);
  const axis = { stroke: colours.text, font: colours.font, grid: { stroke: colours.grid, width: 1 }, ticks: { show: false } };
  return {
    width,
    height: HEIGHT,
    // Room on the right for the last date's label.
    padding: [8, 28, 0, 0],
    legend: { show: false },
    cursor: { drag: { x: false, y: false }, points: { size: 7, fill: colours.line } },
    scales: {
      x: { time: true, range: (_u, min, maxX) => (min === maxX ? [min - 1800, maxX + 1800] : [min, maxX]) },
      y: { range: () => [0, max === 0 ? 1 : max] },
    },
    axes: [
      {
        ...axis,
        size: 26,
        grid: { show: false },
        splits: () => dates.map((point) => point.at / 1000),
        values: () => {
          const labels = dates.map((point) => point.label);
          drawn?.('x', labels);
          return labels;
        },
      },
      {
        ...axis,
        size: Math.ceil(widest * 6.5) + 12,
        splits: () => [...ticks].reverse(),
        values: (_u, splits) => {
          const labels = yLabels(splits);
          drawn?.('y', [...labels].reverse());
          return labels;
        },
      },
    ],
    series: [
      {},
      { stroke: colours.line, fill: colours.fill, width: 2, points: { show: points.length <= 40, size: 4, fill: colours.line } },
    ],
    hooks: {
      setCursor: [(chart) => onHover?.(chart.cursor.idx ?? null)],
    },
  };
}

/** The current theme (`data-theme` on <html>), so a chart redraws in the new colours. */
function useTheme(): string | undefined {
  const [theme, setTheme] = useState(() => document.documentElement.dataset.theme);
  useEffect(() => {
    const observer = new MutationObserver(() => setTheme(document.documentElement.dataset.theme));
    observer.observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme'] });
    return () => observer.disconnect();
  }, []);
  return theme;
}

/** A line over time with its total or latest value in the title. */
export function LineChart({
  title,
  points,
  format,
  summary,
  testId,
}: {
  title: string;
  points: Point[];
  format: (value: number) => string;
  summary?: string;
  testId?: string;
}) {
  const titleId = useId();
  const [hover, setHover] = useState<number | null>(null);
  const figure = useRef<HTMLElement>(null);
  const plot = useRef<HTMLDivElement>(null);
  const theme = useTheme();
  const shown = hover !== null ? points[hover] : null;
  // The points' identity changes on every render; their content is what matters.
  const key = JSON.stringify(points.map((point) => [point.at, point.value]));

  useEffect(() => {
    const target = plot.current;
    const host = figure.current;
    if (!target || !host || points.length === 0) return;
    const drawn = (axis: 'x' | 'y', labels: string[]) => {
      host.dataset[axis === 'x' ? 'xTicks' : 'yTicks'] = labels.join(' | ');
    };
    const chart = new uPlot(
      chartOptions({ points, format, width: Math.max(target.clientWidth, 120), colours: themeColours(host), onHover: setHover, drawn }),
      chartData(points),
      target,
    );
    const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(target.clientWidth, 120), height: HEIGHT }));
    resize.observe(target);
    return () => {
      resize.disconnect();
      chart.destroy();
    };
    // `format` is one of the module-level formatters; `key` stands for `points`.
  }, [key, theme]);

  return (
    <figure className="chart" data-testid={testId} ref={figure}>
      <figcaption id={titleId}>
        <span className="chart-title">{title}</span>
        <span className="chart-summary">{shown ? `${shown.label}: ${format(shown.value)}` : summary}</span>
      </figcaption>
      {points.length === 0 ? (
        <div className="chart-empty">No calls in this period.</div>
      ) : (
        // The canvas is for the eye; screen readers get the table underneath.
        <div className="chart-plot" ref={plot} role="img" aria-labelledby={titleId} />
      )}
      <table className="visually-hidden">
        <caption>{title}</caption>
        <tbody>
          {points.map((point, index) => (
            <tr key={index}>
              <th scope="row">{point.label}</th>
              <td>{format(point.value)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}

/** Horizontal bars for "top N" lists: the bar is the share of the largest value. */
export function BarList({
  rows,
  format,
  empty = 'Nothing yet.',
  label,
}: {
  rows: { name: string; value: number; detail?: string; to?: string }[];
  format: (value: number) => string;
  empty?: string;
  label: string;
}) {
  if (rows.length === 0) return <div className="chart-empty">{empty}</div>;
  const max = Math.max(...rows.map((row) => row.value), 0);
  return (
    <ul className="bar-list" aria-label={label}>
      {rows.map((row) => (
        <li key={row.name}>
          <div className="bar-label">
            {row.to ? (
              <Link className="bar-name" to={row.to}>
                {row.name}
              </Link>
            ) : (
              <span className="bar-name">{row.name}</span>
            )}
            <span className="bar-value">
              {format(row.value)}
              {row.detail ? <span className="muted"> · {row.detail}</span> : null}
            </span>
          </div>
          <div className="bar-track" aria-hidden="true">
            <div className="bar-fill" style={{ width: `${max === 0 ? 0 : Math.max(2, (row.value / max) * 100)}%` }} />
          </div>
        </li>
      ))}
    </ul>
  );
}

/** How full a budget is: green, then amber from 80 %, red from 100 %. */
export function gaugeTone(percentUsed: number): 'good' | 'warn' | 'bad' {
  if (percentUsed >= 100) return 'bad';
  if (percentUsed >= 80) return 'warn';
  return 'good';
}

export function Gauge({
  label,
  used,
  limit,
  percent,
  format,
  detail,
  state,
}: {
  label: string;
  used: number;
  limit: number;
  percent: number;
  format: (value: number) => string;
  detail?: string;
  /** What the gauge means for callers; without it, the tone follows the percentage. */
  state?: { tone: 'good' | 'warn' | 'bad'; word: string; reason: string };
}) {
  const clamped = Math.max(0, Math.min(100, percent));
  const tone = state?.tone ?? gaugeTone(percent);
  // A refusing budget reads full whatever its percentage (a $0 budget is 0 % of nothing).
  const width = state?.tone === 'bad' ? 100 : clamped;
  return (
    <div className={`gauge gauge-${tone}`} data-testid="gauge" data-state={state?.word}>
      <div className="gauge-head">
        <span className="gauge-label">{label}</span>
        <span className="gauge-percent">
          {state && state.tone !== 'good' ? <strong className="gauge-word">{state.word} · </strong> : null}
          {percent >= 10 || percent === 0 ? percent.toFixed(0) : percent.toFixed(1)} %
        </span>
      </div>
      <div
        className="gauge-track"
        role="meter"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={limit}
        aria-valuenow={used}
        aria-valuetext={`${format(used)} of ${format(limit)}${state ? ` — ${state.word}: ${state.reason}` : ''}`}
      >
        <div className="gauge-fill" style={{ width: `${width}%` }} />
      </div>
      <div className="gauge-foot">
        <span>
          {format(used)} of {format(limit)}
        </span>
        {detail ? <span className="muted">{detail}</span> : null}
      </div>
      {state && state.tone !== 'good' ? (
        <div className="gauge-reason" data-testid="gauge-reason">
          {state.reason}
        </div>
      ) : null}
    </div>
  );
}
