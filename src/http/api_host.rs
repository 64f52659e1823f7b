//! What a room's host looks at beyond the live status: the per-second series for the console's
//! charts (`GET /api/rooms/{room}/series?seconds=N`, admin key or the room's host key / host
//! token, like the audit log) and a broadcast as one MP4 file
//! (`GET /api/rooms/{room}/sessions/{session}/download.mp4`, public like the replay itself).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;

use crate::download::{file_name, plan, DownloadPlan, PlanError};
use crate::http::api_error::ApiError;
use crate::http::caller::Caller;
use crate::rights::Action;
use crate::rooms::RoomDirectory;
use crate::series::{SeriesAnswer, SeriesBook, SERIES_SECONDS};
use crate::state::AppState;
use crate::storage::Storage;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/rooms/{room}/series", get(series))
        .route(
            "/api/rooms/{room}/sessions/{session}/download.mp4",
            get(download),
        )
}

fn known_room(rooms: &RoomDirectory, room: &str) -> Result<(), ApiError> {
    match rooms.get(room) {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!("no room {room}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesQuery {
    #[serde(default = "ten_minutes")]
    seconds: usize,
}

fn ten_minutes() -> usize {
    SERIES_SECONDS
}

async fn series(
    caller: Caller,
    State(rooms): State<Arc<RoomDirectory>>,
    State(book): State<Arc<SeriesBook>>,
    Path(room): Path<String>,
    Query(q): Query<SeriesQuery>,
) -> Result<Json<SeriesAnswer>, ApiError> {
    caller.allow(Action::ReadSeries, &room)?;
    known_room(&rooms, &room)?;
    if q.seconds == 0 || q.seconds > SERIES_SECONDS {
        return Err(ApiError::bad_request(
            "bad_seconds",
            format!("seconds is 1 to {SERIES_SECONDS}"),
        ));
    }
    let now_s = (crate::clock::now_ms().max(0) / 1000) as u64;
    Ok(Json(book.answer(&room, q.seconds, now_s)))
}

/// A session id as the sessions list gives them (letters, digits, `-`, `_`).
pub fn check_session_id(session: &str) -> Result<(), ApiError> {
    let ok = !session.is_empty()
        && session.len() <= 100
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no session {session}")))
    }
}

fn storage_error(e: crate::storage::StorageError) -> ApiError {
    tracing::error!(error = %e, "download: store read failed");
    ApiError::internal("the store did not answer; try again")
}

async fn download(
    State(rooms): State<Arc<RoomDirectory>>,
    State(storage): State<Arc<Storage>>,
    Path((room, session)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    known_room(&rooms, &room)?;
    check_session_id(&session)?;
    let folder = format!("hls/{room}/{session}");
    let playlist = storage
        .get_bytes(&format!("{folder}/index.m3u8"))
        .await
        .map_err(storage_error)?
        .ok_or_else(|| ApiError::not_found(format!("no session {session} in room {room}")))?;
    let plan = plan(&String::from_utf8_lossy(&playlist)).map_err(|e| match e {
        PlanError::Empty => ApiError::not_found(format!("session {session} has no video yet")),
        PlanError::BadName(_) => {
            tracing::error!(room, session, error = %e, "download: playlist refused");
            ApiError::internal(e.to_string())
        }
    })?;
    let (init, keys, parts) = joinable(&storage, &folder, &plan).await?;
    let stream = futures::stream::unfold(
        (
            Some(init),
            keys.into_iter(),
            storage,
            room.clone(),
            session.clone(),
        ),
        |(first, mut keys, storage, room, session)| async move {
            if let Some(init) = first {
                return Some((Ok(init), (None, keys, storage, room, session)));
            }
            let key = keys.next()?;
            let item = match storage.get_bytes(&key).await {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => Err(std::io::Error::other(format!("{key} is missing"))),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            if let Err(e) = &item {
                // The status is sent: ending the body early is how the client learns.
                tracing::warn!(room, session, error = %e, "download cut short");
            }
            Some((item, (None, keys, storage, room, session)))
        },
    );
    let disposition = format!("attachment; filename=\"{}\"", file_name(&room, &session));
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{} of {}", parts, plan.parts.len())) {
        headers.insert(HeaderName::from_static("x-barrage-parts"), v);
    }
    Ok(response)
}

/// The first init segment, the keys of every segment that can follow it in one file (parts
/// whose init is the same bytes), and how many parts that is.
async fn joinable(
    storage: &Storage,
    folder: &str,
    plan: &DownloadPlan,
) -> Result<(Bytes, Vec<String>, usize), ApiError> {
    let read_init = |name: &str| {
        let key = format!("{folder}/{name}");
        async move {
            storage
                .get_bytes(&key)
                .await
                .map_err(storage_error)?
                .ok_or_else(|| ApiError::not_found(format!("{key} is missing")))
        }
    };
    let first = read_init(&plan.parts[0].init).await?;
    let mut keys = Vec::new();
    let mut parts = 0;
    for part in &plan.parts {
        if parts > 0 && read_init(&part.init).await? != first {
            tracing::info!(folder, "download ends before a part with other settings");
            break;
        }
        parts += 1;
        keys.extend(part.segments.iter().map(|s| format!("{folder}/{s}")));
    }
    Ok((first, keys, parts))
}
