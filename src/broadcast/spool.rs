//! The spool: a session's objects the store has not taken yet, kept in order until it does.
//!
//! A session writer puts every object (init segment, media segment) through its spool instead
//! of straight into the store. The spool keeps them in the order they were cut, in memory up to
//! `storage.spool_memory_mb`, then in files under `<data_dir>/spool/` up to
//! `storage.spool_disk_mb`; the writer stores the front entry whenever the store answers and
//! only then lists it, so a store outage delays media instead of losing it. Entries may also be
//! marks with no object (a new part of the session): they keep their place in the order.
//!
//! When a new object fits in neither budget, the oldest media segments are dropped whole (never
//! an init segment), each loudly: the entry stays in the queue as [`Front::Dropped`] so the
//! writer lists a gap in its place rather than a silent hole. [`admit`] decides that and is
//! pure; [`Spool`] does the file I/O around it. [`RetryClock`] spaces the attempts while the
//! store is away.
//!
//! The spool of a session ends with its writer: files left by a crash are removed by the next
//! start (`Spool::new` clears its folder), not replayed.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::Config;

/// How much a session's spool may hold, and where its files go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    /// Folder for spilled objects (None: memory only).
    pub dir: Option<PathBuf>,
}

impl Default for SpoolSettings {
    /// Memory only, 64 MiB: what a writer without configuration gets (unit tests).
    fn default() -> SpoolSettings {
        SpoolSettings {
            memory_bytes: 64 << 20,
            disk_bytes: 0,
            dir: None,
        }
    }
}

impl SpoolSettings {
    /// `storage.spool_memory_mb` and `storage.spool_disk_mb`, spilling under
    /// `<data_dir>/spool`.
    pub fn from_config(config: &Config) -> SpoolSettings {
        SpoolSettings {
            memory_bytes: config.storage.spool_memory_mb << 20,
            disk_bytes: config.storage.spool_disk_mb << 20,
            dir: (config.storage.spool_disk_mb > 0).then(|| config.data_dir.join("spool")),
        }
    }
}

/// Where a queued entry's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Memory,
    Disk,
}

/// What [`admit`] needs to know of a queued entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// None: no bytes held (a mark, or already dropped).
    pub tier: Option<Tier>,
    pub len: u64,
    /// Media segments may be dropped; init segments may not (nothing plays without them).
    pub droppable: bool,
}

/// Where a new object goes and what makes room for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// None: the new object itself is dropped (larger than either budget).
    pub tier: Option<Tier>,
    /// Queue positions of entries whose bytes are dropped, oldest first.
    pub drop: Vec<usize>,
}

/// Decides where an object of `len` bytes goes (pure). Objects that may not be dropped always
/// go to memory, over the budget if need be (init segments are small and few).
pub fn admit(queued: &[Held], len: u64, droppable: bool, settings: &SpoolSettings) -> Admission {
    let used = |tier| {
        queued
            .iter()
            .filter(|h| h.tier == Some(tier))
            .map(|h| h.len)
            .sum::<u64>()
    };
    let (mut memory, mut disk) = (used(Tier::Memory), used(Tier::Disk));
    let fits = |memory: u64, disk: u64| {
        if memory + len <= settings.memory_bytes {
            Some(Tier::Memory)
        } else if disk + len <= settings.disk_bytes {
            Some(Tier::Disk)
        } else {
            None
        }
    };
    if !droppable {
        return Admission {
            tier: Some(Tier::Memory),
            drop: Vec::new(),
        };
    }
    if len > settings.memory_bytes.max(settings.disk_bytes) {
        return Admission {
            tier: None,
            drop: Vec::new(),
        };
    }
    let mut drop = Vec::new();
    for (i, held) in queued.iter().enumerate() {
        if fits(memory, disk).is_some() {
            break;
        }
        if !held.droppable {
            continue;
        }
        match held.tier {
            Some(Tier::Memory) => memory -= held.len,
            Some(Tier::Disk) => disk -= held.len,
            None => continue,
        }
        drop.push(i);
    }
    Admission {
        tier: fits(memory, disk),
        drop,
    }
}

/// Spaces store attempts while the store fails: 250 ms, doubling, at most 2 s; back to
/// "now" after a success. Pure: the caller says what time it is.
#[derive(Debug, Clone, Default)]
pub struct RetryClock {
    next: Option<Instant>,
    wait: Duration,
}

impl RetryClock {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(2);

    /// Whether an attempt may be made at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.next.is_none_or(|next| now >= next)
    }

    /// How long until the next attempt (zero when due).
    pub fn wait(&self, now: Instant) -> Duration {
        self.next
            .map_or(Duration::ZERO, |next| next.saturating_duration_since(now))
    }

    /// An attempt failed at `now`.
    pub fn failed(&mut self, now: Instant) {
        self.wait = if self.wait.is_zero() {
            Self::FIRST
        } else {
            (self.wait * 2).min(Self::MAX)
        };
        self.next = Some(now + self.wait);
    }

    /// An attempt succeeded: the store answers again.
    pub fn succeeded(&mut self) {
        self.next = None;
        self.wait = Duration::ZERO;
    }

    /// Whether the last attempt failed (the store is away).
    pub fn failing(&self) -> bool {
        self.next.is_some()
    }
}

/// The bytes of one entry.
#[derive(Debug)]
enum Body {
    Memory(Bytes),
    Disk(PathBuf),
    /// A mark: nothing to store.
    Mark,
    /// Dropped to make room.
    Dropped,
}

#[derive(Debug)]
struct Entry<T> {
    tag: T,
    key: String,
    len: u64,
    droppable: bool,
    body: Body,
}

impl<T> Entry<T> {
    fn held(&self) -> Held {
        let tier = match self.body {
            Body::Memory(_) => Some(Tier::Memory),
            Body::Disk(_) => Some(Tier::Disk),
            Body::Mark | Body::Dropped => None,
        };
        Held {
            tier,
            len: self.len,
            droppable: self.droppable,
        }
    }
}

/// The front of the queue, as the writer handles it.
#[derive(Debug)]
pub enum Front<'a, T> {
    /// Store `body` at `key`, then [`Spool::pop`].
    Object {
        key: &'a str,
        body: Bytes,
        tag: &'a T,
    },
    /// Nothing to store (a mark): pop and apply.
    Mark(&'a T),
    /// Dropped for room: pop and list a gap in its place.
    Dropped(&'a T),
}

/// A session's queue of objects not stored yet (see the module doc). `T` is what the writer
/// does once an entry is stored (or dropped).
#[derive(Debug)]
pub struct Spool<T> {
    settings: SpoolSettings,
    /// This session's folder under the spool folder.
    dir: Option<PathBuf>,
    queue: VecDeque<Entry<T>>,
    next_file: u64,
    /// Segments dropped so far (for the final log line).
    dropped: u64,
}

impl<T> Spool<T> {
    /// An empty spool for one session; its folder (if any) is `<dir>/<name>`, cleared first.
    pub fn new(settings: SpoolSettings, name: &str) -> Spool<T> {
        let dir = settings.dir.as_ref().map(|d| d.join(name));
        if let Some(dir) = &dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        Spool {
            settings,
            dir,
            queue: VecDeque::new(),
            next_file: 0,
            dropped: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Segments dropped for room since the session began.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes held (memory, disk).
    pub fn held_bytes(&self) -> (u64, u64) {
        self.queue
            .iter()
            .map(Entry::held)
            .fold((0, 0), |(m, d), h| match h.tier {
                Some(Tier::Memory) => (m + h.len, d),
                Some(Tier::Disk) => (m, d + h.len),
                None => (m, d),
            })
    }

    /// Queues a mark (no object) behind what is queued.
    pub fn push_mark(&mut self, tag: T) {
        self.queue.push_back(Entry {
            tag,
            key: String::new(),
            len: 0,
            droppable: false,
            body: Body::Mark,
        });
    }

    /// Queues an object; returns how many segments were dropped to make room (the new one
    /// included). `droppable`: a media segment (not an init segment).
    pub async fn push(&mut self, key: String, body: Bytes, droppable: bool, tag: T) -> u64 {
        let len = body.len() as u64;
        let held: Vec<Held> = self.queue.iter().map(Entry::held).collect();
        let admission = admit(&held, len, droppable, &self.settings);
        let mut dropped = 0;
        for i in admission.drop {
            if let Some(entry) = self.queue.get_mut(i) {
                discard(std::mem::replace(&mut entry.body, Body::Dropped)).await;
                dropped += 1;
            }
        }
        let body = match admission.tier {
            Some(Tier::Memory) => Body::Memory(body),
            Some(Tier::Disk) => match self.spill(&body).await {
                Ok(path) => Body::Disk(path),
                Err(e) => {
                    tracing::error!(%key, error = %e, "cannot spill to the spool folder; segment dropped");
                    Body::Dropped
                }
            },
            None => Body::Dropped,
        };
        if matches!(body, Body::Dropped) {
            dropped += 1;
        }
        self.dropped += dropped;
        self.queue.push_back(Entry {
            tag,
            key,
            len,
            droppable,
            body,
        });
        dropped
    }

    async fn spill(&mut self, body: &Bytes) -> std::io::Result<PathBuf> {
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no spool folder"))?;
        tokio::fs::create_dir_all(dir).await?;
        self.next_file += 1;
        let path = dir.join(format!("{:08}.bin", self.next_file));
        tokio::fs::write(&path, body).await?;
        Ok(path)
    }

    /// The oldest entry, its bytes read back if they were spilled. A spilled file that cannot
    /// be read any more is dropped (logged) and shown as such.
    pub async fn front(&mut self) -> Option<Front<'_, T>> {
        let entry = self.queue.front_mut()?;
        let bytes = match &entry.body {
            Body::Memory(b) => Some(b.clone()),
            Body::Disk(path) => match tokio::fs::read(path).await {
                Ok(b) => Some(Bytes::from(b)),
                Err(e) => {
                    tracing::error!(key = %entry.key, error = %e, "spooled segment unreadable; dropped");
                    discard(std::mem::replace(&mut entry.body, Body::Dropped)).await;
                    self.dropped += 1;
                    None
                }
            },
            Body::Mark | Body::Dropped => None,
        };
        let entry = self.queue.front()?;
        Some(match (&entry.body, bytes) {
            (Body::Mark, _) => Front::Mark(&entry.tag),
            (_, Some(body)) => Front::Object {
                key: &entry.key,
                body,
                tag: &entry.tag,
            },
            (_, None) => Front::Dropped(&entry.tag),
        })
    }

    /// Removes the oldest entry (stored, or handled as a mark or a drop); returns its tag.
    pub async fn pop(&mut self) -> Option<T> {
        let entry = self.queue.pop_front()?;
        discard(entry.body).await;
        Some(entry.tag)
    }
}

impl<T> Drop for Spool<T> {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Frees an entry's bytes (removes its file).
async fn discard(body: Body) {
    if let Body::Disk(path) = body {
        let _ = tokio::fs::remove_file(path).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(memory: u64, disk: u64) -> SpoolSettings {
        SpoolSettings {
            memory_bytes: memory,
            disk_bytes: disk,
            dir: None,
        }
    }

    fn held(tier: Tier, len: u64) -> Held {
        Held {
            tier: Some(tier),
            len,
            droppable: true,
        }
    }

    #[test]
    fn memory_first_then_disk() {
        let s = settings(100, 1000);
        assert_eq!(admit(&[], 60, true, &s).tier, Some(Tier::Memory));
        let q = [held(Tier::Memory, 60)];
        let a = admit(&q, 60, true, &s);
        assert_eq!(a.tier, Some(Tier::Disk));
        assert!(a.drop.is_empty());
    }

    #[test]
    fn full_spool_drops_the_oldest_segments_first() {
        let s = settings(100, 100);
        let init = Held {
            tier: Some(Tier::Memory),
            len: 10,
            droppable: false,
        };
        let q = [
            init,
            held(Tier::Memory, 50),
            held(Tier::Disk, 60),
            held(Tier::Disk, 40),
        ];
        // 50 more bytes: memory has 40 free, disk 0; dropping entry 1 (memory 50) makes room.
        let a = admit(&q, 50, true, &s);
        assert_eq!(a.drop, vec![1]);
        assert_eq!(a.tier, Some(Tier::Memory));
        // 95 bytes fit only once both disk entries are gone: 1, 2, 3 go, the init stays.
        let a = admit(&q, 95, true, &s);
        assert_eq!(a.drop, vec![1, 2, 3]);
        assert!(a.tier.is_some());
    }

    #[test]
    fn an_object_larger_than_any_budget_is_dropped_alone() {
        let s = settings(100, 100);
        let q = [held(Tier::Memory, 50)];
        let a = admit(&q, 101, true, &s);
        assert_eq!(a.tier, None);
        assert!(a.drop.is_empty(), "nothing else is sacrificed for it");
    }

    #[test]
    fn init_segments_are_never_dropped_nor_refused() {
        let s = settings(10, 0);
        let q = [held(Tier::Memory, 10)];
        let a = admit(&q, 50, false, &s);
        assert_eq!(a.tier, Some(Tier::Memory));
        assert!(a.drop.is_empty());
    }

    #[test]
    fn retry_clock_backs_off_and_resets() {
        let t0 = Instant::now();
        let mut c = RetryClock::default();
        assert!(c.due(t0) && !c.failing());
        c.failed(t0);
        assert!(!c.due(t0) && c.due(t0 + Duration::from_millis(250)));
        for _ in 0..10 {
            c.failed(t0);
        }
        assert_eq!(c.wait(t0), Duration::from_secs(2), "capped");
        c.succeeded();
        assert!(c.due(t0) && !c.failing());
    }

    #[tokio::test]
    async fn spool_keeps_order_spills_to_disk_and_marks_drops() {
        let dir = tempfile::tempdir().unwrap();
        let s = SpoolSettings {
            memory_bytes: 12,
            disk_bytes: 20,
            dir: Some(dir.path().to_path_buf()),
        };
        let mut spool: Spool<u32> = Spool::new(s, "room-session");
        let b = |n: u8| Bytes::from(vec![n; 10]);
        assert_eq!(
            spool
                .push("init".into(), Bytes::from_static(b"i"), false, 0)
                .await,
            0
        );
        // Init (1 byte) and segment 1 in memory; 2 and 3 spill to disk.
        assert_eq!(spool.push("1".into(), b(1), true, 1).await, 0);
        spool.push_mark(100);
        assert_eq!(spool.push("2".into(), b(2), true, 2).await, 0);
        assert_eq!(spool.push("3".into(), b(3), true, 3).await, 0);
        assert_eq!(spool.held_bytes(), (11, 20));
        // Memory and disk are full: segment 1, the oldest droppable, goes.
        assert_eq!(spool.push("4".into(), b(4), true, 4).await, 1);
        assert_eq!(spool.dropped(), 1);
        let files = std::fs::read_dir(dir.path().join("room-session"))
            .unwrap()
            .count();
        assert_eq!(files, 2, "spilled objects are files");
        let mut seen = Vec::new();
        while let Some(front) = spool.front().await {
            seen.push(match front {
                Front::Object { key, body, tag } => {
                    assert_eq!(body.len() as u64, if *tag == 0 { 1 } else { 10 });
                    format!("store {key}")
                }
                Front::Mark(tag) => format!("mark {tag}"),
                Front::Dropped(tag) => format!("dropped {tag}"),
            });
            spool.pop().await;
        }
        assert_eq!(
            seen,
            [
                "store init",
                "dropped 1",
                "mark 100",
                "store 2",
                "store 3",
                "store 4"
            ]
        );
        assert_eq!(spool.held_bytes(), (0, 0));
        drop(spool);
        assert!(!dir.path().join("room-session").exists(), "folder removed");
    }
}
