//! Builds the service from config, binds the listeners, and shuts down in order: stop taking
//! publishes and viewers, end live sessions (their VOD playlists get written), then stop HTTP.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::serve::ListenerExt;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenSigner;
use crate::broadcast::recovery::recover_interrupted;
use crate::broadcast::Broadcaster;
use crate::cdn::publisher::{CdnPublisher, NextSeq, PublisherSettings};
use crate::cdn::weights::WeightedBases;
use crate::chat::ChatEngine;
use crate::cluster::{Cluster, ClusterError};
use crate::config::Config;
use crate::db::{Database, DbError};
use crate::rooms::{AuditLog, CatalogError, LiveRegistry, ModerationStore, RoomCatalog};
use crate::secrets::{Secrets, SecretsError};
use crate::series::SeriesBook;
use crate::state::{AppState, RtmpBound};
use crate::storage::{Storage, StorageError};
use crate::thumbnails::Thumbnailer;

/// Why the service could not start; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    NodeIdentity(#[from] crate::node_identity::NodeIdentityError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot load rooms: {0}")]
    Rooms(#[from] CatalogError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The Prometheus recorder is process-wide; tests start several servers in one process.
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness); then ours renders empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A started service: its bound addresses and the handles to stop it.
pub struct RunningServer {
    pub state: AppState,
    pub http_addr: SocketAddr,
    pub rtmp_addr: SocketAddr,
    http_task: JoinHandle<()>,
    rtmp_task: JoinHandle<()>,
}

/// Loads state, binds both listeners (port 0 picks a free port) and starts serving.
pub async fn start(mut config: Config) -> Result<RunningServer, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let secrets = Secrets::load_or_generate(&config)?;
    if !secrets.generated.is_empty() {
        tracing::info!(
            path = %secrets.path.display(),
            generated = ?secrets.generated,
            "generated secrets at first start and kept them"
        );
    }
    let storage = Storage::from_config(&config)?;
    let db = Database::open(&config.db_url()).await?;
    // Sessions are recorded under this node's name, so that after a crash it finishes its
    // own interrupted broadcasts and never another node's.
    config.cluster.node_id = crate::node_identity::resolve(&config)?;
    let recovered =
        recover_interrupted(&db, &storage, &config.cluster.node_id, &config.hls).await?;
    for r in &recovered {
        crate::cdn::publisher::finish_interrupted(&storage, &db, &r.room, &r.session).await;
    }
    if !recovered.is_empty() {
        tracing::warn!(
            node = %config.cluster.node_id,
            sessions = recovered.len(),
            "finished broadcasts left open by an earlier stop (see the lines above)"
        );
    }
    let catalog = RoomCatalog::load(db.clone(), &config, &secrets).await?;
    tracing::info!(
        database = db.location(),
        rooms = catalog.rooms.list().len(),
        "database ready"
    );
    let rooms = catalog.rooms.clone();
    let live = Arc::new(LiveRegistry::new());
    for r in &recovered {
        live.notice(
            &r.room,
            "recovered",
            &format!(
                "broadcast {} was cut off when this node stopped without ending it; its replay \
                 was finished from the {} segments stored",
                r.session, r.segments
            ),
        );
    }
    crate::rooms::sessions::record_sessions(db.clone(), &live, config.cluster.node_id.clone());
    let broadcaster = Broadcaster::new(
        rooms.clone(),
        live.clone(),
        storage.clone(),
        config.hls.clone(),
        config.rtmp.app.clone(),
        std::time::Duration::from_secs(config.rtmp.reconnect_grace_s),
    );
    broadcaster.set_spool(crate::broadcast::spool::SpoolSettings::from_config(&config));
    let config = Arc::new(config);
    let shutdown = CancellationToken::new();
    let moderation = Arc::new(ModerationStore::load(&db).await?);
    let chat = ChatEngine::new(
        Arc::new(config.chat.clone()),
        rooms.clone(),
        live.clone(),
        moderation,
        shutdown.child_token(),
    );
    let cdn = CdnPublisher::start(
        storage.clone(),
        db.clone(),
        live.clone(),
        PublisherSettings {
            period: std::time::Duration::from_millis(config.cdn.period_ms),
            max_pending: config.cdn.max_pending,
            bases: Arc::new(WeightedBases::new(config.cdn.bases.clone())),
            hls_base: (!config.http.public_url.is_empty())
                .then(|| config.http.public_url.trim_end_matches('/').to_string()),
            written: None,
        },
        next_seq_of(&chat),
    );
    chat.set_batch_sink(cdn.clone());
    // Segments carry the room's danmaku as timed metadata.
    broadcaster.set_danmaku_feed(chat.clone());
    let cluster = Cluster::from_config(&config, &chat, &live, &catalog, &cdn, &storage)?;
    let series = Arc::new(SeriesBook::new());
    if let Some(cluster) = &cluster {
        // One publisher per room across the nodes, not only on this one.
        broadcaster.set_claims(cluster.clone());
        cluster.set_series(series.clone());
    }
    crate::series::spawn_sampler(
        series.clone(),
        chat.clone(),
        live.clone(),
        shutdown.child_token(),
    );
    broadcaster.set_thumbnailer(
        Thumbnailer::start(&config.thumbnails, storage.clone(), live.clone()).await,
    );
    let flv = crate::live_flv::FlvHub::new(config.flv.queue_tags);
    if config.flv.enabled {
        broadcaster.set_flv_hub(flv.clone());
    }
    let state = AppState {
        tokens: Arc::new(TokenSigner::new(&secrets.token_secret)),
        guest_limits: Arc::new(crate::http::guest_limits::GuestTokenLimits::new(
            config.auth.guest_tokens_per_ip_per_min,
            config.auth.guest_tokens_per_min,
        )),
        secrets: Arc::new(secrets),
        storage: Arc::new(storage),
        rooms,
        audit: Arc::new(AuditLog::new(catalog.db.clone())),
        catalog: Arc::new(catalog),
        live,
        broadcaster,
        chat,
        cdn,
        cluster,
        series,
        flv,
        metrics: metrics_handle(),
        rtmp_bound: RtmpBound::default(),
        shutdown,
        config: config.clone(),
    };

    let http_listener = TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| StartError::Bind {
            what: "http.listen",
            addr: config.http.listen,
            source,
        })?;
    let rtmp_listener = TcpListener::bind(config.rtmp.listen)
        .await
        .map_err(|source| StartError::Bind {
            what: "rtmp.listen",
            addr: config.rtmp.listen,
            source,
        })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            what: "http.listen",
            addr: config.http.listen,
            source,
        })?;
    let rtmp_addr = rtmp_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            what: "rtmp.listen",
            addr: config.rtmp.listen,
            source,
        })?;

    state.rtmp_bound.set(rtmp_addr);
    if let Some(cluster) = &state.cluster {
        cluster.start(http_addr).await;
    }
    let router = crate::http::router(state.clone());
    let http_shutdown = state.shutdown.clone();
    // `tap_io` (a no-op here) is what lets axum hand handlers the peer's SocketAddr from a
    // listener of ours.
    let http_listener =
        crate::http::limited_listener::LimitedListener::new(http_listener, &config.http)
            .tap_io(|_| {});
    let http_task = tokio::spawn(async move {
        let result = axum::serve(
            http_listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "http server failed");
        }
    });
    let gate: Arc<dyn crate::ingest::PublishGate> = state.broadcaster.clone();
    let rtmp_task = tokio::spawn(crate::ingest::serve(
        rtmp_listener,
        Arc::new(config.rtmp.clone()),
        gate,
        state.shutdown.clone(),
    ));
    tracing::info!(http = %http_addr, rtmp = %rtmp_addr, storage = state.storage.location(), "barrage is up");
    Ok(RunningServer {
        state,
        http_addr,
        rtmp_addr,
        http_task,
        rtmp_task,
    })
}

impl RunningServer {
    /// Logs where to point OBS and players.
    pub fn log_how_to_use(&self) {
        let host = match self.rtmp_addr.ip() {
            ip if ip.is_unspecified() => "HOST".to_string(),
            ip => ip.to_string(),
        };
        let http_port = self.http_addr.port();
        for room in self.state.rooms.list() {
            let secrets = &self.state.secrets;
            let kept = secrets
                .stream_keys
                .get(&room.id)
                .filter(|k| self.state.catalog.config_key_in_force(&room.id, k));
            // The key itself only when this start made it (the operator needs it once, to set
            // up OBS); at every later start the log names where it is kept, so logs shipped
            // elsewhere do not carry a key that opens the room.
            let stream_key = match kept {
                Some(key) if secrets.stream_key_generated_now(&room.id) => key.clone(),
                Some(_) => format!(
                    "(stream_keys.{} in {}, or the room's stream_key in config)",
                    room.id,
                    secrets.path.display()
                ),
                None => "(set by the API: shown when made or rotated)".to_string(),
            };
            tracing::info!(
                room = %room.id,
                obs_server = %format!("rtmp://{host}:{}/{}", self.rtmp_addr.port(), self.state.config.rtmp.app),
                stream_key = %stream_key,
                playlist = %format!("http://{host}:{http_port}/hls/{}/live.m3u8", room.id),
                "room ready: in OBS set Settings > Stream > Custom with this server and stream key"
            );
        }
        for room in self.state.rooms.list() {
            // A config room's host key was generated into (or given in) config; one rotated
            // through the API was shown once. Either way, the log names where, never the key.
            let kept = self
                .state
                .secrets
                .host_keys
                .get(&room.id)
                .is_some_and(|k| self.state.catalog.config_host_key_in_force(&room.id, k));
            if kept {
                tracing::info!(
                    room = %room.id,
                    host_key_file = %self.state.secrets.path.display(),
                    host_console = %format!("http://{host}:{http_port}/host"),
                    "host key: host_keys.{} in the secrets file (or the room's host_key in config) unlocks the host console for this room",
                    room.id
                );
            }
        }
        tracing::info!(
            admin_key_file = %self.state.secrets.path.display(),
            "admin API key: see auth.admin_key in config or the secrets file"
        );
    }

    /// Stops in order within `shutdown_grace_s` (under the 30 s an orchestrator waits before
    /// killing): every room ticks until its system messages and high gifts are delivered, live
    /// sessions write their last segments and VOD playlists with ENDLIST, the danmaku files
    /// take the last batches. Whatever could not be written in time is logged by name (the
    /// next start's recovery finishes interrupted broadcasts).
    pub async fn stop(self) {
        let grace = std::time::Duration::from_secs(self.state.config.shutdown_grace_s);
        let deadline = tokio::time::Instant::now() + grace;
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        tracing::info!(?grace, "shutting down: ending live sessions");
        // Chat first: every room ticks until its system messages and high gifts are out, and
        // those batches are in the danmaku writer's queue before any broadcast's end is.
        if tokio::time::timeout(left(), self.state.chat.stop())
            .await
            .is_err()
        {
            tracing::error!("shutdown grace ran out while rooms delivered their last messages");
        }
        self.state.shutdown.cancel();
        let _ = tokio::time::timeout(left(), self.rtmp_task).await;
        if tokio::time::timeout(left(), self.state.broadcaster.wait_idle())
            .await
            .is_err()
        {
            for info in self.state.live.list() {
                tracing::error!(
                    room = %info.room,
                    session = %info.session,
                    "shutdown grace ran out before this broadcast's last segment and VOD playlist \
                     were written (the next start's recovery finishes it)"
                );
            }
        }
        // After chat has delivered its last batches: cut, write what is pending, bounded.
        self.state.cdn.shutdown(left()).await;
        // After the last files: give the leases back so another node takes over at once.
        if let Some(cluster) = &self.state.cluster {
            cluster.stop().await;
        }
        let _ = self.http_task.await;
        self.state.catalog.db.close().await;
        tracing::info!("stopped");
    }
}

/// The CDN writer asks the engine for a room's next seq without keeping the engine alive.
fn next_seq_of(chat: &Arc<ChatEngine>) -> NextSeq {
    let weak = Arc::downgrade(chat);
    Arc::new(move |room: &str| weak.upgrade().map_or(1, |c| c.next_seq(room)))
}

/// Runs until SIGTERM or ctrl-c, then stops gracefully.
pub async fn run_until_signal(config: Config) -> Result<(), StartError> {
    let server = start(config).await?;
    server.log_how_to_use();
    wait_for_signal().await;
    server.stop().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
