//! Who may do what to which room: the rights table, pure (no I/O, no clock). The HTTP API and
//! the chat socket prove a [`Credential`] their own way (a Bearer header, a socket's token) and
//! both ask [`check`] whether it allows an [`Action`] on a room; a refusal says in words what
//! the action needs, and the caller turns it into a 403 or a socket reply.
//!
//! The table:
//!
//! | action                                        | admin key | host key | host token | moderator token |
//! |-----------------------------------------------|-----------|----------|------------|-----------------|
//! | make rooms, room settings (`host_gifts`)      | yes       | –        | –          | –               |
//! | rotate stream/host key, close/reopen          | yes       | its room | –          | –               |
//! | gifts                                         | yes       | its room, if `host_gifts` | – | –         |
//! | system messages, audit log                    | yes       | its room | its room   | –               |
//! | mute, ban, delete, blocked words, slow mode   | yes       | its room | its room   | its room        |
//!
//! A token's room is its `room` claim: a host or moderator token without one opens no room
//! (`barrage token --all-rooms` is for viewers and admins). A token with role `admin` has the
//! host token's rights in every room; viewer tokens have none here.

use crate::auth::Role;

/// A proven credential: what the caller showed, already checked (key compared, token verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `auth.admin_key`.
    AdminKey,
    /// The host key of `room`.
    HostKey { room: String },
    /// A signed token (JWT) of `user` with its role and `room` claim (None: no claim).
    Token {
        user: String,
        role: Role,
        room: Option<String>,
    },
}

impl Credential {
    /// Who, for the audit log: a token's user, else the kind of key.
    pub fn actor(&self) -> &str {
        match self {
            Credential::AdminKey => "admin key",
            Credential::HostKey { .. } => "host key",
            Credential::Token { user, .. } => user,
        }
    }

    /// The role the credential acts in, for the audit log and `GET /api/whoami`.
    pub fn role(&self) -> Role {
        match self {
            Credential::AdminKey => Role::Admin,
            Credential::HostKey { .. } => Role::Host,
            Credential::Token { role, .. } => *role,
        }
    }

    /// The one room the credential is for (None: the admin key, or a token without a claim).
    pub fn room(&self) -> Option<&str> {
        match self {
            Credential::AdminKey => None,
            Credential::HostKey { room } => Some(room),
            Credential::Token { room, .. } => room.as_deref(),
        }
    }
}

/// Something a credential may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CreateRoom,
    ChangeRoomSettings,
    RotateStreamKey,
    RotateHostKey,
    CloseRoom,
    OpenRoom,
    PostGift,
    PostSystem,
    Mute,
    Unmute,
    Ban,
    Unban,
    DeleteMessage,
    ReadBlockedWords,
    SetBlockedWords,
    SetSlowMode,
    ReadModeration,
    ReadAudit,
    ReadSeries,
}

/// Which row of the table an action is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// The admin key only.
    Admin,
    /// Keys, not tokens: the admin key and the room's host key.
    RoomControl,
    /// The admin key; the host key when the room allows it.
    Gift,
    /// Keys, and host tokens of the room.
    HostWork,
    /// Keys, and host or moderator tokens of the room.
    Moderation,
}

impl Action {
    /// Every action, for tables and tests.
    pub const ALL: [Action; 19] = [
        Action::CreateRoom,
        Action::ChangeRoomSettings,
        Action::RotateStreamKey,
        Action::RotateHostKey,
        Action::CloseRoom,
        Action::OpenRoom,
        Action::PostGift,
        Action::PostSystem,
        Action::Mute,
        Action::Unmute,
        Action::Ban,
        Action::Unban,
        Action::DeleteMessage,
        Action::ReadBlockedWords,
        Action::SetBlockedWords,
        Action::SetSlowMode,
        Action::ReadModeration,
        Action::ReadAudit,
        Action::ReadSeries,
    ];

    fn class(self) -> Class {
        match self {
            Action::CreateRoom | Action::ChangeRoomSettings => Class::Admin,
            Action::RotateStreamKey
            | Action::RotateHostKey
            | Action::CloseRoom
            | Action::OpenRoom => Class::RoomControl,
            Action::PostGift => Class::Gift,
            Action::PostSystem | Action::ReadAudit | Action::ReadSeries => Class::HostWork,
            Action::Mute
            | Action::Unmute
            | Action::Ban
            | Action::Unban
            | Action::DeleteMessage
            | Action::ReadBlockedWords
            | Action::SetBlockedWords
            | Action::SetSlowMode
            | Action::ReadModeration => Class::Moderation,
        }
    }

    /// The action in a few words, as refusals and the audit log name it.
    pub fn name(self) -> &'static str {
        match self {
            Action::CreateRoom => "make rooms",
            Action::ChangeRoomSettings => "change room settings",
            Action::RotateStreamKey => "rotate the stream key",
            Action::RotateHostKey => "rotate the host key",
            Action::CloseRoom => "close the room",
            Action::OpenRoom => "reopen the room",
            Action::PostGift => "post gifts",
            Action::PostSystem => "post system messages",
            Action::Mute => "mute",
            Action::Unmute => "unmute",
            Action::Ban => "ban",
            Action::Unban => "unban",
            Action::DeleteMessage => "delete messages",
            Action::ReadBlockedWords => "read blocked words",
            Action::SetBlockedWords => "set blocked words",
            Action::SetSlowMode => "set slow mode",
            Action::ReadModeration => "read moderation",
            Action::ReadAudit => "read the audit log",
            Action::ReadSeries => "read the room's charts",
        }
    }

    /// The action's name in the audit log (snake case, stable).
    pub fn code(self) -> &'static str {
        match self {
            Action::CreateRoom => "create_room",
            Action::ChangeRoomSettings => "room_settings",
            Action::RotateStreamKey => "rotate_stream_key",
            Action::RotateHostKey => "rotate_host_key",
            Action::CloseRoom => "close",
            Action::OpenRoom => "open",
            Action::PostGift => "gift",
            Action::PostSystem => "system",
            Action::Mute => "mute",
            Action::Unmute => "unmute",
            Action::Ban => "ban",
            Action::Unban => "unban",
            Action::DeleteMessage => "delete",
            Action::ReadBlockedWords => "read_blocked_words",
            Action::SetBlockedWords => "blocked_words",
            Action::SetSlowMode => "slow_mode",
            Action::ReadModeration => "read_moderation",
            Action::ReadAudit => "read_audit",
            Action::ReadSeries => "read_series",
        }
    }

    /// The credentials that allow it on `room`, in words.
    pub fn needs(self, room: Option<&str>) -> String {
        let room = room.map_or_else(|| "the room".to_string(), |r| format!("room {r}"));
        match self.class() {
            Class::Admin => "the admin key".to_string(),
            Class::RoomControl | Class::Gift => format!("the admin key or {room}'s host key"),
            Class::HostWork => {
                format!("the admin key, {room}'s host key or a host token for {room}")
            }
            Class::Moderation => {
                format!("the admin key, {room}'s host key or a moderator or host token for {room}")
            }
        }
    }
}

/// The room's own settings that the table reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomPolicy {
    /// `host_gifts`: the host key may post gifts.
    pub host_gifts: bool,
}

/// Why a credential does not allow an action: a sentence naming what would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Whether `credential` may take `action` on `room` (None: an action on no room, such as
/// making one).
pub fn check(
    credential: &Credential,
    action: Action,
    room: Option<&str>,
    policy: RoomPolicy,
) -> Result<(), Denied> {
    let class = action.class();
    if *credential == Credential::AdminKey {
        return Ok(());
    }
    let Some(room) = room.filter(|_| class != Class::Admin) else {
        return Err(Denied(format!(
            "to {} this needs the admin key",
            action.name()
        )));
    };
    let verdict = match credential {
        Credential::AdminKey => Ok(()),
        Credential::HostKey { room: own } => host_key(own, room, class, policy),
        Credential::Token {
            role, room: claim, ..
        } => token(*role, claim.as_deref(), room, class, action),
    };
    verdict.map_err(|why| {
        Denied(format!(
            "{why}; to {} this needs {}",
            action.name(),
            action.needs(Some(room))
        ))
    })
}

/// The host key of `own` on `room`: everything there but the admin's, gifts by the policy.
fn host_key(own: &str, room: &str, class: Class, policy: RoomPolicy) -> Result<(), String> {
    if own != room {
        return Err(format!("this is room {own}'s host key, not room {room}'s"));
    }
    if class == Class::Gift && !policy.host_gifts {
        return Err(format!(
            "room {room} does not let its host key post gifts (the admin can allow it: \
             host_gifts)"
        ));
    }
    Ok(())
}

/// A token of `role` with room claim `claim` on `room`: moderation for moderators, hosts and
/// admins, host work for hosts and admins, never keys; only in the claimed room (admins: any).
fn token(
    role: Role,
    claim: Option<&str>,
    room: &str,
    class: Class,
    action: Action,
) -> Result<(), String> {
    let name = role.as_str();
    if role == Role::Viewer {
        return Err("a viewer token moderates nothing".to_string());
    }
    match claim {
        _ if role == Role::Admin => {}
        None => {
            return Err(format!(
                "this {name} token has no room claim, so it opens no room (mint it with \
                 --room {room})"
            ))
        }
        Some(claim) if claim != room => {
            return Err(format!("this {name} token is for room {claim}, not {room}"))
        }
        Some(_) => {}
    }
    let allowed = match class {
        Class::Moderation => true,
        Class::HostWork => role >= Role::Host,
        Class::Admin | Class::RoomControl | Class::Gift => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(format!("a {name} token cannot {}", action.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(role: Role, room: Option<&str>) -> Credential {
        Credential::Token {
            user: "u".into(),
            role,
            room: room.map(str::to_string),
        }
    }

    /// Each credential's allowed actions on room `a` (host_gifts off), as the module's table.
    #[test]
    fn the_table() {
        use Action::*;
        let control = [RotateStreamKey, RotateHostKey, CloseRoom, OpenRoom];
        let moderation = [
            Mute,
            Unmute,
            Ban,
            Unban,
            DeleteMessage,
            ReadBlockedWords,
            SetBlockedWords,
            SetSlowMode,
            ReadModeration,
        ];
        let host_work = [PostSystem, ReadAudit, ReadSeries];
        let host_key = Credential::HostKey { room: "a".into() };
        let cases: Vec<(&str, Credential, Vec<Action>)> = vec![
            ("admin key", Credential::AdminKey, Action::ALL.to_vec()),
            (
                "host key",
                host_key.clone(),
                [&control[..], &moderation, &host_work].concat(),
            ),
            (
                "other room's host key",
                Credential::HostKey { room: "b".into() },
                vec![],
            ),
            (
                "host token",
                token(Role::Host, Some("a")),
                [&moderation[..], &host_work].concat(),
            ),
            (
                "admin token (claim ignored)",
                token(Role::Admin, Some("b")),
                [&moderation[..], &host_work].concat(),
            ),
            (
                "moderator token",
                token(Role::Moderator, Some("a")),
                moderation.to_vec(),
            ),
            (
                "other room's moderator token",
                token(Role::Moderator, Some("b")),
                vec![],
            ),
            (
                "moderator token without a room",
                token(Role::Moderator, None),
                vec![],
            ),
            ("viewer token", token(Role::Viewer, Some("a")), vec![]),
        ];
        for (name, credential, allowed) in cases {
            for action in Action::ALL {
                let room = (action != CreateRoom).then_some("a");
                let got = check(&credential, action, room, RoomPolicy::default());
                assert_eq!(
                    got.is_ok(),
                    allowed.contains(&action),
                    "{name} / {action:?}: {got:?}"
                );
                if let Err(Denied(why)) = got {
                    assert!(why.contains(action.name()), "{why}");
                }
            }
        }
        let allows_gifts = RoomPolicy { host_gifts: true };
        assert_eq!(check(&host_key, PostGift, Some("a"), allows_gifts), Ok(()));
        let other = Credential::HostKey { room: "b".into() };
        assert!(check(&other, PostGift, Some("a"), allows_gifts).is_err());
    }

    #[test]
    fn refusals_say_what_is_missing() {
        let why = |c: &Credential, a: Action| {
            check(c, a, Some("a"), RoomPolicy::default()).unwrap_err().0
        };
        let host_b = Credential::HostKey { room: "b".into() };
        assert!(why(&host_b, Action::Mute).contains("room b's host key, not room a's"));
        let gift = why(&Credential::HostKey { room: "a".into() }, Action::PostGift);
        assert!(gift.contains("host_gifts"), "{gift}");
        let unscoped = why(&token(Role::Moderator, None), Action::Ban);
        assert!(
            unscoped.contains("no room claim") && unscoped.contains("--room a"),
            "{unscoped}"
        );
        let rotate = why(&token(Role::Host, Some("a")), Action::RotateStreamKey);
        assert!(
            rotate.contains("the admin key or room a's host key"),
            "{rotate}"
        );
        let create = check(
            &Credential::HostKey { room: "a".into() },
            Action::CreateRoom,
            None,
            RoomPolicy::default(),
        );
        assert!(create.unwrap_err().0.contains("needs the admin key"));
        assert_eq!(Credential::AdminKey.actor(), "admin key");
        assert_eq!(token(Role::Moderator, Some("a")).actor(), "u");
    }
}
