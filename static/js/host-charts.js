// The host console's "Last 10 minutes" panel: per-second line charts of the room from
// GET /api/rooms/{room}/series (the console's key), redrawn on each refresh.

import { rooms } from './api.js';
import { LineChart, sumColumns, trimAnswer } from './charts.js';
import { byId } from './dom.js';

const PALETTE = ['#ff5c9a', '#4cc3ff', '#ffd54a', '#3ecf8e', '#b48cff', '#ff8a4c', '#8d99ab'];
const col = (name) => (a) => a[name];
const oneDecimal = (v) => (v >= 100 ? String(Math.round(v)) : v.toFixed(1).replace(/\.0$/, ''));

let charts = null;

/** Refusals of every reason per second (0 in a sampled second with none, null in a gap). */
function refusedTotal(a) {
  const sampled = a.online.map((v) => (v === null ? null : 0));
  return sumColumns([sampled, ...Object.values(a.refused || {})], a.online.length);
}

function build() {
  const box = byId('charts');
  return [
    new LineChart(box, { title: 'Viewers', lines: [{ label: 'online', color: PALETTE[1], pick: col('online') }] }),
    new LineChart(box, {
      title: 'Danmaku per second',
      lines: [
        { label: 'received', color: PALETTE[1], pick: col('received') },
        { label: 'accepted', color: PALETTE[3], pick: col('accepted') },
        { label: 'refused', color: PALETTE[0], pick: refusedTotal },
      ],
    }),
    new LineChart(box, {
      title: 'Refused by reason',
      lines: (a) => Object.keys(a.refused || {}).map((reason, i) => ({
        label: reason, color: PALETTE[i % PALETTE.length], pick: (x) => x.refused[reason],
      })),
    }),
    new LineChart(box, {
      title: 'Delivered and gifts per second',
      lines: [
        { label: 'delivered', color: PALETTE[1], pick: col('delivered') },
        { label: 'gifts', color: PALETTE[2], pick: col('gifts') },
      ],
    }),
    new LineChart(box, {
      title: 'Ingest bitrate (kbit/s)',
      lines: [{ label: 'kbit/s', color: PALETTE[4], pick: col('ingest_kbps') }],
      floor: 100,
    }),
    new LineChart(box, {
      title: 'Frame rate (fps)',
      lines: [{ label: 'fps', color: PALETTE[3], pick: col('fps') }],
      format: oneDecimal,
      floor: 10,
    }),
    new LineChart(box, {
      title: 'Segment delay: keyframe to playlist (ms)',
      lines: [{ label: 'ms', color: PALETTE[5], pick: col('playlist_delay_ms') }],
      floor: 10,
    }),
  ];
}

/** Fetches the room's last 10 minutes and redraws; false when the key may not read them. */
export async function refreshCharts(room) {
  let answer;
  try {
    answer = await rooms.series(room, 600);
  } catch (e) {
    byId('charts-status').textContent = `Charts unavailable: ${e.message}`;
    return e.status !== 401 && e.status !== 403;
  }
  if (!charts) charts = build();
  const shown = trimAnswer(answer, 60);
  for (const chart of charts) chart.update(shown);
  byId('charts-status').textContent = '';
  return true;
}
