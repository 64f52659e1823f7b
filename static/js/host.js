// Host console: asks for the admin key or a room's host key (kept in sessionStorage; every call
// sends it as Bearer), then: create a room and show its keys and OBS settings (admin key), rotate
// the stream and host keys, live status every 2 s, system messages, moderation from a live chat
// list, and the room's audit log; stream health, per-second charts of the last 10 minutes
// (host-charts.js) and the replays with their downloads. With a host key it runs that room
// only (host-access.js).

import { rooms, consoleKey, setConsoleKey } from './api.js';
import { el, byId, show, replaceChildren } from './dom.js';
import { num } from './format.js';
import { ChatList } from './chat-list.js';
import { ChatSocket } from './ws-client.js';
import { bindModeration, loadBlockedWords, rowActions, reporter } from './host-moderation.js';
import { identify, applyScope, lockOut, lockedReason } from './host-access.js';
import { loadAudit } from './host-audit.js';
import { refreshCharts } from './host-charts.js';
import { showHealth } from './host-health.js';
import { loadReplays } from './host-replays.js';

let current = new URLSearchParams(location.search).get('room') || '';
/** The one room a host key runs (null: the admin key, every room). */
let scope = null;
let chatSocket = null;
let statusTimer = null;
/** Refreshes since the replays were listed (they are listed every REPLAYS_EVERY refreshes). */
let sinceReplays = 0;
const REPLAYS_EVERY = 8;
const room = () => current;
const chat = new ChatList(byId('host-chat'), { showUser: true, actions: rowActions(room), max: 500 });

function setStatus(id, text, ok) {
  const node = byId(id);
  node.textContent = text;
  node.className = `status ${ok === undefined ? '' : ok ? 'ok' : 'error'}`;
}

// ---------------------------------------------------------------- the key

byId('key-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  setConsoleKey(byId('key-input').value.trim());
  byId('key-input').value = '';
  try {
    scope = (await identify()).scope;
    openConsole();
  } catch (e) {
    setConsoleKey('');
    setStatus('key-status', e.message, false);
  }
});

byId('forget-key').addEventListener('click', () => {
  setConsoleKey('');
  location.reload();
});

// ---------------------------------------------------------------- rooms

async function loadRooms() {
  if (scope !== null) {
    // A host key runs one room: no room list is asked for.
    current = scope;
    replaceChildren(byId('room-select'), el('option', { value: scope, text: scope }));
    byId('room-select').value = scope;
    return;
  }
  const page = await rooms.list().catch(() => ({ rooms: [] }));
  const ids = (page.rooms || []).map((r) => r.id);
  if (current && !ids.includes(current)) ids.push(current);
  if (!current && ids.length) current = ids[0];
  replaceChildren(byId('room-select'), ids.map((id) => el('option', { value: id, text: id })));
  byId('room-select').value = current;
}

function selectRoom(id) {
  current = id;
  byId('room-select').value = id;
  const url = new URL(location.href);
  url.searchParams.set('room', id);
  history.replaceState(null, '', url);
  byId('viewer-link').href = `/rooms/${encodeURIComponent(id)}`;
  byId('overlay-link').href = `/overlay/${encodeURIComponent(id)}`;
  chat.clear();
  if (chatSocket) chatSocket.close();
  chatSocket = new ChatSocket(id, {
    onEvents: (events) => events.forEach((e) => chat.add(e)),
    onState: (s, detail) => { byId('chat-conn').textContent = s === 'open' ? 'connected' : `${s} ${detail}`; },
  });
  chatSocket.connect('');
  loadBlockedWords(id);
  sinceReplays = REPLAYS_EVERY;
  refreshStatus();
}

byId('room-select').addEventListener('change', (ev) => selectRoom(ev.target.value));

/** Shows the keys an answer carries (each is shown this once). */
function showKey(answer) {
  byId('key-room').textContent = answer.room.id || answer.room;
  const stream = answer.obs ? answer.obs.stream_key || answer.stream_key : '';
  show(byId('kb-stream'), Boolean(stream));
  if (stream) {
    byId('obs-server').textContent = answer.obs.server;
    byId('obs-key').textContent = stream;
  }
  show(byId('kb-host'), Boolean(answer.host_key));
  byId('host-key').textContent = answer.host_key || '';
  show(byId('key-box'), true);
}

function copyButton(button, source, what) {
  byId(button).addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(byId(source).textContent);
      setStatus('room-status', `${what} copied.`, true);
    } catch {
      setStatus('room-status', 'Copy failed: select the key and copy it by hand.', false);
    }
  });
}
copyButton('copy-key', 'obs-key', 'Stream key');
copyButton('copy-host-key', 'host-key', 'Host key');

const roomReport = reporter('room-status');

byId('create-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = byId('create-id').value.trim();
  const title = byId('create-title').value.trim();
  const answer = await roomReport(`create ${id || title}`, () => rooms.create(id, title));
  if (!answer) return;
  showKey(answer);
  byId('create-form').reset();
  current = answer.room.id;
  await loadRooms();
  selectRoom(answer.room.id);
});

byId('rotate-key').addEventListener('click', async () => {
  if (!confirm(`Make a new stream key for ${current}? The old key stops working at once.`)) return;
  const answer = await roomReport(`rotate key of ${current}`, () => rooms.rotateKey(current));
  if (answer) showKey(answer);
});

byId('rotate-host-key').addEventListener('click', async () => {
  if (!confirm(`Make a new host key for ${current}? The old host key stops working at once.`)) return;
  const answer = await roomReport(`rotate host key of ${current}`, () => rooms.rotateHostKey(current));
  if (!answer) return;
  // A console unlocked with this room's host key goes on with the new one.
  if (scope !== null) setConsoleKey(answer.host_key);
  showKey(answer);
});

byId('close-room').addEventListener('click', () => roomReport(`close ${current}`, () => rooms.close(current)));
byId('open-room').addEventListener('click', () => roomReport(`reopen ${current}`, () => rooms.open(current)));

// ---------------------------------------------------------------- live status

function put(id, text) {
  byId(id).textContent = text;
}

/** What the On air line says: the session, its node in a cluster, a publisher away. */
function onAirText(live, closed) {
  if (!live) return closed ? 'closed' : 'no';
  const where = live.node ? ` on node ${live.node}` : '';
  const away = live.reconnecting ? ' (publisher disconnected: waiting for it to come back)' : '';
  return `yes, session ${live.session}${where}${away}`;
}

/** The room's notices, newest first, as text (never HTML). */
function showNotices(notices) {
  const list = Array.isArray(notices) ? notices.slice().reverse() : [];
  show(byId('notices-empty'), list.length === 0);
  replaceChildren(byId('notices'), list.map((n) => el('li', { class: `notice notice-${String(n.code).replace(/[^a-z_]/g, '')}` },
    el('span', { class: 'notice-time', text: new Date(n.at_ms).toLocaleTimeString() }),
    String(n.message || n.code))));
}

function total(map) {
  return Object.values(map || {}).reduce((a, b) => a + (typeof b === 'number' ? b : 0), 0);
}

async function refreshStatus() {
  if (!current) return;
  const [info, stats] = await Promise.allSettled([rooms.get(current), rooms.stats(current)]);
  if (info.status === 'fulfilled') {
    const live = info.value.live;
    put('st-live', onAirText(live, info.value.closed));
    showNotices(info.value.notices);
    put('st-res', live && live.width ? `${live.width}×${live.height}` : '—');
    put('st-bitrate', live ? `${num(live.bitrate_kbps, 0)} kbit/s` : '—');
    showHealth(live);
  }
  await refreshCharts(current);
  if (++sinceReplays >= REPLAYS_EVERY) {
    sinceReplays = 0;
    loadReplays(current);
  }
  if (stats.status === 'fulfilled') {
    const s = stats.value;
    put('st-online', num(s.online));
    put('st-uplink', `${num(s.uplink_received_per_s)} received, ${num(s.uplink_accepted_per_s)} accepted`);
    put('st-delivered', num(s.delivered_per_s));
    put('st-refused', num(total(s.refused)));
    put('st-dropped', `${num(total(s.dropped))} (slow sockets skipped ${num(s.slow_socket_skips)})`);
    put('st-seq', num(s.last_seq));
  }
  // The audit log also tells whether the key still opens the room (a rotated key does not).
  if (!(await loadAudit(current))) {
    lockOut('The key no longer opens this room (rotated?): unlock with the current one.');
    return;
  }
  put('status-updated', `updated ${new Date().toLocaleTimeString()}`);
}

// ---------------------------------------------------------------- system messages

byId('system-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = byId('system-text').value.trim();
  if (!text) return;
  const ok = await reporter('system-status')('system message', () => rooms.system(current, text));
  if (ok) byId('system-text').value = '';
});

// ---------------------------------------------------------------- start

async function openConsole() {
  applyScope(scope);
  show(byId('key-form'), false);
  show(byId('console'), true);
  show(byId('forget-key'), true);
  await loadRooms();
  if (current) selectRoom(current);
  clearInterval(statusTimer);
  statusTimer = setInterval(refreshStatus, 2000);
}

async function start() {
  const locked = lockedReason();
  if (consoleKey()) {
    try {
      scope = (await identify()).scope;
      openConsole();
      return;
    } catch (e) {
      setConsoleKey('');
      setStatus('key-status', e.message, false);
    }
  } else if (locked) {
    setStatus('key-status', locked, false);
  }
  show(byId('key-form'), true);
}

bindModeration(room);
window.barrage = { chat, room, scope: () => scope };
start();
