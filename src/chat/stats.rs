//! A room's accounting: Prometheus handles registered once per room (hot paths skip the
//! registry lookup), plain counters behind `GET /api/rooms/{room}/stats`, and per-second rates.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use metrics::{Counter, Gauge};
use serde::Serialize;

use super::codec::Format;
use super::protocol::Priority;
use super::scheduler::DropCounts;
use crate::sync::lock;

/// A room's numbers for dashboards.
#[derive(Debug, Clone, Serialize)]
pub struct RoomStats {
    pub room: String,
    pub online: u64,
    pub last_seq: u64,
    pub uplink_received_per_s: f64,
    pub uplink_accepted_per_s: f64,
    /// Events per second delivered to each viewer.
    pub delivered_per_s: f64,
    pub uplink_received_total: u64,
    pub uplink_accepted_total: u64,
    pub delivered_total: u64,
    /// Gifts posted to the room on this node (for the per-second series).
    #[serde(default)]
    pub gifts_total: u64,
    /// Refused sends by reason (`user`, `room`, `node`, `connection`, `muted`, ...).
    pub refused: BTreeMap<String, u64>,
    /// Scheduler drops by reason (`overflow`, `stale`).
    pub dropped: BTreeMap<String, u64>,
    /// Scheduler drops by queue and reason.
    pub dropped_by_queue: BTreeMap<String, BTreeMap<String, u64>>,
    /// Items waiting per queue.
    pub queues: BTreeMap<String, usize>,
    pub slow_socket_skips: u64,
    pub slow_socket_closes: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Rates {
    at: Option<Instant>,
    received: u64,
    accepted: u64,
    delivered: u64,
    received_per_s: f64,
    accepted_per_s: f64,
    delivered_per_s: f64,
}

/// Counters and metric handles of one room.
#[derive(Debug)]
pub(crate) struct RoomAccounting {
    room: String,
    received: AtomicU64,
    accepted: AtomicU64,
    delivered: AtomicU64,
    gifts: AtomicU64,
    slow_skips: AtomicU64,
    slow_closes: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Refreshed once a second by the room task.
    rates: Mutex<Rates>,
    m_online: Gauge,
    m_received: Counter,
    m_accepted: Counter,
    m_batches: Counter,
    m_batch_events: Counter,
    m_delivered_events: Counter,
    m_delivered_bytes: [Counter; 2],
    m_queue_len: [Gauge; 4],
    m_stale: [Counter; 4],
    m_overflow: [Counter; 4],
}

impl RoomAccounting {
    pub(crate) fn new(room: &str) -> RoomAccounting {
        let r = room.to_string();
        let dropped = |reason: &'static str| {
            Priority::ALL.map(|p| {
                metrics::counter!("barrage_chat_dropped_total", "room" => r.clone(), "queue" => p.as_str(), "reason" => reason)
            })
        };
        RoomAccounting {
            received: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            gifts: AtomicU64::new(0),
            slow_skips: AtomicU64::new(0),
            slow_closes: AtomicU64::new(0),
            refused: Mutex::default(),
            rates: Mutex::default(),
            m_online: metrics::gauge!("barrage_chat_online", "room" => r.clone()),
            m_received: metrics::counter!("barrage_chat_uplink_received_total", "room" => r.clone()),
            m_accepted: metrics::counter!("barrage_chat_uplink_accepted_total", "room" => r.clone()),
            m_batches: metrics::counter!("barrage_chat_batches_total", "room" => r.clone()),
            m_batch_events: metrics::counter!("barrage_chat_batch_events_total", "room" => r.clone()),
            m_delivered_events: metrics::counter!("barrage_chat_delivered_events_total", "room" => r.clone()),
            m_delivered_bytes: [Format::Json, Format::Proto].map(|f| {
                metrics::counter!("barrage_chat_delivered_bytes_total", "room" => r.clone(), "format" => f.as_str())
            }),
            m_queue_len: Priority::ALL.map(|p| {
                metrics::gauge!("barrage_chat_queue_length", "room" => r.clone(), "queue" => p.as_str())
            }),
            m_stale: dropped("stale"),
            m_overflow: dropped("overflow"),
            room: r,
        }
    }

    pub(crate) fn online(&self, n: u64) {
        self.m_online.set(n as f64);
    }

    pub(crate) fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.m_received.increment(1);
    }

    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.m_accepted.increment(1);
    }

    pub(crate) fn gift(&self) {
        self.gifts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn refused(&self, reason: &'static str) {
        *lock(&self.refused).entry(reason).or_default() += 1;
        metrics::counter!("barrage_chat_uplink_refused_total", "room" => self.room.clone(), "reason" => reason)
            .increment(1);
    }

    pub(crate) fn overflow(&self, queue: Priority) {
        self.m_overflow[queue.index()].increment(1);
    }

    /// Queue lengths after a tick and what it dropped as stale.
    pub(crate) fn queues(&self, lens: [usize; 4], stale: [u64; 4]) {
        for p in Priority::ALL {
            let i = p.index();
            self.m_queue_len[i].set(lens[i] as f64);
            if stale[i] > 0 {
                self.m_stale[i].increment(stale[i]);
            }
        }
    }

    /// A batch of `events` fanned out to `members` sockets per format (json, proto), `bytes`
    /// long in each format.
    pub(crate) fn delivered(&self, events: u64, bytes: [usize; 2], members: [u64; 2]) {
        self.delivered.fetch_add(events, Ordering::Relaxed);
        self.m_batches.increment(1);
        self.m_batch_events.increment(events);
        self.m_delivered_events
            .increment(events * (members[0] + members[1]));
        for (i, len) in bytes.into_iter().enumerate() {
            self.m_delivered_bytes[i].increment(len as u64 * members[i]);
        }
    }

    pub(crate) fn slow_socket(&self, closed: bool) {
        let (counter, action) = if closed {
            (&self.slow_closes, "close")
        } else {
            (&self.slow_skips, "skip")
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("barrage_chat_slow_sockets_total", "room" => self.room.clone(), "action" => action)
            .increment(1);
    }

    /// Recomputes the per-second rates from the counters (called once a second).
    pub(crate) fn refresh_rates(&self) {
        let now = Instant::now();
        let received = self.received.load(Ordering::Relaxed);
        let accepted = self.accepted.load(Ordering::Relaxed);
        let delivered = self.delivered.load(Ordering::Relaxed);
        let mut r = lock(&self.rates);
        if let Some(at) = r.at {
            let secs = now.duration_since(at).as_secs_f64().max(1e-3);
            r.received_per_s = (received - r.received) as f64 / secs;
            r.accepted_per_s = (accepted - r.accepted) as f64 / secs;
            r.delivered_per_s = (delivered - r.delivered) as f64 / secs;
        }
        *r = Rates {
            at: Some(now),
            received,
            accepted,
            delivered,
            ..*r
        };
    }

    pub(crate) fn stats(
        &self,
        room: &str,
        online: u64,
        last_seq: u64,
        lens: [usize; 4],
        drops: [DropCounts; 4],
    ) -> RoomStats {
        let rates = *lock(&self.rates);
        let mut dropped = BTreeMap::new();
        let mut dropped_by_queue = BTreeMap::new();
        for p in Priority::ALL {
            let d = drops[p.index()];
            *dropped.entry("overflow".to_string()).or_default() += d.overflow;
            *dropped.entry("stale".to_string()).or_default() += d.stale;
            dropped_by_queue.insert(
                p.as_str().to_string(),
                BTreeMap::from([
                    ("overflow".to_string(), d.overflow),
                    ("stale".to_string(), d.stale),
                ]),
            );
        }
        RoomStats {
            room: room.to_string(),
            online,
            last_seq,
            uplink_received_per_s: rates.received_per_s,
            uplink_accepted_per_s: rates.accepted_per_s,
            delivered_per_s: rates.delivered_per_s,
            uplink_received_total: self.received.load(Ordering::Relaxed),
            uplink_accepted_total: self.accepted.load(Ordering::Relaxed),
            delivered_total: self.delivered.load(Ordering::Relaxed),
            gifts_total: self.gifts.load(Ordering::Relaxed),
            refused: lock(&self.refused)
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            dropped,
            dropped_by_queue,
            queues: Priority::ALL
                .iter()
                .map(|p| (p.as_str().to_string(), lens[p.index()]))
                .collect(),
            slow_socket_skips: self.slow_skips.load(Ordering::Relaxed),
            slow_socket_closes: self.slow_closes.load(Ordering::Relaxed),
        }
    }
}
