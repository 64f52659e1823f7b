//! The I/O side of danmaku files: one task pair per active room. The cutter closes a period
//! every `period_ms`; the uploader writes files in order, retrying with backoff while the store
//! is down, then updates the index. A room's store trouble never delays another room, and no
//! cut file is ever skipped (see [`PeriodCollector`] for how a long outage stays bounded).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::collector::{PendingFile, PeriodCollector};
use super::files::{chat_session_id, CdnEvent, IndexFile};
use super::weights::WeightedBases;
use crate::clock::now_ms;
use crate::db::Database;
use crate::rooms::live::{LiveChange, LiveRegistry};
use crate::storage::Storage;
use crate::sync::lock;

/// Files without events between two records of a live session's file count.
const PROGRESS_EVERY_FILES: u64 = 10;

/// A room's chat session without a stream ends after this long without events.
const CHAT_IDLE: Duration = Duration::from_secs(30);

/// What a room task is told.
#[derive(Debug)]
enum RoomInput {
    Events(Vec<CdnEvent>),
    LiveStarted(String),
    LiveEnded(String),
    /// Another node writes this room's files now: stop at once, writing nothing more.
    HandOver,
}

/// Where a room's files continue when this node takes the room over from another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    pub session: String,
    /// The number of the next file to write.
    pub next_n: u64,
    /// The seq that file starts at.
    pub next_seq: u64,
}

type ResumePoints = Arc<Mutex<HashMap<String, ResumePoint>>>;

/// Gives the seq a room will assign next (so an empty file before any event is still right).
pub type NextSeq = Arc<dyn Fn(&str) -> u64 + Send + Sync>;

/// A file the uploader stored, with how long after its period was cut (benchmarks and tests
/// follow these; production reads the `barrage_cdn_publish_delay_seconds` histogram).
#[derive(Debug, Clone)]
pub struct WrittenFile {
    pub room: String,
    pub session: String,
    pub n: u64,
    pub bytes: usize,
    /// From the period's cut to the file being stored (includes retries while the store was down).
    pub delay: Duration,
}

/// Settings of the publisher.
#[derive(Clone, Default)]
pub struct PublisherSettings {
    pub period: Duration,
    pub max_pending: usize,
    pub bases: Arc<WeightedBases>,
    /// The public base for HLS URLs in the index (a CDN base if any, else barrage's own).
    pub hls_base: Option<String>,
    /// Told of every stored file, when set.
    pub written: Option<tokio::sync::mpsc::UnboundedSender<WrittenFile>>,
}

/// Writes danmaku files for every active room.
pub struct CdnPublisher {
    storage: Storage,
    db: Database,
    live: Arc<LiveRegistry>,
    settings: PublisherSettings,
    next_seq: NextSeq,
    rooms: Mutex<HashMap<String, mpsc::UnboundedSender<RoomInput>>>,
    /// Set by the cluster before a taken-over room's first events (see [`ResumePoint`]).
    resume_points: ResumePoints,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Rooms whose task has not finished its last file yet: named in the log when shutdown
    /// runs out of time.
    unfinished: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl std::fmt::Debug for CdnPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdnPublisher").finish_non_exhaustive()
    }
}

impl CdnPublisher {
    /// Starts the publisher and its follower of live starts/ends.
    pub fn start(
        storage: Storage,
        db: Database,
        live: Arc<LiveRegistry>,
        settings: PublisherSettings,
        next_seq: NextSeq,
    ) -> Arc<CdnPublisher> {
        let publisher = Arc::new(CdnPublisher {
            storage,
            db,
            live: live.clone(),
            settings,
            next_seq,
            rooms: Mutex::new(HashMap::new()),
            resume_points: ResumePoints::default(),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            unfinished: Arc::default(),
        });
        let follower = publisher.clone();
        let mut changes = live.subscribe();
        publisher.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = follower.shutdown.cancelled() => return,
                    change = changes.recv() => match change {
                        Ok(LiveChange::Started(info)) => {
                            follower.send(&info.room, RoomInput::LiveStarted(info.session));
                        }
                        Ok(LiveChange::Ended { info, .. }) => {
                            follower.send(&info.room, RoomInput::LiveEnded(info.session));
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "cdn publisher missed live changes");
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            }
        });
        publisher
    }

    /// Hands a room's newly delivered events (in seq order) to its file stream.
    pub fn deliver(&self, room: &str, events: Vec<CdnEvent>) {
        if !events.is_empty() {
            self.send(room, RoomInput::Events(events));
        }
    }

    /// Continues a room's files at `point` (this node took the room over), starting with
    /// `backfill`: delivered events the last owner had not written yet.
    pub fn resume(&self, room: &str, point: ResumePoint, backfill: Vec<CdnEvent>) {
        lock(&self.resume_points).insert(room.to_string(), point);
        self.deliver(room, backfill);
    }

    /// Stops writing a room's files here at once (another node owns the room now).
    pub fn hand_over(&self, room: &str) {
        lock(&self.resume_points).remove(room);
        let tx = lock(&self.rooms).remove(room);
        if let Some(tx) = tx {
            let _ = tx.send(RoomInput::HandOver);
        }
    }

    /// The next CDN base URL by weight (None when there are none).
    pub fn pick_base(&self) -> Option<String> {
        self.settings.bases.pick().map(str::to_string)
    }

    fn send(self: &CdnPublisher, room: &str, input: RoomInput) {
        let mut rooms = lock(&self.rooms);
        if let Some(tx) = rooms.get(room) {
            match tx.send(input) {
                Ok(()) => return,
                Err(mpsc::error::SendError(input)) => {
                    rooms.remove(room);
                    drop(rooms);
                    return self.send(room, input);
                }
            }
        }
        if self.shutdown.is_cancelled() {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(input);
        rooms.insert(room.to_string(), tx);
        let task = RoomTask {
            room: room.to_string(),
            storage: self.storage.clone(),
            db: self.db.clone(),
            live: self.live.clone(),
            settings: self.settings.clone(),
            next_seq: self.next_seq.clone(),
            resume_points: self.resume_points.clone(),
            shutdown: self.shutdown.clone(),
            tasks: self.tasks.clone(),
        };
        let span = tracing::info_span!("cdn", room = %room);
        let unfinished = self.unfinished.clone();
        lock(&unfinished).insert(room.to_string());
        let name = room.to_string();
        self.tasks.spawn(tracing::Instrument::instrument(
            async move {
                task.run(rx).await;
                lock(&unfinished).remove(&name);
            },
            span,
        ));
    }

    /// Cuts the last period of every room, writes what is pending (bounded wait), and stops.
    /// Returns the rooms whose last danmaku files were not all written within `limit` (also
    /// logged by name).
    pub async fn shutdown(&self, limit: Duration) -> Vec<String> {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(limit, self.tasks.wait()).await.is_ok() {
            return Vec::new();
        }
        let rooms: Vec<String> = lock(&self.unfinished).iter().cloned().collect();
        tracing::error!(
            rooms = ?rooms,
            "danmaku files still pending at shutdown were not all written within {limit:?}: \
             rooms {}",
            rooms.join(", ")
        );
        rooms
    }
}

struct RoomTask {
    room: String,
    storage: Storage,
    db: Database,
    live: Arc<LiveRegistry>,
    settings: PublisherSettings,
    next_seq: NextSeq,
    resume_points: ResumePoints,
    shutdown: CancellationToken,
    /// The publisher's tasks: a finished session's file is joined on one of its own.
    tasks: TaskTracker,
}

/// One session's collector shared by the cutter and its uploader.
struct SessionFiles {
    collector: Mutex<PeriodCollector>,
    /// Wakes the uploader when a file is cut.
    cut: Notify,
    live: bool,
}

impl RoomTask {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<RoomInput>) {
        let mut ticker = tokio::time::interval(self.settings.period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut current: Option<(Arc<SessionFiles>, tokio::task::JoinHandle<()>)> = None;
        let mut last_event = Instant::now();
        loop {
            // Biased, inputs first: at shutdown the events chat already delivered (its final
            // ticks) are still in the channel and belong in the last file.
            tokio::select! {
                biased;
                input = rx.recv() => match input {
                    Some(RoomInput::Events(events)) => {
                        last_event = Instant::now();
                        if current.is_none() {
                            let first = events.first().map(|e| e.seq).unwrap_or(1);
                            let (session, live) = match self.live.get(&self.room) {
                                Some(info) => (info.session, true),
                                None => (chat_session_id(chrono::Utc::now()), false),
                            };
                            current = Some(match self.take_resume_point(&session, live) {
                                Some(p) => self.begin(p.session, p.next_n, p.next_seq, live),
                                None => self.begin(session, 1, first, live),
                            });
                        }
                        if let Some((files, _)) = &current {
                            lock(&files.collector).push(events);
                        }
                    }
                    Some(RoomInput::LiveStarted(session)) => {
                        // Events may have begun this very session before the notice came.
                        let already = current
                            .as_ref()
                            .is_some_and(|(f, _)| lock(&f.collector).session() == session);
                        if already {
                            continue;
                        }
                        let first = match current.take() {
                            Some((files, uploader)) => {
                                let next = lock(&files.collector).next_seq();
                                self.finish(files, uploader).await;
                                next
                            }
                            None => (self.next_seq)(&self.room),
                        };
                        current = Some(self.begin(session, 1, first, true));
                    }
                    Some(RoomInput::LiveEnded(session)) => {
                        let ends_current = current
                            .as_ref()
                            .is_some_and(|(f, _)| lock(&f.collector).session() == session);
                        if ends_current {
                            if let Some((files, uploader)) = current.take() {
                                self.finish(files, uploader).await;
                            }
                        }
                    }
                    Some(RoomInput::HandOver) => {
                        if let Some((_, uploader)) = current.take() {
                            uploader.abort();
                        }
                        tracing::info!(room = %self.room, "danmaku files handed over to another node");
                        return;
                    }
                    None => break,
                },
                _ = self.shutdown.cancelled() => break,
                _ = ticker.tick() => {
                    let Some((files, _)) = &current else { continue };
                    let idle = !files.live && last_event.elapsed() > CHAT_IDLE;
                    if idle {
                        if let Some((files, uploader)) = current.take() {
                            self.finish(files, uploader).await;
                        }
                        continue;
                    }
                    let mut c = lock(&files.collector);
                    c.cut(now_ms());
                    metrics::gauge!("barrage_cdn_pending_batches", "room" => self.room.clone())
                        .set(c.pending_len() as f64);
                    drop(c);
                    files.cut.notify_one();
                }
            }
        }
        if let Some((files, uploader)) = current.take() {
            self.finish(files, uploader).await;
        }
    }

    /// The point a taken-over room continues at, if it applies to this session (a chat-only
    /// stream continues the last owner's session; a live one only the same broadcast).
    fn take_resume_point(&self, session: &str, live: bool) -> Option<ResumePoint> {
        let point = lock(&self.resume_points).remove(&self.room)?;
        (!live || point.session == session).then_some(point)
    }

    /// Starts a session's file stream (first file `first_n`) and its uploader.
    fn begin(
        &self,
        session: String,
        first_n: u64,
        first_seq: u64,
        live: bool,
    ) -> (Arc<SessionFiles>, tokio::task::JoinHandle<()>) {
        tracing::info!(room = %self.room, %session, first_n, first_seq, live, "danmaku files start");
        let files = Arc::new(SessionFiles {
            collector: Mutex::new(
                PeriodCollector::new(
                    &self.room,
                    &session,
                    first_seq,
                    now_ms(),
                    self.settings.max_pending,
                )
                .starting_at_file(first_n),
            ),
            cut: Notify::new(),
            live,
        });
        let uploader = Uploader {
            room: self.room.clone(),
            storage: self.storage.clone(),
            db: self.db.clone(),
            settings: self.settings.clone(),
            files: files.clone(),
            unrecorded: None,
        };
        (files, tokio::spawn(uploader.run()))
    }

    /// Cuts the last period, lets the uploader drain, and marks the index inactive.
    async fn finish(&self, files: Arc<SessionFiles>, uploader: tokio::task::JoinHandle<()>) {
        {
            let mut c = lock(&files.collector);
            if c.has_current_events() || c.last_n() == 0 {
                c.cut(now_ms());
            }
        }
        files.cut.notify_one();
        // The uploader ends once nothing is pending and the session is closed.
        lock(&files.collector).close();
        files.cut.notify_one();
        if let Err(e) = uploader.await {
            tracing::error!(room = %self.room, error = %e, "danmaku uploader failed");
        }
        let session = lock(&files.collector).session().to_string();
        let still_live = self
            .live
            .get(&self.room)
            .is_some_and(|l| l.session == session);
        if files.live && !still_live {
            // Its own task: joining a long session's files must not hold up the room's next.
            let (storage, db, room) = (self.storage.clone(), self.db.clone(), self.room.clone());
            self.tasks
                .spawn(async move { join_session_files(&storage, &db, &room, &session).await });
        }
    }
}

struct Uploader {
    room: String,
    storage: Storage,
    db: Database,
    settings: PublisherSettings,
    files: Arc<SessionFiles>,
    /// The session and number of the last file whose count was not recorded (a silent one).
    unrecorded: Option<(String, u64)>,
}

impl Uploader {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        let mut failing_since: Option<Instant> = None;
        loop {
            let (front, closed) = {
                let c = lock(&self.files.collector);
                (c.front().cloned(), c.is_closed())
            };
            let Some(file) = front else {
                if closed {
                    self.record_last_count().await;
                    return;
                }
                self.files.cut.notified().await;
                continue;
            };
            match self.write(&file).await {
                Ok(()) => {
                    if let Some(since) = failing_since.take() {
                        tracing::info!(room = %self.room, down_for_s = since.elapsed().as_secs(), "object store back; pending danmaku files written in order");
                    }
                    backoff = Duration::from_millis(100);
                    lock(&self.files.collector).written();
                }
                Err(e) => {
                    metrics::counter!("barrage_cdn_write_retries_total").increment(1);
                    if failing_since.is_none() {
                        failing_since = Some(Instant::now());
                        tracing::warn!(room = %self.room, n = file.n, error = %e, "danmaku file write failed; holding it and retrying in order");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// The session's file count, if its last silent files were not recorded yet.
    async fn record_last_count(&mut self) {
        if let Some((session, n)) = self.unrecorded.take() {
            if let Err(e) = self
                .db
                .session_danmaku(&self.room, &session, None, n as i64)
                .await
            {
                tracing::warn!(room = %self.room, error = %e, "could not record danmaku progress");
            }
        }
    }

    /// Writes the batch file, then the index that points at it (in one store call), then the
    /// session record.
    async fn write(&mut self, file: &PendingFile) -> Result<(), crate::storage::StorageError> {
        let started = Instant::now();
        let body = Bytes::from(serde_json::to_vec(file).unwrap_or_default());
        let len = body.len();
        // The session still cuts files, or this is not its last pending one.
        let active = {
            let c = lock(&self.files.collector);
            !c.is_closed() || c.pending_len() > 1
        };
        let index = IndexFile {
            room: file.room.clone(),
            session: file.session.clone(),
            latest: file.n,
            period_ms: self.settings.period.as_millis() as u64,
            active,
            live: self.files.live,
            hls_url: self.files.live.then(|| {
                let base = self.settings.hls_base.clone().unwrap_or_default();
                format!("{base}/hls/{}/{}/index.m3u8", file.room, file.session)
            }),
            cdn_bases: self.settings.bases.all().to_vec(),
            updated_ms: now_ms(),
        };
        let index_body = Bytes::from(serde_json::to_vec(&index).unwrap_or_default());
        self.storage
            .put_in_order(vec![
                (file.object_key(), body),
                (IndexFile::key(&file.room), index_body),
            ])
            .await?;
        metrics::histogram!("barrage_cdn_write_seconds").record(started.elapsed().as_secs_f64());
        let delay = Duration::from_millis(now_ms().saturating_sub(file.end_ms).max(0) as u64);
        metrics::histogram!("barrage_cdn_publish_delay_seconds").record(delay.as_secs_f64());
        if let Some(tx) = &self.settings.written {
            let _ = tx.send(WrittenFile {
                room: file.room.clone(),
                session: file.session.clone(),
                n: file.n,
                bytes: len,
                delay,
            });
        }
        metrics::counter!("barrage_cdn_files_total").increment(1);
        metrics::counter!("barrage_cdn_bytes_total").increment(len as u64);
        // A silent second changes only the file count: recorded every few files and with the
        // session's last, so a quiet live room does not commit to the database every second.
        let silent = file.events.is_empty();
        if self.files.live && (!silent || !active || file.n.is_multiple_of(PROGRESS_EVERY_FILES)) {
            let range = (!silent).then_some((file.from_seq as i64, file.to_seq as i64));
            let result = self
                .db
                .session_danmaku(&file.room, &file.session, range, file.n as i64)
                .await;
            if let Err(e) = result {
                tracing::warn!(room = %file.room, error = %e, "could not record danmaku progress");
            }
            self.unrecorded = None;
        } else if self.files.live {
            self.unrecorded = Some((file.session.clone(), file.n));
        }
        Ok(())
    }
}

/// Writes a finished broadcast's one danmaku file (`all.json`) and records it on the session;
/// a failure is logged (replays then read the batch files, as before).
pub async fn join_session_files(storage: &Storage, db: &Database, room: &str, session: &str) {
    match super::export::write_session_file(storage, room, session).await {
        Ok(key) => {
            tracing::info!(%room, %session, %key, "danmaku of the finished broadcast joined into one file");
            if let Err(e) = db.session_danmaku_file(room, session, &key).await {
                tracing::warn!(%room, %session, error = %e, "could not record the session's danmaku file");
            }
        }
        Err(e) => {
            tracing::warn!(%room, %session, error = %e, "the session's danmaku file was not written; replays read its batch files")
        }
    }
}

/// Finishes the danmaku of a broadcast a crash interrupted (see `broadcast::recovery`): the
/// room's index stops saying it is live and active if it still names the session, and its
/// files are joined into the session's one file.
pub async fn finish_interrupted(storage: &Storage, db: &Database, room: &str, session: &str) {
    let key = IndexFile::key(room);
    if let Ok(Some(body)) = storage.get_bytes(&key).await {
        if let Ok(mut index) = serde_json::from_slice::<IndexFile>(&body) {
            if index.session == session && (index.active || index.live) {
                index.active = false;
                index.live = false;
                index.updated_ms = now_ms();
                let body = Bytes::from(serde_json::to_vec(&index).unwrap_or_default());
                if let Err(e) = storage.put(&key, body).await {
                    tracing::warn!(%room, error = %e, "could not close the danmaku index");
                }
            }
        }
    }
    join_session_files(storage, db, room, session).await;
}

/// The chat engine hands every delivered batch here; events go to the room's file stream in
/// their JSON wire form, the bytes the WebSocket batch carries.
impl crate::chat::BatchSink for CdnPublisher {
    fn deliver(&self, batch: &Arc<crate::chat::DeliveredBatch>) {
        CdnPublisher::deliver(self, &batch.room, CdnEvent::from_batch(batch));
    }
}
