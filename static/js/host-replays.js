// The host console's replays: the room's finished broadcasts with their poster, a link to
// watch, the MP4 download and the danmaku as XML.

import { rooms } from './api.js';
import { el, byId, show, replaceChildren } from './dom.js';
import { clock, when } from './format.js';

function replayItem(room, s) {
  const poster = el('img', { class: 'replay-poster', src: s.poster_url, alt: '', loading: 'lazy' });
  // No still for this broadcast (too short, or thumbnails off): no broken image.
  poster.addEventListener('error', () => { poster.hidden = true; });
  const watch = `/rooms/${encodeURIComponent(room)}?session=${encodeURIComponent(s.session)}`;
  return el('li', { class: 'replay-item', dataset: { session: s.session } },
    poster,
    el('div', { class: 'replay-text' },
      el('div', { text: `${when(s.started_ms)} · ${clock((s.ended_ms || s.started_ms) - s.started_ms)}` }),
      el('div', { class: 'replay-links' },
        el('a', { href: watch, target: '_blank', rel: 'noopener', text: 'Watch' }),
        el('a', { href: s.download_url, class: 'replay-download', download: '', text: 'Download MP4' }),
        s.danmaku_url ? el('a', { href: `/api/rooms/${encodeURIComponent(room)}/sessions/${encodeURIComponent(s.session)}/danmaku.xml`, text: 'Danmaku XML' }) : null)));
}

/** Lists the room's last finished broadcasts. */
export async function loadReplays(room) {
  try {
    const page = await rooms.sessions(room);
    const ended = (page.sessions || []).filter((s) => !s.live && s.ended_ms && s.vod_key).slice(0, 10);
    replaceChildren(byId('replays'), ended.map((s) => replayItem(room, s)));
    show(byId('replays-empty'), ended.length === 0);
  } catch (e) {
    byId('replays-empty').textContent = `Cannot list replays: ${e.message}`;
    show(byId('replays-empty'), true);
  }
}
