//! HTTP-FLV with real peers: ffmpeg pushes RTMP, a client reads `/live/{room}.flv` while it is
//! live, and ffprobe reads what it got as H.264 + AAC.

mod common;

use std::time::Duration;

use barrage::testutil::test_config;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_room_plays_as_http_flv_and_ffprobe_reads_it() {
    require_tool("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let server = barrage::app::start(test_config(dir.path())).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();

    // Offline: a 404 that says why.
    let offline = http
        .get(format!("{base}/live/demo.flv"))
        .send()
        .await
        .unwrap();
    assert_eq!(offline.status(), 404);
    assert!(offline.text().await.unwrap().contains("not live"));
    let wrong = http
        .get(format!("{base}/live/demo.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);

    let key = server.state.secrets.stream_keys["demo"].clone();
    let pusher = push_generated(&format!("rtmp://{}/live/{key}", server.rtmp_addr), 8);

    // As soon as the codec configuration is in, the room plays.
    let mut response = poll(Duration::from_secs(20), "/live/demo.flv answers", || {
        let http = http.clone();
        let url = format!("{base}/live/demo.flv");
        async move {
            let r = http.get(url).send().await.ok()?;
            (r.status() == 200).then_some(r)
        }
    })
    .await;
    assert_eq!(response.headers()["content-type"], "video/x-flv");
    let metrics = get_ok(&http, &format!("{base}/metrics")).await.unwrap();
    assert!(String::from_utf8_lossy(&metrics).contains("barrage_flv_viewers 1"));

    // Read until the broadcast ends (the stream closes) or a generous deadline.
    let mut flv = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            flv.extend_from_slice(&chunk);
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the FLV stream did not end with the broadcast"
    );
    let (ok, stderr) =
        tokio::task::spawn_blocking(move || wait_child(pusher, Duration::from_secs(40)))
            .await
            .unwrap();
    assert!(ok, "ffmpeg push failed: {stderr}");

    assert_eq!(&flv[..3], b"FLV");
    let path = dir.path().join("live.flv");
    std::fs::write(&path, &flv).unwrap();
    let probe = ffprobe(&path);
    let codecs: Vec<&str> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(codecs.contains(&"h264"), "{probe}");
    assert!(codecs.contains(&"aac"), "{probe}");
    let seconds: f64 = probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    assert!(seconds > 3.0, "only {seconds} s of media: {probe}");
    server.stop().await;
}
