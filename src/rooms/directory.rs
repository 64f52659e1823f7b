//! The in-memory view of rooms and their stream keys that hot paths read (publish auth, room
//! lookups on connect). Loaded at start, updated on every write; the database is the record.
//!
//! Stream keys are kept only as SHA-256 digests, so a leaked view or database does not hand out
//! live keys; a presented key is hashed and compared in constant time.

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
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let body: String = (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("live_{body}")
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

    /// The open room whose stream key this is. Every room's digest is compared, in constant
    /// time each, so the answer's timing says nothing about which digest came close.
    pub fn room_for_key(&self, key: &str) -> Option<String> {
        if key.is_empty() {
            return None;
        }
        let presented = hash_key(key);
        let mut found = None;
        for room in read(&self.rooms).values() {
            let equal: bool = room.key_hash.as_bytes().ct_eq(presented.as_bytes()).into();
            if equal && !room.closed {
                found = Some(room.id.clone());
            }
        }
        found
    }

    /// Replaces a room's key digest (rotation); takes effect for the next publish.
    pub fn set_key_hash(&self, id: &str, key_hash: String) -> bool {
        match write(&self.rooms).get_mut(id) {
            Some(room) => {
                room.key_hash = key_hash;
                true
            }
            None => false,
        }
    }

    /// Marks a room closed (or open again).
    pub fn set_closed(&self, id: &str, closed: bool) -> bool {
        match write(&self.rooms).get_mut(id) {
            Some(room) => {
                room.closed = closed;
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
        dir.upsert(RoomRecord {
            id: "a".into(),
            title: "A".into(),
            key_hash: hash_key(&key),
            created_ms: 0,
            closed: false,
        });
        assert_eq!(dir.room_for_key(&key).as_deref(), Some("a"));
        assert_eq!(dir.room_for_key("live_wrong"), None);
        assert_eq!(dir.room_for_key(""), None);
        dir.set_closed("a", true);
        assert_eq!(dir.room_for_key(&key), None);
        assert!(valid_room_id("demo-1_x"));
        assert!(!valid_room_id("Demo"));
        assert!(!valid_room_id("../x"));
        assert!(!valid_room_id(""));
    }
}
