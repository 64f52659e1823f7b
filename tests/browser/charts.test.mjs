// Unit tests of the host console's chart module (no browser). Run: node --test tests/browser/charts.test.mjs
import test from 'node:test';
import assert from 'node:assert/strict';

import { linePath, scaleMax, lastValue, sumColumns, trimAnswer } from '../../static/js/charts.js';

test('the scale is a round number above every value', () => {
  assert.equal(scaleMax([[0, 3, null]]), 5);
  assert.equal(scaleMax([[12], [70]]), 100);
  assert.equal(scaleMax([[2500]]), 5000);
  assert.equal(scaleMax([[null]], 10), 10);
  assert.equal(scaleMax([[0.2]]), 1, 'the floor');
});

test('a line breaks at gaps and spans the width', () => {
  const d = linePath([0, 10, null, 5, 5], 100, 10, 10);
  assert.equal(d, 'M0.0,10.0 L25.0,0.0 M75.0,5.0 L100.0,5.0');
  assert.equal(linePath([null, 4, null], 10, 10, 4), 'M5.0,0.0 h0.5', 'a lone point is drawn');
  assert.equal(linePath([], 10, 10, 4), '');
  assert.equal(linePath([99], 10, 10, 4), 'M0.0,0.0 h0.5', 'clamped to the top');
});

test('latest values and sums skip gaps', () => {
  assert.equal(lastValue([1, 2, null]), 2);
  assert.equal(lastValue([null]), null);
  assert.deepEqual(sumColumns([[1, null, 2], [3, null, null]], 3), [4, null, 2]);
});

test('an answer loses its unsampled start but keeps a minute', () => {
  const rows = 600;
  const online = new Array(rows).fill(null);
  for (let i = 550; i < rows; i++) online[i] = 1;
  const refused = { user: online.map((v) => (v === null ? null : 0)) };
  const a = trimAnswer({ from_s: 1000, online, fps: online.slice(), refused }, 60);
  assert.equal(a.online.length, 60);
  assert.equal(a.fps.length, 60);
  assert.equal(a.refused.user.length, 60);
  assert.equal(a.from_s, 1540);
  const full = trimAnswer({ from_s: 0, online: new Array(100).fill(2), refused: {} }, 60);
  assert.equal(full.online.length, 100, 'nothing to trim');
  const empty = trimAnswer({ from_s: 0, online: new Array(100).fill(null), refused: {} }, 60);
  assert.equal(empty.online.length, 60);
});
