//! What hosts and moderators do to a room's chat, from the API and from a chat socket alike:
//! mute, ban, delete, blocked words, slow mode, system messages. Each act is checked (the same
//! bounds on both doors), applied (moderation database first, through the catalog), then
//! written to the audit log with who did it. The caller has already checked the rights
//! (`crate::rights`) for [`Act::action`].

use std::sync::Arc;

use axum::extract::FromRef;

use crate::chat::moderation::{normalize_words, ModerationChange, MAX_WORDS, MAX_WORD_CHARS};
use crate::chat::ChatEngine;
use crate::http::api_error::ApiError;
use crate::rights::{Action, Credential};
use crate::rooms::{AuditLog, RoomCatalog, Via};
use crate::state::AppState;

/// Longest system message in characters.
pub const MAX_SYSTEM_CHARS: usize = 500;
/// Longest mute: ten years (a longer one is a ban, or no expiry).
pub const MAX_MUTE_S: u64 = 10 * 365 * 24 * 3600;

/// One act on a room's chat, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// `seconds`: None for no expiry.
    Mute {
        user: String,
        seconds: Option<u64>,
    },
    Unmute {
        user: String,
    },
    Ban {
        user: String,
    },
    Unban {
        user: String,
    },
    Delete {
        seq: u64,
    },
    /// Normalised words (they replace the room's list).
    BlockedWords {
        words: Vec<String>,
    },
    SlowMode {
        seconds: u32,
    },
    System {
        text: String,
    },
}

/// `field` must be `min..=max` characters without control characters.
pub fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min || n > max || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad_field",
            format!("{field}: {min} to {max} characters without control characters"),
        ));
    }
    Ok(())
}

/// A user id as the API and the socket take it.
pub fn check_user(user: &str) -> Result<(), ApiError> {
    check_text("user", user, 1, 128)
}

impl Act {
    /// A mute of `user` for `seconds` (None: no expiry), within the bounds.
    pub fn mute(user: String, seconds: Option<u64>) -> Result<Act, ApiError> {
        check_user(&user)?;
        if seconds.is_some_and(|s| s == 0 || s > MAX_MUTE_S) {
            return Err(ApiError::bad_request(
                "bad_field",
                format!("seconds: 1 to {MAX_MUTE_S}, or leave it out for no expiry"),
            ));
        }
        Ok(Act::Mute { user, seconds })
    }

    /// An unmute, ban or unban of `user` (`make` picks which).
    pub fn on_user(user: String, make: fn(String) -> Act) -> Result<Act, ApiError> {
        check_user(&user)?;
        Ok(make(user))
    }

    /// A room's new blocked-word list, normalised.
    pub fn blocked_words(words: &[String]) -> Result<Act, ApiError> {
        if words.len() > MAX_WORDS {
            return Err(ApiError::bad_request(
                "bad_field",
                format!("words: at most {MAX_WORDS}"),
            ));
        }
        for w in words {
            check_text("words[]", w.trim(), 1, MAX_WORD_CHARS)?;
        }
        Ok(Act::BlockedWords {
            words: normalize_words(words),
        })
    }

    /// Slow mode of `seconds` (0: off).
    pub fn slow_mode(seconds: u32) -> Result<Act, ApiError> {
        use crate::chat::moderation::MAX_SLOW_MODE_S;
        if seconds > MAX_SLOW_MODE_S {
            return Err(ApiError::bad_request(
                "bad_field",
                format!("seconds: 0 (off) to {MAX_SLOW_MODE_S}"),
            ));
        }
        Ok(Act::SlowMode { seconds })
    }

    /// A system message of 1 to [`MAX_SYSTEM_CHARS`] characters.
    pub fn system(text: String) -> Result<Act, ApiError> {
        if text.trim().is_empty() || text.chars().count() > MAX_SYSTEM_CHARS {
            return Err(ApiError::bad_request(
                "bad_field",
                format!("text: 1 to {MAX_SYSTEM_CHARS} characters"),
            ));
        }
        Ok(Act::System { text })
    }

    /// The rights-table action this act is.
    pub fn action(&self) -> Action {
        match self {
            Act::Mute { .. } => Action::Mute,
            Act::Unmute { .. } => Action::Unmute,
            Act::Ban { .. } => Action::Ban,
            Act::Unban { .. } => Action::Unban,
            Act::Delete { .. } => Action::DeleteMessage,
            Act::BlockedWords { .. } => Action::SetBlockedWords,
            Act::SlowMode { .. } => Action::SetSlowMode,
            Act::System { .. } => Action::PostSystem,
        }
    }

    /// What the act was on, for the audit log.
    fn target(&self) -> String {
        match self {
            Act::Mute {
                user,
                seconds: Some(s),
            } => format!("{user} for {s} s"),
            Act::Mute {
                user,
                seconds: None,
            } => format!("{user} until unmuted"),
            Act::Unmute { user } | Act::Ban { user } | Act::Unban { user } => user.clone(),
            Act::Delete { seq } => format!("seq {seq}"),
            Act::BlockedWords { words } => format!("{} words", words.len()),
            Act::SlowMode { seconds: 0 } => "off".to_string(),
            Act::SlowMode { seconds } => format!("{seconds} s"),
            Act::System { text } => text.chars().take(100).collect(),
        }
    }

    /// The stored moderation change, for the acts that are one (at `now_ms`).
    fn change(&self, now_ms: i64) -> Option<ModerationChange> {
        Some(match self.clone() {
            Act::Mute { user, seconds } => ModerationChange::Mute {
                user,
                until_ms: seconds.map(|s| now_ms.saturating_add((s as i64).saturating_mul(1000))),
            },
            Act::Unmute { user } => ModerationChange::Unmute { user },
            Act::Ban { user } => ModerationChange::Ban { user },
            Act::Unban { user } => ModerationChange::Unban { user },
            Act::BlockedWords { words } => ModerationChange::SetBlockedWords { words },
            Act::SlowMode { seconds } => ModerationChange::SetSlowMode { seconds },
            Act::Delete { .. } | Act::System { .. } => return None,
        })
    }
}

/// What acts go through: the catalog (moderation, database first), the engine (deletes and
/// system messages) and the audit log.
#[derive(Clone)]
pub struct RoomActs {
    catalog: Arc<RoomCatalog>,
    chat: Arc<ChatEngine>,
    audit: Arc<AuditLog>,
}

impl FromRef<AppState> for RoomActs {
    fn from_ref(state: &AppState) -> RoomActs {
        RoomActs {
            catalog: state.catalog.clone(),
            chat: state.chat.clone(),
            audit: state.audit.clone(),
        }
    }
}

impl RoomActs {
    /// Applies `act` on `room` for `who` (whose rights were checked), then audits it. Returns
    /// the mute's end (ms since the epoch) for a timed mute.
    pub async fn apply(
        &self,
        who: &Credential,
        room: &str,
        act: Act,
        via: Via,
    ) -> Result<Option<i64>, ApiError> {
        let now = crate::clock::now_ms();
        let change = act.change(now);
        match (&act, &change) {
            (Act::Delete { seq }, _) => self.chat.delete_message(room, *seq)?,
            (Act::System { text }, _) => self.chat.post_system(room, text.clone())?,
            (_, Some(change)) => self.catalog.moderate(&self.chat, room, change).await?,
            (_, None) => {}
        }
        self.audit
            .record(who, room, act.action(), act.target(), via)
            .await;
        Ok(match change {
            Some(ModerationChange::Mute { until_ms, .. }) => until_ms,
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acts_are_bounded_and_named() {
        assert!(Act::mute("u".into(), Some(0)).is_err());
        assert!(Act::mute("u".into(), Some(MAX_MUTE_S + 1)).is_err());
        assert!(Act::mute(String::new(), None).is_err());
        assert!(Act::mute("a\u{7}".into(), None).is_err());
        let mute = Act::mute("u1".into(), Some(600)).unwrap();
        assert_eq!(mute.action(), Action::Mute);
        assert_eq!(mute.target(), "u1 for 600 s");
        assert_eq!(
            mute.change(1_000),
            Some(ModerationChange::Mute {
                user: "u1".into(),
                until_ms: Some(601_000)
            })
        );
        assert!(Act::system("  ".into()).is_err());
        assert_eq!(Act::Delete { seq: 4 }.target(), "seq 4");
        assert_eq!(Act::Delete { seq: 4 }.change(0), None);
        let words = Act::blocked_words(&["Spam ".into(), "spam".into()]).unwrap();
        assert_eq!(
            words,
            Act::BlockedWords {
                words: vec!["spam".into()]
            }
        );
        assert!(Act::slow_mode(u32::MAX).is_err());
        assert_eq!(Act::slow_mode(0).unwrap().target(), "off");
    }
}
