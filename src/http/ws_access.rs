//! A viewer socket's token and rights after it joined: a fresh token handed over the socket
//! (`auth`), the word that a token ran out, and a moderator's `delete` and `mute` requests,
//! checked against the same rights table as the API and applied (and audited) by the same
//! [`RoomActs`]. `ws` calls these from its loop; nothing here touches the socket itself.
//!
//! A fresh token must be for this room. Its user may differ from the socket's: the socket then
//! sends as that user, as a reconnect with the token would (guest tokens get a new user id
//! each time they are minted, so requiring the same user would make a guest reconnect).

use axum::http::StatusCode;

use crate::auth::{Claims, Role, TokenSigner};
use crate::chat::protocol::{display_name, AuthState, AuthStatus, Reply, ServerFrame};
use crate::chat::uplink::Identity;
use crate::http::api_error::ApiError;
use crate::http::room_acts::{Act, RoomActs};
use crate::rights::{check, RoomPolicy};
use crate::rooms::Via;

/// What a socket needs beyond the chat engine to handle `auth`, `delete` and `mute`.
pub(crate) struct SocketAccess {
    pub tokens: std::sync::Arc<TokenSigner>,
    pub acts: RoomActs,
}

/// The socket's identity from a verified token.
pub(crate) fn identity(claims: Claims) -> Identity {
    Identity {
        valid_until_ms: Some(claims.valid_until_ms()),
        name: display_name(claims.name, &claims.sub, claims.role != Role::Viewer),
        user: claims.sub,
        role: claims.role,
        room_claim: claims.room,
    }
}

/// The frame telling a socket its token ran out.
pub(crate) fn expired_frame(who: &Identity) -> ServerFrame {
    ServerFrame::Auth(AuthState {
        status: AuthStatus::Expired,
        code: "token_expired".to_string(),
        message: format!(
            "the token of {} expired: sends are refused until a fresh one comes as {{\"type\":\"auth\",\"token\":...}}",
            who.user
        ),
        user: who.user.clone(),
        role: who.role.as_str().to_string(),
        expires_at_s: 0,
        can_moderate: false,
    })
}

impl SocketAccess {
    /// Checks a fresh token for `room`: the new identity and the frame that says so, or (the
    /// socket keeps what it had) the refusal.
    pub fn renew(&self, room: &str, token: &str) -> (Option<Identity>, ServerFrame) {
        match self.tokens.verify(token, Some(room)) {
            Ok(claims) => {
                let expires_at_s = claims.exp;
                let who = identity(claims);
                let frame = ServerFrame::Auth(AuthState {
                    status: AuthStatus::Ok,
                    code: String::new(),
                    message: String::new(),
                    user: who.user.clone(),
                    role: who.role.as_str().to_string(),
                    expires_at_s,
                    can_moderate: who.can_moderate(room),
                });
                (Some(who), frame)
            }
            Err(e) => (
                None,
                ServerFrame::Auth(AuthState {
                    status: AuthStatus::Refused,
                    code: e.code().to_string(),
                    message: e.to_string(),
                    user: String::new(),
                    role: String::new(),
                    expires_at_s: 0,
                    can_moderate: false,
                }),
            ),
        }
    }

    /// Runs a moderator's request `act` (already bounded, or the bounds' refusal) for `who`
    /// in `room`, and answers it.
    pub async fn moderate(
        &self,
        room: &str,
        who: Option<&Identity>,
        request_id: u64,
        act: Result<Act, ApiError>,
    ) -> ServerFrame {
        let outcome = match (who, act) {
            (_, Err(e)) => Err(e),
            (None, _) => Err(unauthenticated(
                "this socket has no token: connect with ?token= or send auth",
            )),
            (Some(who), _) if who.expired(crate::clock::now_ms()) => Err(unauthenticated(
                "the token expired: send auth with a fresh one",
            )),
            (Some(who), Ok(act)) => {
                let credential = who.credential();
                match check(&credential, act.action(), Some(room), RoomPolicy::default()) {
                    Err(denied) => Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", denied.0)),
                    Ok(()) => self.acts.apply(&credential, room, act, Via::Socket).await,
                }
            }
        };
        ServerFrame::Reply(match outcome {
            Ok(()) => Reply {
                request_id,
                ok: true,
                code: String::new(),
                message: String::new(),
            },
            Err(e) => Reply {
                request_id,
                ok: false,
                code: e.code.to_string(),
                message: e.message,
            },
        })
    }
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}
