//! The frames about who is on a socket and what they may do, beyond chatting: a fresh token
//! (`auth`), a moderator's requests (`delete`, `mute`) and their answers (`auth`, `reply`), as
//! serde (JSON) types with their protobuf conversions. `protocol` tags them into
//! `ClientFrame` / `ServerFrame`.

use serde::{Deserialize, Serialize};

use super::pb;
use super::protocol::ConvertError;

/// A moderator deletes a delivered event for everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRequest {
    /// Echoed in the reply.
    pub request_id: u64,
    pub seq: u64,
}

/// A moderator mutes a user in the room; no `seconds`: until unmuted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MuteRequest {
    /// Echoed in the reply.
    pub request_id: u64,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
}

/// Where a socket's token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStatus {
    /// A fresh token was taken.
    Ok,
    /// The token ran out: sends are refused until a fresh one comes.
    Expired,
    /// A fresh token was refused; the socket keeps what it had.
    Refused,
}

/// The server's word on the socket's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    pub status: AuthStatus,
    /// Refused: `bad_token`, `token_expired` or `wrong_room`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Ok: the socket's user and role now.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// Ok: when the new token expires (seconds since the epoch).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub expires_at_s: u64,
    /// Ok: whether the new token lets this socket delete and mute.
    #[serde(default)]
    pub can_moderate: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The answer to a moderator's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub request_id: u64,
    pub ok: bool,
    /// Why not: the API's error codes (`forbidden`, `not_delivered`, `bad_field`, ...) and
    /// `unauthenticated` for an expired or missing token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl From<&DeleteRequest> for pb::DeleteMessage {
    fn from(d: &DeleteRequest) -> pb::DeleteMessage {
        pb::DeleteMessage {
            request_id: d.request_id,
            seq: d.seq,
        }
    }
}

impl From<pb::DeleteMessage> for DeleteRequest {
    fn from(d: pb::DeleteMessage) -> DeleteRequest {
        DeleteRequest {
            request_id: d.request_id,
            seq: d.seq,
        }
    }
}

impl From<&MuteRequest> for pb::MuteUser {
    fn from(m: &MuteRequest) -> pb::MuteUser {
        pb::MuteUser {
            request_id: m.request_id,
            user: m.user.clone(),
            seconds: m.seconds,
        }
    }
}

impl From<pb::MuteUser> for MuteRequest {
    fn from(m: pb::MuteUser) -> MuteRequest {
        MuteRequest {
            request_id: m.request_id,
            user: m.user,
            seconds: m.seconds,
        }
    }
}

impl From<&AuthState> for pb::AuthState {
    fn from(a: &AuthState) -> pb::AuthState {
        let status = match a.status {
            AuthStatus::Ok => pb::AuthStatus::Ok,
            AuthStatus::Expired => pb::AuthStatus::Expired,
            AuthStatus::Refused => pb::AuthStatus::Refused,
        };
        pb::AuthState {
            status: status as i32,
            code: a.code.clone(),
            message: a.message.clone(),
            user: a.user.clone(),
            role: a.role.clone(),
            expires_at_s: a.expires_at_s,
            can_moderate: a.can_moderate,
        }
    }
}

impl TryFrom<pb::AuthState> for AuthState {
    type Error = ConvertError;
    fn try_from(a: pb::AuthState) -> Result<AuthState, ConvertError> {
        let status = match pb::AuthStatus::try_from(a.status) {
            Ok(pb::AuthStatus::Ok) => AuthStatus::Ok,
            Ok(pb::AuthStatus::Expired) => AuthStatus::Expired,
            Ok(pb::AuthStatus::Refused) => AuthStatus::Refused,
            Err(_) => {
                return Err(ConvertError::UnknownEnum {
                    field: "status",
                    value: a.status,
                })
            }
        };
        Ok(AuthState {
            status,
            code: a.code,
            message: a.message,
            user: a.user,
            role: a.role,
            expires_at_s: a.expires_at_s,
            can_moderate: a.can_moderate,
        })
    }
}

impl From<&Reply> for pb::Reply {
    fn from(r: &Reply) -> pb::Reply {
        pb::Reply {
            request_id: r.request_id,
            ok: r.ok,
            code: r.code.clone(),
            message: r.message.clone(),
        }
    }
}

impl From<pb::Reply> for Reply {
    fn from(r: pb::Reply) -> Reply {
        Reply {
            request_id: r.request_id,
            ok: r.ok,
            code: r.code,
            message: r.message,
        }
    }
}
