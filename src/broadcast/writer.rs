//! [`SessionWriter`]: the task behind one live session. It feeds the publish's media through a
//! [`StreamMuxer`] and stores what comes out, in order: the init segment once, then per cut the
//! segment, the session playlist and the room's live playlist, right when the closing keyframe
//! arrives. When the media channel closes it flushes the last segment, turns the session
//! playlist into a VOD, ends the live playlist, and tells the [`LiveRegistry`].
//!
//! With a reconnect grace ([`SessionWriter::with_reconnects`]) a closed channel ends only the
//! part: the last segment is listed with the playlists still live, and the writer waits for the
//! room's publisher to come back ([`Reconnects`]). A publish within the grace continues the
//! session as a new part (its own init segment, a discontinuity, the timeline and segment
//! numbers going on, see [`SessionParts`]); otherwise the broadcast ends as above.
//!
//! Media objects go through the session's [`Spool`] ([`spooled`]): a segment is listed only
//! once it is stored, and while the store does not answer, segments wait in order (memory,
//! then disk) instead of being lost; the final playlists are retried until written.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::bitrate::BitrateMeter;
use super::continuation::SessionParts;
use super::in_stream::InStreamDanmaku;
use super::keys::SessionKeys;
use super::publisher_bounds::{BoundBroken, PublisherBounds};
use super::reconnect::Reconnects;
use super::spool::{RetryClock, Spool, SpoolSettings};
use crate::health::SessionHealth;
use crate::hls::playlist::{ListedSegment, SessionPlaylists, SessionState};
use crate::ingest::MediaBatch;
use crate::media::{MediaError, MediaMessage, MuxEvent, Segment, StreamMetadata, StreamMuxer};
use crate::rooms::live::LiveRegistry;
use crate::storage::Storage;
use crate::thumbnails::{SessionStills, Thumbnailer};

mod low_latency;
mod parts;
mod spooled;

use spooled::Listing;

/// Bounds a writer applies until told otherwise ([`SessionWriter::with_bounds`]); the same as
/// config/default.toml's.
const DEFAULT_MAX_SEGMENT_BYTES: usize = 64 << 20;
const DEFAULT_MAX_SEGMENT_WALL_S: u64 = 60;
/// Window of the measured ingest bitrate.
const BITRATE_WINDOW_MS: u64 = 5_000;
/// How often the measured bitrate is published to the registry.
const BITRATE_UPDATE_MS: u128 = 1_000;

/// What a session needs to know about where it writes.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub room: String,
    pub session: String,
    pub target_segment_s: f64,
    pub window_segments: usize,
    /// LL-HLS part target (`hls.part_ms`; 0: no parts). Parts are cut only when the writer
    /// also has somewhere to list them ([`SessionWriter::with_low_latency`]).
    pub part_ms: u64,
}

impl SessionSettings {
    /// The segment target in whole milliseconds (at least 1).
    fn target_ms(&self) -> u64 {
        (self.target_segment_s * 1000.0).round().max(1.0) as u64
    }
}

/// Counts reported when the session ends.
#[derive(Debug, Default, Clone)]
struct SessionCounts {
    video_tags: u64,
    audio_tags: u64,
    bytes: u64,
    segments: u64,
    /// Segments dropped because the spool was full (listed as gaps).
    lost_segments: u64,
    invalid_tags: u64,
    dropped_frames: u64,
    /// Longest keyframe-to-live-playlist delay seen.
    max_playlist_delay_ms: f64,
}

/// Ends the session in the registry and the sessions gauge however the writer stops: if its
/// task panicked or was dropped, the room must not stay "live" and refuse every publisher.
struct LiveSessionGuard {
    live: Arc<LiveRegistry>,
    room: String,
    session: String,
    /// The VOD playlist, once the final playlists are written.
    vod_key: Option<String>,
    /// Wall-clock ms the broadcast ended at, when not now (its publisher left, then the
    /// reconnect grace ran out).
    ended_ms: Option<i64>,
}

impl Drop for LiveSessionGuard {
    fn drop(&mut self) {
        let ended_ms = self.ended_ms.unwrap_or_else(crate::clock::now_ms);
        self.live
            .end_at(&self.room, &self.session, self.vod_key.take(), ended_ms);
        metrics::gauge!("barrage_live_sessions").decrement(1.0);
    }
}

/// Writes one session's HLS objects (see the module doc).
pub struct SessionWriter {
    settings: SessionSettings,
    keys: SessionKeys,
    storage: Storage,
    live: Arc<LiveRegistry>,
    muxer: StreamMuxer,
    playlists: SessionPlaylists,
    /// Wall-clock time of stream time 0 (the first media frame), for PROGRAM-DATE-TIME.
    first_frame_wall: Option<DateTime<Utc>>,
    started: Instant,
    bitrate: BitrateMeter,
    bitrate_updated: Instant,
    /// Objects cut but not stored yet, in order (see [`spooled`]).
    spool: Spool<Listing>,
    /// Spaces store attempts while the store fails.
    store_retry: RetryClock,
    /// The playlists changed (or their last write failed) and must be written.
    playlists_due: bool,
    /// The playlists were last written as the final VOD.
    final_written: bool,
    /// The spool's front object failed while the store took playlists, this many times.
    refusals: u32,
    /// The session's parts so far (more than one after a reconnect).
    parts: SessionParts,
    /// The room's danmaku, carried in the segments as `emsg` (see [`InStreamDanmaku`]).
    danmaku: InStreamDanmaku,
    /// The room's HTTP-FLV viewers' feed (None: `flv.enabled` is off).
    flv: Option<crate::live_flv::FlvRoomFeed>,
    /// Where a dropped publisher may come back, and for how long.
    reconnect: Option<(Arc<Reconnects>, Duration)>,
    /// Wall-clock ms the current publisher left (None while one publishes).
    left_ms: Option<i64>,
    /// Ingest refused the publish (a codec not carried): the broadcast ends without a grace.
    refusal: Option<String>,
    /// The stream ended: segments flushed now go straight into the final (VOD) playlists.
    ending: bool,
    /// Problems already logged (invalid input is logged once per kind, not per frame).
    warned: HashSet<&'static str>,
    counts: SessionCounts,
    /// Metric handles taken once: a registry lookup per frame was a measurable share of
    /// ingest CPU.
    meters: FrameMeters,
    /// Keyframe interval, frame rate, audio, jumps: judged once a second into the status.
    health: SessionHealth,
    /// Offers segments for the room's still and the replay's poster (None: no stills).
    stills: Option<SessionStills>,
    /// Bytes and wall time a segment may take whatever the publisher's timestamps say.
    bounds: PublisherBounds,
    /// The bound the current publisher broke: its media channel is closed, what it still
    /// queued is dropped.
    cut_off: Option<BoundBroken>,
    /// LL-HLS parts and the room's in-memory live playlist (None: `hls.part_ms` is 0).
    low_latency: Option<low_latency::LowLatency>,
}

/// The per-frame counters of a session.
struct FrameMeters {
    video: metrics::Counter,
    audio: metrics::Counter,
    bytes: metrics::Counter,
}

impl FrameMeters {
    fn new() -> FrameMeters {
        FrameMeters {
            video: metrics::counter!("barrage_ingest_frames_total", "kind" => "video"),
            audio: metrics::counter!("barrage_ingest_frames_total", "kind" => "audio"),
            bytes: metrics::counter!("barrage_ingest_media_bytes_total"),
        }
    }
}

impl SessionWriter {
    /// A writer for one session; nothing happens until [`SessionWriter::run`].
    pub fn new(
        settings: SessionSettings,
        storage: Storage,
        live: Arc<LiveRegistry>,
    ) -> SessionWriter {
        let target_ms = settings.target_ms();
        let now = Instant::now();
        let spool = Spool::new(SpoolSettings::default(), &spooled::spool_name(&settings));
        SessionWriter {
            keys: SessionKeys::new(&settings.room, &settings.session),
            playlists: SessionPlaylists::new(&settings.session, settings.target_segment_s),
            muxer: StreamMuxer::new(target_ms),
            health: SessionHealth::new(&settings.room),
            stills: None,
            settings,
            storage,
            live,
            first_frame_wall: None,
            started: now,
            bitrate: BitrateMeter::new(BITRATE_WINDOW_MS),
            bitrate_updated: now,
            spool,
            store_retry: RetryClock::default(),
            playlists_due: false,
            final_written: false,
            refusals: 0,
            parts: SessionParts::new(),
            danmaku: InStreamDanmaku::off(),
            flv: None,
            reconnect: None,
            left_ms: None,
            refusal: None,
            ending: false,
            warned: HashSet::new(),
            counts: SessionCounts::default(),
            meters: FrameMeters::new(),
            bounds: PublisherBounds::new(
                DEFAULT_MAX_SEGMENT_BYTES,
                Duration::from_secs(DEFAULT_MAX_SEGMENT_WALL_S),
            ),
            cut_off: None,
            low_latency: None,
        }
    }

    /// A muxer for a publish starting at `start`, cutting LL-HLS parts when they are listed.
    fn new_muxer(&self, start: crate::media::TimelineStart) -> StreamMuxer {
        let part_ms = if self.low_latency.is_some() {
            self.settings.part_ms
        } else {
            0
        };
        StreamMuxer::continuing(self.settings.target_ms(), start).with_parts(part_ms)
    }

    /// The number of the segment being built.
    fn muxer_next_segment(&self) -> u64 {
        self.muxer.next_segment()
    }

    /// Offers the session's segments to `thumbnailer` for stills.
    pub fn with_stills(mut self, thumbnailer: Arc<Thumbnailer>) -> SessionWriter {
        if thumbnailer.is_on() {
            self.stills = Some(SessionStills::new(
                thumbnailer,
                &self.settings.room,
                &self.settings.session,
            ));
        }
        self
    }

    /// Hands every media message to the room's HTTP-FLV viewers too.
    pub fn with_flv(mut self, feed: crate::live_flv::FlvRoomFeed) -> SessionWriter {
        self.flv = Some(feed);
        self
    }

    /// Carries the room's delivered events in the segments (see [`InStreamDanmaku`]).
    pub fn with_danmaku(mut self, danmaku: InStreamDanmaku) -> SessionWriter {
        self.danmaku = danmaku;
        self
    }

    /// Sets the bounds a publisher must keep (`hls.max_segment_bytes`, `max_segment_wall_s`).
    pub fn with_bounds(mut self, bounds: PublisherBounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// Runs until the media channel closes (end of stream, and no publisher came back within
    /// the grace) or `stop` fires (shutdown: what is already queued is still written), then
    /// finalises the session.
    pub async fn run(mut self, mut media: mpsc::Receiver<MediaBatch>, stop: CancellationToken) {
        metrics::gauge!("barrage_live_sessions").increment(1.0);
        let mut guard = LiveSessionGuard {
            live: self.live.clone(),
            room: self.settings.room.clone(),
            session: self.settings.session.clone(),
            vod_key: None,
            ended_ms: None,
        };
        tracing::info!("broadcast started");
        loop {
            self.write_part(&mut media, &stop).await;
            match self.await_reconnect(&stop).await {
                Some(next) => media = next,
                None => break,
            }
        }
        guard.vod_key = self.finish(&stop).await;
        guard.ended_ms = self.left_ms;
        // Dropping the guard ends the session in the registry, now with its VOD playlist.
        drop(guard);
    }

    /// Writes one publisher's media until its channel closes (or shutdown closes it).
    async fn write_part(
        &mut self,
        media: &mut mpsc::Receiver<MediaBatch>,
        stop: &CancellationToken,
    ) {
        let mut stopping = false;
        self.bounds.segment_cut(Instant::now());
        self.cut_off = None;
        loop {
            let following = self.danmaku.is_following();
            let message = tokio::select! {
                biased;
                _ = stop.cancelled(), if !stopping => {
                    stopping = true;
                    media.close();
                    continue;
                }
                message = media.recv() => message,
                // Keeps up with the room's batches between segments (see `in_stream`).
                () = self.danmaku.recv(), if following => continue,
                // Media stopped coming but the spool holds some: keep trying the store.
                _ = tokio::time::sleep(self.store_retry.wait(Instant::now())), if self.drain_due() => {
                    self.drain().await;
                    continue;
                }
            };
            match message {
                Some(batch) => {
                    if self.cut_off.is_some() {
                        continue;
                    }
                    for message in batch {
                        self.handle(message).await;
                        if let Some(broken) = &self.cut_off {
                            metrics::counter!("barrage_publishers_cut_off_total", "reason" => broken.reason())
                                .increment(1);
                            tracing::error!(
                                reason = broken.reason(),
                                peak_buffered_bytes = self.bounds.peak_bytes(),
                                "publisher cut off: {broken}"
                            );
                            media.close();
                            break;
                        }
                    }
                }
                None => return,
            }
        }
    }

    async fn handle(&mut self, message: MediaMessage) {
        let received = Instant::now();
        if let Some(flv) = &self.flv {
            flv.publish(&message);
        }
        if self.drain_due() && self.store_retry.due(received) {
            self.drain().await;
        }
        let (result, bytes) = match message {
            MediaMessage::Metadata(meta) => {
                self.metadata(&meta);
                return;
            }
            MediaMessage::Refused(reason) => {
                self.refused(reason);
                return;
            }
            MediaMessage::Video { timestamp, body } => {
                self.health
                    .video(self.ms_since_start(received), timestamp, &body);
                self.counts.video_tags += 1;
                self.meters.video.increment(1);
                (self.muxer.push_video(timestamp, &body), body.len())
            }
            MediaMessage::Audio { timestamp, body } => {
                self.health
                    .audio(self.ms_since_start(received), timestamp, &body);
                self.counts.audio_tags += 1;
                self.meters.audio.increment(1);
                (self.muxer.push_audio(timestamp, &body), body.len())
            }
        };
        self.media_bytes(received, bytes as u64);
        match result {
            Ok(events) => {
                for event in events {
                    if matches!(event, MuxEvent::Segment(_)) {
                        self.bounds.segment_cut(received);
                    }
                    self.event(event, received).await;
                }
            }
            Err(e) => self.invalid(&e),
        }
        if let Err(broken) = self.bounds.check(self.muxer.buffered_bytes(), received) {
            self.cut_off = Some(broken);
        }
    }

    fn metadata(&mut self, meta: &StreamMetadata) {
        self.health.metadata(meta);
        if meta.width.is_some() || meta.video_kbps.is_some() {
            self.muxer.announce_video();
        }
        let announced = match (meta.video_kbps, meta.audio_kbps) {
            (None, None) => None,
            (v, a) => Some(v.unwrap_or(0.0) + a.unwrap_or(0.0)),
        };
        tracing::info!(
            width = ?meta.width,
            height = ?meta.height,
            framerate = ?meta.framerate,
            announced_kbps = ?announced,
            encoder = meta.encoder.as_deref().unwrap_or(""),
            "stream metadata"
        );
        self.update_live(|info| {
            if announced.is_some() {
                info.announced_kbps = announced;
            }
        });
    }

    fn media_bytes(&mut self, now: Instant, bytes: u64) {
        self.counts.bytes += bytes;
        self.meters.bytes.increment(bytes);
        if self.first_frame_wall.is_none() {
            let wall = Utc::now();
            self.first_frame_wall = Some(wall);
            self.update_live(|info| {
                info.first_frame_at = Some(now);
                info.first_frame_ms = Some(wall.timestamp_millis());
            });
        }
        let now_ms = self.ms_since_start(now);
        self.bitrate.add(now_ms, bytes);
        if now.duration_since(self.bitrate_updated).as_millis() >= BITRATE_UPDATE_MS {
            self.bitrate_updated = now;
            let kbps = self.bitrate.kbps(now_ms);
            let health = self.health.second(now_ms, kbps);
            self.update_live(|info| {
                info.bitrate_kbps = kbps;
                info.frame_rate = health.frame_rate;
                info.keyframe_interval_s = health.keyframe_interval_s;
                info.health = health.problems;
            });
        }
    }

    /// Milliseconds from the writer's start to `at`: the clock of the health watch.
    fn ms_since_start(&self, at: Instant) -> u64 {
        at.duration_since(self.started).as_millis() as u64
    }

    async fn event(&mut self, event: MuxEvent, received: Instant) {
        match event {
            MuxEvent::VideoConfig(v) => {
                if let Some(e) = &v.sps_error {
                    self.warn_once(
                        "sps",
                        || tracing::warn!(error = %e, "cannot read the SPS; size unknown"),
                    );
                }
                tracing::info!(codec = %v.codec, width = ?v.width, height = ?v.height, "video config");
                self.update_live(|info| {
                    info.video_codec = Some(v.codec.clone());
                    info.width = v.width;
                    info.height = v.height;
                });
            }
            MuxEvent::AudioConfig(a) => {
                tracing::info!(codec = %a.codec, sample_rate = a.sample_rate, channels = a.channels, "audio config");
                self.update_live(|info| info.audio_codec = Some(a.codec.clone()));
            }
            MuxEvent::Init(init) => {
                tracing::info!(
                    video = init.has_video,
                    audio = init.has_audio,
                    "tracks decided"
                );
                if let Some(stills) = &mut self.stills {
                    stills.init(&init.bytes);
                }
                let key = self.keys.part_init(self.parts.part());
                self.spool.push(key, init.bytes, false, Listing::Init).await;
                self.drain().await;
            }
            MuxEvent::Part(part) => self.store_part(part),
            MuxEvent::Segment(segment) => self.store_segment(segment, received).await,
            MuxEvent::Dropped(reason) => {
                self.counts.dropped_frames += 1;
                metrics::counter!("barrage_ingest_dropped_frames_total", "reason" => reason.kind())
                    .increment(1);
                self.warn_once(reason.kind(), || {
                    tracing::warn!(
                        reason = reason.kind(),
                        "dropping frames (logged once per reason)"
                    )
                });
            }
        }
    }

    fn invalid(&mut self, error: &MediaError) {
        self.counts.invalid_tags += 1;
        metrics::counter!("barrage_ingest_invalid_tags_total", "kind" => error.kind()).increment(1);
        self.warn_once(error.kind(), || {
            tracing::warn!(kind = error.kind(), %error, "invalid media tag dropped (logged once per kind)")
        });
    }

    /// Queues the segment behind what the store has not taken yet, then stores what it can:
    /// segment, then session playlist, then live playlist, so a playlist never names an object
    /// that is not there yet.
    async fn store_segment(&mut self, segment: Segment, received: Instant) {
        // The one hook where a fragment is written: danmaku due by its end go in front, after
        // those its LL-HLS parts carried (a player reads either the parts or the segment).
        let carried = match &mut self.low_latency {
            Some(ll) => ll.parts.take_carried(segment.sequence),
            None => Bytes::new(),
        };
        let mut segment = self.danmaku.carry(segment);
        if !carried.is_empty() {
            let mut with = bytes::BytesMut::with_capacity(carried.len() + segment.bytes.len());
            with.extend_from_slice(&carried);
            with.extend_from_slice(&segment.bytes);
            segment.bytes = with.freeze();
        }
        self.parts
            .segment_cut(segment.sequence, segment.start_ms, segment.duration);
        let start = self.first_frame_wall.unwrap_or_else(Utc::now);
        let offset = chrono::Duration::milliseconds(i64::try_from(segment.start_ms).unwrap_or(0));
        let listing = Listing::Segment {
            listed: ListedSegment {
                file: SessionKeys::segment_file(segment.sequence),
                duration: segment.duration,
                program_date_time: start + offset,
                independent: segment.independent,
                discontinuity: false,
            },
            sequence: segment.sequence,
            received,
        };
        if let Some(stills) = &self.stills {
            stills.segment(&segment.bytes);
        }
        let key = self.keys.segment(segment.sequence);
        self.spool_segment(key, segment.bytes, listing).await;
        self.drain().await;
    }

    /// Writes both playlists once; false when the store did not take them (retried by the
    /// spool's drain).
    async fn write_playlists(&mut self, state: SessionState) -> bool {
        let ended = state == SessionState::Ended;
        let rendered = self.playlists.session_playlist(state).and_then(|s| {
            Ok((
                s,
                self.playlists
                    .live_playlist(self.settings.window_segments, ended)?,
            ))
        });
        let (session, live) = match rendered {
            Ok(both) => both,
            Err(e) => {
                tracing::error!(error = %e, "playlist not rendered");
                return true;
            }
        };
        let both = vec![
            (self.keys.session_playlist(), Bytes::from(session)),
            (self.keys.live_playlist(), Bytes::from(live)),
        ];
        if let Err(e) = self.storage.put_in_order(both).await {
            tracing::warn!(error = %e, "playlist not stored; retrying");
            return false;
        }
        true
    }

    /// Flushes the last segment, stores what the spool holds and writes the final playlists
    /// (retried until written; on shutdown, for at most [`spooled::SHUTDOWN_WAIT`]); returns
    /// the VOD key.
    async fn finish(&mut self, stop: &CancellationToken) -> Option<String> {
        let now = Instant::now();
        self.ending = true;
        self.withdraw_edge();
        match self.muxer.finish() {
            Ok(events) => {
                for event in events {
                    self.event(event, now).await;
                }
            }
            Err(e) => self.invalid(&e),
        }
        self.drain_all(stop).await;
        if !self.playlists.is_empty() && !self.final_written {
            // No last segment was listed: the playlists still say EVENT / no ENDLIST.
            self.playlists_due = true;
            self.drain_all(stop).await;
        }
        let vod_key = (!self.playlists.is_empty() && self.final_written)
            .then(|| self.keys.session_playlist());
        let c = &self.counts;
        tracing::info!(
            video_tags = c.video_tags,
            audio_tags = c.audio_tags,
            bytes = c.bytes,
            segments = c.segments,
            lost_segments = c.lost_segments,
            spooled_left = self.spool.len(),
            invalid_tags = c.invalid_tags,
            dropped_frames = c.dropped_frames,
            timestamp_resets = self.muxer.timestamp_resets(),
            max_playlist_delay_ms = c.max_playlist_delay_ms,
            vod = vod_key.as_deref().unwrap_or(""),
            "broadcast ended"
        );
        vod_key
    }

    fn update_live(&self, f: impl FnOnce(&mut crate::rooms::live::LiveInfo)) {
        self.live
            .update(&self.settings.room, &self.settings.session, f);
    }

    fn warn_once(&mut self, kind: &'static str, log: impl FnOnce()) {
        if self.warned.insert(kind) {
            log();
        }
    }
}
