// The viewer's WebSocket (JSON format): hello with resume_from after a reconnect, heartbeats,
// reconnect with exponential backoff and jitter, and sends matched to their acks. Where to
// connect comes from the allocator (GET /api/rooms/{room}/connect: the least-loaded nodes'
// URLs, assigned node first); a socket that fails moves on to the next URL, and when all were
// tried the allocator is asked again. Without an answer the page's own host is used.

/** Delay before reconnect attempt `attempt` (0, 1, ...): 0.5 s doubling to 15 s, +-25 %. */
export function backoffMs(attempt, rnd = Math.random) {
  const base = Math.min(15000, 500 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.75 + 0.5 * rnd()));
}

/** The socket URL for a room on this page's host. */
export function socketUrl(loc, room, token) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  let url = `${scheme}//${loc.host}/ws/${encodeURIComponent(room)}?format=json`;
  if (token) url += `&token=${encodeURIComponent(token)}`;
  return url;
}

/**
 * A socket URL from the allocator's `ws_urls` entry, with the format and token added. On an
 * https page a ws:// URL becomes wss:// (the browser refuses mixed content, and a TLS proxy in
 * front of the node is what such a URL means).
 */
export function allocatedUrl(wsUrl, pageProtocol, token) {
  let url = pageProtocol === 'https:' && wsUrl.startsWith('ws://') ? `wss://${wsUrl.slice(5)}` : wsUrl;
  url += `${url.includes('?') ? '&' : '?'}format=json`;
  if (token) url += `&token=${encodeURIComponent(token)}`;
  return url;
}

/**
 * Asks GET /api/rooms/{room}/connect: where to connect (ws_urls), the CDN base and bases for
 * danmaku files. Resolves with the answer, or null when there is none (a hung allocator must
 * not hold the page up: after 5 s the page's own host is used).
 */
export async function fetchConnect(room, fetchFn = globalThis.fetch) {
  try {
    const signal = AbortSignal.timeout ? AbortSignal.timeout(5000) : undefined;
    const r = await fetchFn(`/api/rooms/${encodeURIComponent(room)}/connect`, { cache: 'no-store', signal });
    if (!r.ok) return null;
    const answer = await r.json();
    return answer && typeof answer === 'object' ? answer : null;
  } catch {
    return null;
  }
}

/** Asks the allocator where to connect; resolves with its `ws_urls` (maybe empty). */
export async function allocate(room, fetchFn = globalThis.fetch) {
  const answer = await fetchConnect(room, fetchFn);
  return answer && Array.isArray(answer.ws_urls) ? answer.ws_urls.filter((u) => typeof u === 'string') : [];
}

/** What the server's close codes mean (docs/PROTOCOL.md). */
const CLOSE_REASONS = {
  1001: 'server restarting',
  1008: 'token refused',
  1013: 'fell behind',
  4404: 'no such room',
  4408: 'idle',
  4410: 'room closed',
};

/**
 * One room's socket. Handlers (all optional): onWelcome(frame), onEvents(events),
 * onOnline(n), onGap(frame), onError(frame), onRestart(welcome) (the room's seqs started over),
 * onState('connecting'|'open'|'closed', detail), onAuth(frame) (the token ran out, or a renewal
 * was taken or refused), onReply(frame) (the answer to a moderator's request).
 */
export class ChatSocket {
  constructor(room, handlers = {}) {
    this.room = room;
    this.h = handlers;
    this.token = '';
    this.ws = null;
    this.lastSeq = 0;
    this.attempt = 0;
    this.stopped = true;
    this.timer = null;
    this.heartbeat = null;
    this.nextClientId = 1;
    this.pending = new Map(); // client_id -> {resolve, timer}
    this.welcome = null;
    this.urls = []; // the allocator's answer, tried in order
    this.urlIndex = 0;
    this.url = ''; // the URL of the current (or last) socket
    this.opening = 0; // bumps on every open, so a stale allocator answer is ignored
  }

  /** Connects (or reconnects with a new token). */
  connect(token = this.token) {
    this.token = token || '';
    this.stopped = false;
    clearTimeout(this.timer);
    if (this.ws) {
      const old = this.ws;
      this.ws = null;
      old.close(1000, 'reconnecting');
    }
    this.open();
  }

  /** Closes for good (no reconnect). */
  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    if (this.ws) this.ws.close(1000, 'bye');
    this.ws = null;
  }

  /**
   * Hands the server a fresh token on the open socket (no reconnect); later reconnects use it
   * too. The server answers with an `auth` frame (onAuth).
   */
  renew(token) {
    this.token = token || '';
    return this.raw({ type: 'auth', token: this.token });
  }

  /** Drops the connection as a network failure would, to test resume (kept for debugging). */
  dropForTest() {
    if (this.ws) this.ws.close(4000, 'test drop');
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.welcome !== null;
  }

  /** The next URL to try: the allocator's, in order, asking again once all were tried. */
  async nextUrl() {
    if (this.urlIndex >= this.urls.length) {
      this.urls = await allocate(this.room);
      this.urlIndex = 0;
    }
    const allocated = this.urls[this.urlIndex];
    return allocated
      ? allocatedUrl(allocated, location.protocol, this.token)
      : socketUrl(location, this.room, this.token);
  }

  async open() {
    this.state('connecting');
    const generation = ++this.opening;
    const url = await this.nextUrl();
    if (this.stopped || generation !== this.opening) return;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      this.urlIndex++;
      this.scheduleReconnect(String(e));
      return;
    }
    this.url = url;
    this.ws = ws;
    this.welcome = null;
    ws.addEventListener('open', () => {
      if (this.ws !== ws) return;
      const hello = { type: 'hello' };
      if (this.lastSeq > 0) hello.resume_from = this.lastSeq;
      ws.send(JSON.stringify(hello));
    });
    ws.addEventListener('message', (m) => {
      if (this.ws !== ws || typeof m.data !== 'string') return;
      let frame;
      try {
        frame = JSON.parse(m.data);
      } catch {
        return;
      }
      this.receive(frame);
    });
    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.welcome = null;
      clearInterval(this.heartbeat);
      this.failPending('disconnected');
      // Whatever ended this socket, the next attempt goes to the next node on the list.
      this.urlIndex++;
      // Room unknown or closed: it may open again, but there is no hurry to ask.
      if (ev.code === 4404 || ev.code === 4410) this.attempt = Math.max(this.attempt, 10);
      this.scheduleReconnect(ev.reason || CLOSE_REASONS[ev.code] || `closed (${ev.code})`);
    });
  }

  scheduleReconnect(why) {
    if (this.stopped) return;
    const delay = backoffMs(this.attempt++);
    this.state('closed', `${why}; reconnecting in ${(delay / 1000).toFixed(1)} s`);
    this.timer = setTimeout(() => this.open(), delay);
  }

  receive(frame) {
    switch (frame.type) {
      case 'welcome': {
        this.welcome = frame;
        this.attempt = 0;
        if (Number.isInteger(frame.seq) && frame.seq < this.lastSeq) {
          // The room's numbering restarted (a server restart): start over from its seq.
          this.lastSeq = frame.seq;
          this.h.onRestart?.(frame);
        }
        if (this.lastSeq === 0 && Number.isInteger(frame.seq)) this.lastSeq = frame.seq;
        const every = Math.max(5, frame.heartbeat_s || 30) * 1000;
        clearInterval(this.heartbeat);
        this.heartbeat = setInterval(() => this.raw({ type: 'heartbeat' }), every);
        this.state('open');
        this.h.onWelcome?.(frame);
        if (Number.isInteger(frame.online)) this.h.onOnline?.(frame.online);
        break;
      }
      case 'batch': {
        const events = Array.isArray(frame.events) ? frame.events : [];
        for (const e of events) if (e.seq > this.lastSeq) this.lastSeq = e.seq;
        this.h.onEvents?.(events);
        break;
      }
      case 'ack': {
        const p = this.pending.get(frame.client_id);
        if (p) {
          clearTimeout(p.timer);
          this.pending.delete(frame.client_id);
          p.resolve(frame);
        }
        break;
      }
      case 'heartbeat':
        if (Number.isInteger(frame.online)) this.h.onOnline?.(frame.online);
        break;
      case 'gap':
        if (Number.isInteger(frame.to_seq) && frame.to_seq > this.lastSeq) {
          this.lastSeq = frame.to_seq;
        }
        this.h.onGap?.(frame);
        break;
      case 'error':
        this.h.onError?.(frame);
        break;
      case 'auth':
        // A renewal taken: the socket's user and rights are the new token's.
        if (frame.status === 'ok' && this.welcome) {
          this.welcome = { ...this.welcome, user: frame.user, can_send: true, can_moderate: Boolean(frame.can_moderate) };
        }
        this.h.onAuth?.(frame);
        break;
      case 'reply':
        this.h.onReply?.(frame);
        break;
      default:
        break;
    }
  }

  raw(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Sends a danmaku; resolves with the ack frame ({status, retry_after_ms?}), or with
   * {status:'not_sent'|'timeout'|'disconnected'}.
   */
  send({ text, color = 0xffffff, mode = 'scroll', stream_ms }) {
    const client_id = this.nextClientId++;
    const frame = { type: 'send', client_id, text, color, mode };
    if (Number.isInteger(stream_ms) && stream_ms >= 0) frame.stream_ms = stream_ms;
    if (!this.isOpen || !this.raw(frame)) return Promise.resolve({ client_id, status: 'not_sent' });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(client_id);
        resolve({ client_id, status: 'timeout' });
      }, 10000);
      this.pending.set(client_id, { resolve, timer });
    });
  }

  failPending(status) {
    for (const [client_id, p] of this.pending) {
      clearTimeout(p.timer);
      p.resolve({ client_id, status });
    }
    this.pending.clear();
  }

  state(s, detail = '') {
    this.h.onState?.(s, detail);
  }
}
