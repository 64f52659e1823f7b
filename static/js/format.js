// Formatting helpers shared by the pages (pure; no DOM).

/** A danmaku colour (0xRRGGBB integer) as CSS; anything invalid is white. */
export function colorToCss(color) {
  const n = Number.isInteger(color) && color >= 0 && color <= 0xffffff ? color : 0xffffff;
  return '#' + n.toString(16).padStart(6, '0');
}

/** '#rrggbb' to the 0xRRGGBB integer the protocol carries (white if malformed). */
export function cssToColor(css) {
  const m = /^#([0-9a-f]{6})$/i.exec(String(css || ''));
  return m ? parseInt(m[1], 16) : 0xffffff;
}

/** Milliseconds as m:ss or h:mm:ss. */
export function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A number with at most one decimal, or a dash when unknown. */
export function num(value, digits = 1) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return '—';
  return value.toFixed(Number.isInteger(value) ? 0 : digits);
}

/** A wall-clock time (ms since the epoch) as a short local date and time. */
export function when(ms) {
  if (!ms) return '—';
  return new Date(ms).toLocaleString();
}

/** The room id of a page at /rooms/{room} or /overlay/{room}. */
export function roomFromPath(pathname) {
  const parts = pathname.split('/').filter(Boolean);
  return parts.length >= 2 ? decodeURIComponent(parts[1]) : '';
}

/** An integer query parameter within [min, max], else the fallback. */
export function intParam(params, name, fallback, min, max) {
  const raw = params.get(name);
  if (raw === null || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) return fallback;
  return Math.min(max, Math.max(min, Math.round(n)));
}
