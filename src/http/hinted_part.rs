//! `GET` of the part a room's LL-HLS playlist names in `EXT-X-PRELOAD-HINT`, before it is cut.
//!
//! A player asks for the hinted part as soon as it reads the playlist, so that the part's bytes
//! reach it the moment they exist (RFC 8216bis 4.4.5.2: the server holds such a request until
//! the part is ready). Answering 404 at once, as for any missing object, made players give up
//! on the hint and wait for the next playlist reload instead: up to a part's duration later.
//! The request waits on the room's [`LiveEdges`] watch, like a blocking playlist reload, and is
//! answered when the part is cut; with 404 when the segment closed before it (a keyframe came
//! first, so that part will never exist), and with 503 after three target durations.

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;

use crate::hls::live_edge::{LiveEdge, LiveEdges};
use crate::http::live_playlist::{wait_on_edge, Waited};
use crate::http::objects::error;

/// What became of a request for a part that is not in memory.
#[derive(Debug)]
pub enum HintedPart {
    /// It was the hinted part, and it has been cut.
    Ready(Bytes),
    /// It was the hinted part and it did not come in time.
    TimedOut(Response),
}

/// Waits for `key` (`hls/{room}/{session}/{n}.{i}.m4s`) when it is the part `room`'s live
/// playlist hints at; None when it is not (the store answers, as for any object) or when the
/// segment closed before that part.
pub async fn wait_for_hinted_part(edges: &LiveEdges, key: &str) -> Option<HintedPart> {
    let room = key.strip_prefix("hls/")?.split('/').next()?;
    let mut watch = edges.watch(room)?;
    let edge = watch.borrow_and_update().clone()?;
    // Looked at after subscribing, so a part cut in between is not missed. Once the hint has
    // moved on, the part was cut or never will be; a key that was never hinted is answered at
    // once the same way.
    let settled = |edge: &LiveEdge| match edges.part(key) {
        Some(part) => Some(Some(part)),
        None => (!hints_at(edge, room, key)).then_some(None),
    };
    match wait_on_edge(&mut watch, edge, settled).await {
        Waited::Done(part) => part.map(HintedPart::Ready),
        Waited::TimedOut => Some(HintedPart::TimedOut(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the hinted part was not cut in time",
        ))),
        // The writer is gone (the broadcast ended): the store answers.
        Waited::Gone => None,
    }
}

/// Whether `edge`'s playlist (served at `hls/{room}/live.m3u8`) hints at the object `key`.
fn hints_at(edge: &LiveEdge, room: &str, key: &str) -> bool {
    let relative = key
        .strip_prefix("hls/")
        .and_then(|k| k.strip_prefix(room))
        .and_then(|k| k.strip_prefix('/'));
    relative.is_some() && preload_hint(&edge.playlist) == relative
}

/// The URI of a playlist's `EXT-X-PRELOAD-HINT` for a part, relative to the playlist.
fn preload_hint(playlist: &str) -> Option<&str> {
    let line = playlist
        .lines()
        .rev()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:TYPE=PART,"))?;
    let (_, rest) = line.split_once("URI=\"")?;
    rest.split('"').next()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::hls::low_latency::PlaylistPosition;

    fn edge(parts: u64, hint: &str, target_duration_s: u64) -> LiveEdge {
        LiveEdge {
            playlist: Arc::from(format!(
                "#EXTM3U\n#EXT-X-PART:DURATION=0.2,URI=\"s/000005.0.m4s\"\n\
                 #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{hint}\"\n"
            )),
            position: PlaylistPosition {
                last_complete: Some(4),
                building_parts: parts,
            },
            target_duration_s,
        }
    }

    /// Lets a spawned request run until it waits (the test runtime has one thread, so it has
    /// run as far as it can once we are polled again); whether it is still waiting then.
    async fn waiting_on_the_edge<T>(task: &tokio::task::JoinHandle<T>) -> bool {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        !task.is_finished()
    }

    #[test]
    fn the_hint_is_read_off_the_playlist() {
        let e = edge(1, "s/000005.1.m4s", 2);
        assert_eq!(preload_hint(&e.playlist), Some("s/000005.1.m4s"));
        assert!(hints_at(&e, "r", "hls/r/s/000005.1.m4s"));
        assert!(!hints_at(&e, "r", "hls/r/s/000005.0.m4s"));
        assert!(!hints_at(&e, "r", "hls/rr/s/000005.1.m4s"));
        assert!(!hints_at(&e, "r2", "hls/r/s/000005.1.m4s"));
        assert_eq!(preload_hint("#EXTM3U\n#EXTINF:2,\n1.m4s\n"), None);
    }

    #[tokio::test]
    async fn the_hinted_part_is_answered_once_it_is_cut() {
        let edges = Arc::new(LiveEdges::new());
        let key = "hls/r/s/000005.1.m4s";
        assert!(
            wait_for_hinted_part(&edges, key).await.is_none(),
            "no edge: the store answers"
        );
        edges.publish("r", Some(edge(1, "s/000005.1.m4s", 2)));
        assert!(
            wait_for_hinted_part(&edges, "hls/r/s/000005.2.m4s")
                .await
                .is_none(),
            "not the hinted part: the store answers at once"
        );
        let waiting = tokio::spawn({
            let edges = edges.clone();
            async move { wait_for_hinted_part(&edges, key).await }
        });
        let waits = waiting_on_the_edge(&waiting).await;
        assert!(waits, "answered before the part was cut");
        edges.put_part(key.to_string(), Bytes::from_static(b"moof+mdat"));
        edges.publish("r", Some(edge(2, "s/000005.2.m4s", 2)));
        match waiting.await.unwrap() {
            Some(HintedPart::Ready(b)) => assert_eq!(&b[..], b"moof+mdat"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_hinted_part_the_segment_closed_before_is_not_found() {
        let edges = Arc::new(LiveEdges::new());
        edges.publish("r", Some(edge(1, "s/000005.1.m4s", 2)));
        let waiting = tokio::spawn({
            let edges = edges.clone();
            async move { wait_for_hinted_part(&edges, "hls/r/s/000005.1.m4s").await }
        });
        assert!(waiting_on_the_edge(&waiting).await);
        // A keyframe closed segment 5 after one part: the hint moves to segment 6's first part.
        let mut next = edge(0, "s/000006.0.m4s", 2);
        next.position.last_complete = Some(5);
        edges.publish("r", Some(next));
        assert!(waiting.await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_hinted_part_that_never_comes_gets_503() {
        let edges = LiveEdges::new();
        edges.publish("r", Some(edge(1, "s/000005.1.m4s", 1)));
        match wait_for_hinted_part(&edges, "hls/r/s/000005.1.m4s").await {
            Some(HintedPart::TimedOut(r)) => {
                assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE)
            }
            other => panic!("{other:?}"),
        }
    }
}
