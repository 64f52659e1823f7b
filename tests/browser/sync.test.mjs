// Unit tests of the sync modules of the viewer page (no browser): the sync gate that holds a
// live comment until the picture reaches it, and the reader of danmaku carried in the stream
// (ID3 TXXX in emsg). Run: node --test tests/browser/sync.test.mjs
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { SyncGate, MAX_HOLD_MS } from '../../static/js/sync-gate.js';
import { readTxxxFrames, eventsFromMetadata, TXXX_DESCRIPTION } from '../../static/js/stream-danmaku.js';

const dm = (seq, stream_ms, user = 'u1') => ({ seq, stream_ms, danmaku: { user, text: `c${seq}` } });
const seqs = (events) => events.map((e) => e.seq);

test('a comment ahead of the picture waits until the player reaches it', () => {
  const gate = new SyncGate();
  assert.deepEqual(gate.offer(dm(1, 10_000), 4_000), []);
  assert.equal(gate.size, 1);
  assert.deepEqual(gate.due(9_999), []);
  assert.deepEqual(seqs(gate.due(10_000)), [1]);
  assert.equal(gate.size, 0);
});

test('passed, own, unplaced and far-ahead comments show at once', () => {
  const gate = new SyncGate({ maxHoldMs: 30_000 });
  assert.deepEqual(seqs(gate.offer(dm(1, 3_000), 4_000)), [1], 'already passed');
  assert.deepEqual(seqs(gate.offer(dm(2, 4_000), 4_000)), [2], 'exactly now');
  assert.deepEqual(seqs(gate.offer(dm(3, 9_000), 4_000, true)), [3], 'the sender sees theirs');
  assert.deepEqual(seqs(gate.offer(dm(4, 9_000), null)), [4], 'position unknown');
  assert.deepEqual(seqs(gate.offer({ seq: 5, danmaku: { text: 'x' } }, 4_000)), [5], 'no stream_ms');
  assert.deepEqual(seqs(gate.offer(dm(6, 34_001), 4_000)), [6], 'further ahead than the hold');
  assert.deepEqual(gate.offer(dm(7, 34_000), 4_000), [], 'at the hold limit: held');
  assert.equal(gate.size, 1);
});

test('gifts and system messages are never held', () => {
  const gate = new SyncGate();
  const gift = { seq: 1, stream_ms: 50_000, gift: { name: 'Bo' } };
  const system = { seq: 2, stream_ms: 50_000, system: { text: 'hi' } };
  assert.deepEqual(gate.offer(gift, 0), [gift]);
  assert.deepEqual(gate.offer(system, 0), [system]);
});

test('held comments come out in stream order, and a deleted one never', () => {
  const gate = new SyncGate();
  gate.offer(dm(3, 7_000), 0);
  gate.offer(dm(1, 6_000), 0);
  gate.offer(dm(2, 6_000), 0);
  gate.offer(dm(4, 8_000), 0);
  assert.equal(gate.remove(2), true);
  assert.equal(gate.remove(99), false);
  assert.deepEqual(seqs(gate.due(7_500)), [1, 3]);
  assert.deepEqual(seqs(gate.due(8_000)), [4]);
});

test('a player that stops or jumps far back releases what it held', () => {
  const gate = new SyncGate({ maxHoldMs: 30_000 });
  gate.offer(dm(1, 50_000), 45_000);
  gate.offer(dm(2, 51_000), 45_000);
  assert.deepEqual(gate.due(46_000), []);
  // a new broadcast started: its position is near 0, far behind the held moments
  assert.deepEqual(seqs(gate.due(500)), [1, 2]);
  gate.offer(dm(3, 9_000), 1_000);
  assert.deepEqual(seqs(gate.due(null)), [3], 'nothing plays any more');
  assert.equal(new SyncGate().maxHoldMs, MAX_HOLD_MS);
});

test('the gate holds a bounded number; past it the earliest goes out at once', () => {
  const gate = new SyncGate({ maxHeld: 3 });
  for (let i = 1; i <= 3; i++) assert.deepEqual(gate.offer(dm(i, 10_000 + i), 0), []);
  assert.deepEqual(seqs(gate.offer(dm(9, 10_500), 0)), [1]);
  assert.equal(gate.size, 3);
});

test('the TXXX frame barrage writes is read back (fixture written by src/media/emsg.rs)', () => {
  const bytes = new Uint8Array(fs.readFileSync(new URL('../data/id3_txxx_event.bin', import.meta.url)));
  const frames = readTxxxFrames(bytes);
  assert.equal(frames.length, 1);
  assert.equal(frames[0].description, TXXX_DESCRIPTION);
  const events = eventsFromMetadata([{ data: bytes, pts: 53.21 }]);
  assert.equal(events.length, 1);
  assert.equal(events[0].seq, 42);
  assert.equal(events[0].stream_ms, 53210);
  assert.equal(events[0].danmaku.text, '前方高能 666');
});

test('truncated, foreign and hostile tags give nothing and never throw', () => {
  const bytes = new Uint8Array(fs.readFileSync(new URL('../data/id3_txxx_event.bin', import.meta.url)));
  for (let cut = 0; cut < bytes.length; cut += 7) {
    const events = eventsFromMetadata([{ data: bytes.subarray(0, cut) }]);
    assert.ok(events.length === 0, `cut at ${cut}`);
  }
  const other = bytes.slice();
  other.set([0x66, 0x6f, 0x6f], 21); // description "foorage"
  assert.deepEqual(eventsFromMetadata([{ data: other }]), []);
  const priv = bytes.slice();
  priv.set([0x50, 0x52, 0x49, 0x56], 10); // a PRIV frame, not TXXX
  assert.deepEqual(readTxxxFrames(priv), []);
  const huge = bytes.slice();
  huge.set([0x7f, 0x7f, 0x7f, 0x7f], 14); // a frame size past the tag
  assert.doesNotThrow(() => eventsFromMetadata([{ data: huge }]));
  assert.deepEqual(eventsFromMetadata([null, {}, { data: 'text' }, { data: new Uint8Array(3) }]), []);
});
