// Charts drawn as plain SVG and HTML: they scale with their container (no fixed widths, so
// phones never scroll sideways), follow the theme through CSS variables, and carry their
// numbers as text for screen readers and tests.

import { useId, useState } from 'react';
import { Link } from '../router';

export interface Point {
  label: string;
  value: number;
}

const WIDTH = 320;
const HEIGHT = 120;
const PAD_X = 4;
const PAD_TOP = 8;
const PAD_BOTTOM = 4;

/** x and y of each point inside the chart's box, the largest value at the top. */
export function layoutPoints(points: Point[], width = WIDTH, height = HEIGHT): { x: number; y: number }[] {
  const max = Math.max(0, ...points.map((point) => point.value));
  const usableWidth = width - PAD_X * 2;
  const usableHeight = height - PAD_TOP - PAD_BOTTOM;
  return points.map((point, index) => ({
    x: PAD_X + (points.length === 1 ? usableWidth / 2 : (usableWidth * index) / (points.length - 1)),
    y: PAD_TOP + usableHeight - (max === 0 ? 0 : (point.value / max) * usableHeight),
  }));
}

/** The value-axis ticks, top to bottom: the largest value, its half, and zero; only zero
 * when every value is zero (three "0 %" would read as a broken scale). */
export function axisTicks(points: Point[]): (number | null)[] {
  const max = Math.max(0, ...points.map((point) => point.value));
  return max === 0 ? [null, null, 0] : [max, max / 2, 0];
}

/** The date-axis labels: the first, middle and last points' (fewer when there are fewer points). */
export function axisLabels(points: Point[]): string[] {
  if (points.length <= 3) return points.map((point) => point.label);
  return [points[0].label, points[Math.floor((points.length - 1) / 2)].label, points[points.length - 1].label];
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
  const laid = layoutPoints(points);
  const path = laid.map((point, index) => `${index === 0 ? 'M' : 'L'}${point.x.toFixed(1)},${point.y.toFixed(1)}`).join(' ');
  const area = laid.length > 0 ? `${path} L${laid[laid.length - 1].x.toFixed(1)},${HEIGHT - PAD_BOTTOM} L${laid[0].x.toFixed(1)},${HEIGHT - PAD_BOTTOM} Z` : '';
  const shown = hover !== null ? points[hover] : null;
  return (
    <figure className="chart" data-testid={testId}>
      <figcaption id={titleId}>
        <span className="chart-title">{title}</span>
        <span className="chart-summary">{shown ? `${shown.label}: ${format(shown.value)}` : summary}</span>
      </figcaption>
      {points.length === 0 ? (
        <div className="chart-empty">No calls in this period.</div>
      ) : (
        <div className="chart-plot">
          {/* Axes: the value scale on the left (in the chart's unit), dates below. The numbers
              are for the eye; screen readers get the table underneath. */}
          <div className="chart-y" aria-hidden="true" data-testid="chart-y">
            {axisTicks(points).map((value, index) => (
              <span key={index}>{value === null ? '' : format(value)}</span>
            ))}
          </div>
          <svg
            viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
            preserveAspectRatio="none"
            role="img"
            aria-labelledby={titleId}
            onMouseLeave={() => setHover(null)}
          >
            <line x1={PAD_X} x2={WIDTH - PAD_X} y1={HEIGHT - PAD_BOTTOM} y2={HEIGHT - PAD_BOTTOM} className="chart-axis" />
            <path d={area} className="chart-area" />
            <path d={path} className="chart-line" vectorEffect="non-scaling-stroke" />
            {laid.map((point, index) => (
              <rect
                key={index}
                x={point.x - WIDTH / Math.max(points.length, 1) / 2}
                y={0}
                width={WIDTH / Math.max(points.length, 1)}
                height={HEIGHT}
                fill="transparent"
                onMouseEnter={() => setHover(index)}
              >
                <title>{`${points[index].label}: ${format(points[index].value)}`}</title>
              </rect>
            ))}
            {laid.map((point, index) => (
              <circle key={'c' + index} cx={point.x} cy={point.y} r={hover === index ? 3 : points.length > 40 ? 0 : 1.6} className="chart-dot" />
            ))}
          </svg>
          <div className="chart-x" aria-hidden="true" data-testid="chart-x">
            {axisLabels(points).map((label, index) => (
              <span key={index}>{label}</span>
            ))}
          </div>
        </div>
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
