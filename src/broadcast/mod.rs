//! Turns accepted publishes into HLS in object storage.
//!
//! [`Broadcaster`] is the [`PublishGate`] ingest asks: it checks the application and stream
//! key, claims the room across nodes ([`claims`], when clustered) and in the [`LiveRegistry`]
//! (one publisher per room), and starts one
//! [`writer::SessionWriter`] task per session, fed through a bounded channel. A session never
//! waits on another: each has its own task, and a slow store only backs up its own publisher.
//!
//! Objects per session (keys are also the HTTP paths, see [`keys::SessionKeys`]):
//! `hls/{room}/{session}/init.mp4`, `.../{n:06}.m4s` (n from 1), `.../index.m3u8` (EVENT while
//! live, VOD with ENDLIST afterwards), and the room's stable `hls/{room}/live.m3u8` (sliding
//! window). When a stream ends, `live.m3u8` is rewritten once more with `EXT-X-ENDLIST`, so
//! players still watching stop cleanly at the last segment instead of polling a playlist that
//! will never grow; the next session of the room overwrites it with its own window.
//!
//! A publisher that drops and publishes again within `rtmp.reconnect_grace_s` continues its
//! session ([`reconnect`], [`continuation`]): no ENDLIST meanwhile, and the playlists go on with
//! a discontinuity and the new part's init segment (`init-2.mp4`, ...).
//!
//! Each segment carries the room's delivered danmaku whose `stream_ms` falls in it, as `emsg`
//! ID3 timed metadata in front of its `moof` ([`in_stream`]).

pub mod bitrate;
pub mod claims;
pub mod continuation;
pub mod in_stream;
pub mod keys;
pub mod publisher_bounds;
pub mod reconnect;
pub mod recovery;
pub mod spool;
pub mod store;
pub mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::HlsConfig;
use crate::ingest::{Publication, PublishGate, PublishRefusal, PublishRequest};
use crate::rooms::live::LiveRegistry;
use crate::rooms::RoomDirectory;
use crate::storage::Storage;
use crate::thumbnails::Thumbnailer;
use claims::{ClaimOutcome, PublishClaims};
use in_stream::{DanmakuFeed, InStreamDanmaku};
use reconnect::Reconnects;
use writer::{SessionSettings, SessionWriter};

/// Batches queued between ingest and a session's writer (at most `MEDIA_BATCH_MAX` messages
/// each; usually a keyframe ends one sooner, so this is about 10-15 s of a typical stream):
/// enough to ride out a slow store write, bounded so a stuck store backs up the publisher's TCP
/// instead of memory.
pub const MEDIA_CHANNEL_CAPACITY: usize = 32;

/// Authorises publishes and runs one HLS writer per live session.
pub struct Broadcaster {
    rooms: Arc<RoomDirectory>,
    live: Arc<LiveRegistry>,
    storage: Storage,
    hls: HlsConfig,
    /// The RTMP application publishers must use (`live` in `rtmp://host/live`).
    app: String,
    /// Every session's writer task, so shutdown can wait for their final playlists.
    tasks: TaskTracker,
    /// Set once shutdown begins: new publishes are refused.
    shutting_down: AtomicBool,
    /// Tells writers to finish what is queued and finalise (shutdown).
    stop: CancellationToken,
    /// The other nodes' say in who publishes a room (set when clustered).
    claims: OnceLock<Arc<dyn PublishClaims>>,
    /// The chat whose delivered events each session carries in its segments (when set).
    danmaku: OnceLock<Arc<dyn DanmakuFeed>>,
    /// Sessions whose publisher dropped, waiting for it to come back.
    reconnects: Arc<Reconnects>,
    /// How long they wait (`rtmp.reconnect_grace_s`; zero: a broadcast ends with its publish).
    reconnect_grace: Duration,
    /// Takes stills of live rooms (set at start when thumbnails are on).
    stills: OnceLock<Arc<Thumbnailer>>,
    /// Where each session keeps media the store has not taken yet ([`spool`]).
    spool: OnceLock<spool::SpoolSettings>,
    /// Hands each session's tags to HTTP-FLV viewers (set at start when `flv.enabled`).
    flv: OnceLock<Arc<crate::live_flv::FlvHub>>,
    /// Each room's LL-HLS live playlist, kept by its writer (`hls.part_ms` > 0).
    live_edges: Arc<crate::hls::live_edge::LiveEdges>,
}

impl std::fmt::Debug for Broadcaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broadcaster")
            .field("app", &self.app)
            .field("clustered", &self.claims.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Broadcaster {
    /// A gate for publishes to `app`, writing HLS for `rooms` into `storage`.
    pub fn new(
        rooms: Arc<RoomDirectory>,
        live: Arc<LiveRegistry>,
        storage: Storage,
        hls: HlsConfig,
        app: String,
        reconnect_grace: Duration,
    ) -> Arc<Broadcaster> {
        Arc::new(Broadcaster {
            rooms,
            live,
            storage,
            hls,
            app,
            tasks: TaskTracker::new(),
            shutting_down: AtomicBool::new(false),
            stop: CancellationToken::new(),
            claims: OnceLock::new(),
            danmaku: OnceLock::new(),
            reconnects: Arc::new(Reconnects::new()),
            reconnect_grace,
            stills: OnceLock::new(),
            spool: OnceLock::new(),
            flv: OnceLock::new(),
            live_edges: Arc::new(crate::hls::live_edge::LiveEdges::new()),
        })
    }

    /// The rooms' LL-HLS live playlists (what `/hls/{room}/live.m3u8` serves first).
    pub fn live_edges(&self) -> Arc<crate::hls::live_edge::LiveEdges> {
        self.live_edges.clone()
    }

    /// Makes every session offer its segments to `thumbnailer` for stills.
    /// Makes every session feed its tags to `hub` for `GET /live/{room}.flv`.
    pub fn set_flv_hub(&self, hub: Arc<crate::live_flv::FlvHub>) {
        let _ = self.flv.set(hub);
    }

    pub fn set_thumbnailer(&self, thumbnailer: Arc<Thumbnailer>) {
        let _ = self.stills.set(thumbnailer);
    }

    /// Makes every publish ask `claims` too (several nodes: one publisher per room in all).
    pub fn set_claims(&self, claims: Arc<dyn PublishClaims>) {
        let _ = self.claims.set(claims);
    }

    /// Makes every session carry the room's delivered events in its segments (`emsg`).
    pub fn set_danmaku_feed(&self, feed: Arc<dyn DanmakuFeed>) {
        let _ = self.danmaku.set(feed);
    }

    /// Sets every session's spool budgets and folder (default: 64 MiB in memory). Called at
    /// start, before any publish: files a crashed process left in the folder are removed
    /// (their segments never reached the store and are not replayed).
    pub fn set_spool(&self, settings: spool::SpoolSettings) {
        if let Some(dir) = &settings.dir {
            if dir.exists() {
                tracing::warn!(dir = %dir.display(), "removing spooled media left by an earlier run");
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        let _ = self.spool.set(settings);
    }

    /// Shuts the gate and waits until every live session has written its final playlists.
    /// Publishes are refused from here on; writers still store what was already queued.
    pub async fn wait_idle(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Number of session writers still running (live, or finalising).
    pub fn running_sessions(&self) -> usize {
        self.tasks.len()
    }
}

impl PublishGate for Broadcaster {
    fn open<'a>(
        &'a self,
        request: &'a PublishRequest,
    ) -> BoxFuture<'a, Result<Publication, PublishRefusal>> {
        Box::pin(self.publish(request))
    }
}

impl Broadcaster {
    /// Decides a publish and, when it is taken, starts its session writer.
    pub async fn publish(&self, request: &PublishRequest) -> Result<Publication, PublishRefusal> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(PublishRefusal::ShuttingDown);
        }
        if request.app != self.app {
            return Err(PublishRefusal::WrongApp {
                app: request.app.clone(),
                expected: self.app.clone(),
            });
        }
        let room = self
            .rooms
            .room_for_key(&request.stream_key)
            .ok_or(PublishRefusal::UnknownKey)?;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(%room, "publish refused: the gate was called outside the runtime");
            return Err(PublishRefusal::ShuttingDown);
        };
        if let Some(publication) = self.reconnects.resume(&room, request.peer) {
            // Its publisher came back within the grace: the session goes on (its writer, and
            // the cluster claim that writer holds, never stopped).
            return Ok(publication);
        }
        if self.live.get(&room).is_some() {
            // Live here already: no need to ask the other nodes.
            return Err(PublishRefusal::AlreadyLive { room });
        }
        let claim = match self.claims.get() {
            None => None,
            Some(claims) => match claims.claim(&room).await {
                ClaimOutcome::Claimed(guard) => Some(guard),
                ClaimOutcome::Elsewhere { node } => {
                    tracing::info!(%room, %node, "publish refused: the room is live on another node");
                    return Err(PublishRefusal::AlreadyLive { room });
                }
                ClaimOutcome::Unchecked => {
                    tracing::warn!(%room, "cluster unreachable: taking the publish without asking the other nodes");
                    metrics::counter!("barrage_publish_unchecked_total").increment(1);
                    None
                }
            },
        };
        let info = self
            .live
            .try_begin(&room)
            .map_err(|e| PublishRefusal::AlreadyLive { room: e.room })?;
        let (media, receiver) = mpsc::channel(MEDIA_CHANNEL_CAPACITY);
        let settings = SessionSettings {
            room: room.clone(),
            session: info.session.clone(),
            target_segment_s: self.hls.target_segment_s,
            window_segments: self.hls.window_segments,
            part_ms: self.hls.part_ms,
        };
        let mut writer = SessionWriter::new(settings, self.storage.clone(), self.live.clone())
            .with_reconnects(self.reconnects.clone(), self.reconnect_grace)
            .with_danmaku(match self.danmaku.get() {
                Some(feed) => InStreamDanmaku::follow(feed.as_ref(), &room),
                None => InStreamDanmaku::off(),
            })
            .with_bounds(publisher_bounds::PublisherBounds::new(
                self.hls.max_segment_bytes,
                std::time::Duration::from_secs(self.hls.max_segment_wall_s),
            ))
            .with_spool(self.spool.get().cloned().unwrap_or_default())
            .with_low_latency(self.live_edges.clone());
        if let Some(stills) = self.stills.get() {
            writer = writer.with_stills(stills.clone());
        }
        if let Some(hub) = self.flv.get() {
            writer = writer.with_flv(hub.feed(&room));
        }
        let span = tracing::info_span!("session", room = %room, session = %info.session, peer = %request.peer);
        let stop = self.stop.clone();
        self.tasks.spawn_on(
            async move {
                // The cross-node claim lasts as long as the session is written.
                let _claim = claim;
                writer.run(receiver, stop).await
            }
            .instrument(span),
            &runtime,
        );
        Ok(Publication {
            room,
            session: info.session,
            media,
        })
    }
}

#[cfg(test)]
mod tests;
