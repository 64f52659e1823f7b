// Unit tests of the pages' pure modules (no browser): lane assignment, seq de-duplication,
// replay timeline, CDN base choice, reconnect backoff, token claims, moderator requests. Run: node --test tests/browser/
import test from 'node:test';
import assert from 'node:assert/strict';

import { ScrollLanes, FixedLanes, LanePlanner, laneFree, usableLanes, GAP_PX } from '../../static/js/danmaku-lanes.js';
import { SeqFilter } from '../../static/js/seq-filter.js';
import { ReplayTimeline, LATE_MS } from '../../static/js/replay.js';
import { pickBase, danmakuUrl } from '../../static/js/cdn-poller.js';
import { allocate, allocatedUrl, backoffMs, socketUrl } from '../../static/js/ws-client.js';
import { colorToCss, cssToColor, roomFromPath, intParam } from '../../static/js/format.js';
import { tokenClaims } from '../../static/js/guest.js';
import { ModeratorActions } from '../../static/js/moderator-actions.js';

const W = 1000;
const D = 8000;

/** Head position (left edge) of a scrolling comment at time t. */
function head(c, t) {
  return W - c.speed * (t - c.start);
}

test('scroll lanes never let two comments in one lane overlap', () => {
  const lanes = new ScrollLanes(3);
  const placed = [];
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let t = 0; t < 60000; t += 50 + rnd() * 400) {
    const width = 20 + rnd() * 600;
    const lane = lanes.place(t, width, W, D);
    if (lane >= 0) placed.push({ lane, ...lanes.lanes[lane] });
  }
  assert.ok(placed.length > 50, `placed ${placed.length}`);
  for (let i = 0; i < placed.length; i++) {
    for (let j = i + 1; j < placed.length; j++) {
      const a = placed[i];
      const b = placed[j];
      if (a.lane !== b.lane) continue;
      // sample the time both are on the stage
      for (let t = b.start; t <= Math.min(a.end, b.end); t += 25) {
        const aTail = head(a, t) + a.width;
        assert.ok(head(b, t) >= aTail - 1e-6, `lane ${a.lane}: overlap at ${t}`);
      }
    }
  }
});

test('a lane is busy until the last comment has entered with its gap', () => {
  const speed = (W + 100) / D;
  const last = { start: 0, width: 100, speed, end: D };
  assert.equal(laneFree(last, 10, W, speed), false);
  const entered = (100 + GAP_PX) / speed;
  assert.equal(laneFree(last, entered + 1, W, speed), true);
  // a much faster (longer) comment would catch up: not yet
  const fast = (W + 3000) / D;
  assert.equal(laneFree(last, entered + 1, W, fast), false);
});

test('full lanes refuse, density limits lanes, fixed lanes expire', () => {
  const lanes = new ScrollLanes(2);
  assert.equal(lanes.place(0, 100, W, D), 0);
  assert.equal(lanes.place(0, 100, W, D), 1);
  assert.equal(lanes.place(0, 100, W, D), -1);
  assert.ok(lanes.nextFree(0, 100, W, D) > 0);
  assert.equal(usableLanes(10, 0.25), 3);
  assert.equal(usableLanes(10, 0), 0);
  assert.equal(usableLanes(1, 0.1), 1);
  const fixed = new FixedLanes(2);
  assert.equal(fixed.place(0, 4000), 0);
  assert.equal(fixed.place(0, 4000), 1);
  assert.equal(fixed.place(100, 4000), -1);
  assert.equal(fixed.place(4000, 4000), 0);
  assert.equal(fixed.place(4000, 4000, 1), -1);
});

test('seq filter admits each seq once and stays bounded', () => {
  const f = new SeqFilter(3);
  assert.equal(f.admit(1), true);
  assert.equal(f.admit(1), false);
  assert.equal(f.admit(2), true);
  assert.equal(f.admit(3), true);
  assert.equal(f.admit(4), true);
  assert.equal(f.seen.size, 3);
  assert.equal(f.admit(1), false, 'older than the window counts as seen');
  assert.equal(f.admit(null), true, 'local notes without seq pass');
});

test('replay releases events by stream time, late ones briefly, deleted ones never', () => {
  const tl = new ReplayTimeline();
  const ev = (seq, stream_ms, extra = {}) => ({ seq, stream_ms, danmaku: { text: `m${seq}` }, ...extra });
  tl.add([ev(2, 2000), ev(1, 1000), ev(3, 5000)]);
  assert.deepEqual(tl.due(500).map((e) => e.seq), []);
  assert.deepEqual(tl.due(2100).map((e) => e.seq), [1, 2]);
  assert.deepEqual(tl.due(2200).map((e) => e.seq), []);
  // loaded late but within LATE_MS: still shown; far too late: skipped
  tl.add([ev(4, 2150), ev(5, 100)]);
  assert.deepEqual(tl.due(2300).map((e) => e.seq), [4]);
  tl.add([ev(6, 6000), { seq: 7, stream_ms: 5500, moderation: { delete_seq: 6 } }]);
  assert.deepEqual(tl.due(7000).map((e) => e.seq), [3, 7]);
  tl.seek(1500);
  // after a seek the last LATE_MS before the new position are shown again
  assert.deepEqual(tl.due(2100).map((e) => e.seq), [5, 1, 2]);
  assert.ok(LATE_MS >= 1500);
});

test('CDN base is chosen by weight, falling back to this origin', () => {
  assert.equal(pickBase([]), '');
  assert.equal(pickBase(undefined), '');
  assert.equal(pickBase([{ url: 'https://a.example/', weight: 0 }]), '');
  const bases = [{ url: 'https://a.example/', weight: 1 }, { url: 'https://b.example', weight: 3 }];
  assert.equal(pickBase(bases, () => 0.1), 'https://a.example');
  assert.equal(pickBase(bases, () => 0.5), 'https://b.example');
  assert.equal(danmakuUrl('', 'r 1', 's', '3.json'), '/danmaku/r%201/s/3.json');
});

test('backoff grows to a cap, with jitter', () => {
  assert.equal(backoffMs(0, () => 0.5), 500);
  assert.equal(backoffMs(3, () => 0.5), 4000);
  assert.equal(backoffMs(30, () => 0.5), 15000);
  assert.ok(backoffMs(30, () => 1) <= 15000 * 1.25);
  const url = socketUrl({ protocol: 'https:', host: 'x.example:8443' }, 'de mo', 'a&b');
  assert.equal(url, 'wss://x.example:8443/ws/de%20mo?format=json&token=a%26b');
});

test('allocated socket URLs get the format, the token and wss on https pages', async () => {
  assert.equal(allocatedUrl('ws://n2.example:8080/ws/demo', 'http:', ''), 'ws://n2.example:8080/ws/demo?format=json');
  assert.equal(allocatedUrl('ws://n2.example/ws/demo', 'https:', 'a&b'), 'wss://n2.example/ws/demo?format=json&token=a%26b');
  assert.equal(allocatedUrl('wss://n/ws/d?x=1', 'https:', ''), 'wss://n/ws/d?x=1&format=json');
  const answer = { ws_urls: ['ws://a/ws/r', 7, 'ws://b/ws/r'] };
  const ok = async (url) => ({ ok: url === '/api/rooms/r%201/connect', json: async () => answer });
  assert.deepEqual(await allocate('r 1', ok), ['ws://a/ws/r', 'ws://b/ws/r']);
  assert.deepEqual(await allocate('r', ok), [], 'a refused answer gives no URLs');
  assert.deepEqual(await allocate('r', async () => { throw new Error('down'); }), []);
});

test('formatting helpers', () => {
  assert.equal(colorToCss(0xff0000), '#ff0000');
  assert.equal(colorToCss(-1), '#ffffff');
  assert.equal(colorToCss('red'), '#ffffff');
  assert.equal(cssToColor('#00ff7f'), 0x00ff7f);
  assert.equal(cssToColor('javascript:'), 0xffffff);
  assert.equal(roomFromPath('/rooms/demo'), 'demo');
  assert.equal(roomFromPath('/overlay/a%20b/'), 'a b');
  const p = new URLSearchParams('size=500&speed=x&lanes=');
  assert.equal(intParam(p, 'size', 32, 10, 120), 120);
  assert.equal(intParam(p, 'speed', 8, 2, 60), 8);
  assert.equal(intParam(p, 'lanes', 0, 0, 60), 0);
});

test('fixed and scrolling comments never share a row at the same time', () => {
  const p = new LanePlanner(3);
  // a scrolling comment in row 0; a top comment must not take row 0 until it passed the centre
  assert.equal(p.placeScroll(0, 200, W, D), 0);
  assert.equal(p.placeFixed('top', 100, 300, W, 4000), 1);
  // row 1 shows a fixed comment: scrolling comments skip it
  assert.equal(p.placeScroll(100, 50, W, D), 2);
  // bottom comments count from the bottom; row 2 has a scrolling comment, row 1 a top comment
  assert.equal(p.placeFixed('bottom', 200, 300, W, 4000), -1);
  // once the first scrolling comment's tail is left of the centred comment's left edge (350 px)
  const speed = (W + 200) / D;
  const passed = Math.ceil((W + 200 - 350) / speed) + 1;
  assert.equal(p.placeFixed('top', passed, 300, W, 4000), 0);
  assert.equal(p.fixedIn(0, passed), true);
  assert.equal(p.fixedIn(0, passed + 4000), false);
});

// ------------------------------------------------------------------ continuity (issue #20)

import { holeJumpTarget } from '../../static/js/player.js';
import { nextStep } from '../../static/js/live-watch.js';
import { danmakuSource } from '../../static/js/cdn-poller.js';

test('a stalled player jumps a hole to the media after it, not within playable media', () => {
  // Part 1 up to 16 s, 2.5 s nobody published (gap entries), part 2 from 18.5 s.
  const ranges = [[0, 16.02], [18.5, 30]];
  assert.equal(holeJumpTarget(ranges, 16.02), 18.55);
  assert.equal(holeJumpTarget(ranges, 10), null, 'playable here: a stall, not a hole');
  assert.equal(holeJumpTarget([[0, 16]], 16), null, 'nothing after: wait');
  assert.equal(holeJumpTarget([[0, 1], [100, 110]], 1), null, 'too far to be the next part');
});

test('the viewer page plays when on air, waits when not, and says why', () => {
  const live = { session: 's1', reconnecting: false };
  assert.deepEqual(nextStep(live, false, null), { play: true, badge: 'live', note: '' });
  assert.equal(nextStep(live, true, null).play, false, 'already playing it');
  const away = nextStep({ ...live, reconnecting: true }, true, null);
  assert.equal(away.badge, 'reconnecting');
  assert.equal(away.play, false);
  assert.match(away.note, /reconnecting/);
  assert.equal(nextStep({ ...live, reconnecting: true }, false, null).play, true, 'joining during the grace');
  assert.deepEqual(nextStep(null, false, 's1'), { play: false, badge: 'offline', note: 'offline: waiting for the stream' });
  assert.equal(nextStep(null, true, null).note, '', 'still playing out the end');
  assert.equal(nextStep(live, false, 's1').play, false, 'the broadcast that just ended');
  assert.equal(nextStep({ session: 's2' }, false, 's1').play, true, 'the next broadcast');
});

test('danmaku are read through a CDN base only when there are any', () => {
  assert.deepEqual(danmakuSource(null), { base: '', bases: [] });
  assert.deepEqual(danmakuSource({ cdn_base: 'http://node:8080', cdn_bases: [] }), { base: '', bases: [] });
  const bases = [{ url: 'https://cdn.example/', weight: 1 }];
  assert.deepEqual(danmakuSource({ cdn_base: 'https://cdn.example/', cdn_bases: bases }), { base: 'https://cdn.example', bases });
});

test('token claims are read from the middle of a JWT, and garbage is null', () => {
  const payload = Buffer.from(JSON.stringify({ sub: 'mod-1', name: 'Mia ✓', role: 'moderator', room: 'demo' }))
    .toString('base64url');
  assert.deepEqual(tokenClaims(`eyJhbGciOiJIUzI1NiJ9.${payload}.sig`),
    { sub: 'mod-1', name: 'Mia ✓', role: 'moderator', room: 'demo' });
  assert.equal(tokenClaims('not a token'), null);
  assert.equal(tokenClaims('a.%%%.c'), null);
  assert.equal(tokenClaims(undefined), null);
});

test('moderator requests are matched to their replies by request_id', async () => {
  const sent = [];
  const socket = { welcome: { can_moderate: false }, raw: (f) => { sent.push(f); return true; } };
  const reports = [];
  const mod = new ModeratorActions(socket, (text, ok) => reports.push([text, ok]));
  assert.equal(mod.enabled, false);
  socket.welcome.can_moderate = true;
  assert.equal(mod.enabled, true);
  const first = mod.request({ type: 'delete', seq: 5 });
  const second = mod.request({ type: 'mute', user: 'u1', seconds: 600 });
  assert.deepEqual(sent.map((f) => [f.type, f.request_id]), [['delete', 1], ['mute', 2]]);
  mod.reply({ type: 'reply', request_id: 99, ok: true }); // nobody's: ignored
  mod.reply({ type: 'reply', request_id: 2, ok: false, code: 'forbidden', message: 'no' });
  mod.reply({ type: 'reply', request_id: 1, ok: true });
  assert.equal((await first).ok, true);
  assert.equal((await second).code, 'forbidden');
  const offline = new ModeratorActions({ welcome: null, raw: () => false }, () => {});
  assert.equal((await offline.request({ type: 'delete', seq: 1 })).code, 'not_sent');
});
