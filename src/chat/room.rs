//! One room on tokio: its scheduler ticks, the shared batch of each tick, members and online
//! count, and uplink submission (limits then moderation then the queues).
//!
//! Fan-out follows goim: a tick's events are encoded once per format into `Bytes` and the same
//! `Arc<DeliveredBatch>` goes to every socket through a broadcast ring whose capacity is the
//! per-socket backlog. The room never waits for a socket; a socket that falls further behind
//! than the ring is told it lagged and skips (see `crate::http::ws`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::codec::{encode_batch, Format};
use super::engine::ChatError;
use super::history::{History, Resume};
use super::limits::{LayerLimiter, NodeLimits};
use super::moderation::{Author, Content, RoomModeration};
use super::protocol::{
    Ack, AckStatus, Body, Danmaku, Event, Gift, Limits, Moderation, Priority, SendDanmaku,
    SystemMessage,
};
use super::scheduler::{Pending, RoomScheduler, SchedulerConfig};
use super::stats::RoomAccounting;
pub use super::stats::RoomStats;
use crate::auth::Role;
use crate::clock::now_ms;
use crate::config::ChatConfig;
use crate::live::LiveRegistry;
use crate::sync::lock;

pub mod relayed;

/// Batches the CDN feed keeps for a slow consumer before it lags (it then refills from
/// [`Room::history_after`]).
pub const FEED_CAPACITY: usize = 1024;

/// The heartbeat interval clients are asked to keep (seconds).
pub const HEARTBEAT_S: u32 = 30;

/// One tick's delivered events, encoded once per format and shared by every consumer.
#[derive(Debug)]
pub struct DeliveredBatch {
    pub room: Arc<str>,
    /// The events, seq-contiguous, in delivery order.
    pub events: Vec<Event>,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Wall time (ms since the epoch) of the tick that delivered the batch.
    pub tick_ms: i64,
    /// The JSON batch frame (`{"type":"batch","events":[...]}`), UTF-8.
    pub json: Bytes,
    /// The protobuf `ServerFrame{batch}`.
    pub proto: Bytes,
    /// The same bytes as `json`, typed as text for WebSocket frames without re-validating.
    json_text: Utf8Bytes,
}

impl DeliveredBatch {
    /// Encodes `events` (non-empty, seq-contiguous) once per format.
    pub fn new(room: Arc<str>, events: Vec<Event>, tick_ms: i64) -> DeliveredBatch {
        let encoded = encode_batch(&events);
        let json_text = Utf8Bytes::from(encoded.json);
        DeliveredBatch {
            room,
            first_seq: events.first().map_or(0, |e| e.seq),
            last_seq: events.last().map_or(0, |e| e.seq),
            events,
            tick_ms,
            json: Bytes::from(json_text.clone()),
            proto: encoded.proto,
            json_text,
        }
    }

    /// The WebSocket frame for a socket of `format`: a refcount clone, no copy.
    pub fn message(&self, format: Format) -> Message {
        match format {
            Format::Json => Message::Text(self.json_text.clone()),
            Format::Proto => Message::Binary(self.proto.clone()),
        }
    }

    /// Encoded size in `format`.
    pub fn len(&self, format: Format) -> usize {
        match format {
            Format::Json => self.json.len(),
            Format::Proto => self.proto.len(),
        }
    }

    /// Whether the batch has no events (never true for delivered batches).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Who is on a socket: None for an anonymous reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub name: String,
    pub role: Role,
}

/// A socket's place in the room: its feed of batches and what to send first. Dropping it
/// leaves the room (online count).
#[derive(Debug)]
pub struct Membership {
    pub batches: broadcast::Receiver<Arc<DeliveredBatch>>,
    /// The room's latest delivered seq at join (the welcome's `seq`).
    pub seq: u64,
    /// What a resuming client missed.
    pub resume: Resume,
    _guard: MemberGuard,
}

#[derive(Debug)]
struct MemberGuard {
    room: Arc<Room>,
    format: Format,
}

impl Drop for MemberGuard {
    fn drop(&mut self) {
        self.room.online.fetch_sub(1, Ordering::Relaxed);
        self.room.members[format_index(self.format)].fetch_sub(1, Ordering::Relaxed);
        self.room
            .accounting
            .online(self.room.online.load(Ordering::Relaxed));
    }
}

fn format_index(f: Format) -> usize {
    match f {
        Format::Json => 0,
        Format::Proto => 1,
    }
}

/// One room's engine state, shared by its task, its sockets and the API.
#[derive(Debug)]
pub struct Room {
    pub id: Arc<str>,
    config: Arc<ChatConfig>,
    live: Arc<LiveRegistry>,
    scheduler: Mutex<RoomScheduler>,
    moderation: Arc<Mutex<RoomModeration>>,
    /// History and the fan-out send happen under this lock, so a joining socket's resume
    /// snapshot and its subscription meet without a gap or a duplicate.
    history: Mutex<History>,
    fanout: broadcast::Sender<Arc<DeliveredBatch>>,
    feed: broadcast::Sender<Arc<DeliveredBatch>>,
    limiter: LayerLimiter,
    /// The scheduler clock's zero.
    started: Instant,
    /// Cancelled when the room closes (or the engine stops): sockets leave.
    closed: CancellationToken,
    online: AtomicU64,
    /// Members per format (json, proto), for delivered-bytes accounting.
    members: [AtomicU64; 2],
    accounting: RoomAccounting,
    /// Sees every delivered batch (the CDN file writer), inline in the tick.
    sink: std::sync::OnceLock<Arc<dyn super::engine::BatchSink>>,
    /// Set when other nodes share the room (see `super::relay`); unset on a single node.
    relay: std::sync::OnceLock<Arc<dyn super::relay::RoomRelay>>,
    /// Viewers of this room on other nodes, as they last reported.
    others_online: AtomicU64,
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
        Room {
            id: Arc::from(id),
            history: Mutex::new(History::new(config.history, last_seq)),
            fanout: broadcast::channel(config.socket_backlog.max(1)).0,
            feed: broadcast::channel(FEED_CAPACITY).0,
            limiter: limits.room_limiter(),
            started: Instant::now(),
            closed,
            online: AtomicU64::new(0),
            members: Default::default(),
            accounting: RoomAccounting::new(id),
            scheduler: Mutex::new(scheduler),
            moderation,
            live,
            config,
            sink: std::sync::OnceLock::new(),
            relay: std::sync::OnceLock::new(),
            others_online: AtomicU64::new(0),
        }
    }

    /// Installs the sink that sees every batch (set before the room's task starts).
    pub(crate) fn set_sink(&self, sink: Arc<dyn super::engine::BatchSink>) {
        let _ = self.sink.set(sink);
    }

    fn clock_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Viewers connected now (on every node that shares the room).
    pub fn online(&self) -> u64 {
        self.online.load(Ordering::Relaxed) + self.others_online.load(Ordering::Relaxed)
    }

    /// The seq of the latest delivered event.
    pub fn last_seq(&self) -> u64 {
        lock(&self.history).last_seq()
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

    /// Adds a socket: subscribes it and computes its resume under one lock.
    pub fn join(self: &Arc<Self>, format: Format, resume_from: Option<u64>) -> Membership {
        let (batches, seq, resume) = {
            let history = lock(&self.history);
            let batches = self.fanout.subscribe();
            let resume = resume_from.map_or(Resume::UpToDate, |s| history.after(s));
            (batches, history.last_seq(), resume)
        };
        let online = self.online.fetch_add(1, Ordering::Relaxed) + 1;
        self.members[format_index(format)].fetch_add(1, Ordering::Relaxed);
        self.accounting.online(online);
        Membership {
            batches,
            seq,
            resume,
            _guard: MemberGuard {
                room: self.clone(),
                format,
            },
        }
    }

    /// Every delivered batch, for the CDN writer (capacity [`FEED_CAPACITY`]).
    pub fn subscribe_batches(&self) -> broadcast::Receiver<Arc<DeliveredBatch>> {
        self.feed.subscribe()
    }

    /// Delivered events after `seq` still in history.
    pub fn history_after(&self, seq: u64) -> Resume {
        lock(&self.history).after(seq)
    }

    /// The limits a user sees in the welcome.
    pub fn limits_for(&self, who: Option<&Identity>) -> Limits {
        let c = &self.config;
        let (muted, banned, slow) = match who {
            Some(id) => {
                let m = lock(&self.moderation);
                let slow = if m.slow_mode_applies(id.role) {
                    m.slow_mode_s()
                } else {
                    0
                };
                (m.is_muted(&id.user, now_ms()), m.is_banned(&id.user), slow)
            }
            None => (false, false, lock(&self.moderation).slow_mode_s()),
        };
        Limits {
            can_send: who.is_some(),
            user_rate_per_s: c.user_rate_per_s,
            user_burst: c.user_burst,
            max_text_chars: u32::try_from(c.max_text_chars).unwrap_or(u32::MAX),
            slow_mode_s: slow,
            max_frame_bytes: u32::try_from(c.max_frame_bytes).unwrap_or(u32::MAX),
            heartbeat_s: HEARTBEAT_S,
            idle_timeout_s: u32::try_from(c.idle_timeout_s).unwrap_or(u32::MAX),
            muted,
            banned,
        }
    }

    /// Counts a refusal decided outside the room (the connection layer).
    pub fn count_refusal(&self, reason: &'static str) {
        self.accounting.received();
        self.accounting.refused(reason);
    }

    /// A socket's danmaku through the layers: identity, rate limits (user, room, node), then
    /// moderation, then the danmaku queue. Every outcome is an ack; refusals are counted.
    pub fn submit(
        &self,
        limits: &NodeLimits,
        global_words: &[String],
        who: Option<&Identity>,
        send: &SendDanmaku,
    ) -> Ack {
        self.accounting.received();
        let ack = |status, retry_after_ms| Ack {
            client_id: send.client_id,
            status,
            retry_after_ms,
        };
        let Some(who) = who else {
            self.accounting.refused(AckStatus::Unauthenticated.as_str());
            return ack(AckStatus::Unauthenticated, None);
        };
        if let Err(refusal) = limits.check_send(&who.user, &self.limiter) {
            self.accounting.refused(refusal.layer.as_str());
            return ack(
                AckStatus::RateLimited,
                Some(refusal.retry_after.as_millis().max(1) as u64),
            );
        }
        let now = now_ms();
        let verdict = lock(&self.moderation).check(
            Author {
                user: &who.user,
                role: who.role,
            },
            Content {
                text: &send.text,
                color: send.color,
            },
            self.config.max_text_chars,
            global_words,
            now,
        );
        if let Err(refusal) = verdict {
            self.accounting.refused(refusal.status.as_str());
            return ack(refusal.status, refusal.retry_after_ms);
        }
        let pending = Pending {
            body: Body::Danmaku(Danmaku {
                user: who.user.clone(),
                name: who.name.clone(),
                text: send.text.clone(),
                color: send.color,
                mode: send.mode,
            }),
            ts_ms: now,
            stream_ms: self.stream_position(send.stream_ms),
        };
        self.enqueue(Priority::Danmaku, pending);
        self.accounting.accepted();
        ack(AckStatus::Accepted, None)
    }

    /// The sender's stream position when plausible, else live stream time (0 when not live).
    fn stream_position(&self, claimed: Option<u64>) -> u64 {
        let live = match self.live.get(&self.id) {
            Some(l) => l.stream_ms(),
            None => self.remote_stream_ms().unwrap_or(0),
        };
        match claimed {
            Some(p) if p <= live && live - p <= self.config.max_position_lag_ms => p,
            _ => live,
        }
    }

    fn enqueue(&self, priority: Priority, pending: Pending) {
        let Some(pending) = self.relayed(priority, pending) else {
            return;
        };
        let now = self.clock_ms();
        if lock(&self.scheduler).push(priority, pending, now).is_some() {
            self.accounting.overflow(priority);
        }
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
        Ok(())
    }

    /// A gift from the business server; its value picks the queue.
    pub fn post_gift(&self, gift: Gift) -> Result<Priority, ChatError> {
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
        if !lock(&self.history).was_delivered(seq) {
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
                self.deliver(batch, true);
            }
        }
    }

    /// Puts a batch in history and sends it to every socket (and to the sink when `to_sink`).
    /// A batch at or below the delivered seq is dropped (false); one that jumps ahead (the room
    /// went on elsewhere) starts history after the jump.
    pub fn deliver(&self, batch: Arc<DeliveredBatch>, to_sink: bool) -> bool {
        {
            let mut history = lock(&self.history);
            if batch.first_seq <= history.last_seq() {
                return false;
            }
            if batch.first_seq > history.last_seq() + 1 {
                history.skip_to(batch.first_seq - 1);
            }
            history.push(&batch.events);
            // No receiver is fine: an empty room still keeps history and seqs.
            let _ = self.fanout.send(batch.clone());
            let _ = self.feed.send(batch.clone());
        }
        if to_sink {
            if let Some(sink) = self.sink.get() {
                sink.deliver(&batch);
            }
        }
        let members = self.members.each_ref().map(|m| m.load(Ordering::Relaxed));
        self.accounting.delivered(&batch, members);
        true
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

/// The room task: one tick every `tick_ms` until the room closes or the engine stops; once a
/// second it checks the room is still open and refreshes rates.
pub(crate) async fn run(room: Arc<Room>, still_open: impl Fn(&str) -> bool) {
    let tick = Duration::from_millis(room.config.tick_ms.max(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_upkeep = Instant::now();
    loop {
        tokio::select! {
            _ = room.closed.cancelled() => break,
            _ = interval.tick() => {}
        }
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
