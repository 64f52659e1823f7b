//! Stills of live rooms: the home page's tiles and each replay's poster. A session's writer
//! offers each stored segment with its init segment ([`SessionStills`]); about every
//! `thumbnails.interval_s` per room one is taken, and a worker task has ffmpeg decode its first
//! frame (a segment starts with a keyframe, so that is the latest keyframe) into a JPEG,
//! stored twice: `hls/{room}/thumb.jpg` (the room's current still, at a stable URL) and
//! `hls/{room}/{session}/poster.jpg` (the replay's poster: the broadcast's last still). The
//! live status then carries `thumbnail_ms`, which the room JSON turns into `thumbnail_url`.
//!
//! ffmpeg runs as a subprocess with a deadline, one at a time per node; offers made while it is
//! busy are dropped (the next segment comes soon). Without ffmpeg the feature is off, said once
//! at start.

pub mod schedule;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::config::ThumbnailConfig;
use crate::rooms::live::LiveRegistry;
use crate::storage::Storage;
use crate::sync::lock;
use schedule::StillSchedule;

/// How long one ffmpeg run may take.
const FFMPEG_DEADLINE: Duration = Duration::from_secs(15);
/// Stills waiting for the worker (more are dropped).
const QUEUE: usize = 4;
/// The largest still accepted from ffmpeg.
const MAX_STILL_BYTES: usize = 4 << 20;

/// The key of a room's current still.
pub fn room_still_key(room: &str) -> String {
    format!("hls/{room}/thumb.jpg")
}

/// The key of a session's poster.
pub fn poster_key(room: &str, session: &str) -> String {
    format!("hls/{room}/{session}/poster.jpg")
}

/// A segment to make a still of.
struct StillJob {
    room: String,
    session: String,
    init: Bytes,
    segment: Bytes,
}

/// Takes stills of live rooms (see the module doc). Cheap to share.
pub struct Thumbnailer {
    /// None: thumbnails are off (disabled, or no ffmpeg).
    jobs: Option<mpsc::Sender<StillJob>>,
    schedule: Mutex<StillSchedule>,
}

impl std::fmt::Debug for Thumbnailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Thumbnailer")
            .field("on", &self.jobs.is_some())
            .finish()
    }
}

impl Thumbnailer {
    /// A thumbnailer that takes no stills.
    pub fn off() -> Arc<Thumbnailer> {
        Arc::new(Thumbnailer {
            jobs: None,
            schedule: Mutex::new(StillSchedule::new(u64::MAX)),
        })
    }

    /// Checks for ffmpeg and starts the worker; off (with a log line saying why) when disabled
    /// or when ffmpeg does not run.
    pub async fn start(
        config: &ThumbnailConfig,
        storage: Storage,
        live: Arc<LiveRegistry>,
    ) -> Arc<Thumbnailer> {
        if !config.enabled {
            tracing::info!("thumbnails off (thumbnails.enabled = false)");
            return Thumbnailer::off();
        }
        let probe = tokio::process::Command::new(&config.ffmpeg)
            .arg("-version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status()
            .await;
        if !matches!(probe, Ok(s) if s.success()) {
            tracing::warn!(
                ffmpeg = %config.ffmpeg,
                "thumbnails off: ffmpeg does not run; install ffmpeg or set thumbnails.ffmpeg to \
                 its path (thumbnails.enabled = false silences this)"
            );
            return Thumbnailer::off();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let worker = StillWorker {
            ffmpeg: config.ffmpeg.clone(),
            height: config.height,
            storage,
            live,
        };
        tokio::spawn(worker.run(rx));
        tracing::info!(every_s = config.interval_s, "thumbnails on");
        Arc::new(Thumbnailer {
            jobs: Some(tx),
            schedule: Mutex::new(StillSchedule::new(config.interval_s * 1000)),
        })
    }

    /// Whether stills are taken.
    pub fn is_on(&self) -> bool {
        self.jobs.is_some()
    }

    fn offer(&self, room: &str, session: &str, init: &Bytes, segment: &Bytes) {
        let Some(jobs) = &self.jobs else {
            return;
        };
        if !lock(&self.schedule).take(room, crate::clock::now_ms().max(0) as u64) {
            return;
        }
        let job = StillJob {
            room: room.to_string(),
            session: session.to_string(),
            init: init.clone(),
            segment: segment.clone(),
        };
        if jobs.try_send(job).is_err() {
            metrics::counter!("barrage_thumbnails_total", "result" => "busy").increment(1);
        }
    }

    fn ended(&self, room: &str) {
        lock(&self.schedule).forget(room);
    }
}

/// A session writer's handle: remembers the current init segment and offers segments.
pub struct SessionStills {
    thumbnailer: Arc<Thumbnailer>,
    room: String,
    session: String,
    init: Option<Bytes>,
}

impl SessionStills {
    pub fn new(thumbnailer: Arc<Thumbnailer>, room: &str, session: &str) -> SessionStills {
        SessionStills {
            thumbnailer,
            room: room.to_string(),
            session: session.to_string(),
            init: None,
        }
    }

    /// A new init segment (the first, or a reconnected publisher's).
    pub fn init(&mut self, init: &Bytes) {
        self.init = Some(init.clone());
    }

    /// A segment was stored.
    pub fn segment(&self, segment: &Bytes) {
        if let Some(init) = &self.init {
            self.thumbnailer
                .offer(&self.room, &self.session, init, segment);
        }
    }
}

impl Drop for SessionStills {
    fn drop(&mut self) {
        self.thumbnailer.ended(&self.room);
    }
}

/// Runs ffmpeg for each job and stores the still.
struct StillWorker {
    ffmpeg: String,
    height: u32,
    storage: Storage,
    live: Arc<LiveRegistry>,
}

impl StillWorker {
    async fn run(self, mut jobs: mpsc::Receiver<StillJob>) {
        let mut failed_once = false;
        while let Some(job) = jobs.recv().await {
            let jpeg = match self.still(&job).await {
                Ok(jpeg) => jpeg,
                Err(e) => {
                    metrics::counter!("barrage_thumbnails_total", "result" => "failed")
                        .increment(1);
                    if !std::mem::replace(&mut failed_once, true) {
                        tracing::warn!(room = %job.room, error = %e, "still not made (logged once)");
                    }
                    continue;
                }
            };
            let mut stored = true;
            for key in [
                room_still_key(&job.room),
                poster_key(&job.room, &job.session),
            ] {
                if let Err(e) = self.storage.put(&key, jpeg.clone()).await {
                    stored = false;
                    tracing::warn!(key, error = %e, "still not stored");
                }
            }
            if stored {
                metrics::counter!("barrage_thumbnails_total", "result" => "stored").increment(1);
                let at = crate::clock::now_ms();
                self.live
                    .update(&job.room, &job.session, |info| info.thumbnail_ms = Some(at));
            }
        }
    }

    /// The first frame of init + segment as a JPEG `height` pixels high.
    async fn still(&self, job: &StillJob) -> Result<Bytes, String> {
        let mut child = tokio::process::Command::new(&self.ffmpeg)
            .args(["-hide_banner", "-loglevel", "error"])
            // One thread, keyframes only: the still is the segment's first frame, and a busy
            // node should not lend ffmpeg every core (docs/BENCHMARKS.md, "Stills").
            .args(["-threads", "1", "-skip_frame", "nokey"])
            .args(["-f", "mp4", "-i", "pipe:0"])
            .args(["-frames:v", "1", "-an", "-vf"])
            .arg(format!("scale=-2:{}", self.height))
            .args(["-q:v", "5", "-f", "image2", "-c:v", "mjpeg", "pipe:1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("ffmpeg did not start: {e}"))?;
        let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("ffmpeg pipes missing".to_string());
        };
        let (init, segment) = (job.init.clone(), job.segment.clone());
        let feed = async move {
            // ffmpeg may stop reading once it has its frame: a broken pipe here is fine.
            let _ = stdin.write_all(&init).await;
            let _ = stdin.write_all(&segment).await;
            drop(stdin);
        };
        let read = async {
            let mut out = Vec::new();
            (&mut stdout)
                .take(MAX_STILL_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .await
                .map(|_| out)
        };
        let errors = async {
            let mut text = String::new();
            let _ = (&mut stderr).take(4096).read_to_string(&mut text).await;
            text
        };
        let run = async {
            let ((), out, errors) = tokio::join!(feed, read, errors);
            let status = child.wait().await;
            (out, errors, status)
        };
        let (out, errors, status) = tokio::time::timeout(FFMPEG_DEADLINE, run)
            .await
            .map_err(|_| "ffmpeg took too long".to_string())?;
        let out = out.map_err(|e| format!("reading ffmpeg: {e}"))?;
        match status {
            Ok(s) if s.success() && !out.is_empty() && out.len() <= MAX_STILL_BYTES => {
                Ok(Bytes::from(out))
            }
            Ok(s) => Err(format!("ffmpeg {s}: {}", errors.trim())),
            Err(e) => Err(format!("ffmpeg: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ffmpeg: &str, enabled: bool) -> ThumbnailConfig {
        ThumbnailConfig {
            enabled,
            ffmpeg: ffmpeg.to_string(),
            interval_s: 10,
            height: 360,
        }
    }

    #[tokio::test]
    async fn off_without_ffmpeg_or_when_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        let live = Arc::new(LiveRegistry::new());
        let missing = config("/nonexistent/ffmpeg-for-barrage-tests", true);
        let t = Thumbnailer::start(&missing, storage.clone(), live.clone()).await;
        assert!(!t.is_on());
        // Offers to a thumbnailer that is off are ignored.
        let stills = SessionStills::new(t, "demo", "s1");
        stills.segment(&Bytes::from_static(b"not media"));
        let disabled = config("ffmpeg", false);
        assert!(!Thumbnailer::start(&disabled, storage, live).await.is_on());
    }

    #[test]
    fn keys_of_the_room_still_and_the_poster() {
        assert_eq!(room_still_key("demo"), "hls/demo/thumb.jpg");
        assert_eq!(poster_key("demo", "s1"), "hls/demo/s1/poster.jpg");
    }
}
