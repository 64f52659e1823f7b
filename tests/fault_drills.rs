//! Fault drills with real peers: ffmpeg pushes RTMP, a real S3-protocol server (s3s-fs) is the
//! store, danmaku go through the chat engine to the CDN files. Each drill breaks one peer the
//! way an operator would meet it and asserts that nothing accepted is lost. Deadlines only
//! bound how long a condition may take to come true; no assertion reads a clock. Each drill
//! prints a `DRILL` line with its figures (docs/RELIABILITY.md's table comes from them).

mod chat_common;
mod common;

use std::time::{Duration, Instant};

use barrage::testutil::S3Server;
use chat_common::TestServer;
use common::*;
use hls_m3u8::MediaPlaylist;

/// Seconds ffmpeg pushes in a drill.
const PUSH_S: u32 = 30;
/// How long the store is away.
const OUTAGE: Duration = Duration::from_secs(12);

fn parse_playlist(body: &[u8]) -> MediaPlaylist<'static> {
    let text = std::str::from_utf8(body).expect("utf-8 playlist");
    MediaPlaylist::try_from(text)
        .expect("valid media playlist")
        .into_owned()
}

/// The sequence number in a segment file name (`seg-000042.m4s` -> 42).
fn segment_number(uri: &str) -> u64 {
    uri.trim_end_matches(".m4s")
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no number in segment name {uri}"))
}

/// Stored segments the live registry reports for `demo` (0 when not live).
fn stored_segments(s: &TestServer) -> u64 {
    s.server.state.live.get("demo").map_or(0, |i| i.segments)
}

/// Reads every danmaku file of the room's current index; returns the events' texts in order
/// and whether their seqs are contiguous.
async fn danmaku_texts(s: &TestServer) -> (Vec<String>, bool) {
    let index = fetch_json(&s.api, &format!("{}/danmaku/demo/index.json", s.http))
        .await
        .expect("danmaku index");
    let session = index["session"].as_str().expect("index session");
    let latest = index["latest"].as_u64().expect("index latest");
    let mut texts = Vec::new();
    let mut seqs = Vec::new();
    for n in 1..=latest {
        let url = format!("{}/danmaku/demo/{session}/{n}.json", s.http);
        let file = fetch_json(&s.api, &url)
            .await
            .unwrap_or_else(|| panic!("{url} missing"));
        for e in file["events"].as_array().expect("events") {
            seqs.push(e["seq"].as_u64().expect("seq"));
            if let Some(text) = e["system"]["text"].as_str() {
                texts.push(text.to_string());
            }
        }
    }
    let contiguous = seqs.windows(2).all(|w| w[1] == w[0] + 1);
    (texts, contiguous)
}

/// The store goes away for 12 s in the middle of a 30 s push while danmaku flow: the VOD must
/// list every segment (contiguous numbers, no discontinuity, no gap, the push's whole
/// duration) and the danmaku files every accepted message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_during_a_push_loses_no_segment_and_no_danmaku() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3Server::start(&dir.path().join("s3"));
    let s = chat_common::start(|c| {
        s3.configure(c, "drill");
        c.cdn.period_ms = 500;
    })
    .await;
    let key = s.server.state.secrets.stream_keys["demo"].clone();
    let pusher = push_generated(&format!("rtmp://{}/live/{key}", s.server.rtmp_addr), PUSH_S);

    poll(Duration::from_secs(30), "two stored segments", || async {
        (stored_segments(&s) >= 2).then_some(())
    })
    .await;
    let session = s.server.state.live.get("demo").expect("live").session;
    let mut sent = Vec::new();
    let mut say = |n: usize| {
        let texts: Vec<String> = (sent.len()..sent.len() + n)
            .map(|i| format!("drill message {i}"))
            .collect();
        sent.extend(texts.iter().cloned());
        texts
    };
    for text in say(5) {
        s.system("demo", &text).await;
    }

    s3.stop();
    let outage_began = Instant::now();
    let stored_at_outage = stored_segments(&s);
    while outage_began.elapsed() < OUTAGE {
        for text in say(3) {
            s.system("demo", &text).await;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    s3.restart();
    let restarted = Instant::now();
    for text in say(5) {
        s.system("demo", &text).await;
    }
    // Recovery: the first segment listed after the store came back.
    poll(
        Duration::from_secs(60),
        "a segment stored after the outage",
        || async { (stored_segments(&s) > stored_at_outage).then_some(()) },
    )
    .await;
    let recovery = restarted.elapsed();

    let (ok, stderr) =
        tokio::task::spawn_blocking(move || wait_child(pusher, Duration::from_secs(90)))
            .await
            .unwrap();
    assert!(ok, "ffmpeg push failed: {stderr}");

    let vod_url = format!("{}/hls/demo/{session}/index.m3u8", s.http);
    let vod = poll(
        Duration::from_secs(60),
        "VOD playlist with ENDLIST",
        || async {
            let p = parse_playlist(&get_ok(&s.api, &vod_url).await?);
            p.has_end_list.then_some(p)
        },
    )
    .await;
    let numbers: Vec<u64> = vod
        .segments
        .iter()
        .map(|(_, seg)| segment_number(seg.uri()))
        .collect();
    let total: f64 = vod
        .segments
        .iter()
        .map(|(_, seg)| seg.duration.duration().as_secs_f64())
        .sum();
    let first = *numbers.first().expect("segments listed");
    let last = *numbers.last().unwrap();
    let missing: Vec<u64> = (first..=last).filter(|n| !numbers.contains(n)).collect();
    let discontinuities = vod
        .segments
        .iter()
        .filter(|(_, seg)| seg.has_discontinuity)
        .count();
    let (texts, contiguous) = danmaku_texts(&s).await;
    let danmaku_lost = sent.iter().filter(|t| !texts.contains(t)).count();
    println!(
        "DRILL store_outage outage_s={} vod_segments={} lost_segments={missing:?} \
         discontinuities={discontinuities} vod_s={total:.1} of {PUSH_S} recovery_s={:.1} \
         danmaku_sent={} danmaku_lost={danmaku_lost}",
        OUTAGE.as_secs(),
        numbers.len(),
        recovery.as_secs_f64(),
        sent.len(),
    );
    assert!(missing.is_empty(), "VOD misses segments {missing:?}");
    assert_eq!(first, 1, "the VOD starts with the first segment");
    assert_eq!(discontinuities, 0, "no discontinuity: nothing was dropped");
    assert!(
        (total - f64::from(PUSH_S)).abs() < 1.0,
        "the VOD covers {total:.1} s of {PUSH_S} s"
    );
    // Every listed segment is really there and the whole plays.
    let mut whole = get_ok(&s.api, &format!("{}/hls/demo/{session}/init.mp4", s.http))
        .await
        .expect("init segment")
        .to_vec();
    for (_, seg) in vod.segments.iter() {
        let url = format!("{}/hls/demo/{session}/{}", s.http, seg.uri());
        let body = get_ok(&s.api, &url)
            .await
            .unwrap_or_else(|| panic!("{url} listed but not stored"));
        whole.extend_from_slice(&body);
    }
    let file = dir.path().join("whole.mp4");
    std::fs::write(&file, &whole).unwrap();
    let probed: f64 = ffprobe(&file)["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("probed duration");
    assert!(
        (probed - f64::from(PUSH_S)).abs() < 1.0,
        "probed {probed} s"
    );
    assert_eq!(danmaku_lost, 0, "every accepted message is in the files");
    assert!(contiguous, "danmaku files hold contiguous seqs");
    s.stop().await;
}
