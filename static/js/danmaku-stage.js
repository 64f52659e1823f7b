// Draws danmaku over a box (the video, or the whole overlay page): scrolling comments in lanes
// right to left, top and bottom fixed comments, colours, density, opacity and an off switch.
// Comments that find no free lane wait briefly, then are dropped, so they never overlap.

import { LanePlanner, usableLanes } from './danmaku-lanes.js';
import { colorToCss } from './format.js';

/** How long a comment may wait for a lane before it is dropped (ms). */
const MAX_WAIT_MS = 2500;
/** Fixed comments wait longer: their row must first clear of scrolling comments. */
const MAX_FIXED_WAIT_MS = 5000;
/** Waiting comments kept at most (the oldest are dropped past it). */
const MAX_PENDING = 200;

export class DanmakuStage {
  /**
   * @param {HTMLElement} box positioned container the comments are drawn in
   * @param {object} opts fontSize (px), scrollMs (crossing time), fixedMs (top/bottom time),
   *   lanes (rows used, counted from the top for scrolling and top comments and from the bottom
   *   for bottom ones; default: all that fit), opacity (0..1), density (0..1)
   */
  constructor(box, opts = {}) {
    this.box = box;
    this.fontSize = opts.fontSize || 24;
    this.scrollMs = opts.scrollMs || 8000;
    this.fixedMs = opts.fixedMs || 4000;
    this.fixedLaneCount = opts.lanes || 0;
    this.density = opts.density ?? 1;
    this.enabled = true;
    this.paused = false;
    this.pending = [];
    this.bySeq = new Map(); // seq -> element on stage
    this.shown = 0;
    this.dropped = 0;
    this.box.classList.add('danmaku-stage');
    this.box.style.setProperty('--danmaku-size', `${this.fontSize}px`);
    this.setOpacity(opts.opacity ?? 1);
    this.lanes = new LanePlanner(this.laneCount());
    this.pump = setInterval(() => this.place(), 50);
    if (typeof ResizeObserver !== 'undefined') {
      new ResizeObserver(() => this.resize()).observe(box);
    }
  }

  /** Lane height in px. */
  get lineHeight() {
    return Math.round(this.fontSize * 1.3);
  }

  /** Rows that fit in the box (the `lanes` option only limits how many are used). */
  laneCount() {
    return Math.max(1, Math.floor((this.box.clientHeight || 360) / this.lineHeight));
  }

  resize() {
    this.lanes.resize(this.laneCount());
  }

  setOpacity(value) {
    this.box.style.setProperty('--danmaku-opacity', String(Math.min(1, Math.max(0, value))));
  }

  setDensity(value) {
    this.density = Math.min(1, Math.max(0, value));
  }

  setEnabled(on) {
    this.enabled = on;
    this.box.classList.toggle('danmaku-off', !on);
    if (!on) this.pending = [];
  }

  /** Queues a danmaku event ({seq, danmaku:{text,color,mode}}) or, as a comment, a gift. */
  add(event) {
    if (!this.enabled || this.density <= 0) return;
    let text;
    let color;
    let mode;
    let cls = 'danmaku';
    if (event.danmaku) {
      ({ text, color, mode } = event.danmaku);
    } else if (event.gift) {
      const g = event.gift;
      text = `${g.name || g.user} sent ${g.gift_name || g.gift_id} ×${g.count}`;
      color = 0xffd54a;
      mode = 'top';
      cls = 'danmaku danmaku-gift';
    } else {
      return;
    }
    if (typeof text !== 'string' || text === '') return;
    this.pending.push({ seq: event.seq, text, color, mode: mode || 'scroll', cls, at: now() });
    if (this.pending.length > MAX_PENDING) {
      this.dropped += this.pending.length - MAX_PENDING;
      this.pending.splice(0, this.pending.length - MAX_PENDING);
    }
    this.place();
  }

  /** Takes a comment off the stage (moderation) and out of the waiting queue. */
  remove(seq) {
    this.pending = this.pending.filter((p) => p.seq !== seq);
    const node = this.bySeq.get(seq);
    if (node) {
      node.remove();
      this.bySeq.delete(seq);
    }
  }

  /** Removes everything (a seek in replay). */
  clear() {
    this.pending = [];
    for (const node of this.bySeq.values()) node.remove();
    this.bySeq.clear();
    for (const node of this.box.querySelectorAll('.danmaku')) node.remove();
    this.lanes.clear();
  }

  /** Freezes moving comments (the replay video paused). */
  pause() {
    this.paused = true;
    for (const node of this.bySeq.values()) node.getAnimations().forEach((a) => a.pause());
  }

  play() {
    if (!this.paused) return;
    this.paused = false;
    for (const node of this.bySeq.values()) node.getAnimations().forEach((a) => a.play());
    // Lanes' clocks moved on while paused: forget the scrolling ones rather than overlap.
    this.lanes.scroll.clear();
  }

  place() {
    if (this.paused || !this.enabled || this.pending.length === 0) return;
    const t = now();
    const width = this.box.clientWidth;
    if (width === 0) return;
    const rows = this.lanes.rows;
    const usable = usableLanes(this.fixedLaneCount > 0 ? Math.min(this.fixedLaneCount, rows) : rows,
      this.density);
    const waiting = [];
    for (const p of this.pending) {
      if (t - p.at > (p.mode === 'scroll' ? MAX_WAIT_MS : MAX_FIXED_WAIT_MS)) {
        this.dropped++;
        continue;
      }
      if (!this.placeOne(p, t, width, usable)) waiting.push(p);
    }
    this.pending = waiting;
  }

  placeOne(p, t, stageWidth, usable) {
    const node = document.createElement('span');
    node.className = p.cls;
    node.textContent = p.text;
    node.style.color = colorToCss(p.color);
    if (Number.isInteger(p.seq)) node.dataset.seq = String(p.seq);
    node.style.visibility = 'hidden';
    this.box.append(node);
    const w = node.offsetWidth;
    const fixed = p.mode === 'top' || p.mode === 'bottom';
    const row = fixed
      ? this.lanes.placeFixed(p.mode, t, w, stageWidth, this.fixedMs, usable)
      : this.lanes.placeScroll(t, w, stageWidth, this.scrollMs, usable);
    if (row < 0) {
      node.remove();
      return false;
    }
    const duration = fixed ? this.fixedMs : this.scrollMs;
    node.style.top = `${row * this.lineHeight}px`;
    let animation;
    if (p.mode === 'scroll') {
      node.classList.add('danmaku-scroll');
      animation = node.animate(
        [{ transform: `translateX(${stageWidth}px)` }, { transform: `translateX(${-w}px)` }],
        { duration, easing: 'linear', fill: 'both' },
      );
    } else {
      node.classList.add('danmaku-fixed');
      animation = node.animate([{ opacity: 1 }, { opacity: 1 }], { duration, fill: 'both' });
    }
    // Anchor the animation at the time the lanes were planned with, not at the next frame, so
    // that every comment's position is exactly what the lane arithmetic assumed.
    animation.startTime = t;
    node.style.visibility = '';
    if (Number.isInteger(p.seq)) this.bySeq.set(p.seq, node);
    this.shown++;
    animation.finished.then(() => this.retire(p.seq, node), () => this.retire(p.seq, node));
    return true;
  }

  retire(seq, node) {
    node.remove();
    if (this.bySeq.get(seq) === node) this.bySeq.delete(seq);
  }
}

/** The document timeline's time (ms): the clock the animations run on. */
function now() {
  const t = document.timeline.currentTime;
  return typeof t === 'number' ? t : performance.now();
}
