// Viewer page: HLS video with danmaku drawn over it, the chat list, the join/send box, and the
// switch between WebSocket delivery, CDN polling and the danmaku carried in the stream. It
// never needs a reload: it polls the room's status and starts the player when the room is on
// air again (after a reconnect, a broadcast that ended, a player error), saying "reconnecting"
// or "offline" meanwhile. Live comments wait in the sync gate until the picture reaches their
// stream time; every comment sent carries the player's position. With ?session=ID it replays
// a finished broadcast, showing each comment when the video passes its stream time. ?via=cdn
// or ?via=stream starts in that mode. Live it plays with hls.js where it runs (its position on
// the broadcast's timeline is known; the in-stream mode reads its metadata); ?player=native
// uses the browser's own HLS (comments then show on arrival), ?player=hlsjs hls.js for
// replays too.

import { rooms, ApiError } from './api.js';
import { el, byId, show, replaceChildren } from './dom.js';
import { roomFromPath, cssToColor, when, clock } from './format.js';
import { DanmakuStage } from './danmaku-stage.js';
import { ChatList } from './chat-list.js';
import { SeqFilter } from './seq-filter.js';
import { ChatSocket } from './ws-client.js';
import { CdnPoller, danmakuSource, pickBase } from './cdn-poller.js';
import { ReplayTimeline, loadSessionBatches, loadSessionFile } from './replay.js';
import { Player, playerPositionMs } from './player.js';
import { SyncGate } from './sync-gate.js';
import { followStreamDanmaku } from './stream-danmaku.js';
import { nextStep, POLL_PLAYING_MS, POLL_WAITING_MS } from './live-watch.js';
import { fetchConnect } from './ws-client.js';
import { storedGuest, joinAsGuest, leave, takeTokenFromLink } from './guest.js';
import { ModeratorActions } from './moderator-actions.js';

const room = roomFromPath(location.pathname);
const params = new URLSearchParams(location.search);
const replaySession = params.get('session');
const video = byId('video');
const stage = new DanmakuStage(byId('stage'), { fontSize: 24, scrollMs: 8000 });
const chat = new ChatList(byId('chat'));
const filter = new SeqFilter();
/** Live comments waiting for the picture (sync-gate.js). */
const gate = new SyncGate();
/** The player engine asked for: ?player=hlsjs|native|flv, else hls.js live and native replays. */
function playerChoice() {
  const asked = params.get('player');
  if (asked === 'flv' && via !== 'stream' && !replaySession) return 'flv';
  if (asked === 'native' && via !== 'stream') return 'native';
  if (asked === 'hlsjs' || via === 'stream' || !replaySession) return 'hls.js';
  return '';
}
/** Where danmaku come from: 'ws', 'cdn' or 'stream'. */
let via = ['cdn', 'stream'].includes(params.get('via')) ? params.get('via') : 'ws';
/** The live broadcast the player plays, and the one it played to its end. */
let playingSession = null;
let endedSession = null;
let roomNote = '';
let playerNote = '';

/** The live broadcast's first frame (server clock, ms) and the server's clock minus ours. */
let firstFrameMs = null;
let clockOffsetMs = 0;
let clockRttMs = Infinity;
let latencyNote = '';

function showStatus() {
  setText('player-status', playerNote || roomNote || latencyNote);
}

/** Every second while playing live: "N.N s behind live" in the status line. */
setInterval(() => {
  const s = replaySession ? null : player.behindLiveS(firstFrameMs, clockOffsetMs);
  const note = s === null ? '' : `${s.toFixed(1)} s behind live`;
  if (note !== latencyNote) {
    latencyNote = note;
    showStatus();
  }
}, 1000);

const player = new Player(video, {
  live: !replaySession,
  // Live, hls.js wherever it runs: it tells where its picture is on the broadcast's timeline,
  // which the sync gate and the comments sent need; a browser's own HLS does not (Chromium).
  prefer: playerChoice(),
  onHls: (hls, Hls) => followStreamDanmaku(hls, Hls, (events) => {
    if (via === 'stream' && !replaySession) admit(events);
  }),
  onStatus: (state, text) => {
    playerNote = state === 'playing' && text === 'playing' ? '' : text;
    showStatus();
  },
  onEnded: () => {
    endedSession = playingSession;
    playingSession = null;
    watchRoom(POLL_WAITING_MS);
    // The broadcast that ended becomes a replay once its VOD is recorded.
    setTimeout(loadReplays, POLL_WAITING_MS);
  },
});

// A token in the link (#token=JWT, e.g. a moderator's) comes first, then this tab's guest.
let guest = takeTokenFromLink(room) || storedGuest(room);

function setText(id, text, cls) {
  const node = byId(id);
  node.textContent = text;
  if (cls !== undefined) node.className = cls;
}

/** Whether the viewer sent this event. */
function isOwn(e) {
  const user = (socket.welcome && socket.welcome.user) || (guest && guest.user);
  return Boolean(user && e.danmaku && e.danmaku.user === user);
}

/**
 * One event from any source (socket, CDN file, stream, replay timeline). A live one goes into
 * the chat list at once and onto the stage when the picture reaches it (the sync gate); the
 * replay timeline releases events at their time already.
 */
function showEvent(e, live = false) {
  if (e.moderation) {
    gate.remove(e.moderation.delete_seq);
    stage.remove(e.moderation.delete_seq);
    chat.remove(e.moderation.delete_seq);
    return;
  }
  if (e.danmaku || e.gift) {
    const now = live ? gate.offer(e, playerPositionMs(player), isOwn(e)) : [e];
    for (const shown of now) stage.add(shown);
  }
  chat.add(e);
}

function admit(events) {
  for (const e of events) if (filter.admit(e.seq)) showEvent(e, true);
}

// Held comments enter the stage as the picture reaches them.
if (!replaySession) {
  setInterval(() => {
    for (const e of gate.due(playerPositionMs(player))) stage.add(e);
  }, 100);
}

// ---------------------------------------------------------------- danmaku controls

byId('dm-on').addEventListener('change', (ev) => stage.setEnabled(ev.target.checked));
byId('dm-density').addEventListener('change', (ev) => stage.setDensity(Number(ev.target.value)));
byId('dm-opacity').addEventListener('input', (ev) => stage.setOpacity(Number(ev.target.value)));

// ---------------------------------------------------------------- live delivery

const socket = new ChatSocket(room, {
  // In the other modes the socket is there to send; the viewer's own comments still come
  // through it at once (the seq filter drops the copy from the files or the stream).
  onEvents: (events) => admit(via === 'ws' ? events : events.filter(isOwn)),
  onWelcome: (w) => {
    if (!guest || !w.user) return;
    if (w.banned) setText('send-status', 'You are banned from this room.', 'send-status error');
    else if (w.muted) setText('send-status', 'You are muted in this room.', 'send-status error');
    else if (w.slow_mode_s > 0) setText('send-status', `Slow mode: one message every ${w.slow_mode_s} s.`, 'send-status');
  },
  onOnline: (n) => setText('online', `${n} online`),
  onState: (state, detail) => setText('conn-status', state === 'open' ? 'connected' : `${state}${detail ? `: ${detail}` : ''}`),
  onGap: (g) => chat.note(`missed messages ${g.from_seq}–${g.to_seq}`),
  onRestart: () => {
    filter.clear();
    chat.note('The chat restarted.');
  },
  onReply: (frame) => moderator.reply(frame),
  onAuth: (frame) => tokenState(frame),
  onError: (err) => {
    if (err.code === 'bad_token' || err.code === 'token_expired' || err.code === 'wrong_room') {
      leave(room);
      guest = null;
      updateJoin();
      chat.note('Your chat session ended; join again to send.', 'error');
      socket.connect('');
    } else {
      chat.note(`${err.code}: ${err.message}`, 'error');
    }
  },
});

// With a moderator's token, each chat line gets Delete / Mute (moderator-actions.js).
const moderator = new ModeratorActions(socket, (text, ok) => setText('send-status', text, ok ? 'send-status' : 'send-status error'));
chat.actions = (event) => moderator.actions(event);

/** The socket's token ran out (or a renewal was refused): a guest gets a fresh one. */
async function tokenState(frame) {
  if (frame.status !== 'expired' && frame.status !== 'refused') return;
  if (guest && !guest.linked && frame.status === 'expired') {
    try {
      guest = await joinAsGuest(room, guest.name);
      socket.renew(guest.token);
      return;
    } catch { /* fall through: say so */ }
  }
  chat.note('Your chat session ended; join again to send.', 'error');
}

const poller = new CdnPoller({
  room,
  onSession: () => filter.clear(),
  onEvents: (events) => { if (via === 'cdn') admit(events); },
  onStatus: (s) => { if (via === 'cdn') setText('conn-status', s); },
});

/** Starts the chosen source; in CDN and stream modes the socket is kept only to send. */
function applyDelivery() {
  for (const input of document.querySelectorAll('input[name=via]')) input.checked = input.value === via;
  if (via === 'cdn') poller.start();
  else poller.stop();
  if (via === 'ws') socket.connect(guest ? guest.token : '');
  else if (guest) socket.connect(guest.token);
  else socket.close();
  if (via === 'stream' && player.prefer !== 'hls.js') {
    // The comments in the stream are read from hls.js: switch the player to it.
    player.prefer = 'hls.js';
    if (player.active && player.engine !== 'hls.js') player.play(player.url);
  }
  const url = new URL(location.href);
  if (via === 'ws') url.searchParams.delete('via');
  else url.searchParams.set('via', via);
  history.replaceState(null, '', url);
}

const viaNotes = {
  ws: 'Now reading danmaku over WebSocket',
  cdn: 'Now reading danmaku from the CDN files',
  stream: 'Now reading danmaku from inside the video stream',
};

for (const input of document.querySelectorAll('input[name=via]')) {
  input.addEventListener('change', () => {
    via = viaNotes[input.value] ? input.value : 'ws';
    chat.note(viaNotes[via]);
    applyDelivery();
  });
}

// Back online after a drop: reconnect now instead of waiting for the backoff.
window.addEventListener('online', () => {
  if (!replaySession && (via === 'ws' || guest)) socket.connect();
});

// ---------------------------------------------------------------- join and send

function updateJoin() {
  show(byId('join-form'), !guest && !replaySession);
  show(byId('send-form'), Boolean(guest) && !replaySession);
  show(byId('leave'), Boolean(guest) && !replaySession);
  if (guest) byId('send-text').placeholder = `Send a danmaku as ${guest.name}`;
}

byId('join-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const name = byId('join-name').value.trim();
  if (!name) return;
  try {
    guest = await joinAsGuest(room, name);
    setText('send-status', '', 'send-status');
    updateJoin();
    socket.connect(guest.token);
    byId('send-text').focus();
  } catch (e) {
    const why = e instanceof ApiError && e.status === 403
      ? 'Guest chat is switched off in this room.' : `Cannot join: ${e.message}`;
    setText('send-status', why, 'send-status error');
  }
});

byId('leave').addEventListener('click', () => {
  leave(room);
  guest = null;
  updateJoin();
  if (via === 'ws') socket.connect('');
  else socket.close();
});

const refusals = {
  rate_limited: (a) => `Too fast: wait ${Math.ceil((a.retry_after_ms || 1000) / 1000)} s.`,
  slow_mode: (a) => `Slow mode is on${a.retry_after_ms ? `: wait ${Math.ceil(a.retry_after_ms / 1000)} s` : ''}.`,
  muted: () => 'You are muted in this room.',
  banned: () => 'You are banned from this room.',
  filtered: () => 'That message contains a blocked word.',
  too_long: () => 'That message is too long.',
  invalid: () => 'That message cannot be sent.',
  unauthenticated: () => 'Join the chat to send.',
  not_sent: () => 'Not connected; try again in a moment.',
  timeout: () => 'No answer from the server; try again.',
  disconnected: () => 'Connection lost before the answer; try again.',
};

byId('send-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = byId('send-text');
  const text = input.value.trim();
  if (!text) return;
  const ack = await socket.send({
    text,
    color: cssToColor(byId('send-color').value),
    mode: byId('send-mode').value,
    // Where the viewer is in the picture: the comment is shown there to everyone, and there
    // in the replay (the server keeps it when plausible).
    stream_ms: playerPositionMs(player) ?? undefined,
  });
  if (ack.status === 'accepted') {
    input.value = '';
    setText('send-status', '', 'send-status');
  } else {
    const say = refusals[ack.status] || (() => `Refused: ${ack.status}`);
    setText('send-status', say(ack), 'send-status error');
  }
});

// ---------------------------------------------------------------- room info and replays

/** A URL on this page's host as a path, so that it keeps the page's scheme behind a proxy. */
function sameOriginPath(url) {
  try {
    const u = new URL(url, location.href);
    return u.host === location.host ? u.pathname + u.search : u.href;
  } catch {
    return url;
  }
}

async function loadRoom() {
  try {
    const sent = Date.now();
    const info = await rooms.get(room);
    const rtt = Date.now() - sent;
    // The answer's server_ms was read about halfway through the round trip; the quickest
    // round trip so far gives the best estimate of the two clocks' difference.
    if (Number.isFinite(info.server_ms) && rtt <= clockRttMs) {
      clockRttMs = rtt;
      clockOffsetMs = info.server_ms - (sent + rtt / 2);
    }
    firstFrameMs = info.live && Number.isFinite(info.live.first_frame_ms) ? info.live.first_frame_ms : null;
    setText('room-title', info.title || info.id);
    document.title = `${info.title || info.id} · barrage`;
    if (!replaySession) {
      // Without a socket (CDN mode) the count comes from the rooms API.
      if (via === 'cdn' && Number.isInteger(info.online)) setText('online', `${info.online} online`);
    }
    return info;
  } catch (e) {
    setText('room-title', e.status === 404 ? `No room “${room}”` : `Cannot load room: ${e.message}`);
    return null;
  }
}

let watchTimer = null;

/**
 * Polls the room's live status and acts on it: the badge and note, and the player started
 * whenever the room is on air and the player is not playing it (first load, after an ended
 * broadcast, after the player gave up). Reschedules itself; `soon` asks for the next poll then.
 */
async function watchRoom(soon) {
  clearTimeout(watchTimer);
  if (soon !== undefined) {
    watchTimer = setTimeout(() => watchRoom(), soon);
    return;
  }
  const info = await loadRoom();
  const live = info ? info.live : null;
  const step = nextStep(live, player.active, endedSession);
  const badge = byId('live-badge');
  badge.textContent = step.badge;
  badge.className = `badge ${step.badge === 'live' ? 'badge-live' : 'badge-offline'}`;
  roomNote = step.note;
  if (step.play && info) {
    endedSession = null;
    playingSession = live.session;
    player.play(sameOriginPath(info.hls_url));
  }
  showStatus();
  const waiting = !player.active || step.badge !== 'live';
  watchTimer = setTimeout(() => watchRoom(), waiting ? POLL_WAITING_MS : POLL_PLAYING_MS);
}

async function loadReplays() {
  try {
    const page = await rooms.sessions(room);
    // Broadcasts with something to play (a publish refused at once has no VOD).
    const ended = (page.sessions || []).filter((s) => !s.live && s.ended_ms && s.vod_key);
    show(byId('replays-empty'), ended.length === 0);
    replaceChildren(byId('replay-list'), ended.slice(0, 10).map((s) => el('li', {},
      el('a', { href: `/rooms/${encodeURIComponent(room)}?session=${encodeURIComponent(s.session)}`,
        text: when(s.started_ms) }),
      ` · ${clock((s.ended_ms || s.started_ms) - s.started_ms)} · `,
      el('a', { href: s.download_url, class: 'replay-download', download: '', text: 'MP4' }))));
    return page.sessions || [];
  } catch {
    return [];
  }
}

async function findSession(id) {
  for (let page = 1; page <= 20; page++) {
    const p = await rooms.sessions(room, page);
    const hit = (p.sessions || []).find((s) => s.session === id);
    if (hit) return hit;
    if ((p.sessions || []).length < (p.per_page || 100)) return null;
  }
  return null;
}

// ---------------------------------------------------------------- replay

async function startReplay() {
  show(byId('delivery'), false);
  const badge = byId('live-badge');
  badge.textContent = 'replay';
  badge.className = 'badge badge-replay';
  const session = await findSession(replaySession).catch(() => null);
  if (!session) {
    setText('player-status', `No broadcast ${replaySession} in this room`);
    return;
  }
  const info = byId('replay-info');
  info.replaceChildren(`Replay of ${when(session.started_ms)} · `,
    el('a', { href: `/rooms/${encodeURIComponent(room)}`, text: 'back to live' }));
  show(info, true);
  player.play(sameOriginPath(session.playlist_url));

  const timeline = new ReplayTimeline();
  // Danmaku through a CDN base when there are any: the session's one file once it ended (one
  // request), else its batch files.
  const { bases } = danmakuSource(await fetchConnect(room));
  const loaded = session.danmaku_key
    ? loadSessionFile(`${pickBase(bases)}/${session.danmaku_key}`)
      .then((events) => events ?? (session.danmaku_url ? loadSessionFile(sameOriginPath(session.danmaku_url)) : null))
    : Promise.resolve(null);
  loaded.then(async (events) => {
    if (events) {
      timeline.add(events);
      return;
    }
    await loadSessionBatches({
      room,
      session: session.session,
      batches: session.batches,
      pick: () => pickBase(bases),
      onEvents: (batch) => timeline.add(batch),
    });
  }).then(() => chat.note(`${timeline.events.length} messages in this broadcast`));

  const tick = () => {
    if (video.seeking) return;
    for (const e of timeline.due(playerPositionMs(player) ?? video.currentTime * 1000)) showEvent(e);
  };
  video.addEventListener('timeupdate', tick);
  setInterval(() => { if (!video.paused) tick(); }, 100);
  video.addEventListener('seeking', () => {
    stage.clear();
    chat.clear();
    timeline.seek(playerPositionMs(player) ?? video.currentTime * 1000);
  });
  video.addEventListener('pause', () => stage.pause());
  video.addEventListener('play', () => stage.play());
}

// ---------------------------------------------------------------- start

updateJoin();
window.barrage = { stage, chat, socket, poller, player, filter, gate, room, position: () => playerPositionMs(player) };
loadReplays();
if (replaySession) {
  loadRoom();
  startReplay();
} else {
  applyDelivery();
  watchRoom();
}
