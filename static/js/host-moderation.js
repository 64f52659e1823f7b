// Host console, moderation part: delete a message, mute/ban a user, blocked words, slow mode,
// and the per-message buttons of the live chat list.

import { rooms } from './api.js';
import { el, byId } from './dom.js';

/** Reports the outcome of an admin call in a status line. */
export function reporter(id) {
  return async (what, call) => {
    const status = byId(id);
    try {
      const result = await call();
      status.textContent = `${what}: done`;
      status.className = 'status ok';
      return result;
    } catch (e) {
      status.textContent = `${what}: ${e.message}`;
      status.className = 'status error';
      return null;
    }
  };
}

/** Wires the moderation forms; `room()` gives the selected room. */
export function bindModeration(room) {
  const report = reporter('mod-status');

  byId('delete-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const seq = Number(byId('delete-seq').value);
    if (Number.isInteger(seq) && seq > 0) {
      report(`delete #${seq}`, () => rooms.deleteMessage(room(), seq));
    }
  });

  byId('user-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const user = byId('mod-user').value.trim();
    const seconds = Math.max(0, Number(byId('mod-seconds').value) || 0);
    const action = ev.submitter?.dataset.action || 'mute';
    if (!user) return;
    const calls = {
      mute: () => rooms.mute(room(), user, seconds),
      unmute: () => rooms.unmute(room(), user),
      ban: () => rooms.ban(room(), user),
      unban: () => rooms.unban(room(), user),
    };
    report(`${action} ${user}`, calls[action]);
  });

  byId('words-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const words = byId('words').value.split('\n').map((w) => w.trim()).filter(Boolean);
    report('blocked words', () => rooms.setBlockedWords(room(), words));
  });

  byId('slow-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const seconds = Math.max(0, Math.round(Number(byId('slow-seconds').value) || 0));
    report(`slow mode ${seconds} s`, () => rooms.slowMode(room(), seconds));
  });
}

/** Loads the selected room's blocked words into the form. */
export async function loadBlockedWords(room) {
  try {
    const answer = await rooms.blockedWords(room);
    byId('words').value = (answer.words || []).join('\n');
  } catch {
    byId('words').value = '';
  }
}

/** The buttons beside one message in the host's chat list. */
export function rowActions(room) {
  const report = reporter('mod-status');
  return (event) => {
    if (!Number.isInteger(event.seq)) return null;
    const user = event.danmaku?.user || event.gift?.user || '';
    const seqLabel = el('span', { class: 'chat-seq', text: `#${event.seq}` });
    const del = el('button', {
      type: 'button', class: 'delete-message', title: 'Delete this message for everyone',
      text: 'Delete', dataset: { seq: String(event.seq) },
      onclick: () => report(`delete #${event.seq}`, () => rooms.deleteMessage(room(), event.seq)),
    });
    if (!event.danmaku || !user) return [seqLabel, del];
    const mute = el('button', {
      type: 'button', text: 'Mute 10 min',
      onclick: () => report(`mute ${user}`, () => rooms.mute(room(), user, 600)),
    });
    const ban = el('button', {
      type: 'button', text: 'Ban',
      onclick: () => report(`ban ${user}`, () => rooms.ban(room(), user)),
    });
    return [seqLabel, del, mute, ban];
  };
}
