// Lane assignment for danmaku (pure; no DOM, tested in node).
//
// A scrolling comment enters at the right edge and leaves past the left edge; it crosses the
// stage width W plus its own width w in a fixed duration D, so longer comments move faster
// (as on Bilibili). A lane takes a new comment only when its last comment (1) has fully
// entered, with a gap behind it, and (2) will have left the stage before the new, maybe faster,
// comment's head reaches the left edge. The distance between the two is linear in time, so
// checking both ends of the shared interval is enough: the comments never overlap.

/** Gap in pixels kept behind a comment before the next may enter its lane. */
export const GAP_PX = 24;

/** Lanes of right-to-left scrolling comments. */
export class ScrollLanes {
  /** @param {number} count lanes on the stage */
  constructor(count) {
    this.lanes = new Array(Math.max(0, count)).fill(null);
  }

  /** Changes the number of lanes (keeps what is in the lanes that remain). */
  resize(count) {
    const next = new Array(Math.max(0, count)).fill(null);
    for (let i = 0; i < Math.min(next.length, this.lanes.length); i++) next[i] = this.lanes[i];
    this.lanes = next;
  }

  /** Forgets every comment (after a seek, or when the stage is cleared). */
  clear() {
    this.lanes.fill(null);
  }

  /**
   * Places a comment of `width` px at time `now` (ms) on a stage `stageWidth` px wide, crossing
   * in `duration` ms, in the first free lane among the first `usable` (lanes for which
   * `skip(i)` is true are passed over). Returns the lane index, or -1 when every usable lane is
   * busy (the caller waits or drops the comment).
   */
  place(now, width, stageWidth, duration, usable = this.lanes.length, skip = null) {
    const speed = (stageWidth + width) / duration;
    const n = Math.min(usable, this.lanes.length);
    for (let i = 0; i < n; i++) {
      if (skip && skip(i)) continue;
      if (laneFree(this.lanes[i], now, stageWidth, speed)) {
        this.lanes[i] = { start: now, width, speed, end: now + duration };
        return i;
      }
    }
    return -1;
  }

  /** The earliest time (ms) any of the first `usable` lanes frees for a comment of `width`. */
  nextFree(now, width, stageWidth, duration, usable = this.lanes.length) {
    const speed = (stageWidth + width) / duration;
    let best = Infinity;
    for (let i = 0; i < Math.min(usable, this.lanes.length); i++) {
      const last = this.lanes[i];
      if (!last) return now;
      const tailIn = last.start + (last.width + GAP_PX) / last.speed;
      const noCatch = last.end - stageWidth / speed;
      best = Math.min(best, Math.max(now, tailIn, noCatch));
    }
    return best;
  }
}

/** Whether a comment moving at `speed` may enter a lane whose last comment is `last`. */
export function laneFree(last, now, stageWidth, speed) {
  if (!last) return true;
  // (1) the last comment's tail and the gap behind it are on the stage
  if (now < last.start + (last.width + GAP_PX) / last.speed) return false;
  // (2) it leaves the stage before the new comment's head reaches the left edge
  return now + stageWidth / speed >= last.end;
}

/** Lanes of fixed comments (top or bottom), each shown for a while in place. */
export class FixedLanes {
  constructor(count) {
    this.until = new Array(Math.max(0, count)).fill(0);
  }

  resize(count) {
    const next = new Array(Math.max(0, count)).fill(0);
    for (let i = 0; i < Math.min(next.length, this.until.length); i++) next[i] = this.until[i];
    this.until = next;
  }

  clear() {
    this.until.fill(0);
  }

  /**
   * The first lane free at `now` among the first `usable` (and not refused by `skip(i)`), taken
   * for `duration` ms; or -1.
   */
  place(now, duration, usable = this.until.length, skip = null) {
    const n = Math.min(usable, this.until.length);
    for (let i = 0; i < n; i++) {
      if (skip && skip(i)) continue;
      if (this.until[i] <= now) {
        this.until[i] = now + duration;
        return i;
      }
    }
    return -1;
  }
}

/** How many of `count` lanes a density in (0, 1] allows (at least one). */
export function usableLanes(count, density) {
  if (!(density > 0)) return 0;
  return Math.max(1, Math.min(count, Math.ceil(count * density)));
}

/**
 * Scrolling, top and bottom comments on one stage of `rows` rows. Top lanes count rows from the
 * top, bottom lanes from the bottom, scrolling lanes from the top. A row showing a fixed comment
 * takes no new scrolling comment, and a fixed comment (centred) takes a row only once the row's
 * scrolling comments have all passed its left edge, so the kinds never overlap either.
 */
export class LanePlanner {
  constructor(rows) {
    this.scroll = new ScrollLanes(rows);
    this.top = new FixedLanes(rows);
    this.bottom = new FixedLanes(rows);
  }

  get rows() {
    return this.scroll.lanes.length;
  }

  resize(rows) {
    this.scroll.resize(rows);
    this.top.resize(rows);
    this.bottom.resize(rows);
  }

  clear() {
    this.scroll.clear();
    this.top.clear();
    this.bottom.clear();
  }

  /** Whether a fixed comment shows in `row` (from the top) at `now`. */
  fixedIn(row, now) {
    const n = this.rows;
    return this.top.until[row] > now || this.bottom.until[n - 1 - row] > now;
  }

  /** Whether every scrolling comment in `row` is left of x = `left` at `now`. */
  scrollPassed(row, now, stageWidth, left) {
    const last = this.scroll.lanes[row];
    if (!last) return true;
    const tail = stageWidth - last.speed * (now - last.start) + last.width;
    return tail <= left;
  }

  /** A row for a scrolling comment (see ScrollLanes.place), or -1. */
  placeScroll(now, width, stageWidth, duration, usable = this.rows) {
    return this.scroll.place(now, width, stageWidth, duration, usable, (i) => this.fixedIn(i, now));
  }

  /**
   * A row (from the top) for a `top` or `bottom` comment `width` px wide shown centred for
   * `duration` ms, or -1.
   */
  placeFixed(kind, now, width, stageWidth, duration, usable = this.rows) {
    const n = this.rows;
    const left = (stageWidth - width) / 2;
    const lanes = kind === 'bottom' ? this.bottom : this.top;
    const rowOf = (i) => (kind === 'bottom' ? n - 1 - i : i);
    const lane = lanes.place(now, duration, usable, (i) => {
      const row = rowOf(i);
      const other = kind === 'bottom' ? this.top.until[row] : this.bottom.until[n - 1 - row];
      return other > now || !this.scrollPassed(row, now, stageWidth, left);
    });
    return lane < 0 ? -1 : rowOf(lane);
  }
}
