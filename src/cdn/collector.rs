//! Pure period logic of one room's CDN stream: gathers delivered events, cuts one file per
//! period with contiguous seq ranges, follows sessions, and bounds what waits for the store.

use std::collections::VecDeque;

use serde_json::value::RawValue;

use super::files::{BatchFile, CdnEvent};

/// A cut file as the collector keeps it until written: each event its encoded JSON.
pub type PendingFile = BatchFile<Box<RawValue>>;

/// One room's file sequence and the files not yet written.
#[derive(Debug)]
pub struct PeriodCollector {
    room: String,
    session: String,
    /// Number of the next file to cut.
    next_n: u64,
    /// Seq the next file starts at.
    next_seq: u64,
    period_start_ms: i64,
    current: Vec<CdnEvent>,
    /// Cut but not yet written, oldest first.
    pending: VecDeque<PendingFile>,
    max_pending: usize,
    /// Periods folded into the newest pending file because `pending` was full.
    pub merged_periods: u64,
    /// No more periods will be cut (the session ended); pending files still get written.
    closed: bool,
}

impl PeriodCollector {
    /// A new session whose first file is 1 and whose first seq is `first_seq`.
    pub fn new(room: &str, session: &str, first_seq: u64, now_ms: i64, max_pending: usize) -> Self {
        PeriodCollector {
            room: room.to_string(),
            session: session.to_string(),
            next_n: 1,
            next_seq: first_seq,
            period_start_ms: now_ms,
            current: Vec::new(),
            pending: VecDeque::new(),
            // At least 2, so a fold never touches the front file, which may be mid-upload.
            max_pending: max_pending.max(2),
            merged_periods: 0,
            closed: false,
        }
    }

    /// Numbers the first file `n` instead of 1 (a session another node began).
    pub fn starting_at_file(mut self, n: u64) -> Self {
        self.next_n = n.max(1);
        self
    }

    /// Ends the session: no more cuts; what is pending is still written.
    pub fn close(&mut self) {
        self.closed = true;
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    /// The last file number cut so far (0 before the first).
    pub fn last_n(&self) -> u64 {
        self.next_n - 1
    }

    /// Adds delivered events (in seq order). Events older than the file sequence (a replay)
    /// are ignored; a jump forward is accepted, so the file range always matches its events.
    pub fn push(&mut self, events: impl IntoIterator<Item = CdnEvent>) {
        for event in events {
            let expected = self
                .current
                .last()
                .map(|e| e.seq + 1)
                .unwrap_or(self.next_seq);
            if event.seq < expected {
                continue;
            }
            self.current.push(event);
        }
    }

    /// Ends the period at `now_ms`: cuts file `n` (empty if no events) and queues it. When the
    /// queue is full (store down for long), the period is folded into the newest pending file
    /// instead, so nothing is lost and memory stays bounded by the events themselves.
    pub fn cut(&mut self, now_ms: i64) {
        let events = std::mem::take(&mut self.current);
        let from_seq = self.next_seq;
        let to_seq = events
            .last()
            .map(|e| e.seq)
            .unwrap_or(from_seq.saturating_sub(1));
        let start_ms = self.period_start_ms;
        self.period_start_ms = now_ms;
        let json: Vec<Box<RawValue>> = events.into_iter().map(|e| e.json).collect();
        if self.pending.len() >= self.max_pending && self.pending.len() >= 2 {
            if let Some(last) = self.pending.back_mut() {
                if !json.is_empty() {
                    last.to_seq = to_seq;
                }
                last.end_ms = now_ms;
                last.events.extend(json);
                self.next_seq = last.to_seq + 1;
                self.merged_periods += 1;
                return;
            }
        }
        let file = BatchFile {
            room: self.room.clone(),
            session: self.session.clone(),
            n: self.next_n,
            from_seq,
            to_seq,
            start_ms,
            end_ms: now_ms,
            events: json,
        };
        self.next_n += 1;
        self.next_seq = to_seq + 1;
        self.pending.push_back(file);
    }

    /// The oldest file waiting to be written.
    pub fn front(&self) -> Option<&PendingFile> {
        self.pending.front()
    }

    /// Marks the oldest pending file written. The front is never changed by a fold, so the
    /// file handed out by [`front`](Self::front) is the one removed here.
    pub fn written(&mut self) -> Option<PendingFile> {
        self.pending.pop_front()
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether events wait in the current period.
    pub fn has_current_events(&self) -> bool {
        !self.current.is_empty()
    }

    /// The seq the next session should start at (after everything pushed so far).
    pub fn next_seq(&self) -> u64 {
        self.current
            .last()
            .map(|e| e.seq + 1)
            .unwrap_or(self.next_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(seq: u64) -> CdnEvent {
        CdnEvent {
            seq,
            ts_ms: seq as i64,
            stream_ms: seq,
            json: serde_json::value::to_raw_value(&serde_json::json!({ "seq": seq })).unwrap(),
        }
    }

    #[test]
    fn files_are_contiguous_and_empty_periods_keep_the_sequence() {
        let mut c = PeriodCollector::new("r", "s", 1, 0, 10);
        c.push([ev(1), ev(2)]);
        c.cut(1000);
        c.cut(2000);
        c.push([ev(3)]);
        c.cut(3000);
        let files: Vec<PendingFile> = std::iter::from_fn(|| c.written()).collect();
        let ranges: Vec<(u64, u64, u64)> =
            files.iter().map(|f| (f.n, f.from_seq, f.to_seq)).collect();
        assert_eq!(ranges, vec![(1, 1, 2), (2, 3, 2), (3, 3, 3)]);
        assert_eq!(files[1].events.len(), 0);
        assert_eq!((files[2].start_ms, files[2].end_ms), (2000, 3000));
    }

    #[test]
    fn a_full_queue_folds_periods_instead_of_losing_them() {
        let mut c = PeriodCollector::new("r", "s", 1, 0, 2);
        for i in 0..5u64 {
            c.push([ev(i + 1)]);
            c.cut((i as i64 + 1) * 1000);
        }
        assert_eq!(c.pending_len(), 2);
        assert_eq!(c.merged_periods, 3);
        let a = c.written().unwrap();
        let b = c.written().unwrap();
        assert_eq!((a.from_seq, a.to_seq, b.from_seq, b.to_seq), (1, 1, 2, 5));
        assert_eq!(b.events.len(), 4);
    }

    proptest! {
        /// Whatever the mix of events, cuts and writes, the written files cover every pushed
        /// seq exactly once, in order, with contiguous ranges and numbers.
        #[test]
        fn every_seq_lands_in_exactly_one_file(
            steps in proptest::collection::vec((0u8..4, 0usize..5), 1..60),
            max_pending in 1usize..5,
        ) {
            let mut c = PeriodCollector::new("r", "s", 10, 0, max_pending);
            let mut next = 10u64;
            let mut written = Vec::new();
            for (i, (kind, count)) in steps.into_iter().enumerate() {
                match kind {
                    0 | 1 => { c.push((0..count).map(|_| { next += 1; ev(next - 1) })); }
                    2 => c.cut(i as i64),
                    _ => { if let Some(f) = c.written() { written.push(f); } }
                }
            }
            c.cut(10_000);
            while let Some(f) = c.written() { written.push(f); }
            let mut expect_seq = 10u64;
            for (i, f) in written.iter().enumerate() {
                prop_assert_eq!(f.n, i as u64 + 1);
                prop_assert_eq!(f.from_seq, expect_seq);
                for (k, e) in f.events.iter().enumerate() {
                    let e: serde_json::Value = serde_json::from_str(e.get()).unwrap();
                    prop_assert_eq!(e["seq"].as_u64(), Some(f.from_seq + k as u64));
                }
                prop_assert_eq!(f.to_seq + 1, f.from_seq + f.events.len() as u64);
                expect_seq = f.to_seq + 1;
            }
            prop_assert_eq!(expect_seq, next);
        }
    }
}
