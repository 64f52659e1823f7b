//! What a host sees beyond the live status, with real peers: ffmpeg pushes over RTMP, and the
//! stream health (an 8 s GOP is reported with advice and in /metrics, a 2 s GOP is not), the
//! room's still and the replay's poster (images ffprobe reads), the replay as one MP4 file
//! (ffprobe reads it; its duration is the VOD's), and the per-second series (gifts, viewers
//! and ingest bitrate; who may read it).

mod common;

use std::time::Duration;

use barrage::testutil::{test_config, TEST_ADMIN_KEY};
use common::{fetch_json, ffprobe, poll, push_generated, push_with_gop, wait_child};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

async fn room_json(http: &reqwest::Client, base: &str) -> Option<Value> {
    fetch_json(http, &format!("{base}/api/rooms/demo")).await
}

fn codes(room: &Value) -> Vec<String> {
    room["live"]["health"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eight_second_gop_is_reported_with_advice_and_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = barrage::app::start(test_config(dir.path())).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let key = server.state.secrets.stream_keys["demo"].clone();
    let push = push_with_gop(&format!("rtmp://{}/live/{key}", server.rtmp_addr), 20, 240);
    let http = reqwest::Client::new();
    let problem = poll(LIMIT, "a keyframe_interval problem", || async {
        let room = room_json(&http, &base).await?;
        let health = room["live"]["health"].as_array()?.clone();
        health
            .into_iter()
            .find(|p| p["code"] == "keyframe_interval")
    })
    .await;
    let advice = problem["message"].as_str().unwrap();
    assert!(
        advice.contains("Keyframe Interval to 2 s in OBS > Settings > Output"),
        "{advice}"
    );
    let metrics = poll(LIMIT, "the health gauge", || async {
        let text = common::get_ok(&http, &format!("{base}/metrics")).await?;
        let text = String::from_utf8_lossy(&text).into_owned();
        text.lines()
            .any(|l| {
                l.starts_with("barrage_stream_health_problem{")
                    && l.contains("code=\"keyframe_interval\"")
                    && l.contains("room=\"demo\"")
                    && l.ends_with(" 1")
            })
            .then_some(text)
    })
    .await;
    assert!(metrics.contains("barrage_stream_health_problem"));
    let (_, _) = wait_child(push, Duration::from_secs(60));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_second_gop_with_audio_is_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let server = barrage::app::start(test_config(dir.path())).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let key = server.state.secrets.stream_keys["demo"].clone();
    let push = push_generated(&format!("rtmp://{}/live/{key}", server.rtmp_addr), 14);
    let http = reqwest::Client::new();
    // Four segments are 8 s of stream: past every settling time (3 s, audio 5 s) and long
    // enough that an 8 s GOP would have shown.
    let room = poll(LIMIT, "four segments and a measured frame rate", || async {
        let room = room_json(&http, &base).await?;
        let live = &room["live"];
        (live["segments"].as_u64()? >= 4 && live["frame_rate"].is_f64()).then_some(room)
    })
    .await;
    assert_eq!(codes(&room), Vec::<String>::new(), "{room}");
    let fps = room["live"]["frame_rate"].as_f64().unwrap();
    assert!((fps - 30.0).abs() < 2.0, "frame rate {fps}");
    let gop = room["live"]["keyframe_interval_s"].as_f64().unwrap();
    assert!(gop <= 2.5, "keyframe interval {gop}");
    let (_, _) = wait_child(push, Duration::from_secs(60));
    server.stop().await;
}

/// GETs `url` into a file under `dir`; returns its path and the response headers.
async fn download(
    http: &reqwest::Client,
    url: &str,
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, reqwest::header::HeaderMap) {
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let headers = response.headers().clone();
    let path = dir.join(name);
    std::fs::write(&path, response.bytes().await.unwrap()).unwrap();
    (path, headers)
}

fn vod_seconds(playlist: &str) -> f64 {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| {
            l.trim_end_matches(',')
                .split(',')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stills_posters_and_the_replay_as_one_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let server = barrage::app::start(test_config(dir.path())).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let key = server.state.secrets.stream_keys["demo"].clone();
    let push = push_generated(&format!("rtmp://{}/live/{key}", server.rtmp_addr), 8);
    let http = reqwest::Client::new();

    let still_url = poll(LIMIT, "thumbnail_url in the room JSON", || async {
        let room = room_json(&http, &base).await?;
        room["thumbnail_url"].as_str().map(str::to_string)
    })
    .await;
    assert!(still_url.contains("/hls/demo/thumb.jpg"), "{still_url}");
    let (still, headers) = download(&http, &still_url, out.path(), "still.jpg").await;
    assert_eq!(headers["content-type"], "image/jpeg");
    let probed = ffprobe(&still);
    let stream = &probed["streams"][0];
    assert_eq!(stream["codec_name"], "mjpeg", "{probed}");
    assert_eq!(stream["height"], 360, "{probed}");

    let (ok, err) = wait_child(push, Duration::from_secs(60));
    assert!(ok, "ffmpeg: {err}");
    let session = poll(LIMIT, "the session ended", || async {
        let page = fetch_json(&http, &format!("{base}/api/rooms/demo/sessions")).await?;
        let s = page["sessions"][0].clone();
        (s["live"] == false && !s["ended_ms"].is_null()).then_some(s)
    })
    .await;

    let (poster, _) = download(
        &http,
        session["poster_url"].as_str().unwrap(),
        out.path(),
        "poster.jpg",
    )
    .await;
    assert_eq!(ffprobe(&poster)["streams"][0]["codec_name"], "mjpeg");

    let url = session["download_url"].as_str().unwrap();
    let (file, headers) = download(&http, url, out.path(), "replay.mp4").await;
    assert_eq!(headers["content-type"], "video/mp4");
    let disposition = headers["content-disposition"].to_str().unwrap();
    let name = format!("demo-{}.mp4", session["session"].as_str().unwrap());
    assert!(disposition.contains(&name), "{disposition}");
    let probed = ffprobe(&file);
    let duration: f64 = probed["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no duration: {probed}"));
    let playlist = common::get_ok(&http, session["playlist_url"].as_str().unwrap())
        .await
        .unwrap();
    let vod = vod_seconds(&String::from_utf8_lossy(&playlist));
    assert!(vod > 6.0, "the VOD lists {vod} s of an 8 s push");
    assert!(
        (duration - vod).abs() < 0.5,
        "the file lasts {duration} s, the VOD {vod} s"
    );
    let kinds: Vec<&str> = probed["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["codec_type"].as_str())
        .collect();
    assert!(
        kinds.contains(&"video") && kinds.contains(&"audio"),
        "{kinds:?}"
    );

    let missing = http
        .get(format!("{base}/api/rooms/demo/sessions/nope/download.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let odd = http
        .get(format!(
            "{base}/api/rooms/demo/sessions/..%2Fx/download.mp4"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_count_each_second_for_the_host_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = barrage::app::start(test_config(dir.path())).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let key = server.state.secrets.stream_keys["demo"].clone();
    let host_key = server.state.secrets.host_keys["demo"].clone();
    let push = push_generated(&format!("rtmp://{}/live/{key}", server.rtmp_addr), 8);
    let http = reqwest::Client::new();
    let url = format!("{base}/api/rooms/demo/series?seconds=120");

    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let viewer_token = server.state.tokens.mint(
        "u1",
        "U",
        barrage::auth::Role::Viewer,
        Some("demo"),
        Duration::from_secs(60),
    );
    let viewer = http
        .get(&url)
        .bearer_auth(viewer_token)
        .send()
        .await
        .unwrap();
    assert_eq!(viewer.status(), 403);
    let too_long = http
        .get(format!("{base}/api/rooms/demo/series?seconds=601"))
        .bearer_auth(&host_key)
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), 400);

    for _ in 0..5 {
        let r = http
            .post(format!("{base}/api/rooms/demo/gifts"))
            .bearer_auth(TEST_ADMIN_KEY)
            .json(&serde_json::json!({"user": "fan", "gift_id": "rose", "value": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let series = poll(LIMIT, "five gifts and a bitrate in the series", || async {
        let r = http.get(&url).bearer_auth(&host_key).send().await.ok()?;
        let v: Value = r.json().await.ok()?;
        let gifts: u64 = v["gifts"]
            .as_array()?
            .iter()
            .filter_map(Value::as_u64)
            .sum();
        let kbps = v["ingest_kbps"]
            .as_array()?
            .iter()
            .filter_map(Value::as_f64)
            .fold(0.0, f64::max);
        (gifts == 5 && kbps > 0.0).then_some(v)
    })
    .await;
    assert_eq!(series["online"].as_array().unwrap().len(), 120);
    assert_eq!(
        series["to_s"].as_u64().unwrap() - series["from_s"].as_u64().unwrap(),
        119
    );
    let (_, _) = wait_child(push, Duration::from_secs(60));
    server.stop().await;
}
