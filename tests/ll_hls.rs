//! LL-HLS with real peers: ffmpeg pushes RTMP, a client reads `/hls/{room}/live.m3u8` as an
//! LL-HLS player would (parts, preload hint, blocking reloads), and ffprobe compares the
//! parts of a segment with the segment itself.

mod common;

use std::process::Command;
use std::time::Duration;

use barrage::testutil::test_config;
use common::*;

/// The value of `NAME=` in an attribute list line (unquoted).
fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (_, rest) = line.split_once(&format!("{name}="))?;
    let value = rest.split(',').next()?;
    Some(value.trim_matches('"'))
}

/// The URI of the playlist's `EXT-X-PRELOAD-HINT` for the next part.
fn preload_hint(playlist: &str) -> String {
    playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-PRELOAD-HINT:TYPE=PART"))
        .and_then(|l| attr(l, "URI"))
        .unwrap_or_else(|| panic!("no EXT-X-PRELOAD-HINT in\n{playlist}"))
        .to_string()
}

/// The URIs of a playlist's `EXT-X-PART` lines.
fn part_uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .filter_map(|l| attr(l, "URI").map(str::to_string))
        .collect()
}

/// (pts, dts, size) of every packet ffprobe reads in `bytes`, per stream kind.
fn packets(
    dir: &std::path::Path,
    name: &str,
    bytes: &[u8],
) -> Vec<(String, String, String, String)> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    require_tool("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_packets", "-of", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut list: Vec<_> = json["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
            (s("codec_type"), s("dts"), s("pts"), s("size"))
        })
        .collect();
    list.sort();
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_room_serves_ll_hls_parts_and_answers_blocking_reloads() {
    require_tool("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    assert_eq!(config.hls.part_ms, 200, "LL-HLS is on by default");
    let server = barrage::app::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let key = server.state.secrets.stream_keys["demo"].clone();
    let pusher = push_generated(&format!("rtmp://{}/live/{key}", server.rtmp_addr), 14);
    let url = format!("{base}/hls/demo/live.m3u8");

    // Two complete segments with parts listed, and parts of the one being built.
    let playlist = poll(Duration::from_secs(30), "a playlist with parts", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let text = String::from_utf8(get_ok(&http, &url).await?.to_vec()).ok()?;
            let blocks = text.matches("#EXTINF").count();
            (blocks >= 2 && part_uris(&text).len() >= 8).then_some(text)
        }
    })
    .await;
    let control = playlist
        .lines()
        .find(|l| l.starts_with("#EXT-X-SERVER-CONTROL:"))
        .expect("EXT-X-SERVER-CONTROL");
    assert!(control.contains("CAN-BLOCK-RELOAD=YES"), "{control}");
    let part_target: f64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PART-INF:PART-TARGET="))
        .expect("EXT-X-PART-INF")
        .parse()
        .unwrap();
    assert!((part_target - 0.2).abs() < 1e-9, "{part_target}");
    let hold_back: f64 = attr(control, "PART-HOLD-BACK").unwrap().parse().unwrap();
    assert!(hold_back >= 3.0 * part_target - 1e-9, "{control}");
    let independent = playlist
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:") && l.contains("INDEPENDENT=YES"))
        .count();
    assert!(
        independent >= 1,
        "no part starts with a keyframe:\n{playlist}"
    );
    let hint = preload_hint(&playlist);
    // Every listed part is there to fetch, from the writer's memory: none is in the store.
    let edges = server.state.broadcaster.live_edges();
    for uri in part_uris(&playlist) {
        let part = get_ok(&http, &format!("{base}/hls/demo/{uri}")).await;
        assert!(part.is_some_and(|b| b.len() > 8), "part {uri} missing");
        let stored = server
            .state
            .storage
            .get_bytes(&format!("hls/demo/{uri}"))
            .await
            .unwrap();
        assert!(stored.is_none(), "part {uri} was written to the store");
    }
    // A byte range of a part, as of any object (the newest part: listed for seconds more).
    let uris = part_uris(&playlist);
    let first = uris.last().unwrap();
    let whole = get_ok(&http, &format!("{base}/hls/demo/{first}")).await;
    let ranged = http
        .get(format!("{base}/hls/demo/{first}"))
        .header("Range", "bytes=2-9")
        .send()
        .await
        .unwrap();
    let whole = whole.expect("the newest part");
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap(), whole.slice(2..10));
    // The hinted part, asked for before it is cut, is held and answered once it is (RFC
    // 8216bis 4.4.5.2), not refused. A hint can go unanswered (404) only when a keyframe closed
    // its segment first; the next playlist then hints at the new segment's first part, which
    // always comes, so a few tries settle it.
    let mut answered = None;
    for _ in 0..5 {
        let now = String::from_utf8(get_ok(&http, &url).await.unwrap().to_vec()).unwrap();
        let hinted = preload_hint(&now);
        assert!(!part_uris(&now).contains(&hinted), "{now}");
        let response = http
            .get(format!("{base}/hls/demo/{hinted}"))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => {
                answered = Some((hinted, response.bytes().await.unwrap()));
                break;
            }
            404 => continue,
            other => panic!("the hinted part {hinted} got {other}"),
        }
    }
    let (hinted, body) = answered.expect("no hinted part was answered in five tries");
    assert!(body.len() > 8, "hinted part {hinted}: {} bytes", body.len());
    assert_eq!(
        get_ok(&http, &format!("{base}/hls/demo/{hinted}")).await,
        Some(body),
        "the part served while waiting is the part served after"
    );
    // The stored playlist (what a CDN pulling the bucket sees) stays plain HLS.
    let stored = server
        .state
        .storage
        .get_bytes("hls/demo/live.m3u8")
        .await
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains("#EXT-X-PART"));

    // Blocking reload for the hinted part: the answer lists it.
    let sequence: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .unwrap()
        .parse()
        .unwrap();
    let last_msn = sequence + playlist.matches("#EXTINF").count() as u64 - 1;
    let building_parts = playlist
        .rsplit("#EXTINF")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("#EXT-X-PART:"))
        .count();
    assert!(!part_uris(&playlist).contains(&hint));
    let blocked = http
        .get(format!(
            "{url}?_HLS_msn={}&_HLS_part={building_parts}",
            last_msn + 1
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), 200);
    let answer = blocked.text().await.unwrap();
    assert!(
        part_uris(&answer).contains(&hint),
        "the blocking answer does not list the part it waited for ({hint}):\n{answer}"
    );
    // Asking more than two segments ahead is refused at once.
    let far = http
        .get(format!("{url}?_HLS_msn={}", last_msn + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(far.status(), 400);
    let bad = http.get(format!("{url}?_HLS_part=1")).send().await.unwrap();
    assert_eq!(bad.status(), 400);

    // A complete segment's parts hold exactly its samples: pick one listed with its parts.
    let (segment_uri, parts) = {
        let mut current = Vec::new();
        let mut found = None;
        for line in answer.lines() {
            if line.starts_with("#EXT-X-PART:") {
                current.push(attr(line, "URI").unwrap().to_string());
            } else if !line.starts_with('#') && !line.is_empty() {
                if current.len() >= 2 && current[0].ends_with(".0.m4s") {
                    found = Some((line.to_string(), current.clone()));
                }
                current.clear();
            }
        }
        found.expect("a complete segment with its parts listed")
    };
    let session = segment_uri.split('/').next().unwrap();
    let init = get_ok(&http, &format!("{base}/hls/demo/{session}/init.mp4"))
        .await
        .unwrap();
    let segment = get_ok(&http, &format!("{base}/hls/demo/{segment_uri}"))
        .await
        .unwrap();
    let mut joined = init.to_vec();
    for uri in &parts {
        joined.extend_from_slice(
            &get_ok(&http, &format!("{base}/hls/demo/{uri}"))
                .await
                .unwrap(),
        );
    }
    let mut whole = init.to_vec();
    whole.extend_from_slice(&segment);
    let from_parts = packets(dir.path(), "parts.mp4", &joined);
    let from_segment = packets(dir.path(), "segment.mp4", &whole);
    assert!(from_segment.len() > 30, "{from_segment:?}");
    assert_eq!(
        from_parts, from_segment,
        "parts of {segment_uri}: {parts:?}"
    );

    let (ok, stderr) =
        tokio::task::spawn_blocking(move || wait_child(pusher, Duration::from_secs(40)))
            .await
            .unwrap();
    assert!(ok, "ffmpeg push failed: {stderr}");
    // Ended: the stored playlist (with ENDLIST) is served, no LL-HLS lines.
    let ended = poll(Duration::from_secs(20), "the ended live playlist", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let text = String::from_utf8(get_ok(&http, &url).await?.to_vec()).ok()?;
            text.contains("#EXT-X-ENDLIST").then_some(text)
        }
    })
    .await;
    assert!(!ended.contains("#EXT-X-PART"), "{ended}");
    let vod = String::from_utf8(
        get_ok(&http, &format!("{base}/hls/demo/{session}/index.m3u8"))
            .await
            .unwrap_or_default()
            .to_vec(),
    )
    .unwrap();
    assert!(!vod.contains(".0.m4s"), "the VOD lists parts:\n{vod}");
    // The ended session's parts are no longer held.
    poll(Duration::from_secs(20), "the parts dropped", || {
        let edges = edges.clone();
        async move { (edges.part_bytes() == 0).then_some(()) }
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_part_ms_zero_the_live_playlist_is_plain_hls() {
    require_tool("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.hls.part_ms = 0;
    let server = barrage::app::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let key = server.state.secrets.stream_keys["demo"].clone();
    let pusher = push_generated(&format!("rtmp://{}/live/{key}", server.rtmp_addr), 7);
    let url = format!("{base}/hls/demo/live.m3u8");
    let playlist = poll(Duration::from_secs(30), "two segments listed", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let text = String::from_utf8(get_ok(&http, &url).await?.to_vec()).ok()?;
            (text.matches("#EXTINF").count() >= 2).then_some(text)
        }
    })
    .await;
    for tag in [
        "#EXT-X-PART",
        "#EXT-X-SERVER-CONTROL",
        "#EXT-X-PRELOAD-HINT",
    ] {
        assert!(!playlist.contains(tag), "{tag} in:\n{playlist}");
    }
    let listing = server.state.storage.list("hls/demo/").await.unwrap();
    assert!(
        !listing.iter().any(|k| k.ends_with(".0.m4s")),
        "parts stored with LL-HLS off: {listing:?}"
    );
    let (ok, stderr) =
        tokio::task::spawn_blocking(move || wait_child(pusher, Duration::from_secs(40)))
            .await
            .unwrap();
    assert!(ok, "ffmpeg push failed: {stderr}");
    server.stop().await;
}
