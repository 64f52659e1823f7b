//! Signed viewer tokens (JWT, HS256) verified locally, as the seed article's dynamic tokens
//! are: no call to a user service on connect. A business server mints them with the same
//! secret (or `barrage token`), scoped to a room and short-lived.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// What a token allows beyond reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Moderator,
    Host,
    Admin,
}

impl Role {
    /// The role's name in tokens, JSON, the audit log and refusals.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Moderator => "moderator",
            Role::Host => "host",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "moderator" => Ok(Role::Moderator),
            "host" => Ok(Role::Host),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}` (viewer, moderator, host, admin)"
            )),
        }
    }
}

/// The claims barrage reads from a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Display name shown with the user's danmaku.
    #[serde(default)]
    pub name: String,
    pub role: Role,
    /// The room the token is for; None: any room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("token is not valid: {0}")]
    Invalid(String),
    #[error("token is for room {token_room}, not {room}")]
    WrongRoom { token_room: String, room: String },
}

impl TokenError {
    /// Machine-readable code for error frames.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Expired => "token_expired",
            TokenError::Invalid(_) => "bad_token",
            TokenError::WrongRoom { .. } => "wrong_room",
        }
    }
}

/// Seconds a token is still taken after its `exp`, for clocks a little apart (the minting
/// server's and this one's). A live socket's token runs out at the same moment.
pub const LEEWAY_S: u64 = 5;

impl Claims {
    /// Until when the token is good, in ms since the epoch (`exp` plus [`LEEWAY_S`]).
    pub fn valid_until_ms(&self) -> i64 {
        i64::try_from(self.exp.saturating_add(LEEWAY_S).saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

/// Mints and verifies tokens with one secret.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenSigner {
    pub fn new(secret: &str) -> TokenSigner {
        TokenSigner {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }

    /// A token for `user` valid for `ttl`.
    pub fn mint(
        &self,
        user: &str,
        name: &str,
        role: Role,
        room: Option<&str>,
        ttl: Duration,
    ) -> String {
        let now = now_s();
        let claims = Claims {
            sub: user.to_string(),
            name: name.to_string(),
            role,
            room: room.map(str::to_string),
            exp: now + ttl.as_secs(),
            iat: now,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    /// Checks signature, expiry and (when given) that the token fits `room`.
    pub fn verify(&self, token: &str, room: Option<&str>) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_S;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            },
        )?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.sub.len() > 128 || claims.name.chars().count() > 64 {
            return Err(TokenError::Invalid("sub or name out of bounds".into()));
        }
        if let (Some(token_room), Some(room)) = (claims.room.as_deref(), room) {
            if token_room != room && claims.role != Role::Admin {
                return Err(TokenError::WrongRoom {
                    token_room: token_room.to_string(),
                    room: room.to_string(),
                });
            }
        }
        Ok(claims)
    }
}

/// Parses `90s`, `15m`, `1h`, `2d` or plain seconds.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (num, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration `{text}` (e.g. 90s, 15m, 1h, 2d)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("bad duration unit in `{text}` (s, m, h, d)")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_verify_forge_expire_and_scope() {
        let s = TokenSigner::new("secret-1");
        let t = s.mint(
            "u1",
            "Ann",
            Role::Viewer,
            Some("demo"),
            Duration::from_secs(60),
        );
        let c = s.verify(&t, Some("demo")).unwrap();
        assert_eq!((c.sub.as_str(), c.name.as_str()), ("u1", "Ann"));
        assert_eq!(
            s.verify(&t, Some("other")).unwrap_err().code(),
            "wrong_room"
        );
        let forged = TokenSigner::new("secret-2").mint(
            "u1",
            "Ann",
            Role::Admin,
            None,
            Duration::from_secs(60),
        );
        assert_eq!(s.verify(&forged, None).unwrap_err().code(), "bad_token");
        assert_eq!(s.verify("garbage", None).unwrap_err().code(), "bad_token");
        let claims = Claims {
            sub: "u".into(),
            name: String::new(),
            role: Role::Viewer,
            room: None,
            exp: 1000,
            iat: 0,
        };
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"secret-1"),
        )
        .unwrap();
        assert_eq!(s.verify(&old, None).unwrap_err(), TokenError::Expired);
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_ttl("1y").is_err());
    }
}
