//! The chat JSON API under `/api/rooms/{room}/...`: gifts and system messages from the business
//! server, moderation, stats, and guest tokens for demo pages. Writes need the admin key
//! (`AdminAuth`); every error is an [`ApiError`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{Role, TokenSigner};
use crate::chat::moderation::{
    normalize_words, ModerationChange, MAX_SLOW_MODE_S, MAX_WORDS, MAX_WORD_CHARS,
};
use crate::chat::protocol::{display_name, Gift};
use crate::chat::{ChatEngine, ChatError};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::http::api_error::{AdminAuth, ApiError, ApiJson};
use crate::rooms::{ModerationError, RoomCatalog, RoomDirectory};
use crate::state::AppState;

/// Longest system message in characters.
pub const MAX_SYSTEM_CHARS: usize = 500;
/// Longest mute: ten years (a longer one is a ban, or no expiry).
const MAX_MUTE_S: u64 = 10 * 365 * 24 * 3600;

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

fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min || n > max || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "bad_field",
            format!("{field}: {min} to {max} characters without control characters"),
        ));
    }
    Ok(())
}

fn check_user(user: &str) -> Result<(), ApiError> {
    check_text("user", user, 1, 128)
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
            name: display_name(self.name, &self.user),
            user: self.user,
            gift_id: self.gift_id,
            gift_name: self.gift_name,
            count: self.count,
            value: self.value,
        })
    }
}

async fn post_gift(
    _: AdminAuth,
    State(chat): State<Arc<ChatEngine>>,
    Path(room): Path<String>,
    ApiJson(body): ApiJson<GiftBody>,
) -> Result<Response, ApiError> {
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

impl SystemBody {
    fn validate(self) -> Result<String, ApiError> {
        if self.text.trim().is_empty() || self.text.chars().count() > MAX_SYSTEM_CHARS {
            return Err(ApiError::bad_request(
                "bad_field",
                format!("text: 1 to {MAX_SYSTEM_CHARS} characters"),
            ));
        }
        Ok(self.text)
    }
}

async fn post_system(
    _: AdminAuth,
    State(chat): State<Arc<ChatEngine>>,
    Path(room): Path<String>,
    ApiJson(body): ApiJson<SystemBody>,
) -> Result<Response, ApiError> {
    chat.post_system(&room, body.validate()?)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"queued": true}))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteBody {
    seconds: Option<u64>,
}

/// A mute's length from its optional body: `None` for no expiry.
fn mute_seconds(body: &[u8]) -> Result<Option<u64>, ApiError> {
    let seconds = optional_json::<MuteBody>(body)?.and_then(|b| b.seconds);
    if seconds.is_some_and(|s| s == 0 || s > MAX_MUTE_S) {
        return Err(ApiError::bad_request(
            "bad_field",
            format!("seconds: 1 to {MAX_MUTE_S}, or leave it out for no expiry"),
        ));
    }
    Ok(seconds)
}

async fn mute(
    _: AdminAuth,
    State(moderation): State<ModerationApi>,
    Path((room, user)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_user(&user)?;
    let seconds = mute_seconds(&body)?;
    let until_ms = seconds.map(|s| crate::clock::now_ms() + (s as i64) * 1000);
    moderate(
        &moderation,
        &room,
        &ModerationChange::Mute {
            user: user.clone(),
            until_ms,
        },
    )
    .await?;
    Ok(Json(
        json!({"room": room, "user": user, "muted": true, "until_ms": until_ms}),
    ))
}

/// Applies a per-user change and answers with the user's new state in `field`.
async fn user_change(
    moderation: &ModerationApi,
    room: String,
    user: String,
    change: fn(String) -> ModerationChange,
    field: &str,
    value: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_user(&user)?;
    moderate(moderation, &room, &change(user.clone())).await?;
    let mut body = serde_json::Map::new();
    body.insert("room".into(), room.into());
    body.insert("user".into(), user.into());
    body.insert(field.into(), value.into());
    Ok(Json(body.into()))
}

async fn unmute(
    _: AdminAuth,
    State(moderation): State<ModerationApi>,
    Path((room, user)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let unmute = |user| ModerationChange::Unmute { user };
    user_change(&moderation, room, user, unmute, "muted", false).await
}

async fn ban(
    _: AdminAuth,
    State(moderation): State<ModerationApi>,
    Path((room, user)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ban = |user| ModerationChange::Ban { user };
    user_change(&moderation, room, user, ban, "banned", true).await
}

async fn unban(
    _: AdminAuth,
    State(moderation): State<ModerationApi>,
    Path((room, user)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let unban = |user| ModerationChange::Unban { user };
    user_change(&moderation, room, user, unban, "banned", false).await
}

async fn delete_message(
    _: AdminAuth,
    State(chat): State<Arc<ChatEngine>>,
    Path((room, seq)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let seq: u64 = seq
        .parse()
        .map_err(|_| ApiError::bad_request("bad_field", "seq: a whole number"))?;
    chat.delete_message(&room, seq)?;
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

impl WordsBody {
    /// The normalised list, or why it is refused.
    fn validate(self) -> Result<Vec<String>, ApiError> {
        if self.words.len() > MAX_WORDS {
            return Err(ApiError::bad_request(
                "bad_field",
                format!("words: at most {MAX_WORDS}"),
            ));
        }
        for w in &self.words {
            check_text("words[]", w.trim(), 1, MAX_WORD_CHARS)?;
        }
        Ok(normalize_words(&self.words))
    }
}

async fn get_blocked_words(
    _: AdminAuth,
    State(chat): State<Arc<ChatEngine>>,
    Path(room): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let snapshot = chat.moderation_snapshot(&room)?;
    Ok(Json(json!({"room": room, "words": snapshot.blocked_words})))
}

async fn put_blocked_words(
    _: AdminAuth,
    State(moderation): State<ModerationApi>,
    Path(room): Path<String>,
    ApiJson(body): ApiJson<WordsBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let words = body.validate()?;
    moderate(
        &moderation,
        &room,
        &ModerationChange::SetBlockedWords {
            words: words.clone(),
        },
    )
    .await?;
    Ok(Json(json!({"room": room, "words": words})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SlowModeBody {
    seconds: u32,
}

impl SlowModeBody {
    fn validate(self) -> Result<u32, ApiError> {
        if self.seconds > MAX_SLOW_MODE_S {
            return Err(ApiError::bad_request(
                "bad_field",
                format!("seconds: 0 (off) to {MAX_SLOW_MODE_S}"),
            ));
        }
        Ok(self.seconds)
    }
}

async fn put_slow_mode(
    _: AdminAuth,
    State(moderation): State<ModerationApi>,
    Path(room): Path<String>,
    ApiJson(body): ApiJson<SlowModeBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let seconds = body.validate()?;
    moderate(
        &moderation,
        &room,
        &ModerationChange::SetSlowMode { seconds },
    )
    .await?;
    Ok(Json(json!({"room": room, "seconds": seconds})))
}

async fn get_moderation(
    _: AdminAuth,
    State(chat): State<Arc<ChatEngine>>,
    Path(room): Path<String>,
) -> Result<Json<crate::chat::moderation::ModerationSnapshot>, ApiError> {
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
    Ok(name.to_string())
}

async fn guest_token(
    State(config): State<Arc<Config>>,
    State(rooms): State<Arc<RoomDirectory>>,
    State(tokens): State<Arc<TokenSigner>>,
    Path(room): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
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
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let suffix: String = (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let user = format!("guest-{suffix}");
    let name = display_name(name, &user);
    let ttl = config.auth.guest_token_ttl_s;
    let token = tokens.mint(
        &user,
        &name,
        Role::Viewer,
        Some(&room),
        Duration::from_secs(ttl),
    );
    Ok(Json(
        json!({"token": token, "user": user, "name": name, "room": room, "expires_in_s": ttl}),
    ))
}

/// What the moderation routes write through: the catalog (database first), then the engine.
#[derive(Clone)]
struct ModerationApi {
    catalog: Arc<RoomCatalog>,
    chat: Arc<ChatEngine>,
}

impl FromRef<AppState> for ModerationApi {
    fn from_ref(state: &AppState) -> ModerationApi {
        ModerationApi {
            catalog: state.catalog.clone(),
            chat: state.chat.clone(),
        }
    }
}

/// Applies a moderation change through the catalog (database first).
async fn moderate(
    moderation: &ModerationApi,
    room: &str,
    change: &ModerationChange,
) -> Result<(), ApiError> {
    let ModerationApi { catalog, chat } = moderation;
    Ok(catalog.moderate(chat, room, change).await?)
}

/// Deserialises and validates one route's body from raw bytes.
#[cfg(feature = "testing")]
pub(crate) type BodyCheck = fn(&[u8]) -> Result<(), ApiError>;

/// The body checks of every chat API route that takes one, by name, for the fuzz harness and
/// its seeds: the same deserialisation and validation the handlers run, on any bytes. On
/// success, what the handler would act on is checked against the limits it promises.
#[cfg(feature = "testing")]
pub(crate) const BODY_CHECKS: &[(&str, BodyCheck)] = &[
    ("gift", |b| {
        let gift = json_body::<GiftBody>(b)?.validate()?;
        assert!(gift.count >= 1 && !gift.user.is_empty() && !gift.name.is_empty());
        Ok(())
    }),
    ("system", |b| {
        let text = json_body::<SystemBody>(b)?.validate()?;
        assert!(!text.trim().is_empty() && text.chars().count() <= MAX_SYSTEM_CHARS);
        Ok(())
    }),
    ("mute", |b| {
        let seconds = mute_seconds(b)?;
        assert!(seconds.is_none_or(|s| (1..=MAX_MUTE_S).contains(&s)));
        Ok(())
    }),
    ("blocked_words", |b| {
        let words = json_body::<WordsBody>(b)?.validate()?;
        assert!(words.len() <= MAX_WORDS);
        assert!(words
            .iter()
            .all(|w| !w.is_empty() && w.chars().count() <= MAX_WORD_CHARS));
        Ok(())
    }),
    ("slow_mode", |b| {
        let seconds = json_body::<SlowModeBody>(b)?.validate()?;
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
