//! OBS's auto-reconnect as a user sees it: ffmpeg pushes, drops, and pushes again 2 s later
//! with the room's key. With the default `rtmp.reconnect_grace_s` that is one broadcast: one
//! live playlist whose media sequence keeps growing, one discontinuity at the join, no ENDLIST
//! in between, one session and one VOD covering both pushes.

mod common;

use std::time::Duration;

use barrage::config::Config;
use barrage::testutil::test_config;
use common::*;
use hls_m3u8::MediaPlaylist;

fn parse(body: &[u8]) -> MediaPlaylist<'static> {
    MediaPlaylist::try_from(std::str::from_utf8(body).unwrap())
        .unwrap()
        .into_owned()
}

/// Posts a system message to the room (admin API).
async fn system(http: &reqwest::Client, base: &str, text: &str) {
    let r = http
        .post(format!("{base}/api/rooms/demo/system"))
        .bearer_auth(barrage::testutil::TEST_ADMIN_KEY)
        .json(&serde_json::json!({ "text": text }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// Every event in the danmaku files of `session`, in file order (files 1..=latest).
async fn danmaku_events(
    http: &reqwest::Client,
    base: &str,
    session: &str,
) -> (u64, Vec<serde_json::Value>) {
    let index: serde_json::Value = serde_json::from_slice(
        &get_ok(http, &format!("{base}/danmaku/demo/index.json"))
            .await
            .expect("danmaku index"),
    )
    .unwrap();
    assert_eq!(index["session"], session, "{index}");
    let latest = index["latest"].as_u64().unwrap();
    let mut events = Vec::new();
    let mut next_seq = None;
    for n in 1..=latest {
        let body = get_ok(http, &format!("{base}/danmaku/demo/{session}/{n}.json"))
            .await
            .unwrap_or_else(|| panic!("danmaku file {n} of {latest}"));
        let file: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let from = file["from_seq"].as_u64().unwrap();
        if let Some(expected) = next_seq {
            assert_eq!(from, expected, "file {n} continues the seqs");
        }
        next_seq = Some(file["to_seq"].as_u64().unwrap() + 1);
        events.extend(file["events"].as_array().unwrap().iter().cloned());
    }
    (latest, events)
}

/// (media sequence, segment URIs, ENDLIST) of the room's live playlist now.
async fn live_now(http: &reqwest::Client, base: &str) -> Option<(usize, Vec<String>, bool)> {
    let body = get_ok(http, &format!("{base}/hls/demo/live.m3u8")).await?;
    let p = parse(&body);
    let uris = p.segments.values().map(|s| s.uri().to_string()).collect();
    Some((p.media_sequence, uris, p.has_end_list))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_a_drop_and_a_second_push_are_one_broadcast() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // What a user gets: the default grace.
    let default_grace = Config::from_toml_str("").unwrap().rtmp.reconnect_grace_s;
    assert_eq!(default_grace, 10);
    config.rtmp.reconnect_grace_s = default_grace;
    let server = barrage::app::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let key = server.state.secrets.stream_keys["demo"].clone();
    let url = format!("rtmp://{}/live/{key}", server.rtmp_addr);
    let http = reqwest::Client::new();

    let first = push_generated(&url, 8);
    poll(Duration::from_secs(20), "the first push live", || async {
        server
            .state
            .live
            .get("demo")
            .filter(|l| l.first_frame_ms.is_some())
    })
    .await;
    system(&http, &base, "during the first push").await;
    let (ok, stderr) =
        tokio::task::spawn_blocking(move || wait_child(first, Duration::from_secs(60)))
            .await
            .unwrap();
    assert!(ok, "first push failed: {stderr}");
    // The publisher is gone; the broadcast waits for it.
    let waiting = poll(Duration::from_secs(20), "the broadcast waiting", || async {
        server.state.live.get("demo").filter(|l| l.reconnecting)
    })
    .await;
    let session = waiting.session.clone();
    let (seq_before, uris_before, ended) = live_now(&http, &base).await.unwrap();
    assert!(!ended, "no ENDLIST while the broadcast waits");
    assert!(uris_before
        .iter()
        .all(|u| u.starts_with(&format!("{session}/"))));
    let room = fetch_json(&http, &format!("{base}/api/rooms/demo"))
        .await
        .unwrap();
    assert_eq!(room["live"]["session"], session.as_str());
    assert_eq!(room["live"]["reconnecting"], true);

    // The drop lasts 2 s, then the same key pushes again; the playlist never ends meanwhile.
    let drop_ends = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < drop_ends {
        let (_, _, ended) = live_now(&http, &base).await.unwrap();
        assert!(!ended, "ENDLIST during the grace");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let second = push_generated(&url, 8);
    let mut snapshots = vec![(seq_before, uris_before)];
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let resumed = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the second push's segments"
        );
        let (seq, uris, ended) = live_now(&http, &base).await.unwrap();
        assert!(!ended, "ENDLIST while the second push is live");
        // Segments past the last one of the first push are listed.
        let grew = seq + uris.len() > snapshots[0].0 + snapshots[0].1.len();
        snapshots.push((seq, uris));
        match server.state.live.get("demo") {
            Some(live) if grew && live.reconnects == 1 && !live.reconnecting => break live,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    assert_eq!(resumed.session, session, "the same session goes on");
    system(&http, &base, "during the second push").await;
    let (ok, stderr) =
        tokio::task::spawn_blocking(move || wait_child(second, Duration::from_secs(60)))
            .await
            .unwrap();
    assert!(ok, "second push failed: {stderr}");

    // The media sequence only grows, and every URI is the same session's.
    for pair in snapshots.windows(2) {
        assert!(pair[1].0 >= pair[0].0, "media sequence went back: {pair:?}");
    }
    assert!(snapshots
        .iter()
        .flat_map(|(_, uris)| uris)
        .all(|u| u.starts_with(&format!("{session}/"))));

    // After the grace with nobody publishing: one VOD with both pushes.
    let vod_url = format!("{base}/hls/demo/{session}/index.m3u8");
    let vod = poll(Duration::from_secs(40), "the VOD ended", || {
        let (http, vod_url) = (http.clone(), vod_url.clone());
        async move {
            let p = parse(&get_ok(&http, &vod_url).await?);
            p.has_end_list.then_some(p)
        }
    })
    .await;
    let text = get_ok(&http, &vod_url).await.unwrap();
    let text = std::str::from_utf8(&text).unwrap();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    assert!(
        text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-2.mp4\""),
        "{text}"
    );
    // The media of both pushes (8 + 8 s), and the time nobody published listed as EXT-X-GAP
    // entries between them: at least the 2 s drop.
    let is_gap = |s: &hls_m3u8::MediaSegment| s.uri().ends_with("gap.m4s");
    let seconds = |s: &hls_m3u8::MediaSegment| s.duration.duration().as_secs_f64();
    let media: f64 = vod
        .segments
        .values()
        .filter(|s| !is_gap(s))
        .map(seconds)
        .sum();
    assert!(
        (media - 16.0).abs() < 1.0,
        "the VOD's media lasts {media} s, the pushes 8 + 8 s"
    );
    let away: f64 = vod
        .segments
        .values()
        .filter(|s| is_gap(s))
        .map(seconds)
        .sum();
    assert!(away >= 2.0, "the drop is on the timeline: {away} s\n{text}");
    assert_eq!(
        text.matches("#EXT-X-GAP\n").count(),
        vod.segments.values().filter(|s| is_gap(s)).count()
    );
    let live = parse(
        &get_ok(&http, &format!("{base}/hls/demo/live.m3u8"))
            .await
            .unwrap(),
    );
    assert!(live.has_end_list);

    // The playlist timeline and the wall clock agree: the second part starts where the first
    // part plus the time away puts it.
    let part2 = vod
        .segments
        .values()
        .position(|s| s.has_discontinuity)
        .expect("a discontinuity");
    let before_ms: i64 = vod
        .segments
        .values()
        .take(part2)
        .map(|s| s.duration.duration().as_millis() as i64)
        .sum();
    let pdt = |i: usize| {
        vod.segments
            .values()
            .nth(i)
            .and_then(|s| s.program_date_time.as_ref())
            .map(|p| p.date_time)
            .unwrap()
    };
    let wall_ms = (pdt(part2) - pdt(0)).num_milliseconds();
    assert!(
        (wall_ms - before_ms).abs() <= 5,
        "part 2 at {wall_ms} ms by the clock, {before_ms} ms on the playlist"
    );

    // The danmaku session is the broadcast's through the join: contiguous files and seqs,
    // stream time counting on through the drop.
    let (_, events) = poll(Duration::from_secs(20), "both messages in files", || {
        let (http, base, session) = (http.clone(), base.clone(), session.clone());
        async move {
            let (latest, events) = danmaku_events(&http, &base, &session).await;
            (events.len() >= 2).then_some((latest, events))
        }
    })
    .await;
    let stream_ms = |text: &str| {
        events
            .iter()
            .find(|e| e["system"]["text"] == text)
            .and_then(|e| e["stream_ms"].as_u64())
            .unwrap_or_else(|| panic!("{text} in {events:?}"))
    };
    let before = stream_ms("during the first push");
    let after = stream_ms("during the second push");
    assert!(after >= before + 2_000, "stream_ms {before} then {after}");

    // One session for replay, ended, with its VOD.
    let sessions = fetch_json(&http, &format!("{base}/api/rooms/demo/sessions"))
        .await
        .unwrap();
    let list = sessions["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{sessions}");
    assert_eq!(list[0]["session"], session.as_str());
    poll(Duration::from_secs(10), "session recorded as ended", || {
        let http = http.clone();
        let base = base.clone();
        async move {
            let s = fetch_json(&http, &format!("{base}/api/rooms/demo/sessions")).await?;
            s["sessions"][0]["ended_ms"].is_i64().then_some(())
        }
    })
    .await;
    // The finished broadcast's danmaku in one file, both pushes' messages in it.
    let url = poll(
        Duration::from_secs(20),
        "the session's danmaku file",
        || {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let s = fetch_json(&http, &format!("{base}/api/rooms/demo/sessions")).await?;
                s["sessions"][0]["danmaku_url"].as_str().map(str::to_string)
            }
        },
    )
    .await;
    let all: serde_json::Value =
        serde_json::from_slice(&get_ok(&http, &url).await.expect("all.json")).unwrap();
    let texts: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["system"]["text"].as_str())
        .collect();
    assert_eq!(texts, ["during the first push", "during the second push"]);
    server.stop().await;
}
