// JSON calls to barrage's API. Errors come back as ApiError with the server's code and message
// ({"error":{"code","message"}}); the host console's calls carry its key (the admin key or a
// room's host key) as a Bearer token.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const CONSOLE_KEY = 'barrage.consoleKey';

/** The key the host console was unlocked with (admin or host key; sessionStorage), or ''. */
export function consoleKey() {
  return sessionStorage.getItem(CONSOLE_KEY) || '';
}

export function setConsoleKey(value) {
  if (value) sessionStorage.setItem(CONSOLE_KEY, value);
  else sessionStorage.removeItem(CONSOLE_KEY);
}

/** Calls `path`; `body` is sent as JSON; `key` adds the console's Bearer key. Resolves to the JSON. */
export async function api(path, { method = 'GET', body, key = false, signal } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (key) headers.authorization = `Bearer ${consoleKey()}`;
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'network', `network error: ${e.message}`);
  }
  const type = r.headers.get('content-type') || '';
  const data = type.includes('json') ? await r.json().catch(() => null) : null;
  if (!r.ok) {
    const err = data && data.error ? data.error : {};
    throw new ApiError(r.status, err.code || `http_${r.status}`,
      err.message || `${method} ${path}: HTTP ${r.status}`);
  }
  return data ?? {};
}

const enc = encodeURIComponent;

/** The calls the pages use, by name. */
export const rooms = {
  list: (params = '') => api(`/api/rooms?per_page=100${params}`),
  get: (room) => api(`/api/rooms/${enc(room)}`),
  sessions: (room, page = 1) => api(`/api/rooms/${enc(room)}/sessions?page=${page}&per_page=100`),
  create: (id, title) => api('/api/rooms', { method: 'POST', body: id ? { id, title } : { title }, key: true }),
  rotateKey: (room) => api(`/api/rooms/${enc(room)}/rotate-key`, { method: 'POST', key: true }),
  close: (room) => api(`/api/rooms/${enc(room)}/close`, { method: 'POST', key: true }),
  open: (room) => api(`/api/rooms/${enc(room)}/open`, { method: 'POST', key: true }),
  stats: (room) => api(`/api/rooms/${enc(room)}/stats`),
  /** The room's per-second series of the last `seconds` (the console's key). */
  series: (room, seconds = 600) => api(`/api/rooms/${enc(room)}/series?seconds=${seconds}`, { key: true }),
  /** What the console's key is: {credential, role, room?}. */
  whoami: () => api('/api/whoami', { key: true }),
  rotateHostKey: (room) => api(`/api/rooms/${enc(room)}/host-key`, { method: 'POST', key: true }),
  audit: (room, page = 1) => api(`/api/rooms/${enc(room)}/audit?page=${page}&per_page=50`, { key: true }),
  system: (room, text) => api(`/api/rooms/${enc(room)}/system`, { method: 'POST', body: { text }, key: true }),
  deleteMessage: (room, seq) => api(`/api/rooms/${enc(room)}/messages/${enc(seq)}/delete`, { method: 'POST', key: true }),
  /** Mutes for `seconds`; 0 or nothing: until unmuted. */
  mute: (room, user, seconds) => api(`/api/rooms/${enc(room)}/mutes/${enc(user)}`, { method: 'POST', body: seconds > 0 ? { seconds } : {}, key: true }),
  unmute: (room, user) => api(`/api/rooms/${enc(room)}/mutes/${enc(user)}`, { method: 'DELETE', key: true }),
  ban: (room, user) => api(`/api/rooms/${enc(room)}/bans/${enc(user)}`, { method: 'POST', key: true }),
  unban: (room, user) => api(`/api/rooms/${enc(room)}/bans/${enc(user)}`, { method: 'DELETE', key: true }),
  blockedWords: (room) => api(`/api/rooms/${enc(room)}/blocked-words`, { key: true }),
  setBlockedWords: (room, words) => api(`/api/rooms/${enc(room)}/blocked-words`, { method: 'PUT', body: { words }, key: true }),
  slowMode: (room, seconds) => api(`/api/rooms/${enc(room)}/slow-mode`, { method: 'PUT', body: { seconds }, key: true }),
};
