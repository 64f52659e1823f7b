//! `GET /live/{room}.flv`: the room's live broadcast as HTTP-FLV (see `crate::live_flv`),
//! streamed with chunked transfer for as long as the broadcast lasts.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::config::Config;
use crate::live_flv::FlvHub;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/live/{file}", get(live_flv))
}

async fn live_flv(
    State(hub): State<Arc<FlvHub>>,
    State(config): State<Arc<Config>>,
    Path(file): Path<String>,
) -> Response {
    let Some(room) = file.strip_suffix(".flv") else {
        return not_found(format!(
            "no such stream {file}: live FLV is /live/{{room}}.flv"
        ));
    };
    if !config.flv.enabled {
        return not_found("HTTP-FLV is off on this server (flv.enabled = false)".to_string());
    }
    let Some(viewer) = hub.watch(room) else {
        return not_found(format!(
            "room {room} is not live on this node (or its stream has not started yet)"
        ));
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "video/x-flv")
        .header(header::CACHE_CONTROL, "no-cache, no-store")
        .body(Body::from_stream(viewer.into_stream()))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn not_found(message: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}
