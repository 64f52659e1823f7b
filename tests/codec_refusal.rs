//! A publish of a codec barrage does not carry is refused with a clear RTMP status and a notice
//! the host console shows, instead of being taken with its video dropped. The ffmpeg here (5.x)
//! cannot put HEVC in FLV, so the publishers are hand-built: an OBS 30 style enhanced-RTMP HEVC
//! sequence start, a legacy codec id 12 (HEVC) tag, and metadata announcing AV1.

mod common;
mod rtmp_bytes;

use std::time::Duration;

use barrage::testutil::test_config;
use common::*;
use rtmp_bytes::{chunked, client_handshake, metadata_body, publish_commands};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Reads until `needle` arrives (or the peer closes); everything read so far.
async fn read_until(stream: &mut TcpStream, got: &mut Vec<u8>, needle: &str) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !contains(got, needle) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Publishes `key`, then sends `media` (whole RTMP chunks); returns what the server answered
/// until it closed the connection.
async fn publish_then(addr: std::net::SocketAddr, key: &str, media: Vec<u8>) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    client_handshake(&mut stream).await.unwrap();
    stream.write_all(&publish_commands(key)).await.unwrap();
    let mut got = Vec::new();
    assert!(
        read_until(&mut stream, &mut got, "NetStream.Publish.Start").await,
        "the publish was not started"
    );
    stream.write_all(&media).await.unwrap();
    // The server answers and closes: read to the end.
    let closed = read_until(&mut stream, &mut got, "\u{0}never\u{0}").await;
    assert!(!closed);
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hevc_and_av1_publishes_are_refused_with_a_status_and_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // A refused publish must end its broadcast at once, not wait for a reconnect.
    config.rtmp.reconnect_grace_s = 3600;
    let server = barrage::app::start(config).await.unwrap();
    let key = server.state.secrets.stream_keys["demo"].clone();
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();

    // OBS 30 with HEVC: an enhanced-RTMP video tag (ExHeader, SequenceStart, FourCC hvc1).
    let mut hevc = vec![0x90];
    hevc.extend(b"hvc1");
    hevc.extend([1, 2, 3, 4]);
    let answer = publish_then(server.rtmp_addr, &key, chunked(4, 9, 1, &hevc, 128)).await;
    assert!(
        contains(&answer, "NetStream.Publish.Rejected"),
        "{answer:?}"
    );
    assert!(contains(
        &answer,
        "video codec HEVC (H.265) is not supported"
    ));
    assert!(contains(&answer, "H.264"));

    // The broadcast ended at once (the grace is an hour), and the host sees why.
    let room = poll(
        Duration::from_secs(30),
        "the room offline with a notice",
        || {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let room = fetch_json(&http, &format!("{base}/api/rooms/demo")).await?;
                (room["live"].is_null() && !room["notices"].as_array()?.is_empty()).then_some(room)
            }
        },
    )
    .await;
    let notice = room["notices"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(notice["code"], "publish_refused", "{room}");
    assert!(
        notice["message"].as_str().unwrap().contains("HEVC"),
        "{room}"
    );
    assert!(notice["at_ms"].is_i64());

    // A legacy FLV tag with codec id 12 (HEVC in the common extension).
    let legacy = chunked(4, 9, 1, &[0x1c, 0, 0, 0, 0, 1, 2, 3], 128);
    let answer = publish_then(server.rtmp_addr, &key, legacy).await;
    assert!(contains(&answer, "NetStream.Publish.Rejected"));
    assert!(contains(&answer, "HEVC (H.265)"));

    // Metadata announcing AV1 (videocodecid = FourCC av01) is refused before any frame.
    let av01 = f64::from(u32::from_be_bytes(*b"av01"));
    let meta = metadata_body(&[("width", 1280.0), ("videocodecid", av01)]);
    let answer = publish_then(server.rtmp_addr, &key, chunked(5, 18, 1, &meta, 128)).await;
    assert!(contains(&answer, "video codec AV1 is not supported"));

    poll(Duration::from_secs(30), "three notices", || {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let room = fetch_json(&http, &format!("{base}/api/rooms/demo")).await?;
            let refused = room["notices"]
                .as_array()?
                .iter()
                .filter(|n| n["code"] == "publish_refused")
                .count();
            (refused == 3 && room["live"].is_null()).then_some(())
        }
    })
    .await;
    let metrics = get_ok(&http, &format!("{base}/metrics")).await.unwrap();
    assert!(
        contains(&metrics, "reason=\"unsupported_video_codec\""),
        "refusals are counted by reason"
    );
    server.stop().await;
}
