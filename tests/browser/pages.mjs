// barrage's pages in a real browser (Debian's chromium driven by playwright-core), against a
// running server with a live ffmpeg push. Started by tests/pages_browser.rs, which sets:
//   BARRAGE_URL        http://127.0.0.1:PORT
//   BARRAGE_ADMIN_KEY  the admin key
//   BARRAGE_TOKEN      a viewer token (JWT) for the node-side WebSocket client
//   BARRAGE_TOKEN_2    another viewer's token (the one the moderator mutes)
//   BARRAGE_MOD_TOKEN  a moderator token for the room (the viewer page's moderator view)
//   BARRAGE_HOST_KEY   the room's host key (the host console for one room)
//   BARRAGE_ROOM       the live room (demo)
//   BARRAGE_ARTIFACTS  folder for screenshots (test-artifacts/)
//   BARRAGE_CHROMIUM   the browser (/usr/bin/chromium)
//   BARRAGE_PAGES_ONLY optional comma list of check names to run (for development)
// Prints progress on stderr; on stdout, "@@stop-push" when the live part is done (the Rust test
// then stops ffmpeg so the broadcast becomes a replay), and a final JSON line with every check.
// Exit code 0 only when every check passed.

import WebSocket from 'ws';
import {
  ADMIN, BASE, ONLY, T, api, check, finish, launch, log, need, openPage, pageErrors, results, shot,
  sleep, until, videoTime,
} from './harness.mjs';

const TOKEN = need('BARRAGE_TOKEN');
const TOKEN_2 = need('BARRAGE_TOKEN_2');
const MOD_TOKEN = need('BARRAGE_MOD_TOKEN');
const HOST_KEY = need('BARRAGE_HOST_KEY');
const ROOM = process.env.BARRAGE_ROOM || 'demo';
const RUN = Math.random().toString(36).slice(2, 7);

// ------------------------------------------------------------------ a node-side chat client

/** A real WebSocket client of the room (JSON format), with sends that wait for their ack. */
class NodeClient {
  constructor(token) {
    this.token = token;
    this.events = [];
    this.acks = new Map();
    this.nextId = 1;
    this.welcome = null;
  }

  async open() {
    const url = `${BASE.replace(/^http/, 'ws')}/ws/${encodeURIComponent(ROOM)}?format=json${this.token ? `&token=${encodeURIComponent(this.token)}` : ''}`;
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => {
      let f;
      try { f = JSON.parse(String(data)); } catch { return; }
      if (f.type === 'welcome') this.welcome = f;
      if (f.type === 'batch') this.events.push(...f.events);
      if (f.type === 'ack') this.acks.set(f.client_id, f);
    });
    await new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    });
    this.ws.send(JSON.stringify({ type: 'hello' }));
    await until('welcome frame', () => this.welcome, T);
    return this;
  }

  /** Sends a danmaku once; resolves with its ack, whatever it says. */
  async sendOnce(text, { color = 0xffffff, mode = 'scroll', stream_ms } = {}) {
    const client_id = this.nextId++;
    this.ws.send(JSON.stringify({ type: 'send', client_id, text, color, mode, stream_ms }));
    return until(`ack ${client_id}`, () => this.acks.get(client_id), T, 20);
  }

  /** Sends a danmaku, retrying after rate limits; resolves with the ack. */
  async send(text, opts = {}) {
    for (let attempt = 0; attempt < 10; attempt++) {
      const ack = await this.sendOnce(text, opts);
      if (ack.status === 'accepted') return ack;
      if (ack.status !== 'rate_limited' && ack.status !== 'slow_mode') {
        throw new Error(`send refused: ${JSON.stringify(ack)}`);
      }
      await sleep((ack.retry_after_ms || 1000) + 50);
    }
    throw new Error('send kept being rate limited');
  }

  /** The delivered event whose danmaku text is `text` (waits for it). */
  waitDanmaku(text, timeout = T) {
    return until(`"${text}" on the node client`, () => this.events.find((e) => e.danmaku && e.danmaku.text === text), timeout, 20);
  }

  close() {
    this.ws?.close();
  }
}

// ------------------------------------------------------------------ page helpers

/** Whether an element matching `selector` has exactly this text. */
function hasText(page, selector, text) {
  return page.evaluate(([sel, t]) => [...document.querySelectorAll(sel)].some((n) => n.textContent === t), [selector, text]);
}

function waitText(page, selector, text, timeout = T) {
  return until(`"${text}" in ${selector}`, () => hasText(page, selector, text), timeout);
}

/** The page's player position (ms on the broadcast timeline) once `selector` has `text`. */
function positionWhenText(page, selector, text, timeout = T) {
  return until(`"${text}" in ${selector}`, () => page.evaluate(([sel, t]) => (
    [...document.querySelectorAll(sel)].some((n) => n.textContent === t) ? window.barrage.position() : null
  ), [selector, text]), timeout, 25);
}

/** The page's player position once the event `seq` entered the danmaku stage. */
function positionWhenOnStage(page, seq, timeout = 45000) {
  return until(`seq ${seq} on the stage`, () => page.evaluate((s) => (
    document.querySelector(`#stage [data-seq="${s}"]`) ? window.barrage.position() : null
  ), seq), timeout, 25);
}

/** Waits until the page's video plays and advances; returns its player position. */
async function playing(page) {
  const t1 = await until('video.currentTime > 0.5', async () => {
    const t = await videoTime(page);
    return t > 0.5 ? t : null;
  }, 45000, 250);
  await until('video.currentTime to advance', async () => (await videoTime(page)) > t1 + 0.5, T, 100);
  return page.evaluate(() => window.barrage.position());
}

/** The server's live stream time now (ms since the broadcast's first frame). */
async function liveStreamMs() {
  const info = await api(`/api/rooms/${ROOM}`);
  if (!info.live || !Number.isInteger(info.live.first_frame_ms)) throw new Error(`not live: ${JSON.stringify(info.live)}`);
  return Date.now() - info.live.first_frame_ms;
}

// ------------------------------------------------------------------ the run

const browser = await launch();
const { context } = browser;

let node;
let viewer;
let overlay;
let host;
const sent = {}; // name -> delivered event, for the replay check
let liveSession = null;

try {
  // The node-side client; if the chat socket is not there, the checks that need it fail alone.
  node = await new NodeClient(TOKEN).open().catch((e) => {
    results.node_client = { ok: false, error: `cannot open the node WebSocket client: ${e.message}` };
    log('FAIL node_client:', e.message);
    return null;
  });

  await check('home_lists_live_room', async () => {
    const page = await openPage(context, '/', 'home');
    await page.waitForSelector(`#live-rooms li[data-room="${ROOM}"]`, { timeout: T });
    await shot(page, 'home');
    await page.close();
  });

  viewer = await openPage(context, `/rooms/${ROOM}`, 'viewer');

  await check('viewer_video_plays', async () => {
    const t1 = await until('video.currentTime > 0.5', async () => {
      const t = await videoTime(viewer);
      return t > 0.5 ? t : null;
    }, 45000, 250);
    const t2 = await until('video.currentTime to advance', async () => {
      const t = await videoTime(viewer);
      return t > t1 + 1 ? t : null;
    }, T, 250);
    const engine = await viewer.evaluate(() => window.barrage.player.engine);
    const info = await api(`/api/rooms/${ROOM}`);
    liveSession = info.live && info.live.session;
    return { engine, t1, t2, session: liveSession };
  });

  await check('viewer_video_plays_with_hlsjs', async () => {
    const page = await openPage(context, `/rooms/${ROOM}?player=hlsjs`, 'viewer-hlsjs');
    const t1 = await until('video.currentTime > 0.5', async () => {
      const t = await videoTime(page);
      return t > 0.5 ? t : null;
    }, 45000, 250);
    const t2 = await until('video.currentTime to advance', async () => {
      const t = await videoTime(page);
      return t > t1 + 1 ? t : null;
    }, T, 250);
    const engine = await page.evaluate(() => window.barrage.player.engine);
    if (engine !== 'hls.js') throw new Error(`engine is ${engine}`);
    const status = await behindLiveNote(page);
    await page.close();
    return { engine, t1, t2, status };
  });

  /** The status line's "N.N s behind live" (a playing live page shows it every second). */
  async function behindLiveNote(page) {
    return until('"s behind live" in the status line', () => page.evaluate(() => {
      const text = document.getElementById('player-status').textContent;
      return /^\d+\.\d s behind live$/.test(text) ? text : null;
    }), T, 250);
  }

  await check('viewer_video_plays_http_flv', async () => {
    const page = await openPage(context, `/rooms/${ROOM}?player=flv`, 'viewer-flv');
    const t1 = await until('FLV video.currentTime > 0.5', async () => {
      const t = await videoTime(page);
      return t > 0.5 ? t : null;
    }, 45000, 250);
    const t2 = await until('FLV video.currentTime to advance', async () => {
      const t = await videoTime(page);
      return t > t1 + 1 ? t : null;
    }, T, 250);
    const engine = await page.evaluate(() => window.barrage.player.engine);
    if (engine !== 'flv') throw new Error(`engine is ${engine}`);
    const status = await behindLiveNote(page);
    await shot(page, 'viewer-flv');
    await page.close();
    return { engine, t1, t2, status };
  });

  overlay = await openPage(context, `/overlay/${ROOM}?size=32&speed=8&lanes=10&gifts=1`, 'overlay');
  await check('pages_connect_websockets', async () => {
    await until('overlay socket', () => overlay.evaluate(() => window.barrage && window.barrage.source.isOpen));
    await until('viewer socket', () => viewer.evaluate(() => window.barrage && window.barrage.socket.isOpen));
  });

  await check('viewer_socket_comes_from_the_allocator', async () => {
    // The page asked GET /api/rooms/{room}/connect and opened the URL it named first.
    const answer = await api(`/api/rooms/${ROOM}/connect`);
    const url = await viewer.evaluate(() => window.barrage.socket.url);
    if (!url.startsWith(`${answer.ws_urls[0]}?format=json`)) {
      throw new Error(`socket ${url}, allocator said ${JSON.stringify(answer.ws_urls)}`);
    }
    // A node on the list that is down is skipped for the next one. The allocator's answer is
    // replaced in the browser by one whose first node refuses connections.
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`failover: ${e.message}`));
    const dead = `ws://127.0.0.1:9/ws/${ROOM}`;
    let asked = 0;
    await page.route('**/api/rooms/*/connect', (route) => {
      asked += 1;
      route.fulfill({ json: { ...answer, ws_urls: [dead, answer.ws_urls[0]] } });
    });
    await page.goto(`${BASE}/rooms/${ROOM}`, { waitUntil: 'domcontentloaded' });
    await until('failover socket open', () => page.evaluate(() => window.barrage && window.barrage.socket.isOpen));
    const used = await page.evaluate(() => window.barrage.socket.url);
    await page.close();
    if (!used.startsWith(answer.ws_urls[0])) throw new Error(`failed over to ${used}`);
    if (asked < 1) throw new Error('the page never asked the allocator');
    return { allocated: url, failed_over_to: used, asked };
  });

  await check('node_danmaku_reaches_overlay', async () => {
    const text = `hello from node ${RUN}`;
    await node.send(text, { color: 0x7ad7ff });
    sent.node = await node.waitDanmaku(text);
    await waitText(overlay, '.danmaku', text);
    await waitText(viewer, '#chat .chat-text', text);
    const transparent = await overlay.evaluate(() => [document.documentElement, document.body]
      .every((n) => getComputedStyle(n).backgroundColor === 'rgba(0, 0, 0, 0)'));
    if (!transparent) throw new Error('overlay background is not transparent');
    return { seq: sent.node.seq, stream_ms: sent.node.stream_ms };
  });

  await check('page_danmaku_reaches_ws_client', async () => {
    await viewer.fill('#join-name', 'Ann');
    await viewer.click('#join-form button[type=submit]');
    await viewer.waitForSelector('#send-form:not([hidden])', { timeout: T });
    await until('viewer socket with token', () => viewer.evaluate(() => window.barrage.socket.isOpen && window.barrage.socket.welcome.user !== ''));
    const text = `from the page ${RUN}`;
    await viewer.fill('#send-text', text);
    await viewer.click('#send-form button[type=submit]');
    const ev = await node.waitDanmaku(text);
    if (ev.danmaku.name !== 'Ann') throw new Error(`sender name is ${ev.danmaku.name}`);
    sent.page = ev;
    await until('send box cleared', () => viewer.evaluate(() => document.getElementById('send-text').value === ''));
    return { seq: ev.seq, user: ev.danmaku.user };
  });

  await check('viewer_sends_its_player_position', async () => {
    // The joined viewer (above) types a comment: it carries where the viewer's picture was.
    await until('viewer socket with token', () => viewer.evaluate(() => window.barrage.socket.isOpen && window.barrage.socket.welcome.user !== ''));
    const text = `typed at my picture ${RUN}`;
    await viewer.fill('#send-text', text);
    const before = await viewer.evaluate(() => window.barrage.position());
    await viewer.click('#send-form button[type=submit]');
    const ev = await node.waitDanmaku(text);
    const after = await viewer.evaluate(() => window.barrage.position());
    if (!Number.isFinite(before) || !Number.isFinite(after)) throw new Error(`player position ${before} / ${after}`);
    if (ev.stream_ms < before - 1000 || ev.stream_ms > after + 1000) {
      throw new Error(`sent stream_ms ${ev.stream_ms}, player position ${before}..${after} ms`);
    }
    sent.typed = { ...ev, position: before, position_after: after };
    return { stream_ms: ev.stream_ms, position_before: before, position_after: after };
  });

  await check('player_position_is_broadcast_time', async () => {
    // The position a page reports is the picture's time on the broadcast's timeline, which
    // the playlist's PROGRAM-DATE-TIME also gives (first frame's wall time + media time). A
    // player joining once the live window has slid past the first segment is where a player's
    // own clock (hls.js starts it at the window) differs from the broadcast's.
    await until('the live window to slide', async () => {
      const r = await fetch(`${BASE}/hls/${ROOM}/live.m3u8`);
      const m = /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(await r.text());
      return m && Number(m[1]) >= 2;
    }, 60000, 500);
    const out = {};
    for (const [engine, query] of [['hls.js', ''], ['native', '?player=native']]) {
      const page = await openPage(context, `/rooms/${ROOM}${query}`, `viewer-position-${engine}`);
      await playing(page);
      const info = await api(`/api/rooms/${ROOM}`);
      const r = await page.evaluate(() => {
        const { player } = window.barrage;
        const video = document.querySelector('video');
        const start = typeof video.getStartDate === 'function' ? video.getStartDate().getTime() : NaN;
        const date = player.hls ? player.hls.playingDate && player.hls.playingDate.getTime()
          : start + video.currentTime * 1000;
        return { engine: player.engine, position: window.barrage.position(), date, currentTime: video.currentTime };
      });
      await page.close();
      const byDate = r.date - info.live.first_frame_ms;
      out[engine] = { ...r, by_date: byDate };
      if (r.engine !== engine) throw new Error(`wanted ${engine}: ${JSON.stringify(r)}`);
      if (engine === 'native' && !Number.isFinite(byDate)) {
        // Chromium's own HLS names no start date: the page must not claim a position.
        if (r.position !== null) throw new Error(`native player claims ${r.position} ms: ${JSON.stringify(out)}`);
        continue;
      }
      if (!Number.isFinite(byDate) || Math.abs(r.position - byDate) > 250) {
        throw new Error(`${engine}: position ${r.position} ms, by PROGRAM-DATE-TIME ${byDate} ms: ${JSON.stringify(out)}`);
      }
    }
    return out;
  });

  await check('live_comment_waits_for_the_picture', async () => {
    // Another viewer stamps a comment between this viewer's picture and live: it shows in the
    // chat list on arrival, and on the stage only once this viewer's player reaches it.
    // LL-HLS plays about a second behind live: pause the picture a little so there is room
    // for a comment between it and live (the player does not jump back to live by itself).
    await viewer.evaluate(() => document.getElementById('video').pause());
    const pausedAt = await viewer.evaluate(() => window.barrage.position());
    await until('live 2.5 s past the paused picture', async () => (await liveStreamMs()) - pausedAt > 2500, T, 200);
    await viewer.evaluate(() => document.getElementById('video').play());
    await until('the picture moving again', async () => (await viewer.evaluate(() => window.barrage.position())) > pausedAt + 100, T, 100);
    const position = await viewer.evaluate(() => window.barrage.position());
    const live = await liveStreamMs();
    if (!(live - position > 1500)) throw new Error(`the viewer is ${live - position} ms behind live: nothing to hold`);
    const target = Math.round(position + (live - position) / 2);
    const text = `wait for the picture ${RUN}`;
    await node.send(text, { stream_ms: target });
    const ev = await node.waitDanmaku(text);
    if (ev.stream_ms !== target) throw new Error(`the server stamped ${ev.stream_ms}, not ${target}`);
    const inChatAt = await positionWhenText(viewer, '#chat .chat-text', text);
    const onStageAt = await positionWhenOnStage(viewer, ev.seq);
    if (!(inChatAt < target)) throw new Error(`the picture (${inChatAt} ms) was past ${target} ms on arrival: nothing held`);
    if (onStageAt < target) throw new Error(`on the stage at ${onStageAt} ms, before its time ${target} ms`);
    return { stream_ms: target, in_chat_at: inChatAt, on_stage_at: onStageAt, live_at_send: live };
  });

  await check('stream_mode_reads_danmaku_from_the_segments', async () => {
    // "Danmaku via: in the stream": no socket, no batch file; the comments come out of the
    // segments hls.js parses (emsg ID3), and wait for the picture like the others.
    const page = await openPage(context, `/rooms/${ROOM}?via=stream`, 'viewer-stream');
    const fetched = [];
    let sockets = 0;
    page.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/danmaku/')) fetched.push(r.url()); });
    page.on('websocket', () => { sockets++; });
    await playing(page);
    await page.evaluate(() => {
      const { hls } = window.barrage.player;
      window.metadataSeqs = [];
      hls.on(window.Hls.Events.FRAG_PARSING_METADATA, async (_e, data) => {
        const { eventsFromMetadata } = await import('/static/js/stream-danmaku.js');
        for (const e of eventsFromMetadata(data.samples)) window.metadataSeqs.push(e.seq);
      });
    });
    const text = `inside the video ${RUN}`;
    await node.send(text, { color: 0x3ecf8e });
    const ev = await node.waitDanmaku(text);
    await waitText(page, '#chat .chat-text', text, 45000);
    const onStageAt = await positionWhenOnStage(page, ev.seq);
    if (onStageAt < ev.stream_ms) throw new Error(`on the stage at ${onStageAt} ms, before its time ${ev.stream_ms} ms`);
    const reported = await page.evaluate((seq) => window.metadataSeqs.includes(seq), ev.seq);
    if (!reported) throw new Error('hls.js did not report the comment as metadata');
    const checked = await page.evaluate(() => document.querySelector('input[name=via][value=stream]').checked);
    if (!checked) throw new Error('the "in the stream" switch is not on');
    await shot(page, 'viewer-stream');
    await page.close();
    if (sockets !== 0 || fetched.length !== 0) throw new Error(`sockets ${sockets}, danmaku files ${fetched.length}`);
    return { seq: ev.seq, stream_ms: ev.stream_ms, on_stage_at: onStageAt };
  });

  await check('xss_renders_as_text', async () => {
    const text = '<img src=x onerror=alert(1)>';
    await node.send(text, { color: 0xff5c9a });
    sent.xss = await node.waitDanmaku(text);
    await waitText(viewer, '#chat .chat-text', text);
    await waitText(overlay, '.danmaku', text);
    for (const [name, page] of [['viewer', viewer], ['overlay', overlay]]) {
      const imgs = await page.evaluate(() => document.querySelectorAll('img').length);
      if (imgs !== 0) throw new Error(`${name} page has ${imgs} img element(s)`);
    }
    const visible = await viewer.locator('#chat .chat-text', { hasText: text }).first().isVisible();
    if (!visible) throw new Error('the comment text is not visible');
    if (pageErrors.some((e) => e.includes('alert'))) throw new Error('alert() ran');
  });

  await check('gift_and_system_shown_distinctly', async () => {
    await api(`/api/rooms/${ROOM}/gifts`, {
      method: 'POST', admin: true,
      body: { user: 'u-bo', name: 'Bo', gift_id: 'rocket', gift_name: 'Rocket', count: 1, value: 500 },
    });
    await until('gift in the viewer chat', () => viewer.evaluate(() => !!document.querySelector('#chat .chat-gift')));
    await until('gift on the overlay', () => overlay.evaluate(() => !!document.querySelector('.danmaku-gift')));
  });

  await check('cdn_mode_shows_batch_files', async () => {
    const cdn = await openPage(context, `/rooms/${ROOM}?via=cdn`, 'viewer-cdn');
    const files = [];
    let sockets = 0;
    cdn.on('request', (r) => { if (/\/danmaku\/.+\/\d+\.json$/.test(r.url())) files.push(r.url()); });
    cdn.on('websocket', () => { sockets++; });
    await until('index.json read', () => cdn.evaluate(() => window.barrage && window.barrage.poller.controller !== null));
    await sleep(2500); // let the poller reach the file after the index's latest
    const text = `via cdn ${RUN}`;
    await node.send(text, { color: 0xffd54a, mode: 'top' });
    const ev = await node.waitDanmaku(text);
    await waitText(cdn, '#chat .chat-text', text, 30000);
    // Held like a socket's comment: on the stage once the picture reaches its time.
    const onStageAt = await positionWhenOnStage(cdn, ev.seq);
    if (onStageAt < ev.stream_ms) throw new Error(`on the stage at ${onStageAt} ms, before its time ${ev.stream_ms} ms`);
    if (files.length === 0) throw new Error('no batch file was fetched');
    if (sockets !== 0) throw new Error('CDN mode opened a WebSocket without a joined user');
    await shot(cdn, 'viewer-cdn');
    await cdn.close();
    return { batch_files_fetched: files.length, stream_ms: ev.stream_ms, on_stage_at: onStageAt };
  });

  await check('reconnect_and_resume', async () => {
    // a dropped socket comes back by itself (backoff) ...
    await viewer.evaluate(() => window.barrage.socket.dropForTest());
    await until('viewer socket closed', () => viewer.evaluate(() => !window.barrage.socket.isOpen));
    await until('viewer socket back by itself', () => viewer.evaluate(() => window.barrage.socket.isOpen));
    // ... and a socket that was away resumes from the last seq it saw
    const hellos = [];
    viewer.on('websocket', (ws) => ws.on('framesent', (f) => {
      if (typeof f.payload === 'string' && f.payload.includes('"hello"')) hellos.push(JSON.parse(f.payload));
    }));
    const lastSeq = await viewer.evaluate(() => { window.barrage.socket.close(); return window.barrage.socket.lastSeq; });
    const text = `while you were away ${RUN}`;
    await node.send(text);
    await node.waitDanmaku(text);
    await sleep(800);
    if (await hasText(viewer, '#chat .chat-text', text)) throw new Error('delivered to a closed socket?');
    await viewer.evaluate(() => window.barrage.socket.connect());
    await waitText(viewer, '#chat .chat-text', text);
    const count = await viewer.evaluate((t) => [...document.querySelectorAll('#chat .chat-text')].filter((n) => n.textContent === t).length, text);
    if (count !== 1) throw new Error(`shown ${count} times`);
    const hello = hellos.find((h) => h.resume_from === lastSeq);
    if (!hello) throw new Error(`no hello with resume_from ${lastSeq}: ${JSON.stringify(hellos)}`);
    return { resume_from: lastSeq };
  });

  await check('host_console', async () => {
    host = await openPage(context, '/host', 'host');
    await host.fill('#key-input', ADMIN);
    await host.click('#key-form button[type=submit]');
    await host.waitForSelector('#console:not([hidden])', { timeout: T });
    const id = `pagetest-${RUN}`;
    await host.fill('#create-id', id);
    await host.fill('#create-title', `Page test ${RUN}`);
    await host.click('#create-form button[type=submit]');
    await host.waitForSelector('#key-box:not([hidden])', { timeout: T });
    const key = await host.textContent('#obs-key');
    const server = await host.textContent('#obs-server');
    if (!key || key.length < 16) throw new Error(`stream key shown: ${key}`);
    if (!server.startsWith('rtmp://')) throw new Error(`OBS server shown: ${server}`);
    const created = await api(`/api/rooms/${id}`);
    if (created.id !== id) throw new Error('room not created');
    // back to the live room: status, system message, delete from the live chat list
    await host.selectOption('#room-select', ROOM);
    await until('live status', async () => (await host.textContent('#st-live')).startsWith('yes'));
    const sys = `system notice ${RUN}`;
    await host.fill('#system-text', sys);
    await host.click('#system-form button[type=submit]');
    await waitText(viewer, '#chat .chat-system .chat-text', sys);
    return { room: id, status: await host.textContent('#st-res') };
  });

  await check('host_deletes_message', async () => {
    const text = `delete me ${RUN}`;
    await node.send(text);
    const ev = await node.waitDanmaku(text);
    await waitText(viewer, '#chat .chat-text', text);
    await waitText(overlay, '.danmaku', text);
    const button = host.locator(`#host-chat button.delete-message[data-seq="${ev.seq}"]`);
    await button.waitFor({ timeout: T });
    await shot(host, 'host');
    await button.click();
    await until('comment removed from the viewer chat', async () => !(await hasText(viewer, '#chat .chat-text', text)));
    await until('comment removed from the overlay', async () => !(await hasText(overlay, '.danmaku', text)));
    return { deleted_seq: ev.seq };
  });

  await check('host_console_with_host_key', async () => {
    // A host key runs its room only: no room list, no room creation, and no other room.
    const page = await openPage(context, '/host', 'host-key');
    const asked = [];
    page.on('request', (r) => { if (new URL(r.url()).pathname === '/api/rooms') asked.push(r.url()); });
    await page.fill('#key-input', HOST_KEY);
    await page.click('#key-form button[type=submit]');
    await page.waitForSelector('#console:not([hidden])', { timeout: T });
    const scope = await page.evaluate(() => ({
      picker: document.getElementById('room-picker').hidden,
      create: document.getElementById('create-form').hidden,
      fixed: document.getElementById('room-fixed').textContent,
      note: document.getElementById('scope-note').textContent,
      options: [...document.querySelectorAll('#room-select option')].map((o) => o.value),
    }));
    if (!scope.picker || !scope.create) throw new Error(`room list or creation shown: ${JSON.stringify(scope)}`);
    if (scope.fixed !== ROOM || JSON.stringify(scope.options) !== JSON.stringify([ROOM])) {
      throw new Error(`console runs ${JSON.stringify(scope)}, not just ${ROOM}`);
    }
    // It runs the room: live status, a system message every viewer gets, the audit log.
    await until('live status', async () => (await page.textContent('#st-live')).startsWith('yes'));
    const sys = `from the host key ${RUN}`;
    await page.fill('#system-text', sys);
    await page.click('#system-form button[type=submit]');
    await waitText(viewer, '#chat .chat-system .chat-text', sys);
    await until('the system message in the audit log', () => page.evaluate((t) =>
      [...document.querySelectorAll('#audit-list li')].some((li) => li.textContent.includes('host key')
        && li.textContent.includes('system') && li.textContent.includes(t)), sys));
    // Another room stays shut to this key (the room the admin console made above).
    const other = results.host_console && results.host_console.detail && results.host_console.detail.room;
    if (other) {
      const status = await page.evaluate(async ([room, key]) => (await fetch(`/api/rooms/${room}/audit`,
        { headers: { authorization: `Bearer ${key}` } })).status, [other, HOST_KEY]);
      if (status !== 403) throw new Error(`another room's audit answered ${status} to the host key`);
    }
    if (asked.length) throw new Error(`the host-key console listed rooms: ${asked.join(', ')}`);
    await shot(page, 'host-key');
    // Rotating the host key from the console: the old key dies, the console goes on with the new.
    await page.click('#rotate-host-key');
    await page.waitForSelector('#kb-host:not([hidden])', { timeout: T });
    const fresh = await page.textContent('#host-key');
    if (!fresh.startsWith('host_') || fresh === HOST_KEY) throw new Error(`new host key shown: ${fresh}`);
    const old = await fetch(`${BASE}/api/rooms/${ROOM}/audit`, { headers: { authorization: `Bearer ${HOST_KEY}` } });
    if (old.status !== 403) throw new Error(`the old host key answered ${old.status}`);
    const before = await page.textContent('#status-updated');
    await until('the console refreshing with the new key', async () => (await page.textContent('#status-updated')) !== before);
    if (!(await page.evaluate(() => !document.getElementById('console').hidden))) throw new Error('the console locked itself');
    await page.close();
    return { scope, other };
  });

  await check('moderator_deletes_from_viewer_page', async () => {
    // A moderator's token in the link: the page is the moderator's view of the room.
    const page = await openPage(context, `/rooms/${ROOM}#token=${encodeURIComponent(MOD_TOKEN)}`, 'viewer-moderator');
    await until('moderator socket', () => page.evaluate(() => window.barrage.socket.isOpen
      && window.barrage.socket.welcome.can_moderate === true));
    if ((await page.evaluate(() => location.hash)) !== '') throw new Error('the token stayed in the address bar');
    const text = `moderate me ${RUN}`;
    await node.send(text);
    const ev = await node.waitDanmaku(text);
    await waitText(viewer, '#chat .chat-text', text);
    await waitText(overlay, '.danmaku', text);
    const button = page.locator(`#chat button.mod-delete[data-seq="${ev.seq}"]`);
    await button.waitFor({ timeout: T });
    // Plain viewers get no such buttons.
    if (await viewer.evaluate(() => document.querySelectorAll('#chat .mod-actions').length) !== 0) {
      throw new Error('a viewer without a moderator token sees moderation buttons');
    }
    await shot(page, 'viewer-moderator');
    await button.click();
    await until('deleted for the moderator', async () => !(await hasText(page, '#chat .chat-text', text)));
    await until('deleted for the other viewer', async () => !(await hasText(viewer, '#chat .chat-text', text)));
    await until('deleted on the overlay', async () => !(await hasText(overlay, '.danmaku', text)));
    await until('the node client told of the deletion', () => node.events.some((e) => e.moderation && e.moderation.delete_seq === ev.seq));
    // Mute: another viewer says something, the moderator mutes them from their line.
    const second = await new NodeClient(TOKEN_2).open();
    try {
      const said = `mute me ${RUN}`;
      await second.send(said);
      await second.waitDanmaku(said);
      const mute = page.locator('#chat button.mod-mute[data-user="node-bot-2"]').last();
      await mute.waitFor({ timeout: T });
      await mute.click();
      await until('the mute reported', async () => (await page.textContent('#send-status')).includes('mute node-bot-2: done'));
      const ack = await second.sendOnce(`muted now ${RUN}`);
      if (ack.status !== 'muted') throw new Error(`a muted viewer's send got ${ack.status}`);
    } finally {
      second.close();
    }
    await page.close();
    return { deleted_seq: ev.seq };
  });

  await check('comments_do_not_overlap', async () => {
    // a burst of comments, more than the lanes hold at once; sample the stage while they move
    const extra = [['666', 0xffffff, 'scroll'], ['so smooth', 0x7ad7ff, 'scroll'],
      ['弹幕 test', 0xff7ab6, 'scroll'], ['hello everyone!', 0x3ecf8e, 'bottom'],
      ['a much longer comment that moves faster across the screen', 0xffd54a, 'scroll'],
      ['top comment', 0xff5c9a, 'top'], ['lol', 0xffffff, 'scroll'], ['nice', 0xffffff, 'scroll']];
    const sends = extra.map(([text, color, mode]) => node.send(text, { color, mode }));
    let samples = 0;
    let maxOnStage = 0;
    const end = Date.now() + 6000;
    while (Date.now() < end) {
      for (const [name, page] of [['viewer', viewer], ['overlay', overlay]]) {
        const found = await page.evaluate(() => {
          const boxes = [...document.querySelectorAll('.danmaku')]
            .filter((n) => n.style.visibility !== 'hidden')
            .map((n) => ({ text: n.textContent, r: n.getBoundingClientRect() }));
          for (let i = 0; i < boxes.length; i++) {
            for (let j = i + 1; j < boxes.length; j++) {
              const a = boxes[i].r;
              const b = boxes[j].r;
              const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
              const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
              if (x > 1 && y > 1) {
                const r = (q) => `[${Math.round(q.left)}..${Math.round(q.right)}, ${Math.round(q.top)}..${Math.round(q.bottom)}]`;
                return { overlap: [`${boxes[i].text} ${r(a)}`, `${boxes[j].text} ${r(b)}`], n: boxes.length };
              }
            }
          }
          return { overlap: null, n: boxes.length };
        });
        if (found.overlap) throw new Error(`${name}: "${found.overlap[0]}" overlaps "${found.overlap[1]}"`);
        maxOnStage = Math.max(maxOnStage, found.n);
        samples++;
      }
      await sleep(150);
    }
    await Promise.allSettled(sends);
    if (maxOnStage < 2) throw new Error(`only ${maxOnStage} comment(s) on stage at once`);
    return { samples, max_on_stage: maxOnStage };
  });

  await check('viewer_screenshot', async () => {
    await shot(viewer, 'viewer');
    await shot(overlay, 'overlay', { omitBackground: true });
  });

  await check('danmaku_controls', async () => {
    await viewer.fill('#dm-opacity', '0.5');
    await viewer.dispatchEvent('#dm-opacity', 'input');
    const opacity = await viewer.evaluate(() => getComputedStyle(document.getElementById('stage')).opacity);
    if (opacity !== '0.5') throw new Error(`stage opacity ${opacity}`);
    await viewer.uncheck('#dm-on');
    const hidden = await viewer.evaluate(() => getComputedStyle(document.getElementById('stage')).visibility);
    if (hidden !== 'hidden') throw new Error(`stage visibility with danmaku off: ${hidden}`);
    await viewer.check('#dm-on');
    await viewer.fill('#dm-opacity', '1');
    await viewer.dispatchEvent('#dm-opacity', 'input');
  });

  if (!ONLY.length || ONLY.includes('replay_shows_comments_at_stream_time')) {
    process.stdout.write('@@stop-push\n');
  }
  await check('replay_shows_comments_at_stream_time', async () => {
    if (!liveSession) throw new Error('the live session is unknown (did the video play?)');
    const session = await until('the broadcast to end with its batch files', async () => {
      const page = await api(`/api/rooms/${ROOM}/sessions`);
      const s = (page.sessions || []).find((x) => x.session === liveSession);
      return s && s.ended_ms && s.batches > 0 && s.danmaku_key ? s : null;
    }, 60000, 500);
    // The comment the viewer typed at a known picture position, else any the page sent.
    const target = sent.typed || sent.page || sent.xss;
    if (!target) throw new Error('no comment was sent during the live part');
    // The finished session's danmaku come in one request: its one file, not a file a second.
    const replay = await context.newPage();
    const danmakuRequests = [];
    replay.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/danmaku/')) danmakuRequests.push(r.url()); });
    replay.on('pageerror', (e) => pageErrors.push(`replay: ${e.message}`));
    await replay.goto(`${BASE}/rooms/${ROOM}?session=${encodeURIComponent(session.session)}`, { waitUntil: 'domcontentloaded' });
    await until('replay video to play', async () => (await videoTime(replay)) > 0.2, 45000, 250);
    const start = Math.max(0, target.stream_ms / 1000 - 3);
    await replay.evaluate((s) => { document.querySelector('video').currentTime = s; }, start);
    const seenAt = await until(`"${target.danmaku.text}" in the replay`, () => replay.evaluate((t) => {
      const shown = [...document.querySelectorAll('#chat .chat-text')].some((n) => n.textContent === t);
      return shown ? document.querySelector('video').currentTime * 1000 : null;
    }, target.danmaku.text), 45000, 50);
    if (seenAt + 150 < target.stream_ms) {
      throw new Error(`shown at video ${seenAt} ms, before its stream time ${target.stream_ms} ms`);
    }
    await shot(replay, 'replay');
    await replay.close();
    if (danmakuRequests.length !== 1 || !danmakuRequests[0].endsWith(`/${session.danmaku_key}`)) {
      throw new Error(`danmaku requests of the replay: ${JSON.stringify(danmakuRequests)}`);
    }
    // Kept as the page sent it: between the player's positions read before and after the
    // send (a busy machine may take a while between the two), not the server's own stamp.
    if (target.position !== undefined
      && (target.stream_ms < target.position - 1000 || target.stream_ms > target.position_after + 1000)) {
      throw new Error(`typed at ${target.position}..${target.position_after} ms, stamped ${target.stream_ms} ms`);
    }
    return { session: session.session, batches: session.batches, danmaku_requests: danmakuRequests.length, stream_ms: target.stream_ms, typed_at_ms: target.position, shown_at_ms: Math.round(seenAt) };
  });

  await check('no_page_errors', async () => {
    if (pageErrors.length) throw new Error(pageErrors.join('\n'));
  });
} catch (e) {
  results.runner = { ok: false, error: String(e && e.stack || e) };
  log('runner failed:', e);
} finally {
  node?.close();
  await browser.close();
}

finish();
