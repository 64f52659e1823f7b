// Host console, audit part: the room's audit log (who moderated what, newest first), as text.

import { rooms } from './api.js';
import { el, byId, replaceChildren } from './dom.js';

/** One entry as a list item: time, who (role), action, target, and the door it came through. */
function entryRow(e) {
  return el('li', { class: 'audit-entry' },
    el('span', { class: 'audit-time', text: new Date(e.at_ms).toLocaleTimeString() }),
    el('span', { class: 'audit-who', text: e.actor }),
    el('span', { class: 'audit-role', text: `(${e.role})` }),
    el('span', { class: 'audit-action', text: e.action }),
    e.target ? el('span', { class: 'audit-target', text: e.target }) : null,
    el('span', { class: 'audit-via', text: ` via ${e.via}` }));
}

/**
 * Loads the room's newest entries into the list. Resolves false when the key no longer opens
 * the room (401/403: rotated or wrong), true otherwise.
 */
export async function loadAudit(room) {
  try {
    const page = await rooms.audit(room);
    const entries = page.entries || [];
    replaceChildren(byId('audit-list'), entries.length
      ? entries.map(entryRow)
      : el('li', { class: 'muted', text: 'Nothing moderated yet.' }));
    byId('audit-status').textContent = `${page.total} entries`;
    return true;
  } catch (e) {
    byId('audit-status').textContent = `audit log: ${e.message}`;
    return !(e.status === 401 || e.status === 403);
  }
}
