//! Per-room moderation state: mutes (with expiry), bans, blocked words and slow mode, and the
//! content checks every danmaku passes (length, blocked words, well-formed text).
//!
//! Every write goes through [`RoomModeration::apply`] with a [`ModerationChange`], so the
//! database layer can record the same changes it applies; a room's whole state loads in one
//! step with [`RoomModeration::from_snapshot`]. Times are wall-clock ms so they persist.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::protocol::AckStatus;
use crate::auth::Role;

/// Longest blocked word and most words per room accepted by the API.
pub const MAX_WORD_CHARS: usize = 64;
pub const MAX_WORDS: usize = 1000;
/// Longest slow-mode interval.
pub const MAX_SLOW_MODE_S: u32 = 3600;

/// One write to a room's moderation state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ModerationChange {
    /// Refuse the user's danmaku until `until_ms` (wall clock), or for good when None.
    Mute {
        user: String,
        until_ms: Option<i64>,
    },
    Unmute {
        user: String,
    },
    /// Refuse the user's danmaku in this room until unbanned.
    Ban {
        user: String,
    },
    Unban {
        user: String,
    },
    /// Replace the room's own blocked words (the global list from config always applies).
    SetBlockedWords {
        words: Vec<String>,
    },
    /// One danmaku per user per `seconds` (0: off). Moderators and hosts are exempt.
    SetSlowMode {
        seconds: u32,
    },
}

/// A room's whole moderation state, for bulk loading and persisting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationSnapshot {
    /// User -> mute expiry (wall ms), None for an indefinite mute.
    pub mutes: BTreeMap<String, Option<i64>>,
    pub bans: BTreeSet<String>,
    pub blocked_words: Vec<String>,
    pub slow_mode_s: u32,
}

/// Why moderation refused a danmaku, as the ack says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: AckStatus,
    pub retry_after_ms: Option<u64>,
}

impl Refusal {
    fn new(status: AckStatus) -> Refusal {
        Refusal {
            status,
            retry_after_ms: None,
        }
    }
}

/// Who is sending, as moderation needs it.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    pub user: &'a str,
    pub role: Role,
}

/// The danmaku content moderation looks at.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    pub text: &'a str,
    pub color: u32,
}

/// Checks that need no room state: well-formed text and color, and the length limit.
pub fn check_content(content: Content<'_>, max_chars: usize) -> Result<(), Refusal> {
    if content.text.trim().is_empty()
        || content.text.chars().any(char::is_control)
        || content.color > 0xFF_FF_FF
    {
        return Err(Refusal::new(AckStatus::Invalid));
    }
    if content.text.chars().count() > max_chars {
        return Err(Refusal::new(AckStatus::TooLong));
    }
    Ok(())
}

/// Lower-cases and trims words, dropping empty ones and duplicates (order kept).
pub fn normalize_words(words: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    words
        .iter()
        .map(|w| w.trim().to_lowercase())
        .filter(|w| !w.is_empty() && seen.insert(w.clone()))
        .collect()
}

/// Whether `text` contains any of the (normalised) words, case-insensitively.
pub fn contains_blocked(text: &str, words: &[String]) -> bool {
    if words.is_empty() {
        return false;
    }
    let lower = text.to_lowercase();
    words.iter().any(|w| lower.contains(w.as_str()))
}

/// One room's moderation state.
#[derive(Debug, Clone, Default)]
pub struct RoomModeration {
    mutes: HashMap<String, Option<i64>>,
    bans: BTreeSet<String>,
    /// Normalised (lower-case) room words.
    words: Vec<String>,
    slow_mode_s: u32,
    /// When each user's last danmaku was accepted (only while slow mode is on).
    last_accepted_ms: HashMap<String, i64>,
}

impl RoomModeration {
    /// A room's state loaded in one step (from the database at start).
    pub fn from_snapshot(snapshot: ModerationSnapshot) -> RoomModeration {
        RoomModeration {
            mutes: snapshot.mutes.into_iter().collect(),
            bans: snapshot.bans,
            words: normalize_words(&snapshot.blocked_words),
            slow_mode_s: snapshot.slow_mode_s.min(MAX_SLOW_MODE_S),
            last_accepted_ms: HashMap::new(),
        }
    }

    /// The state to persist; mutes expired at `now_ms` are left out.
    pub fn snapshot(&self, now_ms: i64) -> ModerationSnapshot {
        ModerationSnapshot {
            mutes: self
                .mutes
                .iter()
                .filter(|(_, until)| until.is_none_or(|t| t > now_ms))
                .map(|(u, t)| (u.clone(), *t))
                .collect(),
            bans: self.bans.clone(),
            blocked_words: self.words.clone(),
            slow_mode_s: self.slow_mode_s,
        }
    }

    /// The one way to change the state.
    pub fn apply(&mut self, change: &ModerationChange) {
        match change {
            ModerationChange::Mute { user, until_ms } => {
                self.mutes.insert(user.clone(), *until_ms);
            }
            ModerationChange::Unmute { user } => {
                self.mutes.remove(user);
            }
            ModerationChange::Ban { user } => {
                self.bans.insert(user.clone());
            }
            ModerationChange::Unban { user } => {
                self.bans.remove(user);
            }
            ModerationChange::SetBlockedWords { words } => {
                self.words = normalize_words(words);
            }
            ModerationChange::SetSlowMode { seconds } => {
                self.slow_mode_s = (*seconds).min(MAX_SLOW_MODE_S);
                if self.slow_mode_s == 0 {
                    self.last_accepted_ms.clear();
                }
            }
        }
    }

    /// The room's own blocked words (normalised).
    pub fn blocked_words(&self) -> &[String] {
        &self.words
    }

    /// Slow-mode interval in seconds (0: off).
    pub fn slow_mode_s(&self) -> u32 {
        self.slow_mode_s
    }

    /// Whether the user is muted at `now_ms`.
    pub fn is_muted(&self, user: &str, now_ms: i64) -> bool {
        self.mute_left_ms(user, now_ms).is_some()
    }

    /// Whether the user is banned from the room.
    pub fn is_banned(&self, user: &str) -> bool {
        self.bans.contains(user)
    }

    /// `Some(None)` muted for good, `Some(Some(ms))` muted for ms more, None not muted.
    fn mute_left_ms(&self, user: &str, now_ms: i64) -> Option<Option<u64>> {
        match self.mutes.get(user)? {
            None => Some(None),
            Some(until) if *until > now_ms => Some(Some((*until - now_ms) as u64)),
            Some(_) => None,
        }
    }

    /// Whether slow mode applies to this role.
    pub fn slow_mode_applies(&self, role: Role) -> bool {
        self.slow_mode_s > 0 && role < Role::Moderator
    }

    /// Runs the room's checks in order (ban, mute, content, blocked words, slow mode) and, when
    /// all pass, records the send for slow mode. `global_words` are normalised.
    pub fn check(
        &mut self,
        author: Author<'_>,
        content: Content<'_>,
        max_chars: usize,
        global_words: &[String],
        now_ms: i64,
    ) -> Result<(), Refusal> {
        if self.is_banned(author.user) {
            return Err(Refusal::new(AckStatus::Banned));
        }
        if let Some(left) = self.mute_left_ms(author.user, now_ms) {
            return Err(Refusal {
                status: AckStatus::Muted,
                retry_after_ms: left,
            });
        }
        check_content(content, max_chars)?;
        if contains_blocked(content.text, global_words)
            || contains_blocked(content.text, &self.words)
        {
            return Err(Refusal::new(AckStatus::Filtered));
        }
        if self.slow_mode_applies(author.role) {
            let interval_ms = i64::from(self.slow_mode_s) * 1000;
            if let Some(last) = self.last_accepted_ms.get(author.user) {
                let next = last + interval_ms;
                if next > now_ms {
                    return Err(Refusal {
                        status: AckStatus::SlowMode,
                        retry_after_ms: Some((next - now_ms) as u64),
                    });
                }
            }
            self.last_accepted_ms
                .insert(author.user.to_string(), now_ms);
        }
        Ok(())
    }

    /// Forgets expired mutes and slow-mode entries that no longer restrict anyone.
    pub fn prune(&mut self, now_ms: i64) {
        self.mutes
            .retain(|_, until| until.is_none_or(|t| t > now_ms));
        let interval_ms = i64::from(self.slow_mode_s) * 1000;
        self.last_accepted_ms
            .retain(|_, last| *last + interval_ms > now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIEWER: Author<'static> = Author {
        user: "u1",
        role: Role::Viewer,
    };

    fn text(t: &str) -> Content<'_> {
        Content {
            text: t,
            color: 0xFF_FF_FF,
        }
    }

    fn status(r: Result<(), Refusal>) -> Option<AckStatus> {
        r.err().map(|r| r.status)
    }

    #[test]
    fn mutes_expire_and_bans_hold() {
        let mut m = RoomModeration::default();
        m.apply(&ModerationChange::Mute {
            user: "u1".into(),
            until_ms: Some(10_000),
        });
        let refusal = m.check(VIEWER, text("hi"), 100, &[], 4_000).unwrap_err();
        assert_eq!(refusal.status, AckStatus::Muted);
        assert_eq!(refusal.retry_after_ms, Some(6_000));
        assert_eq!(m.check(VIEWER, text("hi"), 100, &[], 10_000), Ok(()));
        m.apply(&ModerationChange::Mute {
            user: "u1".into(),
            until_ms: None,
        });
        assert_eq!(
            status(m.check(VIEWER, text("hi"), 100, &[], 1 << 50)),
            Some(AckStatus::Muted)
        );
        m.apply(&ModerationChange::Unmute { user: "u1".into() });
        m.apply(&ModerationChange::Ban { user: "u1".into() });
        assert_eq!(
            status(m.check(VIEWER, text("hi"), 100, &[], 0)),
            Some(AckStatus::Banned)
        );
        m.apply(&ModerationChange::Unban { user: "u1".into() });
        assert_eq!(m.check(VIEWER, text("hi"), 100, &[], 0), Ok(()));
    }

    #[test]
    fn content_checks_length_words_and_form() {
        let mut m = RoomModeration::default();
        m.apply(&ModerationChange::SetBlockedWords {
            words: vec![" Spam ".into(), "".into(), "spam".into()],
        });
        assert_eq!(m.blocked_words(), ["spam"]);
        let global = normalize_words(&["BadWord".into()]);
        assert_eq!(
            status(m.check(VIEWER, text("buy SPAM now"), 100, &global, 0)),
            Some(AckStatus::Filtered)
        );
        assert_eq!(
            status(m.check(VIEWER, text("a badword"), 100, &global, 0)),
            Some(AckStatus::Filtered)
        );
        assert_eq!(
            status(m.check(VIEWER, text("四个汉字"), 3, &global, 0)),
            Some(AckStatus::TooLong)
        );
        assert_eq!(m.check(VIEWER, text("四个汉字"), 4, &global, 0), Ok(()));
        assert_eq!(
            status(m.check(VIEWER, text("   "), 100, &global, 0)),
            Some(AckStatus::Invalid)
        );
        assert_eq!(
            status(m.check(VIEWER, text("a\nb"), 100, &global, 0)),
            Some(AckStatus::Invalid)
        );
        let bad_color = Content {
            text: "x",
            color: 0x1_00_00_00,
        };
        assert_eq!(
            status(m.check(VIEWER, bad_color, 100, &global, 0)),
            Some(AckStatus::Invalid)
        );
    }

    #[test]
    fn slow_mode_spaces_a_users_danmaku_but_not_a_moderators() {
        let mut m = RoomModeration::default();
        m.apply(&ModerationChange::SetSlowMode { seconds: 5 });
        assert_eq!(m.check(VIEWER, text("1"), 100, &[], 1_000), Ok(()));
        let refusal = m.check(VIEWER, text("2"), 100, &[], 3_000).unwrap_err();
        assert_eq!(refusal.status, AckStatus::SlowMode);
        assert_eq!(refusal.retry_after_ms, Some(3_000));
        // A refused message does not restart the interval.
        assert_eq!(m.check(VIEWER, text("3"), 100, &[], 6_000), Ok(()));
        let other = Author {
            user: "u2",
            role: Role::Viewer,
        };
        assert_eq!(m.check(other, text("x"), 100, &[], 6_000), Ok(()));
        let moderator = Author {
            user: "m",
            role: Role::Moderator,
        };
        for t in 0..3 {
            assert_eq!(m.check(moderator, text("x"), 100, &[], 6_000 + t), Ok(()));
        }
        m.prune(100_000);
        assert!(m.last_accepted_ms.is_empty());
        m.apply(&ModerationChange::SetSlowMode { seconds: 0 });
        assert_eq!(m.check(VIEWER, text("4"), 100, &[], 6_001), Ok(()));
    }

    #[test]
    fn snapshots_load_in_bulk_and_leave_out_expired_mutes() {
        let mut m = RoomModeration::default();
        for change in [
            ModerationChange::Mute {
                user: "a".into(),
                until_ms: Some(50),
            },
            ModerationChange::Mute {
                user: "b".into(),
                until_ms: None,
            },
            ModerationChange::Ban { user: "c".into() },
            ModerationChange::SetBlockedWords {
                words: vec!["W".into()],
            },
            ModerationChange::SetSlowMode { seconds: 9 },
        ] {
            m.apply(&change);
        }
        let snap = m.snapshot(100);
        assert_eq!(snap.mutes.len(), 1);
        assert_eq!(snap.blocked_words, vec!["w".to_string()]);
        let loaded = RoomModeration::from_snapshot(snap.clone());
        assert_eq!(loaded.snapshot(100), snap);
        assert!(loaded.is_muted("b", 100) && loaded.is_banned("c") && !loaded.is_muted("a", 100));
        let json = serde_json::to_value(ModerationChange::Ban { user: "c".into() }).unwrap();
        assert_eq!(json, serde_json::json!({"change":"ban","user":"c"}));
    }
}
