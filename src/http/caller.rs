//! Who is calling the API: the `Authorization: Bearer ...` header proven into a
//! [`Credential`] (the admin key, a room's host key, or a token this server signed), and the
//! one check every protected route makes ([`Caller::allow`]) against the rights table
//! (`crate::rights`). No header is a 401; a credential that is not one, or that does not open
//! this call, is a 403 whose message names what would.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use subtle::ConstantTimeEq;

use crate::auth::{TokenError, TokenSigner};
use crate::http::api_error::ApiError;
use crate::rights::{check, Action, Credential, RoomPolicy};
use crate::rooms::RoomDirectory;
use crate::secrets::Secrets;

/// The request's proven credential (None: it carried none), with the rooms to read policies
/// from.
pub struct Caller {
    pub credential: Option<Credential>,
    rooms: Arc<RoomDirectory>,
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<Secrets>: FromRef<S>,
    Arc<RoomDirectory>: FromRef<S>,
    Arc<TokenSigner>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let rooms = Arc::<RoomDirectory>::from_ref(state);
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        if presented.is_empty() {
            return Ok(Caller {
                credential: None,
                rooms,
            });
        }
        let secrets = Arc::<Secrets>::from_ref(state);
        let tokens = Arc::<TokenSigner>::from_ref(state);
        let credential = prove(presented, &secrets.admin_key, &rooms, &tokens)?;
        Ok(Caller {
            credential: Some(credential),
            rooms,
        })
    }
}

/// Which credential `presented` is: the admin key, a room's host key, or a signed token.
fn prove(
    presented: &str,
    admin_key: &str,
    rooms: &RoomDirectory,
    tokens: &TokenSigner,
) -> Result<Credential, ApiError> {
    let admin = admin_key.as_bytes();
    if presented.len() == admin.len() && bool::from(presented.as_bytes().ct_eq(admin)) {
        return Ok(Credential::AdminKey);
    }
    if let Some(room) = rooms.room_for_host_key(presented) {
        return Ok(Credential::HostKey { room });
    }
    // A JWT is three dot-separated parts; anything else is a key this server does not know.
    if presented.split('.').count() != 3 {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the Bearer key is not the admin key, a room's host key or a token of this server",
        ));
    }
    match tokens.verify(presented, None) {
        Ok(claims) => Ok(Credential::Token {
            user: claims.sub,
            role: claims.role,
            room: claims.room,
        }),
        Err(e @ TokenError::Expired) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_expired",
            format!("{e}: ask for a fresh token"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            e.code(),
            e.to_string(),
        )),
    }
}

impl Caller {
    /// The credential, if it allows `action` on `room`; else the 401 or 403 that says what
    /// the call needs.
    pub fn allow(&self, action: Action, room: &str) -> Result<&Credential, ApiError> {
        let policy = self
            .rooms
            .get(room)
            .map_or(RoomPolicy::default(), |r| RoomPolicy {
                host_gifts: r.host_gifts,
            });
        self.decide(action, Some(room), policy)
    }

    /// The credential, if it allows `action`, which is on no room (making one).
    pub fn allow_global(&self, action: Action) -> Result<&Credential, ApiError> {
        self.decide(action, None, RoomPolicy::default())
    }

    fn decide(
        &self,
        action: Action,
        room: Option<&str>,
        policy: RoomPolicy,
    ) -> Result<&Credential, ApiError> {
        let Some(credential) = &self.credential else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!(
                    "to {} this call needs {}: send it as Authorization: Bearer <key or token>",
                    action.name(),
                    action.needs(room)
                ),
            ));
        };
        check(credential, action, room, policy)
            .map(|()| credential)
            .map_err(|denied| ApiError::new(StatusCode::FORBIDDEN, "forbidden", denied.0))
    }
}
