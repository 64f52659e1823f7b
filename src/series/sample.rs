//! One room's second on one node ([`Sample`]), made from the running totals the chat and
//! ingest keep ([`Totals`], [`Gauges`]) by taking differences ([`Sample::between`]), and how
//! the samples of several nodes add up ([`Sample::merge`]). Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A room's counters as they stand (they only grow, except when the room's task restarts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub received: u64,
    pub accepted: u64,
    pub delivered: u64,
    pub gifts: u64,
    /// Refused sends by reason.
    pub refused: BTreeMap<String, u64>,
}

/// What is read as it stands each second, not differenced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gauges {
    /// Viewers on this node.
    pub online: u64,
    /// Ingest bitrate (kbit/s), on the node taking the broadcast in.
    pub ingest_kbps: Option<f64>,
    /// Video frames per second received.
    pub fps: Option<f64>,
    /// The latest segment's delay from its closing keyframe to its playlist (ms).
    pub playlist_delay_ms: Option<f64>,
}

/// One second of one room on one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub online: u64,
    /// Danmaku sends received, accepted, and refused (by reason) in this second.
    pub received: u64,
    pub accepted: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<String, u64>,
    /// Events delivered to each viewer in this second.
    pub delivered: u64,
    /// Gifts posted in this second.
    pub gifts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_kbps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playlist_delay_ms: Option<f64>,
}

/// How much a counter grew from `before` to `now`; a counter that went down started again
/// (the room's task restarted), so all of `now` is new.
fn grown(before: u64, now: u64) -> u64 {
    if now >= before {
        now - before
    } else {
        now
    }
}

impl Sample {
    /// The second between two readings of the totals (`before` None: the first reading of a
    /// room, whose counters started at zero with its task: the sampler runs from the start, so
    /// all of them are new).
    pub fn between(before: Option<&Totals>, now: &Totals, gauges: &Gauges) -> Sample {
        let mut sample = Sample {
            online: gauges.online,
            ingest_kbps: gauges.ingest_kbps,
            fps: gauges.fps,
            playlist_delay_ms: gauges.playlist_delay_ms,
            ..Sample::default()
        };
        let zero = Totals::default();
        let before = before.unwrap_or(&zero);
        sample.received = grown(before.received, now.received);
        sample.accepted = grown(before.accepted, now.accepted);
        sample.delivered = grown(before.delivered, now.delivered);
        sample.gifts = grown(before.gifts, now.gifts);
        for (reason, n) in &now.refused {
            let was = before.refused.get(reason).copied().unwrap_or(0);
            let d = grown(was, *n);
            if d > 0 {
                sample.refused.insert(reason.clone(), d);
            }
        }
        sample
    }

    /// Adds another node's second to this one. Viewers, uplink, refusals and gifts happen on
    /// each node separately and add up; every node delivers the same batches to its own
    /// viewers, so delivered per viewer is the largest any node saw; ingest figures come from
    /// the one node that takes the broadcast in (the larger, if two ever claim it).
    pub fn merge(&mut self, other: &Sample) {
        self.online += other.online;
        self.received += other.received;
        self.accepted += other.accepted;
        for (reason, n) in &other.refused {
            *self.refused.entry(reason.clone()).or_default() += n;
        }
        self.delivered = self.delivered.max(other.delivered);
        self.gifts += other.gifts;
        self.ingest_kbps = max_present(self.ingest_kbps, other.ingest_kbps);
        self.fps = max_present(self.fps, other.fps);
        self.playlist_delay_ms = max_present(self.playlist_delay_ms, other.playlist_delay_ms);
    }
}

fn max_present(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(received: u64, refused: &[(&str, u64)]) -> Totals {
        Totals {
            received,
            accepted: received / 2,
            delivered: received * 3,
            gifts: 1,
            refused: refused.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn a_second_is_the_growth_of_each_counter() {
        let before = totals(10, &[("user", 4)]);
        let now = totals(16, &[("user", 6), ("muted", 1)]);
        let g = Gauges {
            online: 5,
            ingest_kbps: Some(2500.0),
            ..Gauges::default()
        };
        let s = Sample::between(Some(&before), &now, &g);
        assert_eq!(
            (s.received, s.accepted, s.delivered, s.gifts),
            (6, 3, 18, 0)
        );
        assert_eq!(s.refused.get("user"), Some(&2));
        assert_eq!(s.refused.get("muted"), Some(&1));
        assert_eq!((s.online, s.ingest_kbps), (5, Some(2500.0)));
    }

    #[test]
    fn the_first_reading_and_a_restart_count_from_zero() {
        let now = totals(1000, &[("user", 50)]);
        let first = Sample::between(None, &now, &Gauges::default());
        assert_eq!((first.received, first.refused["user"]), (1000, 50));
        let restarted = Sample::between(Some(&now), &totals(3, &[]), &Gauges::default());
        assert_eq!(restarted.received, 3);
    }

    #[test]
    fn nodes_add_up_except_delivered_and_ingest() {
        let mut a = Sample {
            online: 3,
            received: 2,
            delivered: 7,
            refused: [("user".to_string(), 1)].into(),
            ingest_kbps: Some(3000.0),
            ..Sample::default()
        };
        let b = Sample {
            online: 4,
            received: 5,
            delivered: 7,
            gifts: 2,
            refused: [("user".to_string(), 2), ("room".to_string(), 1)].into(),
            ..Sample::default()
        };
        a.merge(&b);
        assert_eq!((a.online, a.received, a.delivered, a.gifts), (7, 7, 7, 2));
        assert_eq!(a.refused.get("user"), Some(&3));
        assert_eq!(a.refused.get("room"), Some(&1));
        assert_eq!(a.ingest_kbps, Some(3000.0));
    }
}
