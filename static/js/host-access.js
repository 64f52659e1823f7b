// Host console, access part: what the key it was unlocked with opens. The admin key runs every
// room (room list, room creation); a room's host key runs that room only: the console shows
// just it, with no room list and no creation. Tokens do not unlock the console.

import { rooms, setConsoleKey } from './api.js';
import { byId, show } from './dom.js';

/**
 * Asks the server what the stored key is. Resolves {scope: null} for the admin key,
 * {scope: room} for a host key; throws an Error whose message the gate shows otherwise.
 */
export async function identify() {
  let me;
  try {
    me = await rooms.whoami();
  } catch (e) {
    if (e.status === 401 || e.status === 403) throw new Error('That key was refused.');
    throw new Error(`Cannot check the key: ${e.message}`);
  }
  if (me.credential === 'admin_key') return { scope: null };
  if (me.credential === 'host_key' && me.room) return { scope: me.room };
  throw new Error('A token does not unlock the console: use the admin key or the room\'s host key.');
}

/** Shows what a host key's console leaves out, and which room it runs. */
export function applyScope(scope) {
  const host = scope !== null;
  show(byId('room-picker'), !host);
  show(byId('create-form'), !host);
  show(byId('room-fixed'), host);
  show(byId('scope-note'), host);
  if (host) {
    byId('room-fixed').textContent = scope;
    byId('scope-note').textContent = `Host of room ${scope}`;
  }
}

/** Forgets the key and goes back to the gate, saying why. */
export function lockOut(why) {
  setConsoleKey('');
  sessionStorage.setItem('barrage.consoleLocked', why);
  location.reload();
}

/** Why the console locked itself last time (shown once on the gate). */
export function lockedReason() {
  const why = sessionStorage.getItem('barrage.consoleLocked') || '';
  sessionStorage.removeItem('barrage.consoleLocked');
  return why;
}
