//! One room on tokio: its priority queues and the task that ticks them, the content the API
//! posts (gifts, system messages, deletions), and the room's numbers. What a tick delivers
//! goes out through the room's [`Fanout`]; what a socket sends comes in through
//! `super::uplink`. The task ends when the room closes or the engine stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::codec::Format;
use super::fanout::{DeliveredBatch, Fanout, Membership};
use super::history::Resume;
use super::limits::{LayerLimiter, NodeLimits};
use super::moderation::RoomModeration;
use super::protocol::{Body, Gift, Moderation, Priority, SystemMessage};
use super::scheduler::{Pending, RoomScheduler, SchedulerConfig};
use super::stats::{RoomAccounting, RoomStats};
use super::{BatchSink, ChatError};
use crate::clock::now_ms;
use crate::config::ChatConfig;
use crate::rooms::live::LiveRegistry;
use crate::sync::lock;

pub mod relay;

pub use relay::RoomRelay;

/// One room's engine state, shared by its task, its sockets and the API.
#[derive(Debug)]
pub struct Room {
    pub id: Arc<str>,
    pub(super) config: Arc<ChatConfig>,
    live: Arc<LiveRegistry>,
    scheduler: Mutex<RoomScheduler>,
    /// Mutes, bans, words and slow mode, shared with the engine (it outlives the room's task).
    pub(super) moderation: Arc<Mutex<RoomModeration>>,
    /// The room layer of the uplink limits.
    pub(super) limiter: LayerLimiter,
    /// History, sockets and the batch sink.
    fanout: Arc<Fanout>,
    /// The scheduler clock's zero.
    started: Instant,
    /// Cancelled when the room closes (or the engine stops): sockets leave.
    closed: CancellationToken,
    pub(super) accounting: Arc<RoomAccounting>,
    /// Set when other nodes share the room (see [`RoomRelay`]); unset on a single node.
    relay: OnceLock<Arc<dyn RoomRelay>>,
    /// Viewers of this room on other nodes, as they last reported.
    others_online: AtomicU64,
    /// Something was queued: wakes the room task while it idles (see [`run`]).
    queued: tokio::sync::Notify,
}

/// A sender's claimed stream position if it is plausible: not ahead of `live` (nobody sees
/// the future) and at most `max_lag_ms` behind it; else `live`. Pure.
pub fn plausible_position(claimed: Option<u64>, live: u64, max_lag_ms: u64) -> u64 {
    match claimed {
        Some(p) if p <= live && live - p <= max_lag_ms => p,
        _ => live,
    }
}

impl Room {
    /// A room continuing after `last_seq`, with its moderation state.
    pub(crate) fn new(
        id: &str,
        config: Arc<ChatConfig>,
        live: Arc<LiveRegistry>,
        limits: &NodeLimits,
        moderation: Arc<Mutex<RoomModeration>>,
        last_seq: u64,
        closed: CancellationToken,
    ) -> Room {
        let scheduler = RoomScheduler::new(SchedulerConfig::from_chat(&config), last_seq);
        let accounting = Arc::new(RoomAccounting::new(id));
        Room {
            id: Arc::from(id),
            fanout: Arc::new(Fanout::new(
                config.history,
                config.socket_backlog,
                last_seq,
                accounting.clone(),
            )),
            limiter: limits.room_limiter(),
            started: Instant::now(),
            closed,
            accounting,
            scheduler: Mutex::new(scheduler),
            moderation,
            live,
            config,
            relay: OnceLock::new(),
            others_online: AtomicU64::new(0),
            queued: tokio::sync::Notify::new(),
        }
    }

    /// Whether nothing waits in any queue (the room task may sleep until something comes).
    fn idle(&self) -> bool {
        let s = lock(&self.scheduler);
        Priority::ALL.iter().all(|p| s.len(*p) == 0)
    }

    /// Installs the sink that sees every batch this node writes files for (set before the
    /// room's task starts).
    pub(crate) fn set_sink(&self, sink: Arc<dyn BatchSink>) {
        self.fanout.set_sink(sink);
    }

    fn clock_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Viewers connected now (on every node that shares the room).
    pub fn online(&self) -> u64 {
        self.fanout.online() + self.others_online.load(Ordering::Relaxed)
    }

    /// The seq of the latest delivered event.
    pub fn last_seq(&self) -> u64 {
        self.fanout.last_seq()
    }

    /// Resolves when the room closes or the engine stops.
    pub fn closed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.closed.cancelled()
    }

    /// Whether the room has closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    pub(crate) fn close(&self) {
        self.closed.cancel();
    }

    /// Adds a socket: its feed of batches, and what it missed since `resume_from`.
    pub fn join(&self, format: Format, resume_from: Option<u64>) -> Membership {
        self.fanout.join(format, resume_from)
    }

    /// The room's delivered batches from now on, for a reader that is not a socket (see
    /// [`Fanout::subscribe`]).
    pub fn subscribe_batches(&self) -> tokio::sync::broadcast::Receiver<Arc<DeliveredBatch>> {
        self.fanout.subscribe()
    }

    /// Delivered events after `seq` still in history.
    pub fn history_after(&self, seq: u64) -> Resume {
        self.fanout.history_after(seq)
    }

    /// Delivers a batch to this node's sockets only (see [`Fanout::deliver_to_sockets`]).
    pub fn deliver_to_sockets(&self, batch: Arc<DeliveredBatch>) -> bool {
        self.fanout.deliver_to_sockets(batch)
    }

    /// Records a batch delivered before the room was active here (see
    /// [`Fanout::record_history`]).
    pub fn record_history(&self, batch: Arc<DeliveredBatch>) -> bool {
        self.fanout.record_history(batch)
    }

    /// Delivers a batch to this node's sockets and its files (see
    /// [`Fanout::deliver_with_files`]).
    pub fn deliver_with_files(&self, batch: Arc<DeliveredBatch>) -> bool {
        self.fanout.deliver_with_files(batch)
    }

    /// The sender's stream position when plausible, else live stream time (0 when not live).
    pub(super) fn stream_position(&self, claimed: Option<u64>) -> u64 {
        let live = match self.live.get(&self.id) {
            Some(l) => l.stream_ms(),
            None => self.remote_stream_ms().unwrap_or(0),
        };
        plausible_position(claimed, live, self.config.max_position_lag_ms)
    }

    /// Queues content that may be dropped (danmaku, low gifts); an overflow is counted.
    pub(super) fn enqueue(&self, priority: Priority, pending: Pending) {
        let Some(pending) = self.relayed(priority, pending) else {
            return;
        };
        let now = self.clock_ms();
        if lock(&self.scheduler).push(priority, pending, now).is_some() {
            self.accounting.overflow(priority);
        }
        self.queued.notify_one();
    }

    /// Content from the API, stamped now at live stream time.
    fn pending(&self, body: Body) -> Pending {
        Pending {
            body,
            ts_ms: now_ms(),
            stream_ms: self.stream_position(None),
        }
    }

    /// Queues a never-dropped item (system, high gift, moderation), refusing past
    /// `priority_queue_max` waiting.
    fn enqueue_kept(&self, priority: Priority, body: Body) -> Result<(), ChatError> {
        let Some(pending) = self.relayed(priority, self.pending(body)) else {
            return Ok(());
        };
        let now = self.clock_ms();
        let mut scheduler = lock(&self.scheduler);
        if scheduler.len(priority) >= self.config.priority_queue_max {
            return Err(ChatError::QueueFull {
                room: self.id.to_string(),
                queue: priority.as_str(),
            });
        }
        scheduler.push(priority, pending, now);
        drop(scheduler);
        self.queued.notify_one();
        Ok(())
    }

    /// A gift from the business server; its value picks the queue.
    pub fn post_gift(&self, gift: Gift) -> Result<Priority, ChatError> {
        self.accounting.gift();
        let priority = if gift.value >= self.config.gift_high_threshold {
            Priority::GiftHigh
        } else {
            Priority::GiftLow
        };
        if priority == Priority::GiftHigh {
            self.enqueue_kept(priority, Body::Gift(gift))?;
        } else {
            self.enqueue(priority, self.pending(Body::Gift(gift)));
        }
        Ok(priority)
    }

    /// A system broadcast.
    pub fn post_system(&self, text: String) -> Result<(), ChatError> {
        self.enqueue_kept(Priority::System, Body::System(SystemMessage { text }))
    }

    /// Broadcasts the deletion of a delivered event (as a system-priority moderation event).
    pub fn delete(&self, seq: u64) -> Result<(), ChatError> {
        if !self.fanout.was_delivered(seq) {
            return Err(ChatError::NotDelivered {
                room: self.id.to_string(),
                seq,
            });
        }
        self.enqueue_kept(
            Priority::System,
            Body::Moderation(Moderation { delete_seq: seq }),
        )
    }

    /// Runs the scheduler once and fans the batch out. Never waits for a socket.
    pub(crate) fn tick(&self) {
        let (tick, lens) = {
            let mut s = lock(&self.scheduler);
            let tick = s.tick(self.clock_ms());
            (tick, Priority::ALL.map(|p| s.len(p)))
        };
        self.accounting.queues(lens, tick.stale);
        if tick.events.is_empty() {
            return;
        }
        let batch = Arc::new(DeliveredBatch::new(self.id.clone(), tick.events, now_ms()));
        match self.relay.get() {
            Some(relay) => relay.batch(self, batch),
            None => {
                self.deliver_with_files(batch);
            }
        }
    }

    /// Ticks until no system message or high gift waits (at most [`MAX_FINAL_TICKS`]), when
    /// the room task ends (shutdown, the room closed): those are promised never to be dropped,
    /// and a tick delivers only its budget's share. The batches go to sockets still open and
    /// to the danmaku files, which the CDN writer drains before its last file.
    pub(crate) fn final_ticks(&self) {
        for _ in 0..MAX_FINAL_TICKS {
            self.tick();
            let waiting = {
                let s = lock(&self.scheduler);
                s.len(Priority::System) + s.len(Priority::GiftHigh)
            };
            if waiting == 0 {
                return;
            }
        }
        tracing::warn!("system messages or high gifts still queued after the final ticks");
    }

    /// Once a second: rates, moderation upkeep.
    pub(crate) fn housekeeping(&self) {
        self.accounting.refresh_rates();
        lock(&self.moderation).prune(now_ms());
    }

    /// Counts a socket that fell behind the backlog (skipped or closed by policy).
    pub fn count_slow_socket(&self, closed: bool) {
        self.accounting.slow_socket(closed);
    }

    /// The numbers for `GET /api/rooms/{room}/stats`.
    pub fn stats(&self) -> RoomStats {
        let (lens, drops) = {
            let s = lock(&self.scheduler);
            (Priority::ALL.map(|p| s.len(p)), s.drops())
        };
        self.accounting
            .stats(&self.id, self.online(), self.last_seq(), lens, drops)
    }
}

/// Ticks a stopping room may take to deliver what is promised (each delivers its budget).
const MAX_FINAL_TICKS: usize = 10_000;

/// The room task: one tick every `tick_ms` until the room closes or the engine stops; once a
/// second it checks the room is still open and refreshes rates. While nothing is queued it
/// sleeps until something is or the next upkeep: an idle room costs one wake-up a second
/// instead of ten. What comes after a quiet tick goes out at once; what comes sooner waits for
/// the tick, so a room never ticks more than once per `tick_ms` (the budget is per tick).
pub(crate) async fn run(room: Arc<Room>, still_open: impl Fn(&str) -> bool) {
    let tick = Duration::from_millis(room.config.tick_ms.max(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_upkeep = Instant::now();
    let mut last_tick = tokio::time::Instant::now();
    loop {
        if room.idle() {
            let upkeep = tokio::time::Instant::from_std(last_upkeep + Duration::from_secs(1));
            tokio::select! {
                _ = room.closed.cancelled() => {
                    room.final_ticks();
                    break;
                }
                _ = room.queued.notified() => interval.reset_at(last_tick + tick),
                _ = tokio::time::sleep_until(upkeep) => {}
            }
        }
        tokio::select! {
            _ = room.closed.cancelled() => {
                room.final_ticks();
                break;
            }
            _ = interval.tick() => {}
        }
        last_tick = tokio::time::Instant::now();
        room.tick();
        if last_upkeep.elapsed() >= Duration::from_secs(1) {
            last_upkeep = Instant::now();
            if !still_open(&room.id) {
                tracing::info!("room closed: its sockets are told and closed");
                room.close();
                break;
            }
            room.housekeeping();
        }
    }
}

#[cfg(test)]
mod position_tests {
    use super::plausible_position;

    #[test]
    fn a_position_behind_live_within_the_lag_is_kept() {
        assert_eq!(plausible_position(Some(50_000), 56_000, 60_000), 50_000);
        assert_eq!(plausible_position(Some(56_000), 56_000, 60_000), 56_000);
        assert_eq!(plausible_position(Some(0), 60_000, 60_000), 0);
    }

    #[test]
    fn a_position_ahead_of_live_or_too_far_behind_gets_live_time() {
        assert_eq!(plausible_position(Some(56_001), 56_000, 60_000), 56_000);
        assert_eq!(plausible_position(Some(u64::MAX), 56_000, 60_000), 56_000);
        assert_eq!(plausible_position(Some(1_000), 70_000, 60_000), 70_000);
        assert_eq!(plausible_position(None, 70_000, 60_000), 70_000);
    }
}
