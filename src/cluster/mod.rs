//! Several nodes serving the same rooms as one system, through Redis (`cluster.redis_url`).
//! With the URL empty none of this exists: no connection, no relay, the single-node paths.
//!
//! How a room is shared:
//! - **One scheduler per room.** Every node that has the room active competes for a lease
//!   (`SET NX PX`, renewed by the holder every `lease_ms/6`). The holder ("owner") runs the
//!   room's scheduler and its CDN writer; when it dies the lease expires and another node
//!   takes over within about `lease_ms`, continuing the seq from the room's stored last seq
//!   and the CDN files from the index ([`election`], [`cdn_resume`]).
//! - **Uplink to the owner.** Content a node accepts after its own checks (danmaku, and gifts
//!   and system messages from the API) is pushed to the room's Redis list; the owner pops it
//!   into its scheduler ([`uplink`]).
//! - **Batches through a stream.** The owner appends each tick's batch to the room's Redis
//!   stream with a fenced script (only the lease holder, only after the stored seq); every
//!   node, the owner too, reads the stream and hands the owner's encoded bytes to its sockets
//!   without encoding again ([`follow`]). A stream rather than pub/sub: a reader that blinks
//!   (or a node that takes the room over) reads on from its last id, so nothing is missed in
//!   a takeover, and a node that joins late fills its history from the tail.
//! - **Limits, counts, load.** Per-user and per-room rates are one GCRA per key in Redis
//!   ([`limits`]); each node reports its load and online counts every `report_ms` with a TTL,
//!   and readers sum them ([`load`]); the connect endpoint walks the load-sorted node list
//!   ([`allocate`]).
//! - **Redis down.** Every room becomes local to each node (its own scheduler for its own
//!   viewers); the node logs and counts it, pings every `lease_ms/6`, and rejoins when Redis
//!   answers, continuing after the highest seq any node reached ([`election`]).

pub mod allocate;
mod cdn_resume;
mod election;
mod follow;
mod keys;
mod limits;
mod link;
pub mod load;
mod publish_claims;
mod rooms;
mod scripts;
mod uplink;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::cdn::publisher::CdnPublisher;
use crate::chat::ChatEngine;
use crate::config::Config;
use crate::rooms::catalog::RoomCatalog;
use crate::rooms::live::LiveRegistry;
use crate::storage::Storage;
use crate::sync::lock;

pub use load::{NodeReport, RoomReport};
use rooms::SharedRoom;

/// Why the cluster could not be set up; each names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster.redis_url {url}: {source}")]
    BadUrl {
        url: String,
        source: redis::RedisError,
    },
}

/// The tunables of a cluster node, from `[cluster]` and `[chat]`.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub lease: Duration,
    pub report_every: Duration,
    pub assignments: u32,
    pub connect_urls: usize,
    /// `cluster.advertise_url`, else `http.public_url` (empty: the bound address).
    pub advertise: String,
    /// Per-user GCRA: emission interval (µs) and burst.
    pub user_quota: (u64, u32),
    /// Per-room GCRA: emission interval (µs) and burst.
    pub room_quota: (u64, u32),
    /// Batches a room's stream keeps (`MAXLEN ~`).
    pub stream_len: usize,
    /// Batches a node reads back when a room starts on it (for resume).
    pub preload: usize,
}

impl Settings {
    fn from_config(config: &Config) -> Settings {
        let c = &config.cluster;
        let interval_us = |rate: f64| {
            if rate.is_finite() && rate > 0.0 {
                (1_000_000.0 / rate).ceil().max(1.0) as u64
            } else {
                u64::MAX / 4
            }
        };
        let advertise = if c.advertise_url.is_empty() {
            config.http.public_url.clone()
        } else {
            c.advertise_url.clone()
        };
        Settings {
            lease: Duration::from_millis(c.lease_ms),
            report_every: Duration::from_millis(c.report_ms),
            assignments: c.assignments_per_node,
            connect_urls: c.connect_urls,
            advertise: advertise.trim_end_matches('/').to_string(),
            user_quota: (
                interval_us(config.chat.user_rate_per_s),
                config.chat.user_burst.max(1),
            ),
            room_quota: (
                interval_us(f64::from(config.chat.room_rate_per_s)),
                config.chat.room_rate_per_s.max(1),
            ),
            stream_len: 1000,
            preload: (config.chat.history / 4).clamp(1, 256),
        }
    }

    /// How often leases are renewed (and the election and health checks run).
    pub(crate) fn renew_every(&self) -> Duration {
        self.lease / 6
    }

    /// How long before its lease expires in Redis an owner stops acting as owner.
    pub(crate) fn margin(&self) -> Duration {
        self.lease / 3
    }
}

/// One node's part in a cluster: the relay every room of this node goes through.
pub struct Cluster {
    /// This cluster's own handle, for the tasks a relay call starts.
    me: Weak<Cluster>,
    node_id: String,
    keys: keys::Keys,
    settings: Settings,
    link: link::RedisLink,
    /// Whether Redis answered the last command; false puts every room in local mode.
    up: AtomicBool,
    /// The rooms active on this node.
    rooms: Mutex<HashMap<String, Arc<SharedRoom>>>,
    /// Leases this node holds: room -> token. Renewed even for rooms whose task ended while
    /// the node stops, so the last CDN files are written before another node takes over.
    leases: Mutex<HashMap<String, String>>,
    chat: Weak<ChatEngine>,
    /// This node's broadcasts, reported so other nodes know the stream time.
    live: Arc<LiveRegistry>,
    /// Rooms are reloaded from the shared database when another node changes one.
    catalog: RoomCatalog,
    cdn: Arc<CdnPublisher>,
    storage: Storage,
    /// Content on its way to the owners (one task pushes it, batched).
    forward: mpsc::UnboundedSender<rooms::Forward>,
    forward_rx: Mutex<Option<mpsc::UnboundedReceiver<rooms::Forward>>>,
    /// Wakes the election when a room starts here (so a new room gets an owner at once).
    wake_election: Notify,
    /// The latest reports of every node, and the allocator over them.
    table: Mutex<load::NodeTable>,
    /// Per-second series: this node's go into its report, the others' are kept beside them.
    series: OnceLock<Arc<crate::series::SeriesBook>>,
    /// This node's base URL for viewers, known once HTTP is bound.
    advertise: OnceLock<String>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// This node's name: `cluster.node_id` (the service sets it at start, see
/// [`crate::node_identity`]), else a new name for this run.
fn node_id(config: &Config) -> String {
    if !config.cluster.node_id.is_empty() {
        return config.cluster.node_id.clone();
    }
    crate::node_identity::generated_name()
}

impl Cluster {
    /// The cluster for `config`, installed as the chat engine's relay; None (and nothing
    /// connected) when `cluster.redis_url` is empty. Connects lazily: a Redis that is down at
    /// start only means the node starts alone.
    pub fn from_config(
        config: &Config,
        chat: &Arc<ChatEngine>,
        live: &Arc<LiveRegistry>,
        catalog: &RoomCatalog,
        cdn: &Arc<CdnPublisher>,
        storage: &Storage,
    ) -> Result<Option<Arc<Cluster>>, ClusterError> {
        if config.cluster.redis_url.is_empty() {
            return Ok(None);
        }
        let link = link::RedisLink::new(&config.cluster.redis_url)?;
        let (forward, forward_rx) = mpsc::unbounded_channel();
        let settings = Settings::from_config(config);
        let cluster = Arc::new_cyclic(|me| Cluster {
            me: me.clone(),
            node_id: node_id(config),
            keys: keys::Keys::new(&config.cluster.key_prefix),
            table: Mutex::new(load::NodeTable::new(settings.assignments)),
            settings,
            link,
            up: AtomicBool::new(false),
            rooms: Mutex::default(),
            leases: Mutex::default(),
            chat: Arc::downgrade(chat),
            live: live.clone(),
            catalog: catalog.clone(),
            cdn: cdn.clone(),
            storage: storage.clone(),
            forward,
            forward_rx: Mutex::new(Some(forward_rx)),
            wake_election: Notify::new(),
            advertise: OnceLock::new(),
            series: OnceLock::new(),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        chat.set_relay(cluster.clone());
        metrics::gauge!("barrage_cluster_redis_up").set(0.0);
        Ok(Some(cluster))
    }

    /// Shares `book`'s seconds with the other nodes and keeps theirs in it.
    pub fn set_series(&self, book: Arc<crate::series::SeriesBook>) {
        let _ = self.series.set(book);
    }

    /// Starts the node's cluster tasks once HTTP is bound at `http_addr`.
    pub async fn start(self: &Arc<Self>, http_addr: SocketAddr) {
        let url = if self.settings.advertise.is_empty() {
            format!("http://{http_addr}")
        } else {
            self.settings.advertise.clone()
        };
        let _ = self.advertise.set(url);
        // Reading the control stream's tail is the reachability check too.
        let mut control_from = None;
        match tokio::time::timeout(Duration::from_secs(2), self.control_tail()).await {
            Ok(Ok(tail)) => {
                control_from = Some(tail);
                self.up.store(true, Ordering::SeqCst);
                metrics::gauge!("barrage_cluster_redis_up").set(1.0);
                tracing::info!(node = %self.node_id, "cluster: Redis reachable; sharing rooms");
            }
            Ok(Err(e)) => self.redis_failed("start", &e),
            Err(_) => self.redis_failed_msg("start", "no answer in 2 s"),
        }
        let forward_rx = lock(&self.forward_rx).take();
        let span = |task: &'static str| tracing::info_span!("cluster", node = %self.node_id, task);
        let this = self.clone();
        self.tasks
            .spawn(this.election_loop().instrument(span("election")));
        let this = self.clone();
        self.tasks
            .spawn(this.follow_loop(control_from).instrument(span("follow")));
        let this = self.clone();
        self.tasks
            .spawn(this.consume_loop().instrument(span("uplink")));
        let this = self.clone();
        self.tasks
            .spawn(this.report_loop().instrument(span("report")));
        let this = self.clone();
        self.tasks.spawn(this.live_loop().instrument(span("live")));
        if let Some(rx) = forward_rx {
            let this = self.clone();
            self.tasks
                .spawn(this.forward_loop(rx).instrument(span("forward")));
        }
    }

    /// Stops the tasks, gives back every lease this node holds (so another node takes over
    /// at once) and removes this node's report. Call after the CDN writer has flushed.
    pub async fn stop(&self) {
        self.cancel.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(3), self.tasks.wait()).await;
        if self.is_up() {
            let released = tokio::time::timeout(Duration::from_secs(2), self.release_all()).await;
            if released.is_err() {
                tracing::warn!("cluster: leases not released in time; they expire by themselves");
            }
        }
        tracing::info!(node = %self.node_id, "cluster: left");
    }

    /// This node's name in the cluster.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Whether Redis answers (false: every room is served locally).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// Whether this node runs `room`'s scheduler and CDN writer now.
    pub fn owns(&self, room: &str) -> bool {
        self.shared(room).is_some_and(|s| s.is_owner())
    }

    /// This node's base URL for viewers.
    pub fn advertise_url(&self) -> String {
        self.advertise.get().cloned().unwrap_or_default()
    }

    async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.link.conn();
        redis::cmd("PING").query_async::<()>(&mut conn).await
    }

    fn shared(&self, room: &str) -> Option<Arc<SharedRoom>> {
        lock(&self.rooms).get(room).cloned()
    }

    fn rooms_snapshot(&self) -> Vec<Arc<SharedRoom>> {
        lock(&self.rooms).values().cloned().collect()
    }

    fn chat(&self) -> Option<Arc<ChatEngine>> {
        self.chat.upgrade()
    }

    /// A Redis command failed: count it, and on the first failure put every room in local
    /// mode (the health check in the election loop brings them back).
    pub(crate) fn redis_failed(&self, op: &'static str, e: &redis::RedisError) {
        self.redis_failed_msg(op, &e.to_string());
    }

    fn redis_failed_msg(&self, op: &'static str, error: &str) {
        metrics::counter!("barrage_cluster_redis_errors_total", "op" => op).increment(1);
        if self.up.swap(false, Ordering::SeqCst) || op == "start" {
            tracing::warn!(
                op,
                error,
                "cluster: Redis unreachable; serving this node's viewers alone until it is back"
            );
            metrics::gauge!("barrage_cluster_redis_up").set(0.0);
            metrics::counter!("barrage_cluster_local_mode_total").increment(1);
            for shared in self.rooms_snapshot() {
                shared.go_local();
            }
        }
    }
}
