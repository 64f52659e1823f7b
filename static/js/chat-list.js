// The chat list beside the video (and in the host console): danmaku, gifts and system messages
// each look different; a moderation delete takes the comment out. All text via textContent.

import { el } from './dom.js';
import { colorToCss, clock } from './format.js';

export class ChatList {
  /**
   * @param {HTMLElement} list an <ol>/<ul>
   * @param {object} opts max (items kept), actions(event) -> extra nodes for a row (host),
   *   showUser (also show the user id, for moderators)
   */
  constructor(list, opts = {}) {
    this.list = list;
    this.max = opts.max || 300;
    this.actions = opts.actions || null;
    this.showUser = Boolean(opts.showUser);
    this.rows = new Map(); // seq -> <li>
  }

  /** Adds one event; moderation events remove their target instead. */
  add(event) {
    if (event.moderation) {
      this.remove(event.moderation.delete_seq);
      return;
    }
    const row = this.render(event);
    if (!row) return;
    if (Number.isInteger(event.seq)) {
      row.dataset.seq = String(event.seq);
      this.rows.set(event.seq, row);
    }
    const stick = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    this.list.append(row);
    while (this.list.children.length > this.max) {
      const first = this.list.firstElementChild;
      this.rows.delete(Number(first.dataset.seq));
      first.remove();
    }
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }

  /** Adds a local note (connection state, ack refusals) that is not an event. */
  note(text, kind = 'note') {
    this.add({ seq: null, note: { text, kind } });
  }

  remove(seq) {
    const row = this.rows.get(seq);
    if (row) {
      row.remove();
      this.rows.delete(seq);
    }
  }

  clear() {
    this.list.replaceChildren();
    this.rows.clear();
  }

  render(e) {
    const time = Number.isInteger(e.stream_ms) && e.stream_ms > 0
      ? el('span', { class: 'chat-time', text: clock(e.stream_ms) }) : null;
    const extra = this.actions ? this.actions(e) : null;
    const who = (name, user) => [
      el('span', { class: 'chat-name', text: name || user || 'anonymous' }),
      this.showUser && user ? el('span', { class: 'chat-user', text: `(${user})` }) : null,
    ];
    if (e.danmaku) {
      const d = e.danmaku;
      const text = el('span', { class: 'chat-text', text: d.text });
      text.style.color = colorToCss(d.color);
      return el('li', { class: 'chat-item chat-danmaku' }, time, who(d.name, d.user), text, extra);
    }
    if (e.gift) {
      const g = e.gift;
      return el('li', { class: 'chat-item chat-gift' }, time, who(g.name, g.user),
        el('span', { class: 'chat-text', text: `sent ${g.gift_name || g.gift_id} ×${g.count}` }),
        g.value ? el('span', { class: 'chat-value', text: `(${g.value})` }) : null, extra);
    }
    if (e.system) {
      return el('li', { class: 'chat-item chat-system' }, time,
        el('span', { class: 'chat-badge', text: 'System' }),
        el('span', { class: 'chat-text', text: e.system.text }), extra);
    }
    if (e.note) {
      return el('li', { class: `chat-item chat-note chat-note-${e.note.kind}` },
        el('span', { class: 'chat-text', text: e.note.text }));
    }
    return null;
  }
}
