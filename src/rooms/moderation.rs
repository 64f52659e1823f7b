//! Every room's moderation (mutes, bans, blocked words, slow mode) as the hot path reads it,
//! and its record in the database. Loaded once at start; a change is written to the database
//! first and then applied here (see [`super::RoomCatalog::moderate`]), so a change that was
//! answered survives a restart and one that could not be stored changes nothing. A room's
//! state outlives its chat task: a room that closes and opens again keeps it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::chat::moderation::{ModerationChange, ModerationSnapshot, RoomModeration};
use crate::clock::now_ms;
use crate::db::{Database, DbError};
use crate::sync::lock;

/// One room's moderation, shared by the store and the room's chat task.
pub type SharedModeration = Arc<Mutex<RoomModeration>>;

/// The moderation state of every room, by room id.
#[derive(Debug, Default)]
pub struct ModerationStore {
    rooms: Mutex<HashMap<String, SharedModeration>>,
}

impl ModerationStore {
    /// An empty store (no room moderated yet).
    pub fn new() -> ModerationStore {
        ModerationStore::default()
    }

    /// Every room's stored moderation (at start, before any socket).
    pub async fn load(db: &Database) -> Result<ModerationStore, DbError> {
        let store = ModerationStore::new();
        for (room, row) in db.load_moderation().await? {
            let snapshot = ModerationSnapshot {
                mutes: row.mutes.into_iter().collect(),
                bans: row.bans.into_iter().collect(),
                blocked_words: row.blocked_words,
                slow_mode_s: u32::try_from(row.slow_mode_s.max(0)).unwrap_or(u32::MAX),
            };
            store.replace(&room, snapshot);
        }
        Ok(store)
    }

    /// A room's moderation state, created empty on first use.
    pub fn of(&self, room: &str) -> SharedModeration {
        lock(&self.rooms)
            .entry(room.to_string())
            .or_default()
            .clone()
    }

    /// Applies a change (already stored, or made and stored by another node).
    pub fn apply(&self, room: &str, change: &ModerationChange) {
        lock(&self.of(room)).apply(change);
    }

    /// Replaces a room's state in one step.
    pub fn replace(&self, room: &str, snapshot: ModerationSnapshot) {
        *lock(&self.of(room)) = RoomModeration::from_snapshot(snapshot);
    }

    /// A room's state as it stands at `now_ms`.
    pub fn snapshot(&self, room: &str, now_ms: i64) -> ModerationSnapshot {
        lock(&self.of(room)).snapshot(now_ms)
    }
}

/// Writes one moderation change to the database.
pub(super) async fn store(
    db: &Database,
    room: &str,
    change: &ModerationChange,
) -> Result<(), DbError> {
    use ModerationChange as C;
    match change {
        C::Mute { user, until_ms } => db.set_mute(room, user, *until_ms).await,
        C::Unmute { user } => db.remove_mute(room, user).await,
        C::Ban { user } => db.set_ban(room, user, now_ms()).await,
        C::Unban { user } => db.remove_ban(room, user).await,
        C::SetBlockedWords { words } => db.set_blocked_words(room, words).await,
        C::SetSlowMode { seconds } => db.set_slow_mode(room, i64::from(*seconds)).await,
    }
}
