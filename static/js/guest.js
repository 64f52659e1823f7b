// Who the viewer page sends as: the demo "join" flow (a name becomes a guest token, POST
// /api/rooms/{room}/guest-token) or a token handed over in a link (/rooms/{room}#token=JWT, e.g.
// a moderator's from the business server); either is kept in sessionStorage for this tab only.

import { api } from './api.js';

const key = (room) => `barrage.guest.${room}`;

/** The stored guest identity for a room ({token, user, name}) or null. */
export function storedGuest(room) {
  try {
    const value = JSON.parse(sessionStorage.getItem(key(room)) || 'null');
    return value && typeof value.token === 'string' ? value : null;
  } catch {
    return null;
  }
}

/** Asks for a guest token under `name` and stores it. Throws ApiError (403: guests are off). */
export async function joinAsGuest(room, name) {
  const answer = await api(`/api/rooms/${encodeURIComponent(room)}/guest-token`, {
    method: 'POST',
    body: { name },
  });
  const guest = { token: answer.token, user: answer.user, name: answer.name || name };
  sessionStorage.setItem(key(room), JSON.stringify(guest));
  return guest;
}

/** A token's claims (the JWT's middle part; not checked here: the server checks it). */
export function tokenClaims(token) {
  try {
    const part = String(token).split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '='));
    // The claims are UTF-8 JSON (a name may be any script).
    const json = new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
    const claims = JSON.parse(json);
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/**
 * Takes a token from the page's link (`#token=JWT`), stores it as this room's identity and
 * removes it from the address bar (a fragment never reaches the server or its logs). Returns
 * the identity ({token, user, name, linked: true}) or null when the link has none.
 */
export function takeTokenFromLink(room, loc = location) {
  const token = new URLSearchParams(loc.hash.replace(/^#/, '')).get('token');
  if (!token) return null;
  history.replaceState(null, '', loc.pathname + loc.search);
  const claims = tokenClaims(token) || {};
  const user = typeof claims.sub === 'string' ? claims.sub : '';
  const who = { token, user, name: claims.name || user, linked: true };
  sessionStorage.setItem(key(room), JSON.stringify(who));
  return who;
}

/** Forgets the guest identity. */
export function leave(room) {
  sessionStorage.removeItem(key(room));
}
