// Replay (VOD): the session's danmaku (its one file once the session ended, else its batch
// files) are loaded into a timeline ordered by stream time, and each comment is released when
// the video's position passes its stream_ms.

import { fetchBatch } from './cdn-poller.js';

/**
 * Loads a finished session's one danmaku file (`all.json`) from `url`; resolves with its
 * events, or null when it cannot be read (the caller falls back to the batch files).
 */
export async function loadSessionFile(url, signal) {
  try {
    const r = await fetch(url, { signal });
    if (!r.ok) return null;
    const file = await r.json();
    return Array.isArray(file.events) ? file.events : null;
  } catch {
    return null;
  }
}

/** Events released late (loaded after the video passed them) if no older than this (ms). */
export const LATE_MS = 2000;

/** Events of one session ordered by stream time (pure; tested in node). */
export class ReplayTimeline {
  constructor() {
    this.events = [];
    this.emitted = new Set();
    this.deleted = new Set();
    this.position = 0;
  }

  /** Adds events from a batch file (any order, repeats ignored). */
  add(events) {
    const known = new Set(this.events.map((e) => e.seq));
    let added = false;
    for (const e of events) {
      if (!e || !Number.isInteger(e.seq) || known.has(e.seq)) continue;
      if (e.moderation && Number.isInteger(e.moderation.delete_seq)) {
        this.deleted.add(e.moderation.delete_seq);
      }
      this.events.push(e);
      known.add(e.seq);
      added = true;
    }
    if (added) {
      this.events.sort((a, b) => (a.stream_ms ?? 0) - (b.stream_ms ?? 0) || a.seq - b.seq);
    }
  }

  /** The events due at video position `ms` that were not released yet, oldest first. */
  due(ms) {
    const from = Math.min(this.position, ms) - LATE_MS;
    this.position = ms;
    const out = [];
    for (let i = this.firstAfter(from); i < this.events.length; i++) {
      const e = this.events[i];
      if ((e.stream_ms ?? 0) > ms) break;
      if (this.emitted.has(e.seq)) continue;
      this.emitted.add(e.seq);
      if (!this.deleted.has(e.seq)) out.push(e);
    }
    return out;
  }

  /** After a seek to `ms`: what was more than LATE_MS before it counts as released. */
  seek(ms) {
    this.position = ms;
    this.emitted.clear();
    for (const e of this.events) {
      if ((e.stream_ms ?? 0) <= ms - LATE_MS) this.emitted.add(e.seq);
    }
  }

  /** Index of the first event with stream_ms > ms (binary search). */
  firstAfter(ms) {
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((this.events[mid].stream_ms ?? 0) > ms) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/**
 * Loads batch files 1..batches of a session (or until a file is missing when `batches` is
 * unknown), a few at a time, handing each file's events to `onEvents`. Stops on `signal`.
 */
export async function loadSessionBatches({ room, session, batches, pick, onEvents, signal,
  concurrency = 4 }) {
  let next = 1;
  let missing = false;
  const known = Number.isInteger(batches) && batches > 0 ? batches : Infinity;
  async function worker() {
    while (!signal?.aborted && !missing && next <= known) {
      const n = next++;
      const file = await fetchBatch(pick(), room, session, n, signal).catch(() => null);
      if (file === null) {
        if (known === Infinity) missing = true;
        continue;
      }
      onEvents(file.events || [], file);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
}
