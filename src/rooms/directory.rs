//! The in-memory view of rooms and their keys that hot paths read (publish auth, room lookups on
//! connect, host keys on API calls). Loaded at start, updated on every write; the database is
//! the record.
//!
//! Stream keys and host keys are kept only as SHA-256 digests, so a leaked view or database
//! does not hand out live keys; a presented key is hashed and compared in constant time.

use std::collections::HashMap;
use std::sync::RwLock;

use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::sync::{read, write};

/// A room as the rest of the service sees it: the in-memory form of its database record.
#[derive(Debug, Clone, Serialize)]
pub struct RoomRecord {
    pub id: String,
    pub title: String,
    /// Hex SHA-256 of the stream key; the key itself is shown once, when made.
    #[serde(skip)]
    pub key_hash: String,
    /// Hex SHA-256 of the host key (empty: none yet); the key itself is shown once, when made.
    #[serde(skip)]
    pub host_key_hash: String,
    /// Whether the host key may post gifts (else only the admin key does).
    pub host_gifts: bool,
    pub created_ms: i64,
    /// A closed room refuses publishes and new viewers.
    pub closed: bool,
}

/// Whether `id` is a usable room id (it appears in URLs and object keys).
pub fn valid_room_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Hex SHA-256 of a stream key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fresh random stream key (URL- and OBS-safe).
pub fn generate_key() -> String {
    random_key("live_")
}

/// A fresh random host key: `host_` and 32 characters, so people can tell it from a stream key.
pub fn generate_host_key() -> String {
    random_key("host_")
}

fn random_key(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let body: String = (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{body}")
}

/// All rooms, keyed by id.
#[derive(Debug, Default)]
pub struct RoomDirectory {
    rooms: RwLock<HashMap<String, RoomRecord>>,
}

impl RoomDirectory {
    pub fn new() -> RoomDirectory {
        RoomDirectory::default()
    }

    /// Adds or replaces a room.
    pub fn upsert(&self, room: RoomRecord) {
        write(&self.rooms).insert(room.id.clone(), room);
    }

    /// One room, if known.
    pub fn get(&self, id: &str) -> Option<RoomRecord> {
        read(&self.rooms).get(id).cloned()
    }

    /// Whether a room exists and is open.
    pub fn is_open(&self, id: &str) -> bool {
        read(&self.rooms).get(id).is_some_and(|r| !r.closed)
    }

    /// Every room, sorted by id.
    pub fn list(&self) -> Vec<RoomRecord> {
        let mut all: Vec<RoomRecord> = read(&self.rooms).values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// The open room whose stream key this is.
    pub fn room_for_key(&self, key: &str) -> Option<String> {
        self.find_by_digest(key, |room| &room.key_hash)
            .filter(|room| !room.closed)
            .map(|room| room.id)
    }

    /// The room whose host key this is, open or closed (a host reopens a closed room with it).
    pub fn room_for_host_key(&self, key: &str) -> Option<String> {
        self.find_by_digest(key, |room| &room.host_key_hash)
            .map(|room| room.id)
    }

    /// The room whose digest (of the kind `digest` picks) is that of `key`. Every room's digest
    /// is compared, in constant time each, so the answer's timing says nothing about which
    /// digest came close. An empty key, or a room without a digest, never matches.
    fn find_by_digest(
        &self,
        key: &str,
        digest: impl Fn(&RoomRecord) -> &String,
    ) -> Option<RoomRecord> {
        if key.is_empty() {
            return None;
        }
        let presented = hash_key(key);
        let mut found = None;
        for room in read(&self.rooms).values() {
            let equal: bool = digest(room).as_bytes().ct_eq(presented.as_bytes()).into();
            if equal {
                found = Some(room.clone());
            }
        }
        found
    }

    /// Replaces a room's key digest (rotation); takes effect for the next publish.
    pub fn set_key_hash(&self, id: &str, key_hash: String) -> bool {
        self.update(id, |room| room.key_hash = key_hash)
    }

    /// Replaces a room's host key digest; the old host key is refused from now on.
    pub fn set_host_key_hash(&self, id: &str, host_key_hash: String) -> bool {
        self.update(id, |room| room.host_key_hash = host_key_hash)
    }

    /// Whether the room's host key may post gifts.
    pub fn set_host_gifts(&self, id: &str, allowed: bool) -> bool {
        self.update(id, |room| room.host_gifts = allowed)
    }

    /// Marks a room closed (or open again).
    pub fn set_closed(&self, id: &str, closed: bool) -> bool {
        self.update(id, |room| room.closed = closed)
    }

    /// Changes a known room in place; false when there is no such room.
    fn update(&self, id: &str, change: impl FnOnce(&mut RoomRecord)) -> bool {
        match write(&self.rooms).get_mut(id) {
            Some(room) => {
                change(room);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_hash_and_closed_rooms_refuse() {
        let dir = RoomDirectory::new();
        let key = generate_key();
        assert!(key.starts_with("live_") && key.len() == 37);
        let host = generate_host_key();
        assert!(host.starts_with("host_") && host.len() == 37);
        dir.upsert(RoomRecord {
            id: "a".into(),
            title: "A".into(),
            key_hash: hash_key(&key),
            host_key_hash: hash_key(&host),
            host_gifts: false,
            created_ms: 0,
            closed: false,
        });
        dir.upsert(RoomRecord {
            id: "b".into(),
            title: "B".into(),
            key_hash: hash_key("live_b"),
            host_key_hash: String::new(),
            host_gifts: false,
            created_ms: 0,
            closed: false,
        });
        assert_eq!(dir.room_for_key(&key).as_deref(), Some("a"));
        assert_eq!(dir.room_for_key("live_wrong"), None);
        assert_eq!(dir.room_for_key(""), None);
        assert_eq!(
            dir.room_for_key(&host),
            None,
            "a host key is not a stream key"
        );
        assert_eq!(dir.room_for_host_key(&host).as_deref(), Some("a"));
        assert_eq!(
            dir.room_for_host_key(&key),
            None,
            "a stream key is not a host key"
        );
        assert_eq!(
            dir.room_for_host_key(""),
            None,
            "no host key matches a room without one"
        );
        dir.set_closed("a", true);
        assert_eq!(dir.room_for_key(&key), None);
        assert_eq!(dir.room_for_host_key(&host).as_deref(), Some("a"));
        dir.set_host_key_hash("a", hash_key("host_new"));
        assert_eq!(
            dir.room_for_host_key(&host),
            None,
            "a rotated host key is dead"
        );
        assert!(valid_room_id("demo-1_x"));
        assert!(!valid_room_id("Demo"));
        assert!(!valid_room_id("../x"));
        assert!(!valid_room_id(""));
    }
}
