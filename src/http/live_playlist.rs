//! `GET /hls/{room}/live.m3u8` while the room's writer keeps an LL-HLS playlist in memory
//! ([`LiveEdges`]): answered from there, and blocking reloads (`_HLS_msn`, `_HLS_part`, RFC
//! 8216bis 6.2.5.2) wait until the asked segment or part is listed. When there is none here
//! (LL-HLS off, another node's room, the broadcast ended or its publisher away) the caller
//! serves the stored playlist, as for any object.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use tokio::sync::watch;

use crate::hls::live_edge::{LiveEdge, LiveEdges};
use crate::hls::low_latency::BlockingRequest;
use crate::http::objects::error;

/// A blocking reload waits at most this many target durations, then gets 503 (the spec asks
/// for at least three).
const WAIT_TARGET_DURATIONS: u64 = 3;

/// How waiting on a room's edge ended.
pub(crate) enum Waited<T> {
    /// `check` found what it waited for.
    Done(T),
    /// Three target durations passed first.
    TimedOut,
    /// The writer withdrew the edge or is gone: the store answers.
    Gone,
}

/// Calls `check` on `edge`, then on each newer edge `watch` sees, until it gives an answer;
/// waits at most [`WAIT_TARGET_DURATIONS`] of `edge`'s target duration. Blocking playlist
/// reloads and requests for the hinted part both wait this way.
pub(crate) async fn wait_on_edge<T>(
    watch: &mut watch::Receiver<Option<Arc<LiveEdge>>>,
    mut edge: Arc<LiveEdge>,
    mut check: impl FnMut(&LiveEdge) -> Option<T>,
) -> Waited<T> {
    let wait = Duration::from_secs(edge.target_duration_s.max(1) * WAIT_TARGET_DURATIONS);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(answer) = check(&edge) {
            return Waited::Done(answer);
        }
        match tokio::time::timeout_at(deadline, watch.changed()).await {
            Err(_) => return Waited::TimedOut,
            Ok(Err(_)) => return Waited::Gone,
            Ok(Ok(())) => match watch.borrow_and_update().clone() {
                Some(newer) => edge = newer,
                None => return Waited::Gone,
            },
        }
    }
}

/// `_HLS_msn` and `_HLS_part` of a query string (other parameters, like `_HLS_skip`, ignored).
fn blocking_params(query: Option<&str>) -> (Option<&str>, Option<&str>) {
    let (mut msn, mut part) = (None, None);
    for pair in query.unwrap_or("").split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "_HLS_msn" => msn = Some(value),
            "_HLS_part" => part = Some(value),
            _ => {}
        }
    }
    (msn, part)
}

fn playlist(edge: &LiveEdge, blocking: bool) -> Response {
    let mut response = Response::new(axum::body::Body::from(edge.playlist.to_string()));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.apple.mpegurl"),
    );
    // A blocking answer's URL names what it holds, so a CDN may keep it a few seconds; the
    // plain URL changes with every part.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if blocking {
            "public, max-age=6"
        } else {
            "public, max-age=1"
        }),
    );
    response
}

/// The answer from memory, or None to serve the stored playlist.
pub async fn answer(edges: &LiveEdges, room: &str, query: Option<&str>) -> Option<Response> {
    let (msn, part) = blocking_params(query);
    let request = match BlockingRequest::parse(msn, part) {
        Ok(r) => r,
        Err(e) => return Some(error(StatusCode::BAD_REQUEST, &e.to_string())),
    };
    let mut watch = edges.watch(room)?;
    let edge: Arc<LiveEdge> = watch.borrow_and_update().clone()?;
    let Some(request) = request else {
        return Some(playlist(&edge, false));
    };
    if let Err(e) = request.check_reachable(&edge.position) {
        return Some(error(StatusCode::BAD_REQUEST, &e.to_string()));
    }
    let satisfied = |edge: &LiveEdge| {
        request
            .satisfied_by(&edge.position)
            .then(|| playlist(edge, true))
    };
    match wait_on_edge(&mut watch, edge, satisfied).await {
        Waited::Done(answer) => Some(answer),
        Waited::TimedOut => Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the requested segment or part did not appear in time",
        )),
        // The writer is gone: the stored playlist says how the broadcast ended.
        Waited::Gone => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hls::low_latency::PlaylistPosition;

    fn edge(last: u64, parts: u64) -> LiveEdge {
        LiveEdge {
            playlist: Arc::from(format!("#EXTM3U\n# {last}.{parts}\n")),
            position: PlaylistPosition {
                last_complete: Some(last),
                building_parts: parts,
            },
            target_duration_s: 2,
        }
    }

    async fn body(r: Response) -> (StatusCode, String) {
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[test]
    fn query_parameters() {
        assert_eq!(
            blocking_params(Some("_HLS_msn=5&_HLS_part=2&_HLS_skip=YES")),
            (Some("5"), Some("2"))
        );
        assert_eq!(blocking_params(None), (None, None));
    }

    #[tokio::test]
    async fn a_blocking_reload_answers_once_the_part_is_listed() {
        let edges = Arc::new(LiveEdges::new());
        assert!(
            answer(&edges, "r", None).await.is_none(),
            "no edge: the store serves"
        );
        edges.publish("r", Some(edge(4, 1)));
        let (status, text) = body(answer(&edges, "r", None).await.unwrap()).await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::OK, "#EXTM3U\n# 4.1\n")
        );
        // Already there: at once.
        let (_, text) = body(
            answer(&edges, "r", Some("_HLS_msn=5&_HLS_part=0"))
                .await
                .unwrap(),
        )
        .await;
        assert!(text.contains("4.1"));
        // Not there yet: waits until a later edge has it.
        let waiting = tokio::spawn({
            let edges = edges.clone();
            async move {
                body(
                    answer(&edges, "r", Some("_HLS_msn=5&_HLS_part=2"))
                        .await
                        .unwrap(),
                )
                .await
            }
        });
        edges.publish("r", Some(edge(4, 2)));
        edges.publish("r", Some(edge(4, 3)));
        let (status, text) = waiting.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(
            text.contains("4.3") || text.contains("4.2") && !text.contains("4.1"),
            "{text}"
        );
        assert!(
            !text.contains("4.1"),
            "answered before the part was listed: {text}"
        );
        // Too far ahead, or malformed: 400.
        let (status, _) = body(answer(&edges, "r", Some("_HLS_msn=9")).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = body(answer(&edges, "r", Some("_HLS_part=1")).await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // Withdrawn while waiting: the store answers.
        let waiting = tokio::spawn({
            let edges = edges.clone();
            async move { answer(&edges, "r", Some("_HLS_msn=6")).await.is_none() }
        });
        edges.publish("r", None);
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn a_part_that_never_comes_gets_503_after_three_target_durations() {
        let edges = LiveEdges::new();
        let mut short = edge(4, 1);
        short.target_duration_s = 1;
        edges.publish("r", Some(short));
        let (status, _) = body(answer(&edges, "r", Some("_HLS_msn=6")).await.unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
