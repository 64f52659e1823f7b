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

/// One act on a room's chat, checked, with what it was on (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Act {
    pub kind: ActKind,
    /// What the act was on, in words: a user id, `seq 42`, `5 s`, ...
    pub target: String,
}

/// What an act does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActKind {
    /// A change to the room's stored moderation (mute, ban, words, slow mode).
    Change(ModerationChange),
    /// Deletes delivered event `seq` for everyone.
    Delete(u64),
    /// A system message.
    System(String),
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
    fn change(change: ModerationChange, target: String) -> Act {
        Act {
            kind: ActKind::Change(change),
            target,
        }
    }

    /// A mute of `user` for `seconds` from now (None: no expiry), within the bounds.
    pub fn mute(user: String, seconds: Option<u64>) -> Result<Act, ApiError> {
        check_user(&user)?;
        let Some(seconds) = seconds else {
            let target = format!("{user} until unmuted");
            return Ok(Act::change(
                ModerationChange::Mute {
                    user,
                    until_ms: None,
                },
                target,
            ));
        };
        if seconds == 0 || seconds > MAX_MUTE_S {
            return Err(ApiError::bad_request(
                "bad_field",
                format!("seconds: 1 to {MAX_MUTE_S}, or leave it out for no expiry"),
            ));
        }
        let until_ms = crate::clock::now_ms().saturating_add(seconds as i64 * 1000);
        let target = format!("{user} for {seconds} s");
        Ok(Act::change(
            ModerationChange::Mute {
                user,
                until_ms: Some(until_ms),
            },
            target,
        ))
    }

    /// An unmute, ban or unban of `user` (`make` picks which change).
    pub fn on_user(user: String, make: fn(String) -> ModerationChange) -> Result<Act, ApiError> {
        check_user(&user)?;
        Ok(Act::change(make(user.clone()), user))
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
        let words = normalize_words(words);
        let target = format!("{} words", words.len());
        Ok(Act::change(
            ModerationChange::SetBlockedWords { words },
            target,
        ))
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
        let target = match seconds {
            0 => "off".to_string(),
            s => format!("{s} s"),
        };
        Ok(Act::change(
            ModerationChange::SetSlowMode { seconds },
            target,
        ))
    }

    /// The deletion of delivered event `seq`.
    pub fn delete(seq: u64) -> Act {
        Act {
            kind: ActKind::Delete(seq),
            target: format!("seq {seq}"),
        }
    }

    /// A system message of 1 to [`MAX_SYSTEM_CHARS`] characters.
    pub fn system(text: String) -> Result<Act, ApiError> {
        if text.trim().is_empty() || text.chars().count() > MAX_SYSTEM_CHARS {
            return Err(ApiError::bad_request(
                "bad_field",
                format!("text: 1 to {MAX_SYSTEM_CHARS} characters"),
            ));
        }
        Ok(Act {
            target: text.chars().take(100).collect(),
            kind: ActKind::System(text),
        })
    }

    /// The rights-table action this act is.
    pub fn action(&self) -> Action {
        match &self.kind {
            ActKind::Change(ModerationChange::Mute { .. }) => Action::Mute,
            ActKind::Change(ModerationChange::Unmute { .. }) => Action::Unmute,
            ActKind::Change(ModerationChange::Ban { .. }) => Action::Ban,
            ActKind::Change(ModerationChange::Unban { .. }) => Action::Unban,
            ActKind::Change(ModerationChange::SetBlockedWords { .. }) => Action::SetBlockedWords,
            ActKind::Change(ModerationChange::SetSlowMode { .. }) => Action::SetSlowMode,
            ActKind::Delete(_) => Action::DeleteMessage,
            ActKind::System(_) => Action::PostSystem,
        }
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
    /// Applies `act` on `room` for `who` (whose rights were checked), then audits it.
    pub async fn apply(
        &self,
        who: &Credential,
        room: &str,
        act: Act,
        via: Via,
    ) -> Result<(), ApiError> {
        match &act.kind {
            ActKind::Change(change) => self.catalog.moderate(&self.chat, room, change).await?,
            ActKind::Delete(seq) => self.chat.delete_message(room, *seq)?,
            ActKind::System(text) => self.chat.post_system(room, text.clone())?,
        }
        self.audit
            .record(who, room, act.action(), act.target, via)
            .await;
        Ok(())
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
        let before = crate::clock::now_ms();
        let mute = Act::mute("u1".into(), Some(600)).unwrap();
        assert_eq!(mute.action(), Action::Mute);
        assert_eq!(mute.target, "u1 for 600 s");
        let ActKind::Change(ModerationChange::Mute { user, until_ms }) = &mute.kind else {
            panic!("a mute: {mute:?}")
        };
        assert_eq!(user, "u1");
        assert!(until_ms.is_some_and(|t| t >= before + 600_000));
        assert_eq!(
            Act::mute("u2".into(), None).unwrap().target,
            "u2 until unmuted"
        );
        let ban = Act::on_user("u3".into(), |user| ModerationChange::Ban { user }).unwrap();
        assert_eq!((ban.action(), ban.target.as_str()), (Action::Ban, "u3"));
        assert!(Act::system("  ".into()).is_err());
        assert_eq!(Act::delete(4).target, "seq 4");
        assert_eq!(Act::delete(4).action(), Action::DeleteMessage);
        let words = Act::blocked_words(&["Spam ".into(), "spam".into()]).unwrap();
        assert_eq!(
            words.kind,
            ActKind::Change(ModerationChange::SetBlockedWords {
                words: vec!["spam".into()]
            })
        );
        assert!(Act::slow_mode(u32::MAX).is_err());
        assert_eq!(Act::slow_mode(0).unwrap().target, "off");
    }
}
