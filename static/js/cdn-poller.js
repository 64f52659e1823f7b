// Danmaku from the CDN: read danmaku/{room}/index.json, then fetch batch files n, n+1, ... one
// per period (their keys are predictable, so no index read per file). The index is read through
// the CDN base the allocator names when CDN bases are configured (this origin otherwise, or when
// that base fails); batch files through a base picked by weight from the index's cdn_bases.

import { fetchConnect } from './ws-client.js';

/** Picks a base URL by weight ('' means this page's origin). `rnd` is for tests. */
export function pickBase(bases, rnd = Math.random) {
  const usable = (bases || []).filter((b) => b && typeof b.url === 'string' && b.weight > 0);
  const total = usable.reduce((sum, b) => sum + b.weight, 0);
  if (total <= 0) return '';
  let r = rnd() * total;
  for (const b of usable) {
    r -= b.weight;
    if (r < 0) return b.url.replace(/\/+$/, '');
  }
  return usable[usable.length - 1].url.replace(/\/+$/, '');
}

/**
 * Where to read a room's danmaku from: `base` for the index (the allocator's CDN base when CDN
 * bases are configured, else '' for this origin) and every base with its weight.
 */
export function danmakuSource(answer) {
  const bases = answer && Array.isArray(answer.cdn_bases) ? answer.cdn_bases : [];
  const base = bases.length && typeof answer.cdn_base === 'string' ? answer.cdn_base.replace(/\/+$/, '') : '';
  return { base, bases };
}

/** URL of a danmaku object below a base ('' = this origin). */
export function danmakuUrl(base, ...parts) {
  return `${base}/danmaku/${parts.map((p) => encodeURIComponent(String(p))).join('/')}`;
}

/** Fetches batch file n; null when it does not exist yet (404), throws on other failures. */
export async function fetchBatch(base, room, session, n, signal) {
  const r = await fetch(danmakuUrl(base, room, session, `${n}.json`), { signal });
  if (r.status === 404) return null;
  if (!r.ok) throw new Error(`batch ${n}: HTTP ${r.status}`);
  return r.json();
}

/** Fetches the room's index.json (no-store: it changes every period); null when absent. */
export async function fetchIndex(base, room, signal) {
  const r = await fetch(danmakuUrl(base, room, 'index.json'), { signal, cache: 'no-store' });
  if (r.status === 404) return null;
  if (!r.ok) throw new Error(`index: HTTP ${r.status}`);
  return r.json();
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

/**
 * Follows a room's batch files. Callbacks: onEvents(events, file), onStatus(text),
 * onSession(id) when the index moves to another session (seqs may have started over).
 * After `missesBeforeIndex` periods without the next file (or on a failure) it re-reads the
 * index, which also notices a new session.
 */
export class CdnPoller {
  constructor({ room, onEvents, onStatus = () => {}, onSession = () => {}, missesBeforeIndex = 5 }) {
    this.room = room;
    this.onEvents = onEvents;
    this.onSession = onSession;
    this.onStatus = onStatus;
    this.missesBeforeIndex = missesBeforeIndex;
    this.controller = null;
    this.base = '';
    this.indexBase = null; // from the allocator, at the first index read
    this.files = 0;
  }

  start() {
    if (this.controller) return;
    this.controller = new AbortController();
    this.run(this.controller.signal).catch(() => {});
  }

  stop() {
    this.controller?.abort();
    this.controller = null;
  }

  async run(signal) {
    let index = null;
    let n = 0;
    let misses = 0;
    while (!signal.aborted) {
      if (!index || misses >= this.missesBeforeIndex) {
        if (this.indexBase === null) this.indexBase = danmakuSource(await fetchConnect(this.room)).base;
        let fresh = await fetchIndex(this.indexBase, this.room, signal).catch(() => null);
        if (!fresh && this.indexBase !== '' && !signal.aborted) {
          // The CDN base failed: this origin, and the allocator asked again next time.
          fresh = await fetchIndex('', this.room, signal).catch(() => null);
          this.indexBase = null;
        }
        if (signal.aborted) return;
        if (!fresh) {
          this.onStatus('CDN: no danmaku files for this room yet');
          await sleep(2000, signal);
          continue;
        }
        if (index && fresh.session !== index.session) this.onSession(fresh.session);
        if (!index || fresh.session !== index.session) n = fresh.latest + 1;
        else if (fresh.latest - n > 30) n = fresh.latest + 1; // far behind: skip to now
        index = fresh;
        misses = 0;
        this.base = pickBase(index.cdn_bases);
      }
      const period = Math.max(200, index.period_ms || 1000);
      let file = null;
      try {
        file = await fetchBatch(this.base, this.room, index.session, n, signal);
      } catch (e) {
        if (signal.aborted) return;
        // This base failed: next time pick again, and this origin if the bases keep failing.
        this.base = misses % 2 === 0 ? pickBase(index.cdn_bases) : '';
        this.onStatus(`CDN: ${e.message}; retrying`);
        misses++;
        await sleep(period, signal);
        continue;
      }
      if (signal.aborted) return;
      if (file) {
        this.files++;
        misses = 0;
        n++;
        this.onStatus(`CDN: ${index.session} file ${file.n}`);
        this.onEvents(file.events || [], file);
        continue; // maybe behind: try the next file at once
      }
      misses++;
      await sleep(period, signal);
    }
  }
}
