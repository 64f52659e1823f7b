// Line charts of the host console, drawn as SVG (no library: a few paths per chart). The
// pure part (`linePath`, `scaleMax`, `lastValue`) turns a column of per-second values, with
// nulls for gaps, into path data; `LineChart` owns one <svg> and redraws it from a series
// answer (GET /api/rooms/{room}/series). Labels go in through textContent only.

const SVG = 'http://www.w3.org/2000/svg';

/** A round upper bound for the axis: 1, 2 or 5 times a power of ten, at least `floor`. */
export function scaleMax(columns, floor = 1) {
  let max = floor;
  for (const col of columns) {
    for (const v of col) if (typeof v === 'number' && Number.isFinite(v) && v > max) max = v;
  }
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (max <= m * p) return m * p;
  return 10 * p;
}

/**
 * SVG path data for `values` (oldest first) across `width` x `height`, y from 0 to `max`;
 * a null or missing value breaks the line (a gap), and a lone point gets a dot-long stroke.
 */
export function linePath(values, width, height, max) {
  const n = values.length;
  if (n === 0 || !(max > 0)) return '';
  const step = n > 1 ? width / (n - 1) : 0;
  const parts = [];
  let open = false;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      open = false;
      continue;
    }
    const x = (i * step).toFixed(1);
    const y = (height - (Math.min(v, max) / max) * height).toFixed(1);
    const next = values[i + 1];
    const alone = !open && (typeof next !== 'number' || !Number.isFinite(next));
    parts.push(`${open ? 'L' : 'M'}${x},${y}`);
    if (alone) parts.push(`h0.5`);
    open = true;
  }
  return parts.join(' ');
}

/** The newest number in a column (null when it has none). */
export function lastValue(values) {
  for (let i = values.length - 1; i >= 0; i--) {
    if (typeof values[i] === 'number' && Number.isFinite(values[i])) return values[i];
  }
  return null;
}

/** Sums columns row by row (null where every column is null). */
export function sumColumns(columns, length) {
  const out = new Array(length).fill(null);
  for (const col of columns) {
    for (let i = 0; i < length; i++) {
      if (typeof col[i] === 'number') out[i] = (out[i] ?? 0) + col[i];
    }
  }
  return out;
}

/**
 * A series answer without its leading seconds that no node sampled (a room that came up a
 * minute ago fills its chart instead of a sliver of ten minutes), keeping at least `minRows`.
 */
export function trimAnswer(answer, minRows = 60) {
  const rows = (answer.online || []).length;
  let first = (answer.online || []).findIndex((v) => v !== null && v !== undefined);
  if (first < 0) first = rows;
  const start = Math.max(0, Math.min(first, rows - minRows));
  const out = { ...answer, from_s: (answer.from_s || 0) + start, refused: {} };
  for (const [key, value] of Object.entries(answer)) {
    if (Array.isArray(value)) out[key] = value.slice(start);
  }
  for (const [reason, column] of Object.entries(answer.refused || {})) out.refused[reason] = column.slice(start);
  return out;
}

function svgEl(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

const W = 600;
const H = 120;

/** One chart: a title, lines with a legend showing their latest value, and a y scale. */
export class LineChart {
  /**
   * lines: [{label, color, pick(answer) -> column}], or a function of the answer giving them
   * (lines that come and go, such as refusal reasons); format(v) -> legend and axis text.
   */
  constructor(container, { title, lines, format = (v) => String(Math.round(v)), floor = 1 }) {
    this.linesFor = typeof lines === 'function' ? lines : () => lines;
    this.format = format;
    this.floor = floor;
    this.legend = document.createElement('div');
    this.legend.className = 'chart-legend';
    this.svg = svgEl('svg', { viewBox: `0 0 ${W} ${H + 14}`, class: 'chart-svg', role: 'img' });
    this.svg.setAttribute('aria-label', title);
    const heading = document.createElement('h3');
    heading.className = 'chart-title';
    heading.textContent = title;
    this.box = document.createElement('figure');
    this.box.className = 'chart';
    this.box.append(heading, this.legend, this.svg);
    container.append(this.box);
  }

  /** Redraws from a series answer. */
  update(answer) {
    const lines = this.linesFor(answer);
    const columns = lines.map((l) => l.pick(answer) || []);
    const max = scaleMax(columns, this.floor);
    const grid = [0, 0.5, 1].map((f) => svgEl('line', {
      x1: 0, x2: W, y1: (H - f * H).toFixed(1), y2: (H - f * H).toFixed(1), class: 'chart-grid',
    }));
    const top = svgEl('text', { x: 2, y: 10, class: 'chart-axis' });
    top.textContent = this.format(max);
    const rows = (answer.online || []).length || columns.reduce((n, c) => Math.max(n, c.length), 0);
    const left = svgEl('text', { x: 2, y: H + 12, class: 'chart-axis' });
    left.textContent = rows >= 120 ? `−${Math.round(rows / 60)} min` : `−${rows} s`;
    const right = svgEl('text', { x: W - 2, y: H + 12, class: 'chart-axis', 'text-anchor': 'end' });
    right.textContent = 'now';
    const paths = columns.map((col, i) => svgEl('path', {
      d: linePath(col, W, H, max), stroke: lines[i].color, class: 'chart-line',
    }));
    this.svg.replaceChildren(...grid, ...paths, top, left, right);
    if (lines.length === 0) {
      this.legend.textContent = 'none';
      return;
    }
    this.legend.replaceChildren(...lines.map((l, i) => {
      const item = document.createElement('span');
      item.className = 'chart-key';
      const swatch = document.createElement('i');
      swatch.className = 'chart-swatch';
      swatch.style.background = l.color;
      const v = lastValue(columns[i]);
      item.append(swatch, `${l.label} ${v === null ? '—' : this.format(v)}`);
      return item;
    }));
  }
}
