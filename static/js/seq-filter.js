// Remembers which event seqs were shown, so that switching between the WebSocket and the CDN
// files, or a resume that overlaps, never shows an event twice (pure; tested in node).

export class SeqFilter {
  /** @param {number} capacity how many recent seqs to remember */
  constructor(capacity = 5000) {
    this.capacity = capacity;
    this.seen = new Set();
    this.order = [];
    this.maxSeq = 0;
  }

  /** True the first time a seq is offered; false for a repeat. */
  admit(seq) {
    if (!Number.isInteger(seq) || seq <= 0) return true;
    if (this.seen.has(seq)) return false;
    // Older than anything remembered: it was seen (and forgotten) or skipped long ago.
    if (this.order.length >= this.capacity && seq < this.order[0]) return false;
    this.seen.add(seq);
    this.order.push(seq);
    if (seq > this.maxSeq) this.maxSeq = seq;
    if (this.order.length > this.capacity) {
      this.order.sort((a, b) => a - b);
      while (this.order.length > this.capacity) this.seen.delete(this.order.shift());
    }
    return true;
  }

  /** Forgets everything (a replay seek starts over). */
  clear() {
    this.seen.clear();
    this.order = [];
    this.maxSeq = 0;
  }
}
