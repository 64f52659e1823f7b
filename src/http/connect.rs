//! `GET /api/rooms/{room}/connect`: where a viewer should connect, the seed article's
//! access-address service. With several nodes it hands out the least-loaded nodes' WebSocket
//! URLs (see `crate::cluster::allocate`), one node's address a fixed number of times before
//! the next; alone it answers with itself. It also names the HLS playlist and the CDN base
//! for danmaku files, picked by weight. `GET /api/cluster` shows the nodes and their load.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::cdn::publisher::CdnPublisher;
use crate::cluster::{Cluster, NodeReport};
use crate::config::{CdnBase, Config};
use crate::http::api_error::ApiError;
use crate::http::{client_cdn_bases, live_playlist_url, public_base};
use crate::rooms::RoomDirectory;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/rooms/{room}/connect", get(connect))
        .route("/api/cluster", get(cluster))
}

/// The answer of the connect endpoint.
#[derive(Debug, Serialize)]
pub struct Connect {
    pub room: String,
    /// WebSocket URLs, the assigned node first, then alternatives to fail over to.
    pub ws_urls: Vec<String>,
    /// The room's live playlist (through the first CDN base, else this node).
    pub hls_url: String,
    /// The CDN base this viewer should poll danmaku files from (weighted round robin).
    pub cdn_base: String,
    /// The room's danmaku index under `cdn_base`.
    pub danmaku_index: String,
    /// Every CDN base with its weight (clients may spread over them themselves).
    pub cdn_bases: Vec<CdnBase>,
    /// Nodes the allocator chose from (1 for a single node).
    pub nodes: usize,
}

/// `http://host` -> `ws://host`, `https://host` -> `wss://host`.
fn ws_base(http: &str) -> String {
    let http = http.trim_end_matches('/');
    if let Some(rest) = http.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = http.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        http.to_string()
    }
}

async fn connect(
    State(rooms): State<Arc<RoomDirectory>>,
    State(config): State<Arc<Config>>,
    State(cluster): State<Option<Arc<Cluster>>>,
    State(cdn): State<Arc<CdnPublisher>>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if !rooms.is_open(&room) {
        return Err(ApiError::not_found(format!(
            "room {room} does not exist or is closed"
        )));
    }
    let own = public_base(&config, &headers);
    let (bases, nodes) = match &cluster {
        Some(c) => (c.assign(), c.reports().len().max(1)),
        None => (vec![own.clone()], 1),
    };
    let ws_urls = bases
        .iter()
        .map(|b| format!("{}/ws/{room}", ws_base(b)))
        .collect();
    let cdn_bases = client_cdn_bases(&config);
    let cdn_base = cdn
        .pick_base()
        .map(|b| b.trim_end_matches('/').to_string())
        .unwrap_or_else(|| own.clone());
    let answer = Connect {
        hls_url: live_playlist_url(&cdn_bases, &own, &room),
        danmaku_index: format!("{cdn_base}/danmaku/{room}/index.json"),
        room,
        ws_urls,
        cdn_base,
        cdn_bases,
        nodes,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(answer)))
}

/// What `GET /api/cluster` shows.
#[derive(Debug, Serialize)]
struct ClusterView {
    /// Whether this node is part of a cluster (`cluster.redis_url` set).
    clustered: bool,
    node_id: Option<String>,
    redis_up: bool,
    nodes: Vec<NodeReport>,
}

async fn cluster(State(cluster): State<Option<Arc<Cluster>>>) -> impl IntoResponse {
    let view = match &cluster {
        Some(c) => ClusterView {
            clustered: true,
            node_id: Some(c.node_id().to_string()),
            redis_up: c.is_up(),
            nodes: c.reports(),
        },
        None => ClusterView {
            clustered: false,
            node_id: None,
            redis_up: false,
            nodes: Vec::new(),
        },
    };
    ([(header::CACHE_CONTROL, "no-store")], Json(view))
}

#[cfg(test)]
mod tests {
    use super::ws_base;

    #[test]
    fn http_bases_become_websocket_bases() {
        assert_eq!(ws_base("http://a:8080/"), "ws://a:8080");
        assert_eq!(ws_base("https://cdn.example"), "wss://cdn.example");
    }
}
