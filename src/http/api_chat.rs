//! The chat JSON API under `/api/rooms/{room}/...`: gifts and system messages from the business
//! server, moderation, stats, and guest tokens for demo pages. Writes need a credential the
//! rights table allows ([`Caller::allow`]); moderation goes through [`RoomActs`] (applied and
//! audited); every error is an [`ApiError`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{Role, TokenSigner};
use crate::chat::moderation::ModerationChange;
use crate::chat::moderation::ModerationSnapshot;
use crate::chat::names;
use crate::chat::protocol::{display_name, Gift};
use crate::chat::{ChatEngine, ChatError};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::http::api_error::{ApiError, ApiJson};
use crate::http::caller::Caller;
use crate::http::guest_limits::{GuestRefusal, GuestTokenLimits};
use crate::http::room_acts::{check_text, check_user, Act, ActKind, RoomActs};
use crate::rights::Action;
use crate::rooms::{ModerationError, RoomDirectory, Via};
use crate::state::AppState;

/// The chat API routes (all under `/api/rooms/{room}/`; the lead's room routes use the same
/// `{room}` parameter name, which the router requires).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/rooms/{room}/gifts", post(post_gift))
        .route("/api/rooms/{room}/system", post(post_system))
        .route("/api/rooms/{room}/mutes/{user}", post(mute).delete(unmute))
        .route("/api/rooms/{room}/bans/{user}", post(ban).delete(unban))
        .route(
            "/api/rooms/{room}/messages/{seq}/delete",
            post(delete_message),
        )
        .route(
            "/api/rooms/{room}/blocked-words",
            get(get_blocked_words).put(put_blocked_words),
        )
        .route("/api/rooms/{room}/slow-mode", put(put_slow_mode))
        .route("/api/rooms/{room}/moderation", get(get_moderation))
        .route("/api/rooms/{room}/stats", get(stats))
        .route("/api/rooms/{room}/guest-token", post(guest_token))
}

impl From<ModerationError> for ApiError {
    fn from(e: ModerationError) -> ApiError {
        match e {
            ModerationError::Chat(e) => e.into(),
            // The catalog logged it, with the room.
            ModerationError::NotStored(_) => {
                ApiError::internal("database unavailable; nothing was changed")
            }
        }
    }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> ApiError {
        match &e {
            ChatError::RoomNotFound(_) => ApiError::not_found(e.to_string()),
            ChatError::QueueFull { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "queue_full", e.to_string())
            }
            ChatError::NotDelivered { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_delivered", e.to_string())
            }
        }
    }
}

/// A body that may be absent; when present it must be JSON of `T`.
fn optional_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| ApiError::bad_request("bad_json", e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GiftBody {
    user: String,
    #[serde(default)]
    name: String,
    gift_id: String,
    #[serde(default)]
    gift_name: String,
    #[serde(default = "one")]
    count: u32,
    value: u64,
}

fn one() -> u32 {
    1
}

impl GiftBody {
    /// The gift as the engine takes it, or why the body is refused.
    fn validate(self) -> Result<Gift, ApiError> {
        check_user(&self.user)?;
        check_text("name", &self.name, 0, 64)?;
        check_text("gift_id", &self.gift_id, 1, 64)?;
        check_text("gift_name", &self.gift_name, 0, 64)?;
        if self.count == 0 {
            return Err(ApiError::bad_request("bad_field", "count: at least 1"));
        }
        Ok(Gift {
            name: display_name(self.name, &self.user, false),
            user: self.user,
            gift_id: self.gift_id,
            gift_name: self.gift_name,
            count: self.count,
            value: self.value,
        })
    }
}

async fn post_gift(
    caller: Caller,
    State(chat): State<Arc<ChatEngine>>,
    Path(room): Path<String>,
    ApiJson(body): ApiJson<GiftBody>,
) -> Result<Response, ApiError> {
    caller.allow(Action::PostGift, &room)?;
    let priority = chat.post_gift(&room, body.validate()?)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"queued": true, "priority": priority.as_str()})),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemBody {
    text: String,
}

/// Checks `act`'s rights for the caller, applies it and audits it (see [`RoomActs`]).
async fn act(caller: &Caller, acts: &RoomActs, room: &str, act: Act) -> Result<(), ApiError> {
    let who = caller.allow(act.action(), room)?;
    acts.apply(who, room, act, Via::Api).await
}

async fn post_system(
    caller: Caller,
    State(acts): State<RoomActs>,
    Path(room): Path<String>,
    ApiJson(body): ApiJson<SystemBody>,
) -> Result<Response, ApiError> {
    act(&caller, &acts, &room, Act::system(body.text)?).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"queued": true}))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteBody {
    seconds: Option<u64>,
}

/// A mute's length from its optional body: `None` for no expiry.
fn mute_seconds(body: &[u8]) -> Result<Option<u64>, ApiError> {
    Ok(optional_json::<MuteBody>(body)?.and_then(|b| b.seconds))
}

async fn mute(
    caller: Caller,
    State(acts): State<RoomActs>,
    Path((room, user)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mute = Act::mute(user.clone(), mute_seconds(&body)?)?;
    let until_ms = match &mute.kind {
        ActKind::Change(ModerationChange::Mute { until_ms, .. }) => *until_ms,
        _ => None,
    };
    act(&caller, &acts, &room, mute).await?;
    Ok(Json(
        json!({"room": room, "user": user, "muted": true, "until_ms": until_ms}),
    ))
}

/// Applies a per-user act and answers with the user's new state in `field`.
async fn user_act(
    (caller, acts): (Caller, RoomActs),
    (room, user): (String, String),
    make: fn(String) -> ModerationChange,
    field: &str,
    value: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    act(&caller, &acts, &room, Act::on_user(user.clone(), make)?).await?;
    let mut body = serde_json::Map::new();
    body.insert("room".into(), room.into());
    body.insert("user".into(), user.into());
    body.insert(field.into(), value.into());
    Ok(Json(body.into()))
}

async fn unmute(
    caller: Caller,
    State(acts): State<RoomActs>,
    Path(at): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let unmute = |user| ModerationChange::Unmute { user };
    user_act((caller, acts), at, unmute, "muted", false).await
}

async fn ban(
    caller: Caller,
    State(acts): State<RoomActs>,
    Path(at): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ban = |user| ModerationChange::Ban { user };
    user_act((caller, acts), at, ban, "banned", true).await
}

async fn unban(
    caller: Caller,
    State(acts): State<RoomActs>,
    Path(at): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let unban = |user| ModerationChange::Unban { user };
    user_act((caller, acts), at, unban, "banned", false).await
}

async fn delete_message(
    caller: Caller,
    State(acts): State<RoomActs>,
    Path((room, seq)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let seq: u64 = seq
        .parse()
        .map_err(|_| ApiError::bad_request("bad_field", "seq: a whole number"))?;
    act(&caller, &acts, &room, Act::delete(seq)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"queued": true, "delete_seq": seq})),
    )
        .into_response())
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WordsBody {
    words: Vec<String>,
}

async fn get_blocked_words(
    caller: Caller,
    State(chat): State<Arc<ChatEngine>>,
    Path(room): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.allow(Action::ReadBlockedWords, &room)?;
    let snapshot = chat.moderation_snapshot(&room)?;
    Ok(Json(json!({"room": room, "words": snapshot.blocked_words})))
}

async fn put_blocked_words(
    caller: Caller,
    State(acts): State<RoomActs>,
    Path(room): Path<String>,
    ApiJson(body): ApiJson<WordsBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let words = Act::blocked_words(&body.words)?;
    let stored = match &words.kind {
        ActKind::Change(ModerationChange::SetBlockedWords { words }) => words.clone(),
        _ => Vec::new(),
    };
    act(&caller, &acts, &room, words).await?;
    Ok(Json(json!({"room": room, "words": stored})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlowModeBody {
    seconds: u32,
}

async fn put_slow_mode(
    caller: Caller,
    State(acts): State<RoomActs>,
    Path(room): Path<String>,
    ApiJson(body): ApiJson<SlowModeBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    act(&caller, &acts, &room, Act::slow_mode(body.seconds)?).await?;
    Ok(Json(json!({"room": room, "seconds": body.seconds})))
}

async fn get_moderation(
    caller: Caller,
    State(chat): State<Arc<ChatEngine>>,
    Path(room): Path<String>,
) -> Result<Json<ModerationSnapshot>, ApiError> {
    caller.allow(Action::ReadModeration, &room)?;
    Ok(Json(chat.moderation_snapshot(&room)?))
}

async fn stats(
    State(chat): State<Arc<ChatEngine>>,
    State(cluster): State<Option<Arc<Cluster>>>,
    Path(room): Path<String>,
) -> Result<Json<crate::chat::stats::RoomStats>, ApiError> {
    let stats = chat.stats(&room)?;
    Ok(Json(match &cluster {
        Some(cluster) => cluster.sum_stats(stats),
        None => stats,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuestBody {
    #[serde(default)]
    name: String,
}

/// The display name asked for in an optional guest-token body (may be empty).
fn guest_name(body: &[u8]) -> Result<String, ApiError> {
    let body = optional_json::<GuestBody>(body)?.unwrap_or_default();
    let name = body.name.trim();
    check_text("name", name, 0, 64)?;
    if names::has_invisible(name) {
        return Err(ApiError::bad_request(
            "bad_name",
            "name: no invisible or text-direction characters",
        ));
    }
    if names::is_reserved(name) {
        return Err(ApiError::bad_request(
            "reserved_name",
            "name: reserved for the service and the room's staff; choose another",
        ));
    }
    Ok(name.to_string())
}

/// `429` with `retry_after_ms` (and `Retry-After`) for a guest token over its limit.
fn guest_refused(refusal: GuestRefusal) -> Response {
    let retry_after_ms = u64::try_from(refusal.retry_after.as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    metrics::counter!("barrage_guest_tokens_refused_total", "limit" => refusal.key).increment(1);
    let body = json!({"error": {
        "code": "too_many_guest_tokens",
        "message": format!("too many guest tokens ({}); try again later", refusal.key),
        "retry_after_ms": retry_after_ms,
    }});
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(
            axum::http::header::RETRY_AFTER,
            retry_after_ms.div_ceil(1000).to_string(),
        )],
        Json(body),
    )
        .into_response()
}

async fn guest_token(
    State(config): State<Arc<Config>>,
    State(rooms): State<Arc<RoomDirectory>>,
    State(tokens): State<Arc<TokenSigner>>,
    State(limits): State<Arc<GuestTokenLimits>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !config.auth.guest_tokens {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "guest_tokens_off",
            "guest tokens are switched off (auth.guest_tokens)",
        ));
    }
    if !rooms.is_open(&room) {
        return Err(ApiError::not_found(format!(
            "room {room} does not exist or is closed"
        )));
    }
    let name = guest_name(&body)?;
    if let Err(refusal) = limits.check(peer.ip()) {
        return Ok(guest_refused(refusal));
    }
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let suffix: String = (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let user = format!("guest-{suffix}");
    let name = display_name(name, &user, false);
    let ttl = config.auth.guest_token_ttl_s;
    let token = tokens.mint(
        &user,
        &name,
        Role::Viewer,
        Some(&room),
        Duration::from_secs(ttl),
    );
    Ok(
        Json(
            json!({"token": token, "user": user, "name": name, "room": room, "expires_in_s": ttl}),
        )
        .into_response(),
    )
}

/// Deserialises and validates one route's body from raw bytes.
#[cfg(feature = "testing")]
pub(crate) type BodyCheck = fn(&[u8]) -> Result<(), ApiError>;

/// The body checks of every chat API route that takes one, by name, for the fuzz harness and
/// its seeds: the same deserialisation and validation the handlers run, on any bytes. On
/// success, what the handler would act on is checked against the limits it promises.
#[cfg(feature = "testing")]
use crate::chat::moderation::{MAX_SLOW_MODE_S, MAX_WORDS, MAX_WORD_CHARS};
#[cfg(feature = "testing")]
use crate::http::room_acts::{MAX_MUTE_S, MAX_SYSTEM_CHARS};

#[cfg(feature = "testing")]
pub(crate) const BODY_CHECKS: &[(&str, BodyCheck)] = &[
    ("gift", |b| {
        let gift = json_body::<GiftBody>(b)?.validate()?;
        assert!(gift.count >= 1 && !gift.user.is_empty() && !gift.name.is_empty());
        Ok(())
    }),
    ("system", |b| {
        let ActKind::System(text) = Act::system(json_body::<SystemBody>(b)?.text)?.kind else {
            panic!("a system act")
        };
        assert!(!text.trim().is_empty() && text.chars().count() <= MAX_SYSTEM_CHARS);
        Ok(())
    }),
    ("mute", |b| {
        let seconds = mute_seconds(b)?;
        Act::mute("fuzz-user".into(), seconds)?;
        assert!(seconds.is_none_or(|s| (1..=MAX_MUTE_S).contains(&s)));
        Ok(())
    }),
    ("blocked_words", |b| {
        let act = Act::blocked_words(&json_body::<WordsBody>(b)?.words)?;
        let ActKind::Change(ModerationChange::SetBlockedWords { words }) = act.kind else {
            panic!("a blocked-words act")
        };
        assert!(words.len() <= MAX_WORDS);
        assert!(words
            .iter()
            .all(|w| !w.is_empty() && w.chars().count() <= MAX_WORD_CHARS));
        Ok(())
    }),
    ("slow_mode", |b| {
        let act = Act::slow_mode(json_body::<SlowModeBody>(b)?.seconds)?;
        let ActKind::Change(ModerationChange::SetSlowMode { seconds }) = act.kind else {
            panic!("a slow-mode act")
        };
        assert!(seconds <= MAX_SLOW_MODE_S);
        Ok(())
    }),
    ("guest_token", |b| {
        let name = guest_name(b)?;
        assert!(name.chars().count() <= 64);
        Ok(())
    }),
];

/// A required JSON body, as `ApiJson` reads it (same `Deserialize`, same error code).
#[cfg(feature = "testing")]
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("bad_json", e.to_string()))
}
