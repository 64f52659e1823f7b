//! Fault drills with real peers: ffmpeg pushes RTMP, a real S3-protocol server (s3s-fs) is the
//! store, danmaku go through the chat engine to the CDN files. Each drill breaks one peer the
//! way an operator would meet it and asserts that nothing accepted is lost. Deadlines only
//! bound how long a condition may take to come true; no assertion reads a clock. Each drill
//! prints a `DRILL` line with its figures (docs/RELIABILITY.md's table comes from them).

mod chat_common;
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// What a session's VOD holds, read back over HTTP.
struct VodFigures {
    /// Segment numbers listed (gaps left out).
    numbers: Vec<u64>,
    /// Numbers missing between the first and the last listed.
    missing: Vec<u64>,
    /// Entries listed as EXT-X-GAP (dropped segments).
    gaps: usize,
    discontinuities: usize,
    /// Sum of the listed durations (gaps included).
    seconds: f64,
    /// What ffprobe reads from init + every listed segment.
    probed: f64,
    /// Listed segments that could not be fetched.
    unfetchable: usize,
}

impl std::fmt::Display for VodFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "vod_segments={} lost_segments={:?} gaps={} discontinuities={} vod_s={:.1} probed_s={:.1} unfetchable={}",
            self.numbers.len(),
            self.missing,
            self.gaps,
            self.discontinuities,
            self.seconds,
            self.probed,
            self.unfetchable
        )
    }
}

impl VodFigures {
    /// Every segment of a `push_s` push is listed, stored and plays.
    fn assert_complete(&self, push_s: u32) {
        assert!(self.missing.is_empty(), "VOD misses segments: {self}");
        assert_eq!(
            self.numbers.first(),
            Some(&1),
            "the VOD starts with segment 1: {self}"
        );
        assert_eq!(
            self.gaps + self.discontinuities,
            0,
            "nothing dropped: {self}"
        );
        assert_eq!(
            self.unfetchable, 0,
            "every listed segment is stored: {self}"
        );
        let push = f64::from(push_s);
        assert!((self.seconds - push).abs() < 1.0, "listed: {self}");
        assert!((self.probed - push).abs() < 1.0, "probed: {self}");
    }
}

/// Waits for the session's VOD (ENDLIST), then fetches init + every listed segment and
/// probes the whole.
async fn read_vod(s: &TestServer, session: &str, scratch: &std::path::Path) -> VodFigures {
    let vod_url = format!("{}/hls/demo/{session}/index.m3u8", s.http);
    let vod = poll(
        Duration::from_secs(90),
        "VOD playlist with ENDLIST",
        || async {
            let p = parse_playlist(&get_ok(&s.api, &vod_url).await?);
            p.has_end_list.then_some(p)
        },
    )
    .await;
    let mut whole = get_ok(&s.api, &format!("{}/hls/demo/{session}/init.mp4", s.http))
        .await
        .expect("init segment")
        .to_vec();
    let mut numbers = Vec::new();
    let (mut gaps, mut discontinuities, mut seconds, mut unfetchable) = (0, 0, 0.0, 0);
    for (_, seg) in vod.segments.iter() {
        seconds += seg.duration.duration().as_secs_f64();
        discontinuities += usize::from(seg.has_discontinuity);
        if seg.uri().ends_with(barrage::hls::playlist::GAP_FILE) {
            gaps += 1;
            continue;
        }
        numbers.push(segment_number(seg.uri()));
        let url = format!("{}/hls/demo/{session}/{}", s.http, seg.uri());
        match get_ok(&s.api, &url).await {
            Some(body) => whole.extend_from_slice(&body),
            None => unfetchable += 1,
        }
    }
    let file = scratch.join(format!("{session}.mp4"));
    std::fs::write(&file, &whole).unwrap();
    let probed = ffprobe(&file)["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    let missing = match (numbers.first(), numbers.last()) {
        (Some(&a), Some(&b)) => (a..=b).filter(|n| !numbers.contains(n)).collect(),
        _ => Vec::new(),
    };
    VodFigures {
        numbers,
        missing,
        gaps,
        discontinuities,
        seconds,
        probed,
        unfetchable,
    }
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

    let vod = read_vod(&s, &session, dir.path()).await;
    let (texts, contiguous) = danmaku_texts(&s).await;
    let danmaku_lost = sent.iter().filter(|t| !texts.contains(t)).count();
    println!(
        "DRILL store_outage outage_s={} {vod} recovery_s={:.1} danmaku_sent={} danmaku_lost={danmaku_lost}",
        OUTAGE.as_secs(),
        recovery.as_secs_f64(),
        sent.len(),
    );
    vod.assert_complete(PUSH_S);
    assert_eq!(danmaku_lost, 0, "every accepted message is in the files");
    assert!(contiguous, "danmaku files hold contiguous seqs");
    s.stop().await;
}

/// Starts ffmpeg pushing `seconds` to the demo room and waits until two segments are stored;
/// returns the pusher and the session.
async fn push_until_live(s: &TestServer, seconds: u32) -> (std::process::Child, String) {
    let key = s.server.state.secrets.stream_keys["demo"].clone();
    let pusher = push_generated(
        &format!("rtmp://{}/live/{key}", s.server.rtmp_addr),
        seconds,
    );
    poll(Duration::from_secs(30), "two stored segments", || async {
        (stored_segments(s) >= 2).then_some(())
    })
    .await;
    let session = s.server.state.live.get("demo").expect("live").session;
    (pusher, session)
}

/// Waits for ffmpeg to finish its push (it must succeed).
async fn push_done(pusher: std::process::Child) {
    let (ok, stderr) =
        tokio::task::spawn_blocking(move || wait_child(pusher, Duration::from_secs(120)))
            .await
            .unwrap();
    assert!(ok, "ffmpeg push failed: {stderr}");
}

/// A metric's value summed over its label sets (0 when absent).
async fn metric(s: &TestServer, name: &str) -> f64 {
    let text = common::metrics_text(&s.api, &s.http).await;
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A TCP proxy in front of the S3 server that, while `slow` is set, holds every request for
/// `delay` before passing it on (a request: the first bytes from the client on a connection,
/// or after the server answered): a store that answers, seconds late.
async fn slow_proxy(upstream: u16, slow: Arc<AtomicBool>, delay: Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let slow = slow.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                // Set when the server sent bytes: the client's next bytes are a new request.
                let answered = Arc::new(AtomicBool::new(true));
                let answered_too = answered.clone();
                let requests = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match client_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if answered.swap(false, Ordering::SeqCst) && slow.load(Ordering::SeqCst) {
                            tokio::time::sleep(delay).await;
                        }
                        if server_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = server_write.shutdown().await;
                };
                let answers = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        answered_too.store(true, Ordering::SeqCst);
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = client_write.shutdown().await;
                };
                tokio::join!(requests, answers);
            });
        }
    });
    port
}

/// The store answers 2 s late for 20 s of a 30 s push: the writer falls behind and catches up;
/// the VOD must still list every segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_delays_segments_but_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(&dir.path().join("s3"));
    let slow = Arc::new(AtomicBool::new(false));
    let proxy = slow_proxy(s3.port, slow.clone(), Duration::from_secs(2)).await;
    let s = chat_common::start(|c| {
        s3.configure(c, "drill");
        c.storage.endpoint = format!("http://127.0.0.1:{proxy}");
        c.storage.request_timeout_s = 10;
    })
    .await;
    let pushed = Instant::now();
    let (pusher, session) = push_until_live(&s, PUSH_S).await;
    slow.store(true, Ordering::SeqCst);
    let slow_began = Instant::now();
    let stored_then = stored_segments(&s);
    while slow_began.elapsed() < Duration::from_secs(20) {
        // The service stays up meanwhile.
        assert!(get_ok(&s.api, &format!("{}/healthz", s.http))
            .await
            .is_some());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stored_while_slow = stored_segments(&s) - stored_then;
    slow.store(false, Ordering::SeqCst);
    push_done(pusher).await;
    let push_wall = pushed.elapsed();
    let vod = read_vod(&s, &session, dir.path()).await;
    println!(
        "DRILL slow_store put_delay_s=2 slow_s=20 {vod} stored_while_slow={stored_while_slow} \
         push_wall_s={:.1} of {PUSH_S} spool_outages={}",
        push_wall.as_secs_f64(),
        metric(&s, "barrage_spool_outages_total").await,
    );
    vod.assert_complete(PUSH_S);
    s.stop().await;
}

/// Free bytes on the filesystem holding `path`.
fn free_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a pointer to a local struct.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs {}", path.display());
    st.f_bavail as u64 * st.f_frsize as u64
}

/// A small tmpfs mounted for a test, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// Mounts a tmpfs of `kib` KiB at `path` (needs root or CAP_SYS_ADMIN, as the test
    /// machines run scripts/test.sh; the test fails with that said otherwise).
    fn mount(path: &std::path::Path, kib: u64) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "the disk-full drill mounts a small tmpfs: run it as root (or with CAP_SYS_ADMIN)"
        );
        SmallDisk(path.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// The local store's disk fills up during a push (a real small filesystem: writes fail with
/// ENOSPC), stays full for 8 s, then space returns (a ballast file is removed, as an operator
/// would clear space): the service stays up, the outage is counted, and the VOD is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_store_delays_segments_but_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let disk = SmallDisk::mount(&store, 4096);
    // Ballast leaves room for a few seconds of media (the push writes ~60 KB per second).
    let ballast = store.join("ballast");
    let room_left = 400 * 1024;
    std::fs::write(
        &ballast,
        vec![0u8; (free_bytes(&store) - room_left) as usize],
    )
    .unwrap();
    let store_url = format!("file://{}", store.display());
    let s = chat_common::start(move |c| c.storage.url = store_url).await;
    let (pusher, session) = push_until_live(&s, PUSH_S).await;
    poll(Duration::from_secs(60), "the store's disk full", || async {
        (free_bytes(&store) < 64 * 1024).then_some(())
    })
    .await;
    let full_began = Instant::now();
    let stored_then = stored_segments(&s);
    while full_began.elapsed() < Duration::from_secs(8) {
        assert!(
            get_ok(&s.api, &format!("{}/healthz", s.http))
                .await
                .is_some(),
            "the service stays up with its disk full"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stored_while_full = stored_segments(&s) - stored_then;
    std::fs::remove_file(&ballast).unwrap();
    let freed = Instant::now();
    poll(
        Duration::from_secs(60),
        "a segment stored after space returned",
        || async { (stored_segments(&s) > stored_then + stored_while_full).then_some(()) },
    )
    .await;
    let recovery = freed.elapsed();
    push_done(pusher).await;
    let vod = read_vod(&s, &session, dir.path()).await;
    println!(
        "DRILL disk_full full_s=8 {vod} stored_while_full={stored_while_full} recovery_s={:.1} \
         spool_outages={}",
        recovery.as_secs_f64(),
        metric(&s, "barrage_spool_outages_total").await,
    );
    vod.assert_complete(PUSH_S);
    assert!(
        metric(&s, "barrage_spool_outages_total").await >= 1.0,
        "the outage is counted"
    );
    s.stop().await;
    drop(disk);
}
