// The viewer page needs no reload (issue #20): it plays a push, says "reconnecting" while the
// publisher is away, plays on into the second push of the same broadcast, says "offline" when
// the broadcast ends, and plays the next broadcast by itself. Live pages read the danmaku index
// through the CDN base; a replay reads a finished session's danmaku in one request. Started by
// tests/pages_continuity.rs, which pushes (12 s) and answers "@@push N" with another push; it
// sets the harness variables and BARRAGE_CDN, the CDN base (this server under another host).

import {
  BASE, T, api, check, finish, launch, log, need, openPage, pageErrors, shot, until, videoTime,
} from './harness.mjs';

const ROOM = 'demo';
const CDN_HOST = new URL(need('BARRAGE_CDN')).host;
const browser = await launch();
const { context } = browser;

/** The player's state, status line, badge, and whether the page was never reloaded. */
function pageState(page) {
  return page.evaluate(() => ({
    state: window.barrage.player.state,
    status: document.getElementById('player-status').textContent,
    badge: document.getElementById('live-badge').textContent,
    same_page: window.__sameDocument === true,
    time: document.querySelector('video').currentTime,
  }));
}

/** Where the first segment after a discontinuity (the part after a reconnect) starts, in the
 * player's time; null until hls.js has listed one. */
function partTwoStart(page) {
  return page.evaluate(() => {
    const hls = window.barrage.player.hls;
    const level = hls && hls.levels[Math.max(0, hls.currentLevel)];
    const frags = (level && level.details && level.details.fragments) || [];
    const first = frags.find((f) => f.cc > 0 && !f.gap);
    return first ? first.start : null;
  });
}

async function room() {
  return api(`/api/rooms/${ROOM}`);
}

async function sayAdvancing(page, what) {
  const t1 = await until(`${what}: video time`, async () => {
    const t = await videoTime(page);
    return t > 0.5 ? t : null;
  }, 45000, 250);
  await until(`${what}: video time advancing`, async () => (await videoTime(page)) > t1 + 1, T, 250);
}

let viewer;
let native;
let firstSession = null;
let nativeAtPush = 0;
try {
  // hls.js, and the browser's own HLS where it has it (Debian's chromium does).
  viewer = await openPage(context, `/rooms/${ROOM}?player=hlsjs`, 'viewer');
  native = await openPage(context, `/rooms/${ROOM}?player=native`, 'viewer-native');
  for (const page of [viewer, native]) await page.evaluate(() => { window.__sameDocument = true; });
  const overlay = await openPage(context, `/overlay/${ROOM}?gifts=1`, 'overlay');

  await check('page_plays_the_first_push', async () => {
    await sayAdvancing(viewer, 'first push');
    await sayAdvancing(native, 'first push, own player');
    firstSession = (await room()).live.session;
    await api(`/api/rooms/${ROOM}/system`, { method: 'POST', admin: true, body: { text: 'during the first push' } });
    return { session: firstSession };
  });

  await check('live_index_through_the_cdn_base', async () => {
    const page = await context.newPage();
    const index = [];
    page.on('request', (r) => { if (r.url().endsWith('/index.json')) index.push(new URL(r.url()).host); });
    page.on('pageerror', (e) => pageErrors.push(`viewer-cdn: ${e.message}`));
    await page.goto(`${BASE}/rooms/${ROOM}?via=cdn`, { waitUntil: 'domcontentloaded' });
    await until('index.json read', () => index.length > 0);
    await page.close();
    if (!index.every((host) => host === CDN_HOST)) throw new Error(`index.json read from ${JSON.stringify(index)}, CDN ${CDN_HOST}`);
    return { index_hosts: index };
  });

  await check('page_says_reconnecting', async () => {
    await until('the publisher gone, the broadcast waiting', async () => (await room()).live?.reconnecting, 60000, 250);
    const seen = await until('the page saying reconnecting', async () => {
      const s = await pageState(viewer);
      return s.badge === 'reconnecting' && /reconnecting/.test(s.status) ? s : null;
    }, T, 250);
    await shot(viewer, 'viewer-reconnecting');
    nativeAtPush = await videoTime(native);
    process.stdout.write('@@push 12\n');
    return seen;
  });

  await check('page_plays_into_the_second_push', async () => {
    const start = await until('the second part listed in the player', () => partTwoStart(viewer), 45000, 250);
    await until('the video past the join', async () => (await videoTime(viewer)) > start + 2, 45000, 250);
    await sayAdvancing(viewer, 'second push');
    const s = await pageState(viewer);
    if (!s.same_page) throw new Error('the page was reloaded');
    if (s.state !== 'playing' || s.badge !== 'live') throw new Error(`state ${JSON.stringify(s)}`);
    const live = (await room()).live;
    if (live.session !== firstSession || live.reconnects !== 1) throw new Error(`live ${JSON.stringify(live)}`);
    await api(`/api/rooms/${ROOM}/system`, { method: 'POST', admin: true, body: { text: 'during the second push' } });
    await shot(viewer, 'viewer-after-reconnect');
    // The browser's own player too: past what it could still hold of the first push.
    const engine = await native.evaluate(() => window.barrage.player.engine);
    await until('the own player past the join', async () => (await videoTime(native)) > nativeAtPush + 12, 45000, 250);
    const n = await pageState(native);
    if (!n.same_page || n.state !== 'playing') throw new Error(`own player: ${JSON.stringify(n)}`);
    return { part_two_at: start, time: s.time, own_player: engine, own_time: n.time };
  });

  await check('host_console_shows_notices', async () => {
    const host = await openPage(context, `/host?room=${ROOM}`, 'host');
    await host.fill('#key-input', process.env.BARRAGE_ADMIN_KEY);
    await host.click('#key-form button[type=submit]');
    await until('the reconnect among the notices', () => host.evaluate(() => [...document.querySelectorAll('#notices li')]
      .some((n) => /came back/.test(n.textContent))));
    await shot(host, 'host-notices');
    await host.close();
  });

  await check('page_waits_offline_then_plays_the_next_broadcast', async () => {
    // The second push ends, the grace runs out: the playlist ends and the page waits.
    const offline = await until('the page offline', async () => {
      const s = await pageState(viewer);
      return s.badge === 'offline' && /offline|ended/.test(s.status) ? s : null;
    }, 90000, 250);
    await shot(viewer, 'viewer-offline');
    process.stdout.write('@@push 10\n');
    const next = await until('the next broadcast on air', async () => {
      const live = (await room()).live;
      return live && live.session !== firstSession ? live.session : null;
    }, 45000, 250);
    await until('the page playing again', async () => {
      const s = await pageState(viewer);
      return s.state === 'playing' && s.badge === 'live' && s.time > 1 ? s : null;
    }, 60000, 250);
    await sayAdvancing(viewer, 'next broadcast');
    const s = await pageState(viewer);
    if (!s.same_page) throw new Error('the page was reloaded');
    // The overlay's socket lived through it all.
    await api(`/api/rooms/${ROOM}/gifts`, {
      method: 'POST', admin: true,
      body: { user: 'u-cy', name: 'Cy', gift_id: 'heart', gift_name: 'Heart', count: 1, value: 5 },
    });
    await until('gift on the overlay', () => overlay.evaluate(() => !!document.querySelector('.danmaku-gift')));
    return { offline_status: offline.status, next_session: next };
  });

  await check('replay_reads_one_danmaku_file_through_the_cdn', async () => {
    const session = await until('the first broadcast with its danmaku file', async () => {
      const page = await api(`/api/rooms/${ROOM}/sessions`);
      return (page.sessions || []).find((s) => s.session === firstSession && s.danmaku_key) || null;
    }, 60000, 500);
    const replay = await context.newPage();
    const danmaku = [];
    replay.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/danmaku/')) danmaku.push(r.url()); });
    replay.on('pageerror', (e) => pageErrors.push(`replay: ${e.message}`));
    await replay.goto(`${BASE}/rooms/${ROOM}?session=${firstSession}`, { waitUntil: 'domcontentloaded' });
    const note = await until('the replay\'s messages loaded', () => replay.evaluate(() => [...document.querySelectorAll('#chat li')]
      .map((n) => n.textContent).find((t) => /messages in this broadcast/.test(t))), T, 250);
    await replay.close();
    if (danmaku.length !== 1) throw new Error(`danmaku requests: ${JSON.stringify(danmaku)}`);
    const url = new URL(danmaku[0]);
    if (url.host !== CDN_HOST || !url.pathname.endsWith('/all.json')) throw new Error(`read ${danmaku[0]}`);
    if (!/^[2-9]|^\d\d/.test(note)) throw new Error(`replay says: ${note}`);
    return { request: danmaku[0], note, session: session.session };
  });

  await check('no_page_errors', async () => {
    if (pageErrors.length) throw new Error(pageErrors.join('\n'));
  });
} catch (e) {
  log('runner failed:', e);
  await check('runner', async () => { throw e; });
} finally {
  await browser.close();
}

finish();
