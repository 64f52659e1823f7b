//! Rewrites of the local store's objects that change all the time (playlists, a room's danmaku
//! index, stills) without making a new file each time.
//!
//! object_store's local `put` writes a new staging file and renames it over the object, so every
//! rewrite allocates an inode and frees the old one. On ext4 without a journal the inode
//! allocator skips every inode freed in the last minute or more (`recently_deleted`), reading
//! each one's table block, so with a few live rooms each new file scanned thousands of freed
//! inodes: a seventh of ingest CPU (docs/BENCHMARKS.md). Here a rewrite goes into one of two
//! spare files beside the object (`name#0`, `name#1`, names object_store's listing ignores),
//! which is then swapped with the object in one `renameat2(RENAME_EXCHANGE)`: readers see the
//! old or the new object whole, as with a rename, and no inode is allocated or freed. The old
//! content becomes the spare written two rewrites later, so a reader that opened the object
//! still has two periods to read it.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

/// How many spares each object rotates through.
const SPARES: u8 = 2;

/// The spare file `n` of the object at `path` (`name#n`).
pub fn spare_path(path: &Path, n: u8) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!("#{n}"));
    PathBuf::from(name)
}

/// How many objects the writer remembers before it forgets those not rewritten lately (a few
/// per broadcast: its playlist, its poster; each about 100 bytes).
const REMEMBERED: usize = 4096;

/// An object not rewritten for this long may be forgotten. Its next rewrite then starts again at
/// spare 0, which may hold its version before last: no reader is still reading that after this
/// long (readers get a whole object in well under a period).
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Writes objects in place; remembers which spare each object's next rewrite uses.
#[derive(Debug)]
pub struct InPlaceWriter {
    memory: Mutex<SpareMemory>,
}

impl Default for InPlaceWriter {
    fn default() -> Self {
        Self::remembering(REMEMBERED, FORGET_AFTER)
    }
}

/// Which spare each object's next rewrite uses, bounded: ended broadcasts' objects are never
/// deleted by key, so without forgetting the map would grow for as long as the node runs.
#[derive(Debug)]
struct SpareMemory {
    next: HashMap<PathBuf, NextSpare>,
    /// When the map reaches this size, objects idle for `forget_after` are forgotten.
    prune_at: usize,
    remembered: usize,
    forget_after: Duration,
}

#[derive(Debug)]
struct NextSpare {
    spare: u8,
    written: Instant,
}

impl InPlaceWriter {
    /// A writer that starts forgetting idle objects once it remembers `remembered` of them.
    fn remembering(remembered: usize, forget_after: Duration) -> Self {
        Self {
            memory: Mutex::new(SpareMemory {
                next: HashMap::new(),
                prune_at: remembered,
                remembered,
                forget_after,
            }),
        }
    }

    /// Replaces the file at `path` with `body` (blocking: call it off the runtime's workers).
    pub fn write(&self, path: &Path, body: &[u8]) -> io::Result<()> {
        let n = self.take_spare(path);
        let spare = spare_path(path, n);
        write_file(&spare, body)?;
        match exchange(&spare, path) {
            Ok(()) => Ok(()),
            // No object yet (its first write), or a file system without the exchange: a plain
            // rename is as atomic for readers; it only frees the old inode, if any.
            Err(e) if e.kind() == io::ErrorKind::NotFound || is_unsupported(&e) => {
                std::fs::rename(&spare, path)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes a new object at `path` (a segment, a danmaku file): into a staging file of its
    /// own, renamed onto the object once whole, as object_store does (readers never see a
    /// partial object). Its staging names (`name#2`, `name#3`, ...) are not the spares'.
    pub fn create(&self, path: &Path, body: &[u8]) -> io::Result<()> {
        let mut n = SPARES;
        let mut new_file = std::fs::OpenOptions::new();
        new_file.write(true).create_new(true);
        let (mut file, staging) = loop {
            let staging = spare_path(path, n);
            match open_in_folders(&staging, &new_file) {
                Ok(file) => break (file, staging),
                // Another write of the same key is under way: take the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < u8::MAX => n += 1,
                Err(e) => return Err(e),
            }
        };
        let written = file
            .write_all(body)
            .and_then(|()| std::fs::rename(&staging, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&staging);
        }
        written
    }

    /// Removes the spares of the object at `path`, and forgets it.
    pub fn remove_spares(&self, path: &Path) -> io::Result<()> {
        lock(&self.memory).next.remove(path);
        for n in 0..SPARES {
            match std::fs::remove_file(spare_path(path, n)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn take_spare(&self, path: &Path) -> u8 {
        lock(&self.memory).take(path, Instant::now())
    }
}

impl SpareMemory {
    fn take(&mut self, path: &Path, now: Instant) -> u8 {
        if !self.next.contains_key(path) && self.next.len() >= self.prune_at {
            let forget_after = self.forget_after;
            self.next
                .retain(|_, n| now.saturating_duration_since(n.written) < forget_after);
            // Still full of busy objects: grow rather than scan the whole map on every write.
            self.prune_at = self.remembered.max(self.next.len() * 2);
        }
        let next = self.next.entry(path.to_path_buf()).or_insert(NextSpare {
            spare: 0,
            written: now,
        });
        let n = next.spare;
        next.spare = (n + 1) % SPARES;
        next.written = now;
        n
    }
}

/// Writes `body` into the file at `path`, reusing it if it exists, creating its folders if
/// they are missing. The old bytes are overwritten, then cut to the new length: truncating to
/// zero first would make ext4 write the file out when it is closed (`auto_da_alloc`).
fn write_file(path: &Path, body: &[u8]) -> io::Result<()> {
    let mut reused = std::fs::OpenOptions::new();
    reused.write(true).create(true).truncate(false);
    let mut file = open_in_folders(path, &reused)?;
    file.write_all(body)?;
    file.set_len(body.len() as u64)
}

/// Opens `path` with `options`, creating its folders first if they are missing (the first
/// object of a room or session).
fn open_in_folders(path: &Path, options: &std::fs::OpenOptions) -> io::Result<std::fs::File> {
    match options.open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            options.open(path)
        }
        other => other,
    }
}

/// Swaps the files at `a` and `b` atomically.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

fn is_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn rewrites_reuse_the_same_three_inodes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hls/room/live.m3u8");
        let writer = InPlaceWriter::default();
        let mut inodes = std::collections::HashSet::new();
        for i in 0..10 {
            let body = format!("playlist {i}\n").repeat(i + 1);
            writer.write(&path, body.as_bytes()).unwrap();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), body);
            inodes.insert(std::fs::metadata(&path).unwrap().ino());
        }
        // The object and its two spares: no new file after the first rewrites.
        assert_eq!(inodes.len(), 3, "{inodes:?}");
        assert!(spare_path(&path, 0).exists() && spare_path(&path, 1).exists());
        writer.remove_spares(&path).unwrap();
        assert!(!spare_path(&path, 0).exists() && !spare_path(&path, 1).exists());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "playlist 9\n".repeat(10)
        );
    }

    #[test]
    fn an_open_reader_keeps_the_old_content_for_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let writer = InPlaceWriter::default();
        writer.write(&path, b"first").unwrap();
        let mut reader = std::fs::File::open(&path).unwrap();
        writer.write(&path, b"second").unwrap();
        let mut seen = String::new();
        io::Read::read_to_string(&mut reader, &mut seen).unwrap();
        assert_eq!(seen, "first");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
    }

    #[test]
    fn idle_objects_are_forgotten_once_the_memory_is_full_and_busy_ones_are_kept() {
        let writer = InPlaceWriter::remembering(3, Duration::from_secs(600));
        let mut memory = lock(&writer.memory);
        let start = Instant::now();
        // Three ended broadcasts' playlists, written once each long ago.
        for name in ["a", "b", "c"] {
            assert_eq!(memory.take(Path::new(name), start), 0);
        }
        // A busy object keeps alternating its spares.
        let later = start + Duration::from_secs(1200);
        assert_eq!(memory.take(Path::new("a"), later), 1);
        // A new object with the memory full: the idle ones (b, c) are forgotten, the busy one is not.
        assert_eq!(memory.take(Path::new("d"), later), 0);
        let mut kept: Vec<_> = memory.next.keys().cloned().collect();
        kept.sort();
        assert_eq!(kept, [PathBuf::from("a"), PathBuf::from("d")]);
        assert_eq!(memory.take(Path::new("a"), later), 0);
        // A forgotten object starts again at spare 0.
        assert_eq!(memory.take(Path::new("b"), later), 0);
    }

    #[test]
    fn a_memory_full_of_busy_objects_grows_instead_of_scanning_on_every_write() {
        let writer = InPlaceWriter::remembering(2, Duration::from_secs(600));
        let mut memory = lock(&writer.memory);
        let now = Instant::now();
        for name in ["a", "b", "c", "d", "e"] {
            memory.take(Path::new(name), now);
        }
        assert_eq!(memory.next.len(), 5, "recent objects are never forgotten");
        assert!(memory.prune_at > memory.next.len(), "{}", memory.prune_at);
    }
}
