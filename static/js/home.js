// Home page: live rooms first (with the room's latest still, `thumbnail_url`, or a placeholder
// until one is taken), then the other open rooms.

import { rooms } from './api.js';
import { el, byId, replaceChildren, show } from './dom.js';
import { num } from './format.js';

/** The room's still over the placeholder letter; a still that fails to load is removed. */
function still(url) {
  const img = el('img', { class: 'thumb-img', src: url, alt: '' });
  img.addEventListener('error', () => img.remove());
  return img;
}

function card(room) {
  const live = room.live;
  const meta = [];
  if (live && live.width && live.height) meta.push(`${live.height}p`);
  if (live && live.bitrate_kbps) meta.push(`${Math.round(live.bitrate_kbps)} kbit/s`);
  const online = Number.isInteger(room.online) && (live || room.online > 0)
    ? `${room.online} watching` : '';
  const href = `/rooms/${encodeURIComponent(room.id)}`;
  return el('li', { class: 'room-card', dataset: { room: room.id } },
    el('a', { href },
      el('div', { class: 'thumb' },
        el('span', { class: 'thumb-letter', text: (room.title || room.id).slice(0, 1).toUpperCase() }),
        live && room.thumbnail_url ? still(room.thumbnail_url) : null,
        el('span', { class: `badge ${live ? 'badge-live' : 'badge-offline'}`, text: live ? 'live' : 'offline' }),
        meta.length ? el('span', { class: 'thumb-meta', text: meta.join(' · ') }) : null),
      el('p', { class: 'card-title', text: room.title || room.id }),
      el('p', { class: 'card-sub', text: [room.id, online].filter(Boolean).join(' · ') })));
}

async function refresh() {
  const status = byId('home-status');
  try {
    const page = await rooms.list();
    const all = (page.rooms || []).filter((r) => !r.closed);
    const live = all.filter((r) => r.live);
    const offline = all.filter((r) => !r.live);
    replaceChildren(byId('live-rooms'), live.map(card));
    replaceChildren(byId('offline-rooms'), offline.map(card));
    show(byId('live-empty'), live.length === 0);
    show(byId('offline-empty'), offline.length === 0);
    status.textContent = page.total > all.length ? `showing ${all.length} of ${num(page.total)} rooms` : '';
    status.className = 'status';
  } catch (e) {
    status.textContent = `Cannot load rooms: ${e.message}`;
    status.className = 'status error';
  }
}

refresh();
setInterval(refresh, 10000);
