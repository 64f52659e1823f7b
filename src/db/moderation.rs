//! The moderation tables: `mutes`, `bans`, `blocked_words` and `room_settings` (slow mode).

use std::collections::BTreeMap;

use sqlx::Row;

use super::{q, Database, DbError};

/// Moderation of one room as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomModerationRow {
    /// (user, until_ms; None = until unmuted)
    pub mutes: Vec<(String, Option<i64>)>,
    pub bans: Vec<String>,
    pub blocked_words: Vec<String>,
    pub slow_mode_s: i64,
}

impl Database {
    /// Every room's moderation state, by room id.
    pub async fn load_moderation(&self) -> Result<BTreeMap<String, RoomModerationRow>, DbError> {
        let mut out: BTreeMap<String, RoomModerationRow> = Default::default();
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
}
