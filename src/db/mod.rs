//! The record of what must survive a restart: rooms and their key digests, moderation, and
//! broadcast sessions. One code path for an embedded SQLite file (the default) and PostgreSQL
//! (clusters), through sqlx's `Any` driver with portable SQL (TEXT and BIGINT columns, times in
//! ms, placeholders `$1..` used once each in ascending order, which both backends accept).
//!
//! Hot paths never call this: they read in-memory views loaded at start and updated on writes.
//! The queries are grouped by table (`rooms.rs`, `moderation.rs`, `sessions.rs`, `audit.rs`); this
//! file opens, migrates and closes the pool.

use std::path::PathBuf;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

mod audit;
mod moderation;
mod rooms;
mod sessions;

pub use audit::AuditRow;
pub use moderation::RoomModerationRow;
pub use rooms::RoomRow;
pub use sessions::{InterruptedSession, SessionRow};

/// A database failure, naming the database (never its password) and what was being done.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {location}: {source}")]
    Open {
        location: String,
        source: sqlx::Error,
    },
    #[error("cannot create the folder for database {location}: {source}")]
    Folder {
        location: String,
        source: std::io::Error,
    },
    #[error("database {location} could not be migrated (is it a barrage database, and writable?): {source}")]
    Migrate {
        location: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("database query failed ({what}): {source}")]
    Query {
        what: &'static str,
        source: sqlx::Error,
    },
    #[error("unsupported db.url `{0}` (use sqlite://path or postgres://...)")]
    BadUrl(String),
}

fn q(what: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
    move |source| DbError::Query { what, source }
}

/// The connection pool.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    location: String,
    /// An SQLite file of this node's own (not a database shared by several nodes).
    embedded: bool,
}

/// The URL with any password hidden, for logs and errors.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl Database {
    /// Connects (creating the SQLite file and its folder if needed), then migrates.
    pub async fn open(url: &str) -> Result<Database, DbError> {
        sqlx::any::install_default_drivers();
        let location = redact(url);
        let (connect_url, sqlite_file) = if let Some(path) = url.strip_prefix("sqlite://") {
            let (file, query) = path.split_once('?').unwrap_or((path, ""));
            let file = PathBuf::from(file);
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| DbError::Folder {
                    location: location.clone(),
                    source,
                })?;
            }
            let query = if query.is_empty() { "mode=rwc" } else { query };
            (format!("sqlite://{}?{query}", file.display()), true)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), false)
        } else {
            return Err(DbError::BadUrl(location));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite_file { 4 } else { 10 })
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(&connect_url)
            .await
            .map_err(|source| DbError::Open {
                location: location.clone(),
                source,
            })?;
        if sqlite_file {
            // WAL lets readers go on while a write commits; the setting is kept in the file.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(|source| DbError::Open {
                    location: location.clone(),
                    source,
                })?;
        }
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| DbError::Migrate {
                location: location.clone(),
                source,
            })?;
        Ok(Database {
            pool,
            location,
            embedded: sqlite_file,
        })
    }

    /// Where the database is (password hidden).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Closes the pool (waits for connections to finish).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        round_trip_and_reopen(&format!("sqlite://{}/sub/b.db", dir.path().display())).await;
    }

    #[tokio::test]
    async fn postgres_round_trip_and_reopen() {
        let scratch = crate::testutil::ScratchPostgres::create().await;
        round_trip_and_reopen(&scratch.url).await;
        scratch.drop_database().await;
    }

    async fn round_trip_and_reopen(url: &str) {
        let url = url.to_string();
        let db = Database::open(&url).await.unwrap();
        let room = RoomRow {
            id: "r1".into(),
            title: "R".into(),
            key_hash: "h".into(),
            host_key_hash: String::new(),
            host_gifts: false,
            created_ms: 5,
            closed_ms: None,
        };
        assert!(db.insert_room(&room).await.unwrap());
        assert!(!db.insert_room(&room).await.unwrap());
        assert!(db.set_host_key_hash("r1", "hh").await.unwrap());
        assert!(db.set_host_gifts("r1", true).await.unwrap());
        assert!(!db.set_host_gifts("nope", true).await.unwrap());
        for (i, action) in ["mute", "delete", "ban"].iter().enumerate() {
            db.insert_audit(&AuditRow {
                id: format!("{:013}-{i}", 100 + i),
                room: "r1".into(),
                at_ms: 100 + i as i64,
                actor: "u9".into(),
                role: "moderator".into(),
                action: action.to_string(),
                target: "u1".into(),
                via: "socket".into(),
            })
            .await
            .unwrap();
        }
        db.set_mute("r1", "u1", Some(99)).await.unwrap();
        db.set_mute("r1", "u1", None).await.unwrap();
        db.set_ban("r1", "u2", 1).await.unwrap();
        db.set_blocked_words("r1", &["b".into(), "a".into(), "a".into()])
            .await
            .unwrap();
        db.set_slow_mode("r1", 5).await.unwrap();
        db.session_started("r1", "s1", 10, "n1").await.unwrap();
        db.session_started("r1", "s2", 20, "n1").await.unwrap();
        db.session_started("r1", "s3", 25, "n2").await.unwrap();
        db.session_ended("r1", "s1", 15, Some("hls/r1/s1/index.m3u8"))
            .await
            .unwrap();
        db.close().await;

        let db = Database::open(&url).await.unwrap();
        let stored = RoomRow {
            host_key_hash: "hh".into(),
            host_gifts: true,
            ..room
        };
        assert_eq!(db.load_rooms().await.unwrap(), vec![stored]);
        let (page, total) = db.list_audit("r1", 1, 1).await.unwrap();
        assert_eq!(total, 3);
        assert_eq!(
            page[0].action, "delete",
            "newest first, one page of one after the first"
        );
        assert_eq!(db.list_audit("r2", 0, 10).await.unwrap().1, 0);
        let m = db.load_moderation().await.unwrap();
        let r1 = &m["r1"];
        assert_eq!(r1.mutes, vec![("u1".to_string(), None)]);
        assert_eq!(r1.bans, vec!["u2".to_string()]);
        assert_eq!(r1.blocked_words, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(r1.slow_mode_s, 5);
        // Only this node's sessions that never ended.
        let open = db.interrupted_sessions("n1").await.unwrap();
        assert_eq!(
            open.iter().map(|s| s.session.as_str()).collect::<Vec<_>>(),
            ["s2"]
        );
        db.session_ended("r1", "s2", 30, None).await.unwrap();
        db.session_danmaku_file("r1", "s2", "danmaku/r1/s2/all.json")
            .await
            .unwrap();
        assert!(db.interrupted_sessions("n1").await.unwrap().is_empty());
        let (page, total) = db.list_sessions("r1", 0, 1).await.unwrap();
        assert_eq!(total, 3);
        assert_eq!(page[0].session, "s3");
        let s2 = db.get_session("r1", "s2").await.unwrap().unwrap();
        assert_eq!(s2.ended_ms, Some(30));
        assert_eq!(s2.danmaku_key.as_deref(), Some("danmaku/r1/s2/all.json"));
        let s1 = db.get_session("r1", "s1").await.unwrap().unwrap();
        assert_eq!(s1.vod_key.as_deref(), Some("hls/r1/s1/index.m3u8"));
    }

    #[tokio::test]
    async fn a_corrupt_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.db");
        std::fs::write(&file, vec![0x42u8; 8192]).unwrap();
        let err = Database::open(&format!("sqlite://{}", file.display()))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.db"), "{err}");
    }
}
