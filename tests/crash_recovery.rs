//! A node killed with SIGKILL mid-push finishes the interrupted broadcast at its next start:
//! the real `barrage serve` binary runs as a child process, ffmpeg pushes into it, the node is
//! killed, then started again on the same data folder. A node stopped with SIGTERM loses
//! nothing: the last queued system message is in its last danmaku file and the VOD ends.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use barrage::testutil::{free_port, TEST_ADMIN_KEY, TEST_TOKEN_SECRET};
use common::*;
use hls_m3u8::MediaPlaylist;

const STREAM_KEY: &str = "live_crash_recovery_test_key";

/// One `barrage serve` process with its ports, log file and data folder.
struct Node {
    child: Child,
    http: String,
    rtmp: String,
    log: PathBuf,
}

/// Writes the node's config (fixed ports, the demo room's key, then `extra` TOML) and starts
/// the binary.
fn start_node(dir: &Path, http_port: u16, rtmp_port: u16, run: u32, extra: &str) -> Node {
    let config = dir.join("barrage.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n\
             [http]\nlisten = \"127.0.0.1:{http_port}\"\n\
             [rtmp]\nlisten = \"127.0.0.1:{rtmp_port}\"\n\
             [auth]\nadmin_key = {TEST_ADMIN_KEY:?}\ntoken_secret = {TEST_TOKEN_SECRET:?}\n\
             [[rooms]]\nid = \"demo\"\ntitle = \"Demo\"\nstream_key = {STREAM_KEY:?}\n{extra}",
            data = dir.join("data").display().to_string(),
        ),
    )
    .unwrap();
    let log = dir.join(format!("run{run}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_barrage"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start barrage serve");
    Node {
        child,
        http: format!("http://127.0.0.1:{http_port}"),
        rtmp: format!("rtmp://127.0.0.1:{rtmp_port}/live/{STREAM_KEY}"),
        log,
    }
}

async fn until_healthy(http: &reqwest::Client, node: &Node) {
    poll(
        Duration::from_secs(60),
        "barrage answering /healthz",
        || {
            let url = format!("{}/healthz", node.http);
            let http = http.clone();
            async move { get_ok(&http, &url).await.map(|_| ()) }
        },
    )
    .await;
}

fn parse(body: &[u8]) -> MediaPlaylist<'static> {
    MediaPlaylist::try_from(std::str::from_utf8(body).unwrap())
        .unwrap()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_push_finishes_the_vod_at_its_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let (http_port, rtmp_port) = (free_port(), free_port());
    let http = reqwest::Client::new();
    let mut node = start_node(dir.path(), http_port, rtmp_port, 1, "");
    until_healthy(&http, &node).await;

    let mut pusher = push_generated(&node.rtmp, 60);
    // Live, with a few segments listed.
    let (session, listed) = poll(Duration::from_secs(40), "three segments live", || {
        let (http, base) = (http.clone(), node.http.clone());
        async move {
            let room = fetch_json(&http, &format!("{base}/api/rooms/demo")).await?;
            let session = room["live"]["session"].as_str()?.to_string();
            let body = get_ok(&http, &format!("{base}/hls/demo/{session}/index.m3u8")).await?;
            let n = parse(&body).segments.num_elements();
            (n >= 3).then_some((session, n))
        }
    })
    .await;

    // SIGKILL: no shutdown, nothing finalised.
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    let _ = pusher.kill();
    let _ = pusher.wait();
    let files = dir.path().join("data/hls/demo").join(&session);
    let left = std::fs::read_to_string(files.join("index.m3u8")).unwrap();
    assert!(
        !left.contains("#EXT-X-ENDLIST"),
        "the crash left an EVENT playlist: {left}"
    );
    assert!(left.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{left}");

    // The same node starts again on the same data folder.
    let mut node = start_node(dir.path(), http_port, rtmp_port, 2, "");
    until_healthy(&http, &node).await;
    let sessions = fetch_json(&http, &format!("{}/api/rooms/demo/sessions", node.http))
        .await
        .unwrap();
    let row = &sessions["sessions"][0];
    assert_eq!(row["session"], session.as_str(), "{sessions}");
    assert!(row["ended_ms"].is_i64(), "{sessions}");
    assert_eq!(row["live"], false);
    let vod_key = format!("hls/demo/{session}/index.m3u8");
    assert_eq!(row["vod_key"], vod_key.as_str(), "{sessions}");

    let vod = get_ok(&http, &format!("{}/{vod_key}", node.http))
        .await
        .expect("the VOD");
    let text = std::str::from_utf8(&vod).unwrap().to_string();
    let vod = parse(&vod);
    assert!(vod.has_end_list, "{text}");
    assert_eq!(
        vod.playlist_type,
        Some(hls_m3u8::types::PlaylistType::Vod),
        "{text}"
    );
    assert!(vod.segments.num_elements() >= listed, "{text}");
    // Every segment listed is there, and the whole plays: init + segments -> ffprobe.
    let mut whole = get_ok(&http, &format!("{}/hls/demo/{session}/init.mp4", node.http))
        .await
        .unwrap()
        .to_vec();
    for seg in vod.segments.values() {
        let url = format!("{}/hls/demo/{session}/{}", node.http, seg.uri());
        whole.extend_from_slice(&get_ok(&http, &url).await.expect("a listed segment"));
    }
    let file = dir.path().join("recovered.mp4");
    std::fs::write(&file, &whole).unwrap();
    let probe = ffprobe(&file);
    let probed: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let listed_s = vod.duration().as_secs_f64();
    assert!(
        (probed - listed_s).abs() < 0.5,
        "probed {probed} s, listed {listed_s} s"
    );

    // The room's live playlist ends, and the log says what was recovered.
    let live = parse(
        &get_ok(&http, &format!("{}/hls/demo/live.m3u8", node.http))
            .await
            .unwrap(),
    );
    assert!(live.has_end_list);
    let log = std::fs::read_to_string(&node.log).unwrap();
    assert!(
        log.contains("recovered a broadcast interrupted by an earlier stop")
            && log.contains(&session),
        "{log}"
    );
    // The danmaku the broadcast had are joined into one file, and the index no longer says live.
    let danmaku_key = format!("danmaku/demo/{session}/all.json");
    assert_eq!(row["danmaku_key"], danmaku_key.as_str(), "{sessions}");
    let all: serde_json::Value = serde_json::from_slice(
        &get_ok(&http, &format!("{}/{danmaku_key}", node.http))
            .await
            .expect("the session's danmaku file"),
    )
    .unwrap();
    assert_eq!(all["session"], session.as_str());
    assert!(all["files"].as_u64().unwrap() >= 1, "{all}");
    let index: serde_json::Value = serde_json::from_slice(
        &get_ok(&http, &format!("{}/danmaku/demo/index.json", node.http))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(index["live"], false, "{index}");
    assert_eq!(index["active"], false, "{index}");

    // A clean stop this time.
    unsafe { libc::kill(node.child.id() as i32, libc::SIGTERM) };
    let stopped = tokio::task::spawn_blocking(move || node.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(stopped.success());
}

/// Before: on SIGTERM the room task exited without a final tick (a queued system message,
/// promised never to be dropped, was lost) and the danmaku writer could stop with batches in
/// its queue. With ticks 10 s apart, a system message posted during a push and SIGTERM right
/// after can only be delivered by the final tick: it is in the session's last danmaku file, and
/// the VOD playlist has ENDLIST, all within `shutdown_grace_s`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_a_system_message_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (http_port, rtmp_port) = (free_port(), free_port());
    let http = reqwest::Client::new();
    let mut node = start_node(
        dir.path(),
        http_port,
        rtmp_port,
        1,
        "[chat]\ntick_ms = 10000\n",
    );
    until_healthy(&http, &node).await;
    let mut pusher = push_generated(&node.rtmp, 60);
    let session = poll(Duration::from_secs(40), "a segment live", || {
        let (http, base) = (http.clone(), node.http.clone());
        async move {
            let room = fetch_json(&http, &format!("{base}/api/rooms/demo")).await?;
            let session = room["live"]["session"].as_str()?.to_string();
            let body = get_ok(&http, &format!("{base}/hls/demo/{session}/index.m3u8")).await?;
            (parse(&body).segments.num_elements() >= 1).then_some(session)
        }
    })
    .await;
    let post_system = |text: &'static str| {
        let (http, base) = (http.clone(), node.http.clone());
        async move {
            let resp = http
                .post(format!("{base}/api/rooms/demo/system"))
                .bearer_auth(TEST_ADMIN_KEY)
                .json(&serde_json::json!({ "text": text }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 202);
        }
    };
    // The room's ticking starts with a first message (its first tick is at once); once that
    // is in a danmaku file, the next tick is up to 10 s away.
    post_system("warming up").await;
    poll(
        Duration::from_secs(20),
        "the first message in a file",
        || {
            let (http, base) = (http.clone(), node.http.clone());
            async move {
                let index = fetch_json(&http, &format!("{base}/danmaku/demo/index.json")).await?;
                (index["latest"].as_u64()? >= 1).then_some(())
            }
        },
    )
    .await;
    let text = "the last word before SIGTERM";
    post_system(text).await;
    unsafe { libc::kill(node.child.id() as i32, libc::SIGTERM) };
    let stopped = tokio::task::spawn_blocking(move || wait_child_exit(&mut node.child))
        .await
        .unwrap();
    assert!(stopped, "barrage exits on SIGTERM");
    let _ = pusher.kill();
    let _ = pusher.wait();

    let vod = std::fs::read_to_string(
        dir.path()
            .join(format!("data/hls/demo/{session}/index.m3u8")),
    )
    .unwrap();
    assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
    let files = dir.path().join(format!("data/danmaku/demo/{session}"));
    let last = std::fs::read_dir(&files)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json")?.parse::<u64>().ok()
        })
        .max()
        .expect("danmaku files of the session");
    let last_file = std::fs::read_to_string(files.join(format!("{last}.json"))).unwrap();
    assert!(
        last_file.contains(text),
        "in the last file {last}.json: {last_file}"
    );
    let log = std::fs::read_to_string(&node.log).unwrap();
    assert!(!log.contains("shutdown grace ran out"), "{log}");
}

/// Waits for the child to exit (at most 60 s, far above `shutdown_grace_s`); whether it did
/// with success.
fn wait_child_exit(child: &mut Child) -> bool {
    for _ in 0..600 {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    false
}
