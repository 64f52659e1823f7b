//! Serves published objects (`/hls/...`, `/danmaku/...`) from the store at the same path as
//! their key, with the headers a CDN and a player need: Content-Type, Cache-Control, ETag and
//! 304, byte ranges.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRef, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use object_store::GetRange;

use crate::http::hinted_part::{wait_for_hinted_part, HintedPart};
use crate::http::live_status::LiveStatus;
use crate::rooms::RoomDirectory;
use crate::state::AppState;
use crate::storage::{content_type, Fetched, ObjectClass, Storage};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/hls/{*path}", get(hls))
        .route("/danmaku/{*path}", get(danmaku))
}

/// What serving objects reads: the store, and the room and live views that say why a live
/// playlist is missing.
#[derive(Clone)]
struct Objects {
    storage: Arc<Storage>,
    rooms: Arc<RoomDirectory>,
    live: LiveStatus,
    /// Rooms' LL-HLS live playlists, served before the stored ones.
    edges: Arc<crate::hls::live_edge::LiveEdges>,
}

impl FromRef<AppState> for Objects {
    fn from_ref(state: &AppState) -> Objects {
        Objects {
            storage: state.storage.clone(),
            rooms: state.rooms.clone(),
            live: LiveStatus::from_ref(state),
            edges: state.broadcaster.live_edges(),
        }
    }
}

async fn hls(
    state: State<Objects>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    h: HeaderMap,
) -> Response {
    if let Some(room) = path.strip_suffix("/live.m3u8").filter(|r| !r.contains('/')) {
        let edges = state.edges.clone();
        if let Some(answer) =
            crate::http::live_playlist::answer(&edges, room, query.as_deref()).await
        {
            return answer;
        }
    }
    let key = format!("hls/{path}");
    if key.ends_with(".m4s") {
        if let Some(part) = state.edges.part(&key) {
            return memory_part(&key, part, &h);
        }
        match wait_for_hinted_part(&state.edges, &key).await {
            Some(HintedPart::Ready(part)) => return memory_part(&key, part, &h),
            Some(HintedPart::TimedOut(answer)) => return answer,
            None => {}
        }
    }
    serve(state, key, h).await
}

/// An LL-HLS part from the writer's memory (see `LiveEdges`), with the headers a stored one
/// gets; a Range is honoured, If-None-Match is not needed (parts never change).
fn memory_part(key: &str, part: bytes::Bytes, headers: &HeaderMap) -> Response {
    let size = part.len() as u64;
    let range = match parse_range(headers) {
        Ok(None) => None,
        Ok(Some(GetRange::Bounded(r))) if r.start < size => Some(r.start..r.end.min(size)),
        Ok(Some(GetRange::Offset(start))) if start < size => Some(start..size),
        Ok(Some(GetRange::Suffix(n))) if size > 0 => Some(size.saturating_sub(n)..size),
        _ => return error(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable"),
    };
    let body = match &range {
        Some(r) => part.slice(r.start as usize..r.end as usize),
        None => part,
    };
    let length = body.len() as u64;
    let content_range = range.map(|r| (r, size));
    object_response(Body::from(body), key, length, content_range)
}

/// An object's answer with the headers every object gets: its type, cache policy, length,
/// and for a byte range 206 with `Content-Range` (`range` of `size`).
fn object_response(
    body: Body,
    key: &str,
    length: u64,
    content_range: Option<(std::ops::Range<u64>, u64)>,
) -> Response {
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(key)),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(ObjectClass::of(key).cache_control()),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some((range, size)) = content_range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let v = format!(
            "bytes {}-{}/{size}",
            range.start,
            range.end.saturating_sub(1)
        );
        if let Ok(v) = HeaderValue::from_str(&v) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    response
}

async fn danmaku(state: State<Objects>, Path(path): Path<String>, h: HeaderMap) -> Response {
    serve(state, format!("danmaku/{path}"), h).await
}

/// A parsed `Range: bytes=...` header (one range; multi-range is answered whole).
fn parse_range(headers: &HeaderMap) -> Result<Option<GetRange>, ()> {
    let Some(value) = headers.get(header::RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ())?.trim();
    let Some(spec) = text.strip_prefix("bytes=") else {
        return Err(());
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    match (start.trim(), end.trim()) {
        ("", "") => Err(()),
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            Ok(Some(GetRange::Suffix(n)))
        }
        (s, "") => Ok(Some(GetRange::Offset(s.parse().map_err(|_| ())?))),
        (s, e) => {
            let s: u64 = s.parse().map_err(|_| ())?;
            let e: u64 = e.parse().map_err(|_| ())?;
            if e < s {
                return Err(());
            }
            Ok(Some(GetRange::Bounded(s..e.saturating_add(1))))
        }
    }
}

/// A plain-text error answer (what players and curl users read).
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

async fn serve(State(state): State<Objects>, key: String, headers: HeaderMap) -> Response {
    let range = match parse_range(&headers) {
        Ok(r) => r,
        Err(()) => return error(StatusCode::RANGE_NOT_SATISFIABLE, "bad Range header"),
    };
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string());
    let class = ObjectClass::of(&key);
    let fetched = match state
        .storage
        .get_stream(&key, range.clone(), if_none_match)
        .await
    {
        Ok(f) => f,
        Err(crate::storage::StorageError::BadRange { .. }) => {
            return error(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable")
        }
        Err(crate::storage::StorageError::BadKey { .. }) => {
            return error(StatusCode::NOT_FOUND, "no such object")
        }
        Err(e) => {
            tracing::warn!(%key, error = %e, "object read failed");
            return error(StatusCode::SERVICE_UNAVAILABLE, "storage unavailable");
        }
    };
    let object = match fetched {
        Fetched::Found(o) => o,
        Fetched::NotModified => {
            return (
                StatusCode::NOT_MODIFIED,
                [(header::CACHE_CONTROL, class.cache_control())],
            )
                .into_response()
        }
        Fetched::NotFound => return not_found(&state, &key),
    };
    // Streamed: a response holds a chunk of the object at a time, never all of it.
    let length = object.range.end.saturating_sub(object.range.start);
    let content_range = range.is_some().then(|| (object.range.clone(), object.size));
    let mut response = object_response(Body::from_stream(object.body), &key, length, content_range);
    let h = response.headers_mut();
    if let Some(tag) = object.e_tag.as_deref() {
        let quoted = if tag.starts_with('"') || tag.starts_with("W/") {
            tag.to_string()
        } else {
            format!("\"{tag}\"")
        };
        if let Ok(v) = HeaderValue::from_str(&quoted) {
            h.insert(header::ETAG, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(object.last_modified.into())) {
        h.insert(header::LAST_MODIFIED, v);
    }
    response
}

/// 404 with a body that says why: for a live playlist, that the room is offline.
fn not_found(state: &Objects, key: &str) -> Response {
    let mut parts = key.split('/');
    if let (Some("hls"), Some(room), Some("live.m3u8"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    {
        if state.rooms.get(room).is_some() && !state.live.is_live(room) {
            return error(
                StatusCode::NOT_FOUND,
                &format!("room {room} is offline: no live stream right now"),
            );
        }
        if state.rooms.get(room).is_none() {
            return error(StatusCode::NOT_FOUND, &format!("no room {room}"));
        }
    }
    error(StatusCode::NOT_FOUND, "no such object")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str) -> Result<Option<GetRange>, ()> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        parse_range(&h)
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(range("bytes=0-9"), Ok(Some(GetRange::Bounded(0..10))));
        assert_eq!(range("bytes=5-"), Ok(Some(GetRange::Offset(5))));
        assert_eq!(range("bytes=-3"), Ok(Some(GetRange::Suffix(3))));
        assert!(range("bytes=9-1").is_err());
        assert!(range("items=0-1").is_err());
        assert_eq!(range("bytes=0-1,4-5"), Ok(None));
    }
}
