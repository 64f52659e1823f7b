//! RoomRecord writes and start-up: every change goes to the database first, then to the in-memory
//! [`RoomDirectory`] that hot paths read, so a failed write changes nothing and a restart
//! reloads exactly what was acknowledged.

use std::sync::Arc;

use super::directory::{
    generate_host_key, generate_key, hash_key, valid_room_id, RoomDirectory, RoomRecord,
};
use super::moderation;
use crate::chat::moderation::ModerationChange;
use crate::chat::{ChatEngine, ChatError};
use crate::clock::now_ms;
use crate::config::Config;
use crate::db::{Database, DbError, RoomRow};
use crate::secrets::Secrets;

/// Why a room write was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("room id `{0}` is not valid (1-64 characters of a-z, 0-9, '-' or '_')")]
    BadId(String),
    #[error("room title must be 1-200 characters")]
    BadTitle,
    #[error("room {0} already exists")]
    Exists(String),
    #[error("no room {0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why a moderation change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    #[error(transparent)]
    Chat(#[from] ChatError),
    #[error("moderation change not stored: {0}")]
    NotStored(DbError),
}

/// A room just made, with its keys (shown once; only their digests are kept).
#[derive(Debug, Clone)]
pub struct CreatedRoom {
    pub room: RoomRecord,
    pub stream_key: String,
    pub host_key: String,
}

/// RoomRecord writes over the database and the in-memory view.
#[derive(Debug, Clone)]
pub struct RoomCatalog {
    pub db: Database,
    pub rooms: Arc<RoomDirectory>,
}

fn to_room(row: RoomRow) -> RoomRecord {
    RoomRecord {
        id: row.id,
        title: row.title,
        key_hash: row.key_hash,
        host_key_hash: row.host_key_hash,
        host_gifts: row.host_gifts,
        created_ms: row.created_ms,
        closed: row.closed_ms.is_some(),
    }
}

/// Longest room title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// Checks a new room's id and title; returns the title as stored (trimmed).
pub fn check_new_room<'a>(id: &str, title: &'a str) -> Result<&'a str, CatalogError> {
    if !valid_room_id(id) {
        return Err(CatalogError::BadId(id.to_string()));
    }
    let title = title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(CatalogError::BadTitle);
    }
    Ok(title)
}

impl RoomCatalog {
    /// Loads the rooms, after upserting the `[[rooms]]` of config: a missing one is inserted
    /// with its configured (or generated) keys; an existing one takes the configured title and
    /// `host_gifts`, and a configured key only when config names one (so a key rotated through
    /// the API stays). A room stored before host keys existed gets its kept host key.
    pub async fn load(
        db: Database,
        config: &Config,
        secrets: &Secrets,
    ) -> Result<RoomCatalog, CatalogError> {
        let existing = db.load_rooms().await?;
        for room in &config.rooms {
            let kept = |keys: &std::collections::BTreeMap<String, String>| {
                keys.get(&room.id).cloned().unwrap_or_default()
            };
            let (key, host_key) = (kept(&secrets.stream_keys), kept(&secrets.host_keys));
            let title = if room.title.is_empty() {
                room.id.clone()
            } else {
                room.title.clone()
            };
            match existing.iter().find(|r| r.id == room.id) {
                None => {
                    db.insert_room(&RoomRow {
                        id: room.id.clone(),
                        title,
                        key_hash: hash_key(&key),
                        host_key_hash: hash_key(&host_key),
                        host_gifts: room.host_gifts.unwrap_or(false),
                        created_ms: now_ms(),
                        closed_ms: None,
                    })
                    .await?;
                }
                Some(row) => {
                    if row.title != title {
                        db.update_room_title(&room.id, &title).await?;
                    }
                    if !room.stream_key.is_empty() && row.key_hash != hash_key(&room.stream_key) {
                        db.set_key_hash(&room.id, &hash_key(&room.stream_key))
                            .await?;
                    }
                    let configured_host_key = !room.host_key.is_empty();
                    if (configured_host_key || row.host_key_hash.is_empty())
                        && row.host_key_hash != hash_key(&host_key)
                    {
                        db.set_host_key_hash(&room.id, &hash_key(&host_key)).await?;
                    }
                    if let Some(allowed) = room.host_gifts.filter(|a| *a != row.host_gifts) {
                        db.set_host_gifts(&room.id, allowed).await?;
                    }
                }
            }
        }
        let directory = Arc::new(RoomDirectory::new());
        for row in db.load_rooms().await? {
            directory.upsert(to_room(row));
        }
        Ok(RoomCatalog {
            db,
            rooms: directory,
        })
    }

    /// Makes a room with a fresh stream key and host key.
    pub async fn create(&self, id: &str, title: &str) -> Result<CreatedRoom, CatalogError> {
        let title = check_new_room(id, title)?;
        let stream_key = generate_key();
        let host_key = generate_host_key();
        let row = RoomRow {
            id: id.to_string(),
            title: title.to_string(),
            key_hash: hash_key(&stream_key),
            host_key_hash: hash_key(&host_key),
            host_gifts: false,
            created_ms: now_ms(),
            closed_ms: None,
        };
        if !self.db.insert_room(&row).await? {
            return Err(CatalogError::Exists(id.to_string()));
        }
        let room = to_room(row);
        self.rooms.upsert(room.clone());
        tracing::info!(room = %id, "room created");
        Ok(CreatedRoom {
            room,
            stream_key,
            host_key,
        })
    }

    /// Replaces a room's stream key; the old key stops working for new publishes at once.
    pub async fn rotate_key(&self, id: &str) -> Result<String, CatalogError> {
        let key = generate_key();
        if !self.db.set_key_hash(id, &hash_key(&key)).await? {
            return Err(CatalogError::NotFound(id.to_string()));
        }
        self.rooms.set_key_hash(id, hash_key(&key));
        tracing::info!(room = %id, "stream key rotated");
        Ok(key)
    }

    /// Replaces a room's host key; the old one is refused at once (on other nodes as soon as
    /// they reload the rooms: the caller announces the change).
    pub async fn rotate_host_key(&self, id: &str) -> Result<String, CatalogError> {
        let key = generate_host_key();
        if !self.db.set_host_key_hash(id, &hash_key(&key)).await? {
            return Err(CatalogError::NotFound(id.to_string()));
        }
        self.rooms.set_host_key_hash(id, hash_key(&key));
        tracing::info!(room = %id, "host key rotated");
        Ok(key)
    }

    /// Whether the room's host key may post gifts.
    pub async fn set_host_gifts(&self, id: &str, allowed: bool) -> Result<(), CatalogError> {
        if !self.db.set_host_gifts(id, allowed).await? {
            return Err(CatalogError::NotFound(id.to_string()));
        }
        self.rooms.set_host_gifts(id, allowed);
        tracing::info!(room = %id, host_gifts = allowed, "room settings changed");
        Ok(())
    }

    /// Closes a room (refuses publishes) or reopens it.
    pub async fn set_closed(&self, id: &str, closed: bool) -> Result<(), CatalogError> {
        let at = closed.then(now_ms);
        if !self.db.set_closed(id, at).await? {
            return Err(CatalogError::NotFound(id.to_string()));
        }
        self.rooms.set_closed(id, closed);
        tracing::info!(room = %id, closed, "room state changed");
        Ok(())
    }

    /// Reads every room from the database into the in-memory view again (another node of a
    /// cluster made, closed or re-keyed one). Returns how many rooms there are.
    pub async fn reload(&self) -> Result<usize, CatalogError> {
        let rows = self.db.load_rooms().await?;
        let n = rows.len();
        for row in rows {
            self.rooms.upsert(to_room(row));
        }
        Ok(n)
    }

    /// Applies a moderation change database first: a change that cannot be stored is refused
    /// and changes nothing, and one that was stored survives a restart. Then `chat` applies it
    /// (and tells the other nodes).
    pub async fn moderate(
        &self,
        chat: &ChatEngine,
        room: &str,
        change: &ModerationChange,
    ) -> Result<(), ModerationError> {
        if self.rooms.get(room).is_none() {
            return Err(ChatError::RoomNotFound(room.to_string()).into());
        }
        if let Err(e) = moderation::store(&self.db, room, change).await {
            tracing::error!(room, error = %e, "moderation change not stored");
            return Err(ModerationError::NotStored(e));
        }
        Ok(chat.moderate(room, change)?)
    }

    /// Whether the config room's kept key is still the one in force (not rotated by the API).
    pub fn config_key_in_force(&self, room: &str, key: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.key_hash == hash_key(key))
    }

    /// Whether the config room's kept host key is still the one in force.
    pub fn config_host_key_in_force(&self, room: &str, key: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.host_key_hash == hash_key(key))
    }
}
