//! What a room's admin or host changes on the room itself: its stream key and host key (each
//! new key shown once, the old one dead at once, on every node once it reloads the rooms), closing
//! and reopening, and (admin only) its settings. Each change is written to the audit log.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::http::api_error::{ApiError, ApiJson};
use crate::http::api_rooms::{
    obs, room_or_404, rooms_changed, view, ObsSettings, RoomView, RoomsApi,
};
use crate::http::caller::Caller;
use crate::http::public_base;
use crate::rights::{Action, Credential};
use crate::rooms::Via;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/rooms/{room}/rotate-key", post(rotate_key))
        .route("/api/rooms/{room}/host-key", post(rotate_host_key))
        .route("/api/rooms/{room}/close", post(close_room))
        .route("/api/rooms/{room}/open", post(open_room))
        .route("/api/rooms/{room}/settings", put(put_settings))
}

/// Writes a room change made by `who` to the audit log.
async fn audit(state: &RoomsApi, who: &Credential, room: &str, action: Action, target: String) {
    state
        .audit
        .record(who, room, action, target, Via::Api)
        .await;
}

#[derive(Debug, Serialize)]
struct StreamKeyAnswer {
    room: RoomView,
    stream_key: String,
    obs: ObsSettings,
}

async fn rotate_key(
    State(state): State<RoomsApi>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<StreamKeyAnswer>, ApiError> {
    let who = caller.allow(Action::RotateStreamKey, &id)?;
    let key = state.catalog.rotate_key(&id).await?;
    rooms_changed(&state);
    audit(&state, who, &id, Action::RotateStreamKey, String::new()).await;
    let room = room_or_404(&state, &id)?;
    let base = public_base(&state.config, &headers);
    Ok(Json(StreamKeyAnswer {
        obs: obs(&state, &headers, key.clone()),
        room: view(room, &state, &base),
        stream_key: key,
    }))
}

#[derive(Debug, Serialize)]
struct HostKeyAnswer {
    room: String,
    /// The new host key, shown this once; the old one no longer opens anything.
    host_key: String,
    /// Where the host unlocks the console with it.
    host_console: String,
}

async fn rotate_host_key(
    State(state): State<RoomsApi>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<HostKeyAnswer>, ApiError> {
    let who = caller.allow(Action::RotateHostKey, &id)?.clone();
    let key = state.catalog.rotate_host_key(&id).await?;
    // The other nodes reload the rooms (and with them the new digest) from the database.
    rooms_changed(&state);
    audit(&state, &who, &id, Action::RotateHostKey, String::new()).await;
    let base = public_base(&state.config, &headers);
    Ok(Json(HostKeyAnswer {
        room: id,
        host_key: key,
        host_console: format!("{base}/host"),
    }))
}

async fn close_room(
    State(state): State<RoomsApi>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    set_closed(&state, &caller, &headers, &id, true).await
}

async fn open_room(
    State(state): State<RoomsApi>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    set_closed(&state, &caller, &headers, &id, false).await
}

/// Closes (refuses publishes, disconnects viewers) or reopens a room, for a caller allowed to.
async fn set_closed(
    state: &RoomsApi,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
    closed: bool,
) -> Result<Json<RoomView>, ApiError> {
    let action = if closed {
        Action::CloseRoom
    } else {
        Action::OpenRoom
    };
    let who = caller.allow(action, id)?;
    state.catalog.set_closed(id, closed).await?;
    rooms_changed(state);
    if closed {
        // Viewers are told and disconnected; new publishes are refused by the directory.
        state.chat.close_room(id);
    }
    audit(state, who, id, action, String::new()).await;
    let base = public_base(&state.config, headers);
    Ok(Json(view(room_or_404(state, id)?, state, &base)))
}

/// `PUT /api/rooms/{room}/settings`: the room's settings (today one).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsBody {
    /// Whether the room's host key may post gifts.
    host_gifts: bool,
}

/// `PUT /api/rooms/{room}/settings` body checks, for the fuzz harness.
#[cfg(feature = "testing")]
pub(crate) fn check_settings(body: &[u8]) -> Result<(), ApiError> {
    serde_json::from_slice::<SettingsBody>(body)
        .map(|_| ())
        .map_err(|e| ApiError::bad_request("bad_json", e.to_string()))
}

async fn put_settings(
    State(state): State<RoomsApi>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<Json<RoomView>, ApiError> {
    let who = caller.allow(Action::ChangeRoomSettings, &id)?;
    state.catalog.set_host_gifts(&id, body.host_gifts).await?;
    rooms_changed(&state);
    let target = format!("host_gifts = {}", body.host_gifts);
    audit(&state, who, &id, Action::ChangeRoomSettings, target).await;
    let base = public_base(&state.config, &headers);
    Ok(Json(view(room_or_404(&state, &id)?, &state, &base)))
}
