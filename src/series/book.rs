//! [`SeriesBook`]: every room's recent seconds on this node, the other nodes' seconds as their
//! reports bring them, and the answer of `GET /api/rooms/{room}/series` summing both. No clock
//! and no I/O: the sampler and the cluster say which second it is.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Serialize;

use super::ring::SecondRing;
use super::sample::{Gauges, Sample, Totals};
use crate::sync::lock;

/// Seconds kept per room and node: ten minutes.
pub const SERIES_SECONDS: usize = 600;

/// One room on this node: its seconds, and the totals of the last reading.
#[derive(Debug)]
struct LocalLine {
    ring: SecondRing<Sample>,
    last: Option<Totals>,
}

/// The per-second series of every room (see the module doc).
#[derive(Debug, Default)]
pub struct SeriesBook {
    local: Mutex<HashMap<String, LocalLine>>,
    /// (node, room) -> that node's seconds of the room.
    remote: Mutex<HashMap<(String, String), SecondRing<Sample>>>,
}

/// A room's series, one column per figure, one row per second from `from_s` to `to_s`; `null`
/// where no node had a sample (a gap), or, for the ingest columns, where nothing was live.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesAnswer {
    pub room: String,
    /// Unix seconds of the first and last row.
    pub from_s: u64,
    pub to_s: u64,
    pub online: Vec<Option<u64>>,
    pub received: Vec<Option<u64>>,
    pub accepted: Vec<Option<u64>>,
    /// Refused sends per reason (only reasons that happened in the window).
    pub refused: BTreeMap<String, Vec<Option<u64>>>,
    pub delivered: Vec<Option<u64>>,
    pub gifts: Vec<Option<u64>>,
    pub ingest_kbps: Vec<Option<f64>>,
    pub fps: Vec<Option<f64>>,
    pub playlist_delay_ms: Vec<Option<f64>>,
}

impl SeriesBook {
    pub fn new() -> SeriesBook {
        SeriesBook::default()
    }

    /// Records this node's `second` of `room` from its totals and gauges as they stand.
    pub fn record(&self, room: &str, second: u64, totals: Totals, gauges: &Gauges) {
        let mut local = lock(&self.local);
        let line = local.entry(room.to_string()).or_insert_with(|| LocalLine {
            ring: SecondRing::new(SERIES_SECONDS),
            last: None,
        });
        let sample = Sample::between(line.last.as_ref(), &totals, gauges);
        line.ring.put(second, sample);
        line.last = Some(totals);
    }

    /// Forgets the rooms not in `keep` whose newest second is older than the window (a room
    /// no longer sampled, e.g. its task ended).
    pub fn forget_stale(&self, now_s: u64) {
        let oldest = now_s.saturating_sub(SERIES_SECONDS as u64);
        lock(&self.local).retain(|_, l| l.ring.newest().is_some_and(|n| n >= oldest));
        lock(&self.remote).retain(|_, r| r.newest().is_some_and(|n| n >= oldest));
    }

    /// This node's seconds from `from_s` on, per room: what its cluster report carries.
    pub fn recent(&self, from_s: u64, to_s: u64) -> BTreeMap<String, Vec<(u64, Sample)>> {
        lock(&self.local)
            .iter()
            .map(|(room, line)| {
                let points = line
                    .ring
                    .held(from_s, to_s)
                    .map(|(s, v)| (s, v.clone()))
                    .collect::<Vec<_>>();
                (room.clone(), points)
            })
            .filter(|(_, points)| !points.is_empty())
            .collect()
    }

    /// Keeps seconds another node reported (a report read twice changes nothing).
    pub fn merge_remote(&self, node: &str, room: &str, points: &[(u64, Sample)]) {
        let mut remote = lock(&self.remote);
        let ring = remote
            .entry((node.to_string(), room.to_string()))
            .or_insert_with(|| SecondRing::new(SERIES_SECONDS));
        for (second, sample) in points {
            ring.put(*second, sample.clone());
        }
    }

    /// The last `seconds` (1 to [`SERIES_SECONDS`]) of `room` up to `now_s`, every node summed.
    pub fn answer(&self, room: &str, seconds: usize, now_s: u64) -> SeriesAnswer {
        let seconds = seconds.clamp(1, SERIES_SECONDS) as u64;
        let from_s = now_s + 1 - seconds.min(now_s + 1);
        let mut rows: Vec<Option<Sample>> = vec![None; (now_s - from_s + 1) as usize];
        let mut add = |ring: &SecondRing<Sample>| {
            for (s, sample) in ring.held(from_s, now_s) {
                let row = &mut rows[(s - from_s) as usize];
                match row {
                    Some(sum) => sum.merge(sample),
                    None => *row = Some(sample.clone()),
                }
            }
        };
        if let Some(line) = lock(&self.local).get(room) {
            add(&line.ring);
        }
        for ((_, r), ring) in lock(&self.remote).iter() {
            if r == room {
                add(ring);
            }
        }
        columns(room, from_s, now_s, &rows)
    }
}

fn columns(room: &str, from_s: u64, to_s: u64, rows: &[Option<Sample>]) -> SeriesAnswer {
    let col = |f: fn(&Sample) -> u64| rows.iter().map(|r| r.as_ref().map(f)).collect();
    let gauge =
        |f: fn(&Sample) -> Option<f64>| rows.iter().map(|r| r.as_ref().and_then(f)).collect();
    let mut refused: BTreeMap<String, Vec<Option<u64>>> = BTreeMap::new();
    for reason in rows.iter().flatten().flat_map(|s| s.refused.keys()) {
        if refused.contains_key(reason) {
            continue;
        }
        let column = rows
            .iter()
            .map(|r| {
                r.as_ref()
                    .map(|s| s.refused.get(reason).copied().unwrap_or(0))
            })
            .collect();
        refused.insert(reason.clone(), column);
    }
    SeriesAnswer {
        room: room.to_string(),
        from_s,
        to_s,
        online: col(|s| s.online),
        received: col(|s| s.received),
        accepted: col(|s| s.accepted),
        refused,
        delivered: col(|s| s.delivered),
        gifts: col(|s| s.gifts),
        ingest_kbps: gauge(|s| s.ingest_kbps),
        fps: gauge(|s| s.fps),
        playlist_delay_ms: gauge(|s| s.playlist_delay_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(received: u64) -> Totals {
        Totals {
            received,
            refused: [("user".to_string(), received / 4)].into(),
            ..Totals::default()
        }
    }

    fn online(n: u64) -> Gauges {
        Gauges {
            online: n,
            ..Gauges::default()
        }
    }

    #[test]
    fn a_room_answers_its_seconds_with_gaps_as_null() {
        let book = SeriesBook::new();
        book.record("r", 100, totals(4), &online(1));
        book.record("r", 101, totals(8), &online(2));
        book.record("r", 103, totals(12), &online(3));
        let a = book.answer("r", 5, 103);
        assert_eq!((a.from_s, a.to_s), (99, 103));
        assert_eq!(a.online, vec![None, Some(1), Some(2), None, Some(3)]);
        assert_eq!(a.received, vec![None, Some(4), Some(4), None, Some(4)]);
        assert_eq!(
            a.refused["user"],
            vec![None, Some(1), Some(1), None, Some(1)]
        );
        assert!(a.fps.iter().all(Option::is_none));
    }

    #[test]
    fn other_nodes_add_up_by_second_and_a_report_read_twice_counts_once() {
        let book = SeriesBook::new();
        book.record("r", 10, totals(0), &online(2));
        book.record("r", 11, totals(4), &online(2));
        let theirs = vec![(
            11,
            Sample {
                online: 5,
                received: 6,
                ..Sample::default()
            },
        )];
        book.merge_remote("b", "r", &theirs);
        book.merge_remote("b", "r", &theirs);
        book.merge_remote("b", "other-room", &theirs);
        let a = book.answer("r", 2, 11);
        assert_eq!(a.online, vec![Some(2), Some(7)]);
        assert_eq!(a.received, vec![Some(0), Some(10)]);
    }

    #[test]
    fn recent_gives_what_a_report_carries_and_old_rooms_are_forgotten() {
        let book = SeriesBook::new();
        book.record("a", 1000, totals(0), &online(1));
        book.record("a", 1001, totals(1), &online(1));
        book.record("b", 10, totals(0), &online(1));
        let recent = book.recent(1000, 1001);
        assert_eq!(recent.len(), 1);
        assert_eq!(recent["a"].len(), 2);
        book.forget_stale(1001);
        assert_eq!(
            book.answer("b", 600, 1001).online.iter().flatten().count(),
            0
        );
        assert_eq!(
            book.answer("a", 600, 1001).online.iter().flatten().count(),
            2
        );
    }

    #[test]
    fn the_window_is_bounded_and_starts_no_earlier_than_zero() {
        let book = SeriesBook::new();
        assert_eq!(
            book.answer("r", 100_000, 5_000).online.len(),
            SERIES_SECONDS
        );
        assert_eq!(book.answer("r", 0, 5_000).online.len(), 1);
        let a = book.answer("r", 600, 3);
        assert_eq!((a.from_s, a.online.len()), (0, 4));
    }
}
