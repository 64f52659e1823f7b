//! Room state in one place. The database is the record (`crate::db`); hot paths read the
//! in-memory views here, loaded at start and updated on every write, and never wait on the
//! database:
//! - [`directory`]: every room and its stream key digest (publish auth, lookups on connect);
//! - [`catalog`]: room and moderation writes, database first, then the views;
//! - [`live`]: which rooms are on air now, with their broadcast sessions;
//! - [`moderation`]: every room's mutes, bans, blocked words and slow mode;
//! - [`sessions`]: broadcast sessions recorded as they start and end, for replays;
//! - [`audit`]: who moderated what, for the room's host.

pub mod audit;
pub mod catalog;
pub mod directory;
pub mod live;
pub mod moderation;
pub mod sessions;

pub use audit::{AuditLog, Via};
pub use catalog::{check_new_room, CatalogError, CreatedRoom, ModerationError, RoomCatalog};
pub use directory::{
    generate_host_key, generate_key, hash_key, valid_room_id, RoomDirectory, RoomRecord,
};
pub use live::{LiveChange, LiveInfo, LiveRegistry};
pub use moderation::ModerationStore;
