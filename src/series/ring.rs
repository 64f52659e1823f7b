//! [`SecondRing`]: the last N seconds of one per-second value, keyed by unix second. Pure: the
//! caller says which second it is, so tests need no clock.
//!
//! A value lands in slot `second % N`; a slot remembers its second, so a read of a second the
//! ring has not seen (or has overwritten) answers `None` rather than an old value, and a late
//! write for a second older than what the slot holds is ignored.

/// A fixed window of per-second values.
#[derive(Debug, Clone)]
pub struct SecondRing<T> {
    slots: Vec<Option<(u64, T)>>,
    /// The newest second put.
    newest: Option<u64>,
}

impl<T> SecondRing<T> {
    /// A ring holding the last `seconds` seconds (at least one).
    pub fn new(seconds: usize) -> SecondRing<T> {
        let mut slots = Vec::new();
        slots.resize_with(seconds.max(1), || None);
        SecondRing {
            slots,
            newest: None,
        }
    }

    /// How many seconds the ring holds.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn slot(&self, second: u64) -> usize {
        (second % self.slots.len() as u64) as usize
    }

    /// Stores `value` for `second`, replacing what that second had. A second older than the
    /// window (its slot already holds a newer one) is ignored.
    pub fn put(&mut self, second: u64, value: T) {
        let i = self.slot(second);
        if let Some((held, _)) = &self.slots[i] {
            if *held > second {
                return;
            }
        }
        self.slots[i] = Some((second, value));
        self.newest = Some(self.newest.map_or(second, |n| n.max(second)));
    }

    /// The value of `second`, if the ring still holds it.
    pub fn get(&self, second: u64) -> Option<&T> {
        match &self.slots[self.slot(second)] {
            Some((held, value)) if *held == second => Some(value),
            _ => None,
        }
    }

    /// The newest second put, if any.
    pub fn newest(&self) -> Option<u64> {
        self.newest
    }

    /// Every held value from `from` to `to` (inclusive), oldest first, with its second.
    pub fn held(&self, from: u64, to: u64) -> impl Iterator<Item = (u64, &T)> + '_ {
        let from = from.max(to.saturating_sub(self.slots.len() as u64 - 1));
        (from..=to).filter_map(move |s| self.get(s).map(|v| (s, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_n_seconds() {
        let mut ring = SecondRing::new(3);
        for s in 100..106 {
            ring.put(s, s * 10);
        }
        assert_eq!(ring.get(102), None, "overwritten by 105");
        assert_eq!(ring.get(103), Some(&1030));
        assert_eq!(ring.get(105), Some(&1050));
        assert_eq!(ring.newest(), Some(105));
        let held: Vec<_> = ring.held(0, 105).map(|(s, v)| (s, *v)).collect();
        assert_eq!(held, vec![(103, 1030), (104, 1040), (105, 1050)]);
    }

    #[test]
    fn a_second_never_put_reads_as_none() {
        let mut ring = SecondRing::new(10);
        ring.put(50, "a");
        ring.put(52, "c");
        assert_eq!(ring.get(51), None);
        assert_eq!(ring.get(60), None, "same slot as 50, other second");
        let held: Vec<_> = ring.held(49, 53).map(|(s, _)| s).collect();
        assert_eq!(held, vec![50, 52]);
    }

    #[test]
    fn a_late_write_for_an_overwritten_second_is_ignored() {
        let mut ring = SecondRing::new(2);
        ring.put(11, 'b');
        ring.put(9, 'x');
        assert_eq!(ring.get(11), Some(&'b'));
        assert_eq!(ring.get(9), None);
        // The same second again replaces its value (a report read twice is idempotent).
        ring.put(11, 'c');
        assert_eq!(ring.get(11), Some(&'c'));
    }

    #[test]
    fn zero_capacity_still_holds_one_second() {
        let mut ring = SecondRing::new(0);
        assert_eq!(ring.capacity(), 1);
        ring.put(7, ());
        assert!(ring.get(7).is_some());
    }
}
