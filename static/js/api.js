// JSON calls to barrage's API. Errors come back as ApiError with the server's code and message
// ({"error":{"code","message"}}); admin calls carry the admin key as a Bearer token.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const ADMIN_KEY = 'barrage.adminKey';

/** The admin key this tab was given (sessionStorage), or ''. */
export function adminKey() {
  return sessionStorage.getItem(ADMIN_KEY) || '';
}

export function setAdminKey(value) {
  if (value) sessionStorage.setItem(ADMIN_KEY, value);
  else sessionStorage.removeItem(ADMIN_KEY);
}

/** Calls `path`; `body` is sent as JSON; `admin` adds the Bearer key. Resolves to the JSON. */
export async function api(path, { method = 'GET', body, admin = false, signal } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (admin) headers.authorization = `Bearer ${adminKey()}`;
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
  create: (id, title) => api('/api/rooms', { method: 'POST', body: id ? { id, title } : { title }, admin: true }),
  rotateKey: (room) => api(`/api/rooms/${enc(room)}/rotate-key`, { method: 'POST', admin: true }),
  close: (room) => api(`/api/rooms/${enc(room)}/close`, { method: 'POST', admin: true }),
  open: (room) => api(`/api/rooms/${enc(room)}/open`, { method: 'POST', admin: true }),
  stats: (room) => api(`/api/rooms/${enc(room)}/stats`, { admin: true }),
  system: (room, text) => api(`/api/rooms/${enc(room)}/system`, { method: 'POST', body: { text }, admin: true }),
  deleteMessage: (room, seq) => api(`/api/rooms/${enc(room)}/messages/${enc(seq)}/delete`, { method: 'POST', admin: true }),
  /** Mutes for `seconds`; 0 or nothing: until unmuted. */
  mute: (room, user, seconds) => api(`/api/rooms/${enc(room)}/mutes/${enc(user)}`, { method: 'POST', body: seconds > 0 ? { seconds } : {}, admin: true }),
  unmute: (room, user) => api(`/api/rooms/${enc(room)}/mutes/${enc(user)}`, { method: 'DELETE', admin: true }),
  ban: (room, user) => api(`/api/rooms/${enc(room)}/bans/${enc(user)}`, { method: 'POST', admin: true }),
  unban: (room, user) => api(`/api/rooms/${enc(room)}/bans/${enc(user)}`, { method: 'DELETE', admin: true }),
  blockedWords: (room) => api(`/api/rooms/${enc(room)}/blocked-words`, { admin: true }),
  setBlockedWords: (room, words) => api(`/api/rooms/${enc(room)}/blocked-words`, { method: 'PUT', body: { words }, admin: true }),
  slowMode: (room, seconds) => api(`/api/rooms/${enc(room)}/slow-mode`, { method: 'PUT', body: { seconds }, admin: true }),
};
