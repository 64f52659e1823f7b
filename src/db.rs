//! The record of what must survive a restart: rooms and their key digests, moderation, and
//! broadcast sessions. One code path for an embedded SQLite file (the default) and PostgreSQL
//! (clusters), through sqlx's `Any` driver with portable SQL (TEXT and BIGINT columns, times in
//! ms, placeholders `$1..` used once each in ascending order, which both backends accept).
//!
//! Hot paths never call this: they read in-memory views loaded at start and updated on writes.

use std::path::PathBuf;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

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

/// A stored room.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomRow {
    pub id: String,
    pub title: String,
    pub key_hash: String,
    pub created_ms: i64,
    pub closed_ms: Option<i64>,
}

/// A stored broadcast session (for replays).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SessionRow {
    pub room: String,
    pub session: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub vod_key: Option<String>,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    pub batches: i64,
}

/// Moderation of one room as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomModerationRow {
    /// (user, until_ms; None = until unmuted)
    pub mutes: Vec<(String, Option<i64>)>,
    pub bans: Vec<String>,
    pub blocked_words: Vec<String>,
    pub slow_mode_s: i64,
}

/// The connection pool.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    location: String,
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
        Ok(Database { pool, location })
    }

    /// Where the database is (password hidden).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Closes the pool (waits for connections to finish).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- rooms ----

    pub async fn load_rooms(&self) -> Result<Vec<RoomRow>, DbError> {
        let rows =
            sqlx::query("SELECT id, title, key_hash, created_ms, closed_ms FROM rooms ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .map_err(q("load rooms"))?;
        rows.iter().map(room_row).collect()
    }

    /// Inserts a new room; false if the id is taken.
    pub async fn insert_room(&self, room: &RoomRow) -> Result<bool, DbError> {
        let done = sqlx::query(
            "INSERT INTO rooms (id, title, key_hash, created_ms, closed_ms) VALUES ($1, $2, $3, $4, NULL) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&room.id)
        .bind(&room.title)
        .bind(&room.key_hash)
        .bind(room.created_ms)
        .execute(&self.pool)
        .await
        .map_err(q("insert room"))?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn update_room_title(&self, id: &str, title: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE rooms SET title = $1 WHERE id = $2")
            .bind(title)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(q("update room title"))?;
        Ok(())
    }

    pub async fn set_key_hash(&self, id: &str, key_hash: &str) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE rooms SET key_hash = $1 WHERE id = $2")
            .bind(key_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(q("set stream key"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Closes (Some(time)) or reopens (None) a room.
    pub async fn set_closed(&self, id: &str, closed_ms: Option<i64>) -> Result<bool, DbError> {
        let done = sqlx::query("UPDATE rooms SET closed_ms = $1 WHERE id = $2")
            .bind(closed_ms)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(q("close room"))?;
        Ok(done.rows_affected() == 1)
    }

    // ---- moderation ----

    /// Every room's moderation state, by room id.
    pub async fn load_moderation(
        &self,
    ) -> Result<std::collections::BTreeMap<String, RoomModerationRow>, DbError> {
        let mut out: std::collections::BTreeMap<String, RoomModerationRow> = Default::default();
        for row in sqlx::query("SELECT room, user_id, until_ms FROM mutes")
            .fetch_all(&self.pool)
            .await
            .map_err(q("load mutes"))?
        {
            let room: String = row.try_get(0).map_err(q("read mute"))?;
            let user: String = row.try_get(1).map_err(q("read mute"))?;
            let until: Option<i64> = row.try_get(2).map_err(q("read mute"))?;
            out.entry(room).or_default().mutes.push((user, until));
        }
        for row in sqlx::query("SELECT room, user_id FROM bans")
            .fetch_all(&self.pool)
            .await
            .map_err(q("load bans"))?
        {
            let room: String = row.try_get(0).map_err(q("read ban"))?;
            let user: String = row.try_get(1).map_err(q("read ban"))?;
            out.entry(room).or_default().bans.push(user);
        }
        for row in sqlx::query("SELECT room, word FROM blocked_words ORDER BY word")
            .fetch_all(&self.pool)
            .await
            .map_err(q("load blocked words"))?
        {
            let room: String = row.try_get(0).map_err(q("read word"))?;
            let word: String = row.try_get(1).map_err(q("read word"))?;
            out.entry(room).or_default().blocked_words.push(word);
        }
        for row in sqlx::query("SELECT room, slow_mode_s FROM room_settings")
            .fetch_all(&self.pool)
            .await
            .map_err(q("load room settings"))?
        {
            let room: String = row.try_get(0).map_err(q("read settings"))?;
            let slow: i64 = row.try_get(1).map_err(q("read settings"))?;
            out.entry(room).or_default().slow_mode_s = slow;
        }
        Ok(out)
    }

    pub async fn set_mute(
        &self,
        room: &str,
        user: &str,
        until_ms: Option<i64>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO mutes (room, user_id, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (room, user_id) DO UPDATE SET until_ms = excluded.until_ms",
        )
        .bind(room)
        .bind(user)
        .bind(until_ms)
        .execute(&self.pool)
        .await
        .map_err(q("mute"))?;
        Ok(())
    }

    pub async fn remove_mute(&self, room: &str, user: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM mutes WHERE room = $1 AND user_id = $2")
            .bind(room)
            .bind(user)
            .execute(&self.pool)
            .await
            .map_err(q("unmute"))?;
        Ok(())
    }

    pub async fn set_ban(&self, room: &str, user: &str, now_ms: i64) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO bans (room, user_id, created_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (room, user_id) DO NOTHING",
        )
        .bind(room)
        .bind(user)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(q("ban"))?;
        Ok(())
    }

    pub async fn remove_ban(&self, room: &str, user: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM bans WHERE room = $1 AND user_id = $2")
            .bind(room)
            .bind(user)
            .execute(&self.pool)
            .await
            .map_err(q("unban"))?;
        Ok(())
    }

    /// Replaces a room's blocked words (one transaction).
    pub async fn set_blocked_words(&self, room: &str, words: &[String]) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await.map_err(q("blocked words"))?;
        sqlx::query("DELETE FROM blocked_words WHERE room = $1")
            .bind(room)
            .execute(&mut *tx)
            .await
            .map_err(q("blocked words"))?;
        let mut unique: Vec<&String> = words.iter().collect();
        unique.sort();
        unique.dedup();
        for word in unique {
            sqlx::query("INSERT INTO blocked_words (room, word) VALUES ($1, $2)")
                .bind(room)
                .bind(word)
                .execute(&mut *tx)
                .await
                .map_err(q("blocked words"))?;
        }
        tx.commit().await.map_err(q("blocked words"))?;
        Ok(())
    }

    pub async fn set_slow_mode(&self, room: &str, seconds: i64) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO room_settings (room, slow_mode_s) VALUES ($1, $2) \
             ON CONFLICT (room) DO UPDATE SET slow_mode_s = excluded.slow_mode_s",
        )
        .bind(room)
        .bind(seconds)
        .execute(&self.pool)
        .await
        .map_err(q("slow mode"))?;
        Ok(())
    }

    // ---- sessions ----

    pub async fn session_started(
        &self,
        room: &str,
        session: &str,
        started_ms: i64,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO sessions (room, session, started_ms, batches) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (room, session) DO NOTHING",
        )
        .bind(room)
        .bind(session)
        .bind(started_ms)
        .execute(&self.pool)
        .await
        .map_err(q("record session start"))?;
        Ok(())
    }

    pub async fn session_ended(
        &self,
        room: &str,
        session: &str,
        ended_ms: i64,
        vod_key: Option<&str>,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE sessions SET ended_ms = $1, vod_key = $2 WHERE room = $3 AND session = $4",
        )
        .bind(ended_ms)
        .bind(vod_key)
        .bind(room)
        .bind(session)
        .execute(&self.pool)
        .await
        .map_err(q("record session end"))?;
        Ok(())
    }

    /// Records danmaku file `batches` of a session; `range` is the file's seq range when it held
    /// events (the first one seen becomes the session's first_seq).
    pub async fn session_danmaku(
        &self,
        room: &str,
        session: &str,
        range: Option<(i64, i64)>,
        batches: i64,
    ) -> Result<(), DbError> {
        match range {
            Some((first, last)) => sqlx::query(
                "UPDATE sessions SET first_seq = COALESCE(first_seq, $1), last_seq = $2, batches = $3 \
                 WHERE room = $4 AND session = $5",
            )
            .bind(first)
            .bind(last)
            .bind(batches)
            .bind(room)
            .bind(session),
            None => sqlx::query("UPDATE sessions SET batches = $1 WHERE room = $2 AND session = $3")
                .bind(batches)
                .bind(room)
                .bind(session),
        }
        .execute(&self.pool)
        .await
        .map_err(q("record session danmaku"))?;
        Ok(())
    }

    /// Marks sessions left open by a crash as ended at `now_ms`; returns how many.
    pub async fn end_interrupted_sessions(&self, now_ms: i64) -> Result<u64, DbError> {
        let done = sqlx::query("UPDATE sessions SET ended_ms = $1 WHERE ended_ms IS NULL")
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(q("end interrupted sessions"))?;
        Ok(done.rows_affected())
    }

    /// One page of a room's sessions, newest first, and the total count.
    pub async fn list_sessions(
        &self,
        room: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<SessionRow>, i64), DbError> {
        let rows = sqlx::query(
            "SELECT room, session, started_ms, ended_ms, vod_key, first_seq, last_seq, batches \
             FROM sessions WHERE room = $1 ORDER BY started_ms DESC, session DESC LIMIT $2 OFFSET $3",
        )
        .bind(room)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(q("list sessions"))?;
        let total: i64 = sqlx::query("SELECT COUNT(*) FROM sessions WHERE room = $1")
            .bind(room)
            .fetch_one(&self.pool)
            .await
            .map_err(q("count sessions"))?
            .try_get(0)
            .map_err(q("count sessions"))?;
        let sessions = rows
            .iter()
            .map(session_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((sessions, total))
    }

    /// One session, if recorded.
    pub async fn get_session(
        &self,
        room: &str,
        session: &str,
    ) -> Result<Option<SessionRow>, DbError> {
        let row = sqlx::query(
            "SELECT room, session, started_ms, ended_ms, vod_key, first_seq, last_seq, batches \
             FROM sessions WHERE room = $1 AND session = $2",
        )
        .bind(room)
        .bind(session)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("get session"))?;
        row.as_ref().map(session_row).transpose()
    }
}

fn room_row(row: &AnyRow) -> Result<RoomRow, DbError> {
    let e = q("read room");
    Ok(RoomRow {
        id: row.try_get(0).map_err(q("read room"))?,
        title: row.try_get(1).map_err(q("read room"))?,
        key_hash: row.try_get(2).map_err(q("read room"))?,
        created_ms: row.try_get(3).map_err(q("read room"))?,
        closed_ms: row.try_get(4).map_err(e)?,
    })
}

fn session_row(row: &AnyRow) -> Result<SessionRow, DbError> {
    Ok(SessionRow {
        room: row.try_get(0).map_err(q("read session"))?,
        session: row.try_get(1).map_err(q("read session"))?,
        started_ms: row.try_get(2).map_err(q("read session"))?,
        ended_ms: row.try_get(3).map_err(q("read session"))?,
        vod_key: row.try_get(4).map_err(q("read session"))?,
        first_seq: row.try_get(5).map_err(q("read session"))?,
        last_seq: row.try_get(6).map_err(q("read session"))?,
        batches: row.try_get(7).map_err(q("read session"))?,
    })
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
            created_ms: 5,
            closed_ms: None,
        };
        assert!(db.insert_room(&room).await.unwrap());
        assert!(!db.insert_room(&room).await.unwrap());
        db.set_mute("r1", "u1", Some(99)).await.unwrap();
        db.set_mute("r1", "u1", None).await.unwrap();
        db.set_ban("r1", "u2", 1).await.unwrap();
        db.set_blocked_words("r1", &["b".into(), "a".into(), "a".into()])
            .await
            .unwrap();
        db.set_slow_mode("r1", 5).await.unwrap();
        db.session_started("r1", "s1", 10).await.unwrap();
        db.session_started("r1", "s2", 20).await.unwrap();
        db.session_ended("r1", "s1", 15, Some("hls/r1/s1/index.m3u8"))
            .await
            .unwrap();
        db.close().await;

        let db = Database::open(&url).await.unwrap();
        assert_eq!(db.load_rooms().await.unwrap(), vec![room]);
        let m = db.load_moderation().await.unwrap();
        let r1 = &m["r1"];
        assert_eq!(r1.mutes, vec![("u1".to_string(), None)]);
        assert_eq!(r1.bans, vec!["u2".to_string()]);
        assert_eq!(r1.blocked_words, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(r1.slow_mode_s, 5);
        assert_eq!(db.end_interrupted_sessions(30).await.unwrap(), 1);
        let (page, total) = db.list_sessions("r1", 0, 1).await.unwrap();
        assert_eq!(total, 2);
        assert_eq!(page[0].session, "s2");
        assert_eq!(page[0].ended_ms, Some(30));
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
