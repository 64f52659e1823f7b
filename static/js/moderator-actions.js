// The viewer page's moderator view: when the socket's token lets its user moderate this room
// (the welcome or a renewal says can_moderate), each chat line gets Delete and Mute buttons
// that send `delete` / `mute` frames over the socket and report the server's reply. Button
// labels and replies go in as text only.

import { el } from './dom.js';

/** How long a request waits for its reply. */
const REPLY_MS = 10000;

export class ModeratorActions {
  /**
   * @param {import('./ws-client.js').ChatSocket} socket the room's socket
   * @param {(text: string, ok: boolean) => void} report shows an outcome to the moderator
   */
  constructor(socket, report) {
    this.socket = socket;
    this.report = report;
    this.nextId = 1;
    this.pending = new Map(); // request_id -> {resolve, timer}
  }

  /** Whether this socket may moderate now. */
  get enabled() {
    return Boolean(this.socket.welcome && this.socket.welcome.can_moderate);
  }

  /** Sends a request frame; resolves with the reply ({ok, code, message}). */
  request(frame) {
    const request_id = this.nextId++;
    if (!this.socket.raw({ ...frame, request_id })) {
      return Promise.resolve({ request_id, ok: false, code: 'not_sent', message: 'not connected' });
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(request_id);
        resolve({ request_id, ok: false, code: 'timeout', message: 'no answer from the server' });
      }, REPLY_MS);
      this.pending.set(request_id, { resolve, timer });
    });
  }

  /** The socket's `reply` frames come here (ChatSocket's onReply). */
  reply(frame) {
    const p = this.pending.get(frame.request_id);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(frame.request_id);
    p.resolve(frame);
  }

  async act(what, frame) {
    const r = await this.request(frame);
    this.report(r.ok ? `${what}: done` : `${what}: ${r.message || r.code}`, r.ok);
  }

  /**
   * The buttons for one chat line (ChatList's `actions`), or null when this socket does not
   * moderate or the line is not a delivered event.
   */
  actions(event) {
    if (!this.enabled || !Number.isInteger(event.seq) || event.note) return null;
    const del = el('button', {
      type: 'button', class: 'mod-delete', title: 'Delete this message for everyone',
      text: 'Delete', dataset: { seq: String(event.seq) },
      onclick: () => this.act(`delete #${event.seq}`, { type: 'delete', seq: event.seq }),
    });
    const user = event.danmaku && event.danmaku.user;
    if (!user) return [el('span', { class: 'mod-actions' }, del)];
    const mute = el('button', {
      type: 'button', class: 'mod-mute', title: `Mute ${user} in this room for 10 minutes`,
      text: 'Mute', dataset: { user },
      onclick: () => this.act(`mute ${user}`, { type: 'mute', user, seconds: 600 }),
    });
    return [el('span', { class: 'mod-actions' }, del, mute)];
  }
}
