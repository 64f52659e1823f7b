//! The video path end to end with real peers: ffmpeg pushes RTMP into a running barrage, the
//! playlists and segments are read back over HTTP, and ffprobe checks what was written.

mod common;

use std::time::Duration;

use barrage::testutil::{test_config, S3Server};
use common::*;
use hls_m3u8::MediaPlaylist;

fn demo_key(server: &barrage::app::RunningServer) -> String {
    server.state.secrets.stream_keys["demo"].clone()
}

fn parse_playlist(body: &[u8]) -> MediaPlaylist<'static> {
    let text = std::str::from_utf8(body).expect("utf-8 playlist");
    MediaPlaylist::try_from(text)
        .expect("valid media playlist")
        .into_owned()
}

/// Pushes ~10 s, checks the live playlist while live, then the VOD and the media itself.
async fn push_and_check(config: barrage::config::Config) {
    let server = barrage::app::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let url = format!("rtmp://{}/live/{}", server.rtmp_addr, demo_key(&server));
    let pusher = push_generated(&url, 10);
    let http = reqwest::Client::new();

    // While live: the stable playlist appears, with a window of whole segments.
    let live = poll(
        Duration::from_secs(20),
        "live playlist with 2 segments",
        || {
            let http = http.clone();
            let base = base.clone();
            async move {
                let body = get_ok(&http, &format!("{base}/hls/demo/live.m3u8")).await?;
                let p = parse_playlist(&body);
                (p.segments.num_elements() >= 2).then_some(p)
            }
        },
    )
    .await;
    assert!(!live.has_end_list);
    let target = live.target_duration.as_secs_f64();
    for (_, seg) in live.segments.iter() {
        let d = seg.duration.duration().as_secs_f64();
        assert!(
            d > 0.5 && d <= target + 0.001,
            "segment {d} s, target {target} s"
        );
    }
    let live_info = server.state.live.get("demo").expect("room is live");
    assert_eq!(live_info.width, Some(320));
    assert_eq!(live_info.height, Some(180));

    let (ok, stderr) =
        tokio::task::spawn_blocking(move || wait_child(pusher, Duration::from_secs(40)))
            .await
            .unwrap();
    assert!(ok, "ffmpeg push failed: {stderr}");

    // After the end: the session playlist is a complete VOD.
    let session = live_info.session.clone();
    let vod_url = format!("{base}/hls/demo/{session}/index.m3u8");
    let vod = poll(Duration::from_secs(20), "VOD playlist with ENDLIST", || {
        let http = http.clone();
        let vod_url = vod_url.clone();
        async move {
            let p = parse_playlist(&get_ok(&http, &vod_url).await?);
            p.has_end_list.then_some(p)
        }
    })
    .await;
    // The writer ends the live state right after its last playlist write.
    poll(Duration::from_secs(5), "room offline", || async {
        server.state.live.get("demo").is_none().then_some(())
    })
    .await;
    let total: f64 = vod
        .segments
        .iter()
        .map(|(_, s)| s.duration.duration().as_secs_f64())
        .sum();
    assert!((total - 10.0).abs() < 0.5, "VOD covers {total} s of 10 s");
    assert!(
        vod.segments.num_elements() >= 4,
        "{} segments",
        vod.segments.num_elements()
    );

    // The live URL ends too (players watching stop cleanly).
    let ended = parse_playlist(
        &get_ok(&http, &format!("{base}/hls/demo/live.m3u8"))
            .await
            .unwrap(),
    );
    assert!(ended.has_end_list);

    // Init + every segment over HTTP -> one file -> ffprobe.
    let mut whole = get_ok(&http, &format!("{base}/hls/demo/{session}/init.mp4"))
        .await
        .expect("init segment")
        .to_vec();
    for (_, seg) in vod.segments.iter() {
        let uri = seg.uri().to_string();
        let body = get_ok(&http, &format!("{base}/hls/demo/{session}/{uri}"))
            .await
            .unwrap_or_else(|| panic!("segment {uri}"));
        whole.extend_from_slice(&body);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("whole.mp4");
    std::fs::write(&file, &whole).unwrap();
    let probe = ffprobe(&file);
    let streams = probe["streams"].as_array().unwrap();
    let codecs: Vec<&str> = streams
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(
        codecs.contains(&"h264") && codecs.contains(&"aac"),
        "{codecs:?}"
    );
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 10.0).abs() < 0.5, "probed {duration} s");

    // The session is listed for replay.
    let sessions: serde_json::Value = http
        .get(format!("{base}/api/rooms/demo/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["sessions"][0]["session"], session.as_str());
    assert!(sessions["sessions"][0]["ended_ms"].is_i64());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_push_becomes_live_hls_then_vod() {
    let dir = tempfile::tempdir().unwrap();
    push_and_check(test_config(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_push_through_an_s3_server() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(&dir.path().join("s3"));
    let mut config = test_config(&dir.path().join("data"));
    s3.configure(&mut config, "media");
    push_and_check(config).await;
    let objects = walk(&dir.path().join("s3/barrage/media/hls/demo"));
    assert!(
        objects.iter().any(|p| p.ends_with("init.mp4")),
        "{objects:?}"
    );
    assert!(objects.iter().any(|p| p.ends_with(".m4s")));
    assert!(objects.iter().any(|p| p.ends_with("index.m3u8")));
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_and_second_publisher_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = barrage::app::start(test_config(dir.path())).await.unwrap();
    let rtmp = server.rtmp_addr;

    let wrong = push_generated(&format!("rtmp://{rtmp}/live/live_not_a_key"), 3);
    let (ok, _stderr) =
        tokio::task::spawn_blocking(move || wait_child(wrong, Duration::from_secs(20)))
            .await
            .unwrap();
    assert!(!ok, "a wrong key must be refused");

    let first = push_generated(&format!("rtmp://{rtmp}/live/{}", demo_key(&server)), 8);
    poll(Duration::from_secs(15), "room live", || async {
        server.state.live.get("demo").map(|_| ())
    })
    .await;
    let second = push_generated(&format!("rtmp://{rtmp}/live/{}", demo_key(&server)), 3);
    let (ok, _) = tokio::task::spawn_blocking(move || wait_child(second, Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(
        !ok,
        "a second publisher must be refused while the first is live"
    );
    let (ok, stderr) =
        tokio::task::spawn_blocking(move || wait_child(first, Duration::from_secs(30)))
            .await
            .unwrap();
    assert!(ok, "the first publisher is unaffected: {stderr}");
    let metrics = common::metrics_text(
        &reqwest::Client::new(),
        &format!("http://{}", server.http_addr),
    )
    .await;
    assert!(
        metrics.contains("barrage_ingest_publish_refusals_total"),
        "refusals are counted"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_pusher_mid_stream_leaves_a_valid_vod() {
    let dir = tempfile::tempdir().unwrap();
    let server = barrage::app::start(test_config(dir.path())).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let mut pusher = push_generated(
        &format!("rtmp://{}/live/{}", server.rtmp_addr, demo_key(&server)),
        30,
    );
    let http = reqwest::Client::new();
    let session = poll(Duration::from_secs(20), "two segments", || {
        let http = http.clone();
        let base = base.clone();
        let live = server.state.live.get("demo");
        async move {
            let live = live?;
            let body = get_ok(&http, &format!("{base}/hls/demo/live.m3u8")).await?;
            (parse_playlist(&body).segments.num_elements() >= 2).then_some(live.session)
        }
    })
    .await;
    pusher.kill().unwrap();
    let _ = pusher.wait();
    let vod_url = format!("{base}/hls/demo/{session}/index.m3u8");
    let vod = poll(Duration::from_secs(45), "VOD after the kill", || {
        let http = http.clone();
        let vod_url = vod_url.clone();
        async move {
            let p = parse_playlist(&get_ok(&http, &vod_url).await?);
            p.has_end_list.then_some(p)
        }
    })
    .await;
    assert!(vod.segments.num_elements() >= 2);
    let mut whole = get_ok(&http, &format!("{base}/hls/demo/{session}/init.mp4"))
        .await
        .unwrap()
        .to_vec();
    for (_, seg) in vod.segments.iter() {
        whole.extend_from_slice(
            &get_ok(&http, &format!("{base}/hls/demo/{session}/{}", seg.uri()))
                .await
                .unwrap(),
        );
    }
    let dir2 = tempfile::tempdir().unwrap();
    let file = dir2.path().join("killed.mp4");
    std::fs::write(&file, whole).unwrap();
    let probe = ffprobe(&file);
    assert_eq!(probe["streams"].as_array().unwrap().len(), 2);
    poll(Duration::from_secs(5), "room offline", || async {
        server.state.live.get("demo").is_none().then_some(())
    })
    .await;
    server.stop().await;
}
