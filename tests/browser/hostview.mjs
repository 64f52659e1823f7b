// What a host sees (issue #19), in a real browser: the home page tile shows the room's still;
// the host console's charts draw and move, its stream health shows the advice for the 8 s GOP
// the test pushes, and its replay list offers the finished broadcast as an MP4 (as does the
// viewer page's). Started by tests/host_view_browser.rs, which pushes with `-g 240` at 30 fps
// and answers "@@stop-push".

import WebSocket from 'ws';

import {
  ADMIN, BASE, T, api, check, finish, launch, log, need, openPage, pageErrors, shot, until,
} from './harness.mjs';

const ROOM = 'demo';
const TOKEN = need('BARRAGE_TOKEN');

/** Sends `n` danmaku at once over a real socket (one user: the per-user limit refuses most
 * of them, so the charts get accepted and refused sends); resolves to the acks' statuses. */
function burst(n) {
  return new Promise((resolve, reject) => {
    const url = `${BASE.replace(/^http/, 'ws')}/ws/${ROOM}?format=json&token=${encodeURIComponent(TOKEN)}`;
    const ws = new WebSocket(url);
    const acks = [];
    const timer = setTimeout(() => { ws.close(); reject(new Error(`acks: ${JSON.stringify(acks)}`)); }, T);
    ws.on('error', reject);
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'hello' }));
      for (let i = 1; i <= n; i++) ws.send(JSON.stringify({ type: 'send', client_id: i, text: `burst ${i}`, color: 0xffffff, mode: 'scroll' }));
    });
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data));
      if (frame.type !== 'ack') return;
      acks.push(frame.status);
      if (acks.length === n) {
        clearTimeout(timer);
        ws.close();
        resolve(acks);
      }
    });
  });
}
const browser = await launch();
const { context } = browser;

/** The `d` of every chart line, by chart title. */
function chartPaths(page) {
  return page.evaluate(() => Object.fromEntries([...document.querySelectorAll('#charts .chart')].map((c) => [
    c.querySelector('.chart-title').textContent,
    [...c.querySelectorAll('path.chart-line')].map((p) => p.getAttribute('d')),
  ])));
}

try {
  await check('home_shows_thumbnail', async () => {
    await until('a still in the room JSON', async () => (await api(`/api/rooms/${ROOM}`)).thumbnail_url, 60000, 500);
    const home = await openPage(context, '/', 'home');
    const size = await until('the still drawn on the live tile', () => home.evaluate((room) => {
      const img = document.querySelector(`#live-rooms .room-card[data-room="${room}"] img.thumb-img`);
      return img && img.complete && img.naturalWidth > 0 ? { w: img.naturalWidth, h: img.naturalHeight, src: img.getAttribute('src') } : null;
    }, ROOM), 30000, 250);
    if (size.h !== 360) throw new Error(`still is ${JSON.stringify(size)}`);
    await shot(home, 'home-thumbnails');
    await home.close();
    return size;
  });

  let host;
  await check('console_charts_draw_and_move', async () => {
    host = await openPage(context, `/host?room=${ROOM}`, 'host-charts');
    await host.fill('#key-input', ADMIN);
    await host.click('#key-form button[type=submit]');
    await host.waitForSelector('#console:not([hidden])', { timeout: T });
    for (let i = 0; i < 3; i++) {
      await api(`/api/rooms/${ROOM}/gifts`, { method: 'POST', admin: true, body: { user: 'fan', gift_id: 'rose', value: 1 } });
    }
    const acks = await burst(12);
    if (!acks.includes('accepted') || !acks.includes('rate_limited')) throw new Error(`acks: ${acks.join(',')}`);
    const first = await until('the bitrate and viewers charts drawn', async () => {
      const paths = await chartPaths(host);
      const bitrate = (paths['Ingest bitrate (kbit/s)'] || [])[0];
      const viewers = (paths.Viewers || [])[0];
      return bitrate && bitrate.includes('L') && viewers && viewers.includes('L') ? paths : null;
    }, 30000, 250);
    const titles = Object.keys(first);
    if (titles.length < 6) throw new Error(`charts: ${titles.join(', ')}`);
    await until('the gifts line', async () => {
      const d = (await chartPaths(host))['Delivered and gifts per second'][1] || '';
      // A point above the baseline (y < 120) is a second with a gift.
      return /[ML][\d.]+,(?!120\.0)[\d.]+/.test(d);
    }, T, 250);
    await until('refusals by reason', async () => {
      const legend = await host.evaluate(() => [...document.querySelectorAll('#charts .chart')]
        .find((c) => c.querySelector('.chart-title').textContent === 'Refused by reason').querySelector('.chart-legend').textContent);
      return legend.includes('user') || legend.includes('connection') ? legend : null;
    }, T, 250);
    // The charts move: a new second shifts the bitrate line.
    const before = first['Ingest bitrate (kbit/s)'][0];
    await until('the bitrate line moving', async () => (await chartPaths(host))['Ingest bitrate (kbit/s)'][0] !== before, T, 250);
    const legend = await host.textContent('#charts .chart:nth-child(5) .chart-legend');
    return { titles, legend };
  });

  await check('console_health_advice', async () => {
    const advice = await until('the keyframe advice', () => host.evaluate(() => {
      const li = document.querySelector('#health li[data-code="keyframe_interval"]');
      return li ? li.textContent : null;
    }), 60000, 250);
    if (!advice.includes('Keyframe Interval to 2 s in OBS > Settings > Output')) throw new Error(`advice: ${advice}`);
    const gop = await host.textContent('#st-gop');
    if (!/every [4-9]/.test(gop)) throw new Error(`keyframes shown as ${gop}`);
    await host.waitForTimeout(1500);
    await shot(host, 'host-charts-health', { fullPage: true });
    return { advice, gop };
  });

  await check('replay_download_links', async () => {
    console.log('@@stop-push');
    const session = await until('the broadcast finished', async () => {
      const page = await api(`/api/rooms/${ROOM}/sessions`);
      return (page.sessions || []).find((s) => !s.live && s.ended_ms && s.vod_key) || null;
    }, 60000, 500);
    // The console lists replays every few refreshes; a reload lists them at once.
    await host.reload({ waitUntil: 'domcontentloaded' });
    const link = await until('the download link in the console', () => host.evaluate((id) => {
      const a = document.querySelector(`#replays li[data-session="${id}"] a.replay-download`);
      return a ? a.href : null;
    }, session.session), T, 250);
    const poster = await until('the replay poster', () => host.evaluate((id) => {
      const img = document.querySelector(`#replays li[data-session="${id}"] img.replay-poster`);
      return img && img.complete && img.naturalWidth > 0 ? img.naturalWidth : null;
    }, session.session), T, 250);
    const r = await fetch(link);
    const body = Buffer.from(await r.arrayBuffer());
    if (r.status !== 200 || r.headers.get('content-type') !== 'video/mp4') throw new Error(`download answered ${r.status} ${r.headers.get('content-type')}`);
    if (!/attachment; filename="demo-.+\.mp4"/.test(r.headers.get('content-disposition') || '')) throw new Error(`disposition ${r.headers.get('content-disposition')}`);
    if (body.subarray(4, 8).toString() !== 'ftyp') throw new Error('not an MP4');
    await shot(host, 'host-replays', { fullPage: true });
    const viewer = await openPage(context, `/rooms/${ROOM}`, 'viewer');
    const viewerLink = await until('the download link on the viewer page', () => viewer.evaluate(() => {
      const a = document.querySelector('#replay-list a.replay-download');
      return a ? a.href : null;
    }), T, 250);
    await viewer.close();
    if (viewerLink !== link) throw new Error(`viewer links ${viewerLink}, console ${link}`);
    return { link, bytes: body.length, poster };
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
