//! `ChatEngine`: the rooms of this node by id, created lazily for open rooms, and the public
//! methods the WebSocket and API layers call. It owns the node-wide limits, and applies
//! moderation changes to the rooms' moderation store (`crate::rooms::moderation`, which
//! outlives a room's task) through [`ChatEngine::moderate`].
//!
//! Nothing here is global: several engines (several servers) can live in one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::history::Resume;
use super::limits::{LayerLimiter, LimitsConfig, NodeLimits};
use super::moderation::{normalize_words, ModerationChange, ModerationSnapshot};
use super::protocol::{Gift, Priority};
use super::room::{self, Room, RoomRelay};
use super::stats::RoomStats;
use super::{BatchSink, ChatError};
use crate::config::ChatConfig;
use crate::rooms::LiveRegistry;
use crate::rooms::{ModerationStore, RoomDirectory};
use crate::sync::lock;

/// How long [`ChatEngine::stop`] waits for rooms and sockets to finish.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often idle users are dropped from the per-user limiter.
const FORGET_USERS_EVERY: Duration = Duration::from_secs(60);

type Shared<T> = Arc<Mutex<T>>;

/// The chat rooms of one server.
#[derive(Debug)]
pub struct ChatEngine {
    config: Arc<ChatConfig>,
    directory: Arc<RoomDirectory>,
    live: Arc<LiveRegistry>,
    limits: NodeLimits,
    /// `chat.blocked_words`, normalised once.
    global_words: Vec<String>,
    rooms: Shared<HashMap<String, Arc<Room>>>,
    /// Every room's moderation, loaded from the database at start.
    moderation: Arc<ModerationStore>,
    /// The last seq of rooms whose task ended, so a reopened room continues its numbering.
    last_seqs: Shared<HashMap<String, u64>>,
    /// Cancelled on stop; every room's close token is a child of it.
    shutdown: CancellationToken,
    /// Room tasks and sockets, so stop can wait for them.
    tasks: TaskTracker,
    /// Set once at start (before rooms deliver) when danmaku files are written.
    batch_sink: std::sync::OnceLock<Arc<dyn BatchSink>>,
    /// Set once at start when other nodes share the rooms (`cluster.redis_url`).
    relay: std::sync::OnceLock<Arc<dyn RoomRelay>>,
}

impl ChatEngine {
    /// An engine for the rooms in `directory` with their `moderation`, stopping when
    /// `shutdown` is cancelled. Must be called inside a tokio runtime (it starts a small upkeep
    /// task).
    pub fn new(
        config: Arc<ChatConfig>,
        directory: Arc<RoomDirectory>,
        live: Arc<LiveRegistry>,
        moderation: Arc<ModerationStore>,
        shutdown: CancellationToken,
    ) -> Arc<ChatEngine> {
        let engine = Arc::new(ChatEngine {
            limits: NodeLimits::new(LimitsConfig::from_chat(&config)),
            global_words: normalize_words(&config.blocked_words),
            config,
            directory,
            live,
            rooms: Default::default(),
            moderation,
            last_seqs: Default::default(),
            shutdown,
            tasks: TaskTracker::new(),
            batch_sink: std::sync::OnceLock::new(),
            relay: std::sync::OnceLock::new(),
        });
        let weak = Arc::downgrade(&engine);
        let stop = engine.shutdown.clone();
        engine.tasks.spawn(async move {
            let mut every = tokio::time::interval(FORGET_USERS_EVERY);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = every.tick() => {}
                }
                match weak.upgrade() {
                    Some(engine) => engine.limits.forget_idle_users(),
                    None => return,
                }
            }
        });
        engine
    }

    /// Installs the sink that sees every delivered batch; only the first call counts.
    pub fn set_batch_sink(&self, sink: Arc<dyn BatchSink>) {
        let _ = self.batch_sink.set(sink);
    }

    /// Installs the relay to the other nodes (before any room starts); only the first counts.
    pub fn set_relay(&self, relay: Arc<dyn RoomRelay>) {
        let _ = self.relay.set(relay);
    }

    /// The seq the room will give its next event (after a restart of its task too).
    pub fn next_seq(&self, room: &str) -> u64 {
        if let Some(r) = lock(&self.rooms).get(room) {
            return r.last_seq() + 1;
        }
        lock(&self.last_seqs).get(room).copied().unwrap_or(0) + 1
    }

    /// The `[chat]` settings in force.
    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// The open room `id`, starting its task on first use.
    pub fn room(&self, id: &str) -> Result<Arc<Room>, ChatError> {
        if !self.directory.is_open(id) || self.shutdown.is_cancelled() {
            return Err(ChatError::RoomNotFound(id.to_string()));
        }
        let mut rooms = lock(&self.rooms);
        if let Some(room) = rooms.get(id).filter(|r| !r.is_closed()) {
            return Ok(room.clone());
        }
        let last_seq = lock(&self.last_seqs).get(id).copied().unwrap_or(0);
        let room = Arc::new(Room::new(
            id,
            self.config.clone(),
            self.live.clone(),
            &self.limits,
            self.moderation.of(id),
            last_seq,
            self.shutdown.child_token(),
        ));
        if let Some(sink) = self.batch_sink.get() {
            room.set_sink(sink.clone());
        }
        let relay = self.relay.get().cloned();
        if let Some(relay) = &relay {
            room.set_relay(relay.clone());
        }
        rooms.insert(id.to_string(), room.clone());
        drop(rooms);
        if let Some(relay) = &relay {
            relay.activated(&room);
        }

        let directory = self.directory.clone();
        let rooms = self.rooms.clone();
        let last_seqs = self.last_seqs.clone();
        let task_room = room.clone();
        let span = tracing::info_span!("room", room = %id);
        self.tasks.spawn(
            async move {
                tracing::debug!("room task started");
                room::run(task_room.clone(), |id| directory.is_open(id)).await;
                task_room.close();
                if let Some(relay) = &relay {
                    relay.deactivated(&task_room);
                }
                lock(&last_seqs).insert(task_room.id.to_string(), task_room.last_seq());
                let mut rooms = lock(&rooms);
                if rooms
                    .get(&*task_room.id)
                    .is_some_and(|r| Arc::ptr_eq(r, &task_room))
                {
                    rooms.remove(&*task_room.id);
                }
                tracing::debug!("room task ended");
            }
            .instrument(span),
        );
        Ok(room)
    }

    fn known(&self, id: &str) -> Result<(), ChatError> {
        match self.directory.get(id) {
            Some(_) => Ok(()),
            None => Err(ChatError::RoomNotFound(id.to_string())),
        }
    }

    /// The node layer and the per-user limiters every room's uplink shares.
    pub(super) fn node_limits(&self) -> &NodeLimits {
        &self.limits
    }

    /// `chat.blocked_words`, normalised.
    pub(super) fn global_words(&self) -> &[String] {
        &self.global_words
    }

    /// The relay to the other nodes, when they share the rooms.
    pub(super) fn relay(&self) -> Option<&Arc<dyn RoomRelay>> {
        self.relay.get()
    }

    /// The per-connection limiter for a new socket.
    pub fn connection_limiter(&self) -> LayerLimiter {
        self.limits.connection_limiter()
    }

    /// A gift from the business server; returns the queue its value chose.
    pub fn post_gift(&self, room: &str, gift: Gift) -> Result<Priority, ChatError> {
        self.room(room)?.post_gift(gift)
    }

    /// A system broadcast.
    pub fn post_system(&self, room: &str, text: String) -> Result<(), ChatError> {
        self.room(room)?.post_system(text)
    }

    /// Broadcasts the deletion of delivered event `seq`.
    pub fn delete_message(&self, room: &str, seq: u64) -> Result<(), ChatError> {
        self.room(room)?.delete(seq)
    }

    /// The one entry point for moderation writes (the database layer persists the same change).
    pub fn moderate(&self, room: &str, change: &ModerationChange) -> Result<(), ChatError> {
        self.moderate_here(room, change)?;
        if let Some(relay) = self.relay.get() {
            relay.moderated(room, change);
        }
        Ok(())
    }

    /// Applies a moderation change on this node only (one another node made and stored).
    pub fn moderate_here(&self, room: &str, change: &ModerationChange) -> Result<(), ChatError> {
        self.known(room)?;
        self.moderation.apply(room, change);
        tracing::info!(room, ?change, "moderation change");
        Ok(())
    }

    /// A room's moderation state as it stands.
    pub fn moderation_snapshot(&self, room: &str) -> Result<ModerationSnapshot, ChatError> {
        self.known(room)?;
        Ok(self.moderation.snapshot(room, crate::clock::now_ms()))
    }

    /// A room's numbers for dashboards.
    pub fn stats(&self, room: &str) -> Result<RoomStats, ChatError> {
        Ok(self.room(room)?.stats())
    }

    /// Every room with a task on this node: its numbers and its viewers here (the series
    /// sampler; `stats().online` also counts other nodes' viewers).
    pub fn local_stats(&self) -> Vec<(RoomStats, u64)> {
        let rooms: Vec<Arc<Room>> = lock(&self.rooms).values().cloned().collect();
        rooms
            .iter()
            .map(|r| (r.stats(), r.local_online()))
            .collect()
    }

    /// Delivered events after `seq` that history still holds.
    pub fn history_after(&self, room: &str, seq: u64) -> Result<Resume, ChatError> {
        Ok(self.room(room)?.history_after(seq))
    }

    /// Viewers connected to a room now (0 when it has no task).
    pub fn online(&self, room: &str) -> u64 {
        lock(&self.rooms).get(room).map_or(0, |r| r.online())
    }

    /// Closes a room now: its sockets are told and closed (the directory decides reopening).
    pub fn close_room(&self, room: &str) {
        if let Some(r) = lock(&self.rooms).get(room) {
            r.close();
        }
    }

    /// Registers a socket so [`ChatEngine::stop`] waits for it.
    pub fn track_socket(&self) -> TaskTrackerToken {
        self.tasks.token()
    }

    /// Whether the engine is stopping (sockets close with "going away").
    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Stops every room and waits (a few seconds at most) for rooms and sockets to end.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(STOP_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.tasks.len(),
                "chat tasks still running after the stop grace period"
            );
        }
    }
}
