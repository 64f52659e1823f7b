//! Danmaku inside the media, read back as a player would: ffmpeg pushes, a viewer sends
//! comments stamped with a player position (one plausible, one from the future), and each
//! stored segment's `emsg` boxes hold the delivered events (ID3 `TXXX` with the event JSON)
//! at their `stream_ms`, in the segment holding that time or the one after. The server keeps
//! a plausible position and replaces an impossible one with live time. ffprobe still decodes
//! a segment that carries the boxes.

mod chat_common;
mod common;

use barrage::chat::codec::Format;
use barrage::chat::protocol::ServerFrame;
use barrage::chat::protocol::{AckStatus, ClientFrame, SendDanmaku, WHITE};
use barrage::media::emsg::{read_id3_txxx, ID3_SCHEME, TXXX_DESCRIPTION};
use chat_common::{Client, Incoming, WAIT};
use common::*;
use hls_m3u8::MediaPlaylist;
use mp4_atom::{Decode, Emsg, EmsgTimestamp};

/// The top-level boxes of a fragment: (type, whole box bytes).
fn top_level_boxes(mut bytes: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut boxes = Vec::new();
    while bytes.len() >= 8 {
        let size = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert!(size >= 8 && size <= bytes.len(), "box size {size}");
        boxes.push((bytes[4..8].try_into().unwrap(), &bytes[..size]));
        bytes = &bytes[size..];
    }
    assert!(bytes.is_empty(), "trailing bytes");
    boxes
}

/// One event found in a segment: its emsg time (ms) and its JSON.
struct Carried {
    segment: usize,
    presentation_ms: u64,
    event: serde_json::Value,
}

async fn send_at(client: &mut Client, id: u64, text: &str, stream_ms: u64) {
    client
        .send_frame(&ClientFrame::Send(SendDanmaku {
            client_id: id,
            text: text.to_string(),
            color: WHITE,
            mode: Default::default(),
            stream_ms: Some(stream_ms),
        }))
        .await;
}

/// Reads frames until every id in `ids` is acked and `last` is delivered; returns the acks'
/// statuses (in `ids` order) and every delivered event, whichever order they came in.
async fn acks_and_events(
    client: &mut Client,
    ids: &[u64],
    last: &str,
) -> (Vec<AckStatus>, Vec<barrage::chat::protocol::Event>) {
    let mut acks = vec![None; ids.len()];
    let mut events = Vec::new();
    let delivered = |events: &Vec<barrage::chat::protocol::Event>| {
        events
            .iter()
            .any(|e| matches!(&e.body, barrage::chat::protocol::Body::Danmaku(d) if d.text == last))
    };
    while acks.iter().any(Option::is_none) || !delivered(&events) {
        match client.next().await {
            Incoming::Frame(ServerFrame::Ack(a)) => {
                if let Some(i) = ids.iter().position(|id| *id == a.client_id) {
                    acks[i] = Some(a.status);
                }
            }
            Incoming::Frame(ServerFrame::Batch { events: batch }) => events.extend(batch),
            Incoming::Frame(_) => {}
            other => panic!("{other:?}"),
        }
    }
    (acks.into_iter().flatten().collect(), events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_carry_the_delivered_danmaku_at_their_stream_time() {
    let server = chat_common::start(|_| {}).await;
    let key = server.server.state.secrets.stream_keys["demo"].clone();
    let push = push_generated(
        &format!("rtmp://{}/live/{key}", server.server.rtmp_addr),
        10,
    );
    let live = poll(WAIT, "the push live", || async {
        server
            .server
            .state
            .live
            .get("demo")
            .filter(|l| l.first_frame_at.is_some() && l.segments >= 1)
    })
    .await;
    let token = server.token("ann", "demo");
    let (mut sender, _) = Client::join(&server, "demo", Some(&token), Format::Json).await;

    // A player a second behind live, and one claiming a moment that has not happened yet.
    let now = live.stream_ms();
    let behind = now.saturating_sub(1_000);
    send_at(&mut sender, 1, "seen a second ago", behind).await;
    send_at(&mut sender, 2, "from the future", now + 100_000).await;
    // Batches may come before the acks: both are read together, nothing is skipped.
    let (acks, events) = acks_and_events(&mut sender, &[1, 2], "from the future").await;
    assert_eq!(acks, vec![AckStatus::Accepted, AckStatus::Accepted]);
    let stamped = |text: &str| {
        events
            .iter()
            .find(
                |e| matches!(&e.body, barrage::chat::protocol::Body::Danmaku(d) if d.text == text),
            )
            .unwrap_or_else(|| panic!("{text} delivered"))
            .clone()
    };
    let kept = stamped("seen a second ago");
    assert_eq!(kept.stream_ms, behind, "a plausible position is kept");
    let replaced = stamped("from the future");
    assert!(
        replaced.stream_ms >= now && replaced.stream_ms < now + 100_000,
        "a position ahead of live gets live time: {}",
        replaced.stream_ms
    );

    let (ok, stderr) = tokio::task::spawn_blocking(move || wait_child(push, WAIT * 3))
        .await
        .unwrap();
    assert!(ok, "push failed: {stderr}");
    let session = live.session.clone();
    let playlist_url = format!("{}/hls/demo/{session}/index.m3u8", server.http);
    let http = reqwest::Client::new();
    let playlist = poll(WAIT, "the VOD playlist", || async {
        let body = get_ok(&http, &playlist_url).await?;
        let text = String::from_utf8(body.to_vec()).ok()?;
        text.contains("#EXT-X-ENDLIST").then_some(text)
    })
    .await;
    let playlist = MediaPlaylist::try_from(playlist.as_str()).unwrap();

    // Every segment's emsg boxes, read back; each segment's span on the timeline.
    let mut spans = Vec::new();
    let mut carried = Vec::new();
    let mut start_ms = 0u64;
    let mut with_boxes = None;
    for (i, segment) in playlist.segments.values().enumerate() {
        let end_ms = start_ms + segment.duration.duration().as_millis() as u64;
        spans.push((start_ms, end_ms));
        let url = format!("{}/hls/demo/{session}/{}", server.http, segment.uri());
        let bytes = get_ok(&http, &url).await.expect("segment");
        let boxes = top_level_boxes(&bytes);
        let first_moof = boxes.iter().position(|(t, _)| t == b"moof").expect("moof");
        for (n, (kind, raw)) in boxes.iter().enumerate() {
            if kind != b"emsg" {
                continue;
            }
            assert!(n < first_moof, "emsg boxes come before the moof");
            let emsg = Emsg::decode(&mut &raw[..]).expect("emsg decodes");
            assert_eq!(emsg.scheme_id_uri, ID3_SCHEME);
            let EmsgTimestamp::Absolute(t) = emsg.presentation_time else {
                panic!("version 1 emsg expected");
            };
            let (description, json) = read_id3_txxx(&emsg.message_data).expect("ID3 TXXX");
            assert_eq!(description, TXXX_DESCRIPTION);
            let event: serde_json::Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(emsg.id as u64, event["seq"].as_u64().unwrap());
            carried.push(Carried {
                segment: i,
                presentation_ms: t * 1000 / u64::from(emsg.timescale),
                event,
            });
            with_boxes.get_or_insert((i, bytes.clone()));
        }
        start_ms = end_ms;
    }
    for expected in [&kept, &replaced] {
        let found: Vec<&Carried> = carried
            .iter()
            .filter(|c| c.event["seq"].as_u64() == Some(expected.seq))
            .collect();
        assert_eq!(found.len(), 1, "seq {} carried once", expected.seq);
        let c = found[0];
        assert_eq!(c.presentation_ms, expected.stream_ms);
        assert_eq!(c.event["stream_ms"].as_u64(), Some(expected.stream_ms));
        assert_eq!(
            c.event,
            serde_json::to_value(expected).unwrap(),
            "the same JSON as the socket"
        );
        // In the segment holding its time, or (delivered after that one was cut) the next.
        let holding = spans
            .iter()
            .position(|(s, e)| expected.stream_ms >= *s && expected.stream_ms < *e)
            .expect("a segment holds the time");
        assert!(
            c.segment == holding || c.segment == holding + 1,
            "seq {} at {} ms in segment {}, its time is in segment {holding} ({spans:?})",
            expected.seq,
            expected.stream_ms,
            c.segment
        );
    }

    // A segment carrying the boxes still decodes (init + that segment).
    let (_, bytes) = with_boxes.expect("a segment with emsg");
    let init = get_ok(
        &http,
        &format!("{}/hls/demo/{session}/init.mp4", server.http),
    )
    .await
    .expect("init segment");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.mp4");
    std::fs::write(&path, [init.as_ref(), bytes.as_ref()].concat()).unwrap();
    let probe = ffprobe(&path);
    assert!(
        probe["streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["codec_name"] == "h264"),
        "{probe}"
    );
    drop(sender);
    server.stop().await;
}
