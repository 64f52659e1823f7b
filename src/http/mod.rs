//! The HTTP face of barrage (axum): published objects, health, metrics, the pages (viewer,
//! overlay, host console), and (from the chat engine) the WebSocket and JSON API routes.

pub mod api_access;
pub mod api_chat;
pub mod api_error;
pub mod api_host;
pub mod api_room_control;
pub mod api_rooms;
pub mod caller;
pub mod connect;
pub mod deadline_stream;
pub mod guest_limits;
pub mod hinted_part;
pub mod limited_listener;
pub mod live_flv;
pub mod live_playlist;
pub mod live_status;
pub mod objects;
pub mod pages;
pub mod room_acts;
pub mod ws;
pub mod ws_access;
pub mod ws_stream;

use axum::extract::State;
use axum::http::{header, HeaderValue, Method};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::{CdnBase, Config};
use crate::state::AppState;

/// All routes, with CORS for players and overlays on other origins.
pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config.http.cors_origins);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(objects::routes())
        .merge(live_flv::routes())
        .merge(api_rooms::routes())
        .merge(api_room_control::routes())
        .merge(api_access::routes())
        .merge(api_host::routes())
        .merge(pages::routes())
        .merge(ws::routes())
        .merge(api_chat::routes())
        .merge(connect::routes())
        .layer(axum::extract::DefaultBodyLimit::max(
            state.config.http.max_body_bytes,
        ))
        .layer(cors)
        .with_state(state)
}

fn cors_layer(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::RANGE,
            header::IF_NONE_MATCH,
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
        ])
        .expose_headers([header::CONTENT_LENGTH, header::CONTENT_RANGE, header::ETAG])
}

async fn healthz() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], "ok\n")
}

async fn metrics(State(metrics): State<PrometheusHandle>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}

/// `cdn.bases` as clients are given them: URLs without a trailing '/'.
pub fn client_cdn_bases(config: &Config) -> Vec<CdnBase> {
    config
        .cdn
        .bases
        .iter()
        .map(|b| CdnBase {
            url: b.url.trim_end_matches('/').to_string(),
            weight: b.weight,
        })
        .collect()
}

/// A room's live playlist: through the first CDN base, else through `own` (this node).
pub fn live_playlist_url(bases: &[CdnBase], own: &str, room: &str) -> String {
    let base = bases.first().map_or(own, |b| b.url.as_str());
    format!("{base}/hls/{room}/live.m3u8")
}

/// The base URL clients should use: `http.public_url`, else `http://<Host header>`.
pub fn public_base(config: &Config, headers: &axum::http::HeaderMap) -> String {
    if !config.http.public_url.is_empty() {
        return config.http.public_url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| config.http.listen.to_string());
    format!("http://{host}")
}
