//! What the HTTP handlers and sockets share, built once by `crate::app` at start. It sits below
//! both: `app` fills it in and `http` reads it, so neither imports the other's internals.
//!
//! Each part is its own cheap handle (an `Arc`, or a type that is one inside), and axum hands
//! a handler only the parts it names: `State<Arc<ChatEngine>>`, or a route group's own view
//! built from these ([`FromRef`]).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::FromRef;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenSigner;
use crate::broadcast::Broadcaster;
use crate::cdn::publisher::CdnPublisher;
use crate::chat::ChatEngine;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::rooms::{AuditLog, LiveRegistry, RoomCatalog, RoomDirectory};
use crate::secrets::Secrets;
use crate::series::SeriesBook;
use crate::storage::Storage;

/// Everything the handlers share.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    pub config: Arc<Config>,
    pub secrets: Arc<Secrets>,
    pub tokens: Arc<TokenSigner>,
    /// Bounds on `POST /api/rooms/{room}/guest-token`, per address and in total.
    pub guest_limits: Arc<crate::http::guest_limits::GuestTokenLimits>,
    pub storage: Arc<Storage>,
    pub rooms: Arc<RoomDirectory>,
    /// Room and moderation writes (database first, then the in-memory views).
    pub catalog: Arc<RoomCatalog>,
    /// Who moderated what, for the room's host.
    pub audit: Arc<AuditLog>,
    pub live: Arc<LiveRegistry>,
    pub broadcaster: Arc<Broadcaster>,
    /// Chat rooms: WebSocket danmaku, gifts, system messages, moderation.
    pub chat: Arc<ChatEngine>,
    /// Writes every room's delivered danmaku as per-period files for a CDN.
    pub cdn: Arc<CdnPublisher>,
    /// The other nodes sharing the rooms (None: this node alone, `cluster.redis_url` empty).
    pub cluster: Option<Arc<Cluster>>,
    /// Every room's per-second series for the host console's charts.
    pub series: Arc<SeriesBook>,
    /// Live rooms as HTTP-FLV (`GET /live/{room}.flv`).
    pub flv: Arc<crate::live_flv::FlvHub>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The RTMP address actually bound, for OBS settings.
    pub rtmp_bound: RtmpBound,
    /// Cancelled once on shutdown; every listener and session watches it.
    #[from_ref(skip)]
    pub shutdown: CancellationToken,
}

/// The RTMP address actually bound (the configured port may be 0), known once the listener
/// is up.
#[derive(Debug, Clone, Default)]
pub struct RtmpBound(Arc<OnceLock<SocketAddr>>);

impl RtmpBound {
    /// Records the bound address; only the first call counts.
    pub fn set(&self, addr: SocketAddr) {
        let _ = self.0.set(addr);
    }

    /// The bound address, once known.
    pub fn get(&self) -> Option<SocketAddr> {
        self.0.get().copied()
    }
}
