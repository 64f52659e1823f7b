// The demo "join" flow: a name becomes a guest token (POST /api/rooms/{room}/guest-token),
// kept in sessionStorage for this tab only.

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

/** Forgets the guest identity. */
export function leave(room) {
  sessionStorage.removeItem(key(room));
}
