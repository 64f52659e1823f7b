//! When a room's next still is due. Pure: the caller gives the time.

use std::collections::HashMap;

/// The last still taken per room, and how far apart they are taken.
#[derive(Debug)]
pub struct StillSchedule {
    every_ms: u64,
    last: HashMap<String, u64>,
}

impl StillSchedule {
    pub fn new(every_ms: u64) -> StillSchedule {
        StillSchedule {
            every_ms,
            last: HashMap::new(),
        }
    }

    /// Whether `room` gets a still at `now_ms` (its first offer always does); if so, the
    /// next one is due `every_ms` later.
    pub fn take(&mut self, room: &str, now_ms: u64) -> bool {
        match self.last.get(room) {
            Some(last) if now_ms.saturating_sub(*last) < self.every_ms => false,
            _ => {
                self.last.insert(room.to_string(), now_ms);
                true
            }
        }
    }

    /// Forgets `room` (its broadcast ended: the next one's first segment gets a still at once).
    pub fn forget(&mut self, room: &str) {
        self.last.remove(room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_offer_then_one_per_interval_per_room() {
        let mut s = StillSchedule::new(10_000);
        assert!(s.take("a", 1_000));
        assert!(s.take("b", 2_000), "rooms are independent");
        assert!(!s.take("a", 5_000));
        assert!(!s.take("a", 10_999));
        assert!(s.take("a", 11_000));
        s.forget("b");
        assert!(s.take("b", 3_000));
    }
}
