//! The last N delivered events of a room, for clients that reconnect with the last seq they
//! saw (`hello.resume_from`): they get exactly what they missed, or are told which part is
//! too old to replay.

use std::collections::VecDeque;

use super::protocol::Event;

/// What a resuming client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Nothing was missed (or the seq is from before a restart; the welcome seq tells).
    UpToDate,
    /// The missed events, oldest first, with the part no longer kept (`from..=to`) if any.
    Missed {
        gap: Option<(u64, u64)>,
        events: Vec<Event>,
    },
}

/// A ring of delivered events with contiguous seqs.
#[derive(Debug, Clone)]
pub struct History {
    events: VecDeque<Event>,
    capacity: usize,
    last_seq: u64,
}

impl History {
    /// A ring keeping `capacity` events; `last_seq` is the seq already delivered before it.
    pub fn new(capacity: usize, last_seq: u64) -> History {
        History {
            events: VecDeque::with_capacity(capacity.clamp(1, 4096)),
            capacity: capacity.max(1),
            last_seq,
        }
    }

    /// Appends a tick's events (contiguous, continuing the ring), evicting the oldest.
    pub fn push(&mut self, events: &[Event]) {
        for e in events {
            debug_assert_eq!(e.seq, self.last_seq + 1, "history seqs are contiguous");
            if self.events.len() == self.capacity {
                self.events.pop_front();
            }
            self.last_seq = e.seq;
            self.events.push_back(e.clone());
        }
    }

    /// Continues after `last_seq` (ahead of what is kept: the room went on on another node).
    /// What is kept is dropped, so a resume from before the jump is told the gap.
    pub fn skip_to(&mut self, last_seq: u64) {
        if last_seq > self.last_seq {
            self.events.clear();
            self.last_seq = last_seq;
        }
    }

    /// The seq of the newest delivered event (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The oldest seq still kept, if any.
    pub fn first_seq(&self) -> Option<u64> {
        self.events.front().map(|e| e.seq)
    }

    /// Whether `seq` was delivered (it may be too old to be kept).
    pub fn was_delivered(&self, seq: u64) -> bool {
        seq >= 1 && seq <= self.last_seq
    }

    /// The events after `seq` (the last one the client saw).
    pub fn after(&self, seq: u64) -> Resume {
        if seq >= self.last_seq {
            return Resume::UpToDate;
        }
        let wanted_from = seq + 1;
        let kept_from = self.first_seq().unwrap_or(self.last_seq + 1);
        let gap = (wanted_from < kept_from).then(|| (wanted_from, kept_from - 1));
        let skip = wanted_from.saturating_sub(kept_from) as usize;
        Resume::Missed {
            gap,
            events: self.events.iter().skip(skip).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::{Body, Moderation, Priority};

    fn events(from: u64, to: u64) -> Vec<Event> {
        (from..=to)
            .map(|seq| Event {
                seq,
                ts_ms: 0,
                stream_ms: 0,
                priority: Priority::System,
                body: Body::Moderation(Moderation { delete_seq: 0 }),
            })
            .collect()
    }

    fn seqs(r: &Resume) -> (Option<(u64, u64)>, Vec<u64>) {
        match r {
            Resume::UpToDate => (None, vec![]),
            Resume::Missed { gap, events } => (*gap, events.iter().map(|e| e.seq).collect()),
        }
    }

    #[test]
    fn resume_returns_exactly_the_missed_events_or_the_gap() {
        let mut h = History::new(5, 0);
        assert_eq!(h.after(0), Resume::UpToDate);
        h.push(&events(1, 3));
        assert_eq!(seqs(&h.after(1)), (None, vec![2, 3]));
        assert_eq!(seqs(&h.after(0)), (None, vec![1, 2, 3]));
        assert_eq!(h.after(3), Resume::UpToDate);
        assert_eq!(h.after(99), Resume::UpToDate);
        h.push(&events(4, 9));
        assert_eq!(h.first_seq(), Some(5));
        assert_eq!(seqs(&h.after(7)), (None, vec![8, 9]));
        assert_eq!(seqs(&h.after(4)), (None, vec![5, 6, 7, 8, 9]));
        assert_eq!(seqs(&h.after(1)), (Some((2, 4)), vec![5, 6, 7, 8, 9]));
        assert!(h.was_delivered(1) && h.was_delivered(9) && !h.was_delivered(10));
        assert!(!h.was_delivered(0));
    }

    #[test]
    fn a_ring_started_after_a_restart_reports_everything_older_as_a_gap() {
        let h = History::new(5, 100);
        assert_eq!(seqs(&h.after(90)), (Some((91, 100)), vec![]));
    }
}
