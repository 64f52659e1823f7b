// The sync gate: holds a live comment until the local player's picture reaches the moment it
// was typed at (its stream_ms), so comments run with the video they talk about instead of
// seconds ahead of it. Pure (no DOM, no clock; positions come from the caller), tested in node.
//
// What is not held: gifts, system and moderation events (not about a moment of the picture),
// the viewer's own comments (the sender sees theirs at once), comments whose moment the player
// has passed, comments without a usable stream_ms, anything while the player's position is
// unknown, and comments further ahead than `maxHoldMs` (a clock gone wrong must never hide
// chat).

/** Default of the farthest ahead a comment is held (ms): chat.max_position_lag_ms's default. */
export const MAX_HOLD_MS = 60000;
/** Comments held at most; past it the earliest is released at once. */
export const MAX_HELD = 2000;

export class SyncGate {
  /** @param {object} opts maxHoldMs, maxHeld */
  constructor({ maxHoldMs = MAX_HOLD_MS, maxHeld = MAX_HELD } = {}) {
    this.maxHoldMs = maxHoldMs;
    this.maxHeld = maxHeld;
    /** Held events, ordered by stream_ms then seq. */
    this.held = [];
  }

  /** Number of held comments. */
  get size() {
    return this.held.length;
  }

  /**
   * Offers a received event at player position `positionMs` (null: unknown). Returns the
   * events to show now: `[event]` when it is not held, `[]` when held, and the earliest held
   * event when holding one more would pass `maxHeld`.
   * @param {object} event a wire event
   * @param {number|null} positionMs
   * @param {boolean} own whether the viewer sent it
   */
  offer(event, positionMs, own = false) {
    if (!this.holds(event, positionMs, own)) return [event];
    let at = this.held.length;
    while (at > 0 && later(this.held[at - 1], event)) at--;
    this.held.splice(at, 0, event);
    return this.held.length > this.maxHeld ? this.held.splice(0, 1) : [];
  }

  /** Whether `event` waits for the picture (see the module comment). */
  holds(event, positionMs, own) {
    if (!event || !event.danmaku || own) return false;
    if (!Number.isFinite(positionMs) || !Number.isFinite(event.stream_ms)) return false;
    const ahead = event.stream_ms - positionMs;
    return ahead > 0 && ahead <= this.maxHoldMs;
  }

  /**
   * The held events due at `positionMs`, in stream order: those the picture reached, and
   * (the position being unknown, or jumped back by more than `maxHoldMs`, as when a new
   * broadcast starts) every one that would no longer be held.
   */
  due(positionMs) {
    if (!this.held.length) return [];
    if (!Number.isFinite(positionMs)) return this.held.splice(0);
    const out = [];
    const keep = [];
    for (const e of this.held) {
      if (e.stream_ms - positionMs > 0 && e.stream_ms - positionMs <= this.maxHoldMs) keep.push(e);
      else out.push(e);
    }
    this.held = keep;
    return out;
  }

  /** Drops a held event (a moderator deleted it); true if it was held. */
  remove(seq) {
    const i = this.held.findIndex((e) => e.seq === seq);
    if (i < 0) return false;
    this.held.splice(i, 1);
    return true;
  }

  /** Forgets every held event. */
  clear() {
    this.held = [];
  }
}

function later(a, b) {
  return a.stream_ms > b.stream_ms || (a.stream_ms === b.stream_ms && a.seq > b.seq);
}
