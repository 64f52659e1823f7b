// The host console's stream health: frame rate and keyframe interval as measured on ingest,
// and each problem the server found (live.health: [{code, message}]) with its advice, as text.

import { el, byId, show, replaceChildren } from './dom.js';
import { num } from './format.js';

/** Shows a room's live status health (`live` null: nothing on air). */
export function showHealth(live) {
  byId('st-fps').textContent = live && typeof live.frame_rate === 'number' ? `${num(live.frame_rate)} fps` : '—';
  byId('st-gop').textContent = live && typeof live.keyframe_interval_s === 'number'
    ? `every ${num(live.keyframe_interval_s)} s` : '—';
  const problems = live && Array.isArray(live.health) ? live.health : [];
  replaceChildren(byId('health'), problems.map((p) => el('li', {
    class: 'health-problem', dataset: { code: String(p.code) },
  }, el('strong', { class: 'health-code', text: String(p.code).replace(/_/g, ' ') }), ' ', String(p.message || ''))));
  const note = byId('health-ok');
  note.textContent = !live ? 'Nothing on air.' : 'Healthy: nothing to fix.';
  show(note, problems.length === 0);
}
