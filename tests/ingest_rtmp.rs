//! RTMP ingest with real peers: ffmpeg pushes the captured FLV, and hand-built byte sequences
//! play the hostile peers (the crate aborts from CRATE-NOTES, bad chunk framing, slow
//! handshakes, too many connections). The gate here is the consumer side: it accepts the key
//! "good", refuses others, and records every message it is given.
//!
//! Hostile payloads are kept under tests/data/hostile_*.bin (the bytes a client sends after a
//! valid handshake, or instead of one for `hostile_random_bytes.bin`) for a fuzzer's corpus;
//! the tests build them and check the files match. Regenerate with
//! `BARRAGE_WRITE_TEST_DATA=1 cargo test --test ingest_rtmp`.

mod rtmp_bytes;
use rtmp_bytes::{amf_number, amf_string, chunked, client_handshake, HANDSHAKE_SIZE};

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barrage::config::RtmpConfig;
use barrage::ingest::{
    serve, ImmediateGate, MediaMessage, Publication, PublishRefusal, PublishRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const PUSH_FILE: &str = "tests/data/ffmpeg_push_6s.flv";
/// Longest any single ffmpeg run may take (the push is 6 s at real-time speed).
const FFMPEG_LIMIT: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------------------------
// The consumer side: a gate that records.

/// Everything one accepted publish delivered, and whether its channel has closed.
#[derive(Default)]
struct Recording {
    messages: Vec<MediaMessage>,
    ended: bool,
}

/// Accepts the key "good" once at a time ("already live" while in use), refuses others.
#[derive(Default)]
struct RecorderGate {
    live: Arc<Mutex<HashSet<String>>>,
    recordings: Mutex<Vec<Arc<Mutex<Recording>>>>,
    requests: Mutex<Vec<PublishRequest>>,
}

impl ImmediateGate for RecorderGate {
    fn decide(&self, request: &PublishRequest) -> Result<Publication, PublishRefusal> {
        self.requests.lock().unwrap().push(request.clone());
        if request.stream_key != "good" {
            return Err(PublishRefusal::UnknownKey);
        }
        if !self.live.lock().unwrap().insert(request.stream_key.clone()) {
            return Err(PublishRefusal::AlreadyLive {
                room: "test".into(),
            });
        }
        let (media, mut rx) = tokio::sync::mpsc::channel(32);
        let recording = Arc::new(Mutex::new(Recording::default()));
        let mut recordings = self.recordings.lock().unwrap();
        recordings.push(recording.clone());
        let session = format!("s{}", recordings.len());
        let live = self.live.clone();
        let key = request.stream_key.clone();
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                recording.lock().unwrap().messages.extend(batch);
            }
            recording.lock().unwrap().ended = true;
            live.lock().unwrap().remove(&key);
        });
        Ok(Publication {
            room: "test".into(),
            session,
            media,
        })
    }
}

impl RecorderGate {
    fn recording(&self, i: usize) -> Option<Arc<Mutex<Recording>>> {
        self.recordings.lock().unwrap().get(i).cloned()
    }

    fn publishes(&self) -> usize {
        self.recordings.lock().unwrap().len()
    }
}

/// Tag counts by kind: what the recorder saw or what the FLV file holds.
#[derive(Debug, Default, PartialEq, Eq)]
struct TagCounts {
    video: usize,
    audio: usize,
    metadata: usize,
}

fn summarise(recording: &Recording) -> TagCounts {
    let mut counts = TagCounts::default();
    for m in &recording.messages {
        match m {
            MediaMessage::Video { .. } => counts.video += 1,
            MediaMessage::Audio { .. } => counts.audio += 1,
            MediaMessage::Metadata(_) => counts.metadata += 1,
            MediaMessage::Refused(why) => panic!("an H.264/AAC push refused: {why}"),
        }
    }
    counts
}

/// A small FLV reader: counts the file's video, audio and script tags.
fn flv_tag_counts(path: &Path) -> TagCounts {
    let data = std::fs::read(path).expect("read the FLV test file");
    assert_eq!(&data[..3], b"FLV", "not an FLV file");
    let header_len = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    let mut pos = header_len + 4; // header, then PreviousTagSize0
    let mut counts = TagCounts::default();
    while pos + 11 <= data.len() {
        let kind = data[pos] & 0x1f;
        let size = u32::from_be_bytes([0, data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        match kind {
            8 => counts.audio += 1,
            9 => counts.video += 1,
            18 => counts.metadata += 1,
            _ => {}
        }
        pos += 11 + size + 4;
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// Server and peers.

fn config(handshake_timeout_s: u64) -> RtmpConfig {
    RtmpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        app: "live".into(),
        max_connections: 64,
        max_connections_per_ip: 32,
        max_unauthenticated: 16,
        handshake_timeout_s,
        idle_timeout_s: 10,
        max_chunk_size: 65536,
        // Smaller than the 2^24-1 a hostile header claims; larger than any test frame.
        max_message_bytes: 1 << 20,
        max_chunk_streams: 16,
        gather_ms: 25,
        reconnect_grace_s: 0,
    }
}

struct TestServer {
    addr: SocketAddr,
    gate: Arc<RecorderGate>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

async fn start_server(config: RtmpConfig) -> TestServer {
    init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new(RecorderGate::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(
        listener,
        Arc::new(config),
        gate.clone(),
        shutdown.clone(),
    ));
    TestServer {
        addr,
        gate,
        shutdown,
        task,
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("barrage=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

fn require_ffmpeg() {
    let works = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        works,
        "ffmpeg is needed for the RTMP ingest tests and was not found: apt-get install ffmpeg"
    );
}

fn data_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

/// `ffmpeg -re -i <push file> -c copy -f flv rtmp://ADDR/<app>/<key>`, killed if dropped.
fn spawn_push(addr: SocketAddr, app: &str, key: &str) -> tokio::process::Child {
    require_ffmpeg();
    Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "warning",
            "-re",
            "-i",
        ])
        .arg(data_path(PUSH_FILE))
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://{addr}/{app}/{key}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start ffmpeg (apt-get install ffmpeg)")
}

/// Waits for ffmpeg to exit: (success, stderr).
async fn finish(child: tokio::process::Child) -> (bool, String) {
    let output = timeout(FFMPEG_LIMIT, child.wait_with_output())
        .await
        .expect("ffmpeg did not finish in time")
        .expect("wait for ffmpeg");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Polls `condition` every 20 ms until it holds, or panics after `limit` with `what`.
async fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks a complete recording of the 6 s push against the file.
fn assert_complete_push(recording: &Recording) {
    assert!(recording.ended, "the publication was not closed");
    let expected = flv_tag_counts(&data_path(PUSH_FILE));
    assert_eq!(
        summarise(recording),
        expected,
        "tags received vs tags in the file"
    );

    let metadata = recording.messages.iter().find_map(|m| match m {
        MediaMessage::Metadata(meta) => Some(meta.clone()),
        _ => None,
    });
    let metadata = metadata.expect("no metadata");
    assert_eq!((metadata.width, metadata.height), (Some(320), Some(180)));

    let mut avc_header = false;
    let mut aac_header = false;
    let (mut last_video, mut last_audio) = (0u32, 0u32);
    for m in &recording.messages {
        match m {
            MediaMessage::Video { timestamp, body } => {
                // Keyframe + AVC, packet type 0: AVCDecoderConfigurationRecord.
                avc_header |= body.len() > 5 && body[0] == 0x17 && body[1] == 0;
                assert!(*timestamp >= last_video, "video timestamps go back");
                last_video = *timestamp;
            }
            MediaMessage::Audio { timestamp, body } => {
                aac_header |= body.len() > 2 && body[0] >> 4 == 10 && body[1] == 0;
                assert!(*timestamp >= last_audio, "audio timestamps go back");
                last_audio = *timestamp;
            }
            MediaMessage::Metadata(_) => {}
            MediaMessage::Refused(why) => panic!("an H.264/AAC push refused: {why}"),
        }
    }
    assert!(avc_header, "no AVC sequence header");
    assert!(aac_header, "no AAC sequence header");
    assert!(
        last_video > 5000,
        "video ends at {last_video} ms, expected ~6 s"
    );
}

// ---------------------------------------------------------------------------------------------
// Raw RTMP bytes for hostile peers.

/// Connects and completes a plain handshake (C0+C1, read S0+S1+S2, C2).
async fn handshaken(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    client_handshake(&mut stream).await.expect("handshake");
    stream
}

fn set_chunk_size(size: u32) -> Vec<u8> {
    chunked(2, 1, 0, &size.to_be_bytes(), 128)
}

/// The notable hostile inputs, by file name.
fn hostile_payloads() -> Vec<(&'static str, Vec<u8>)> {
    // 1. `connect` whose strict array claims 2^32-1 values (~70 bytes): the crate passes the
    //    count to Vec::with_capacity.
    let mut huge_count = amf_string("connect");
    huge_count.extend(amf_number(1.0));
    huge_count.push(0x03);
    huge_count.extend(3u16.to_be_bytes());
    huge_count.extend(b"app");
    huge_count.push(0x0a); // strict array
    huge_count.extend(u32::MAX.to_be_bytes());
    huge_count.extend(amf_string("live"));
    huge_count.extend(b"0123456789abcdefghijklmnopqrstu");
    // 2. 20,000 nested objects: the crate recurses once per level.
    let mut nested = amf_string("connect");
    nested.extend(amf_number(1.0));
    nested.push(0x03);
    for _ in 1..20_000 {
        nested.extend([0, 0, 0x03]); // key "", value: another object
    }
    // 3. A message on chunk stream 4 in the middle of one on chunk stream 3: the crate's
    //    unpacketizer subtracts the old payload length from the new message length.
    let mut interleaved = chunked(3, 20, 0, &[0u8; 300], 128);
    interleaved.truncate(12 + 128);
    interleaved.extend(chunked(4, 20, 0, &[0u8; 10], 128));
    // 4. `play` with no stream name (after a valid connect): the crate unwraps None.
    let mut play = chunked(3, 20, 0, &rtmp_bytes::connect_body("live"), 128);
    let mut play_body = amf_string("play");
    play_body.extend(amf_number(4.0));
    play_body.push(0x05);
    play.extend(chunked(8, 20, 1, &play_body, 128));
    // A message header claiming 2^24-1 bytes (just the header).
    let mut huge_message = vec![0x06, 0, 0, 0, 0xff, 0xff, 0xff, 9];
    huge_message.extend(1u32.to_le_bytes());
    // Seventeen chunk stream ids (the limit is 16), each a WindowAckSize.
    let mut many_streams = Vec::new();
    for csid in 3..20u8 {
        many_streams.extend(chunked(csid, 5, 0, &2_500_000u32.to_be_bytes(), 128));
    }
    vec![
        (
            "hostile_amf0_huge_count.bin",
            chunked(3, 20, 0, &huge_count, 128),
        ),
        (
            "hostile_amf0_nested_20000.bin",
            chunked(3, 20, 0, &nested, 128),
        ),
        ("hostile_interleaved_chunk_streams.bin", interleaved),
        ("hostile_play_without_name.bin", play),
        ("hostile_set_chunk_size_0.bin", set_chunk_size(0)),
        ("hostile_set_chunk_size_2_31.bin", set_chunk_size(1 << 31)),
        ("hostile_message_length_2_24.bin", huge_message),
        ("hostile_too_many_chunk_streams.bin", many_streams),
        ("hostile_random_bytes.bin", pseudo_random_bytes(4096, 7)),
    ]
}

/// Deterministic noise (xorshift), so the saved file and the test agree.
fn pseudo_random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Checks (or with BARRAGE_WRITE_TEST_DATA=1 writes) the saved copy of a payload.
fn check_saved(name: &str, bytes: &[u8]) {
    let path = data_path(&format!("tests/data/{name}"));
    if std::env::var_os("BARRAGE_WRITE_TEST_DATA").is_some() {
        std::fs::write(&path, bytes).unwrap();
        return;
    }
    let saved = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate with BARRAGE_WRITE_TEST_DATA=1)",
            path.display()
        )
    });
    assert!(
        saved == bytes,
        "{} differs from what the test builds",
        path.display()
    );
}

/// Sends `payload` and reads until the server closes; returns what it sent back and when it
/// closed. Panics if it is still open after `limit`.
async fn expect_closed(
    stream: &mut TcpStream,
    payload: &[u8],
    limit: Duration,
) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    // The server may close before everything is written; that is fine.
    let _ = stream.write_all(payload).await;
    let mut received = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf)).await {
            Err(_) => panic!("connection still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, start.elapsed()),
            Ok(Ok(n)) => received.extend(&buf[..n]),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_push_arrives_complete() {
    let server = start_server(config(10)).await;
    let push = spawn_push(server.addr, "live", "good");
    let (ok, stderr) = finish(push).await;
    assert!(ok, "ffmpeg failed: {stderr}");
    let recording = server.gate.recording(0).expect("no publish was accepted");
    wait_until(Duration::from_secs(10), "the publication to close", || {
        recording.lock().unwrap().ended
    })
    .await;
    assert_complete_push(&recording.lock().unwrap());
    let request = server.gate.requests.lock().unwrap()[0].clone();
    assert_eq!(request.app, "live");
    assert_eq!(request.peer.ip(), server.addr.ip());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_ffmpeg() {
    let server = start_server(config(10)).await;

    let (ok, stderr) = finish(spawn_push(server.addr, "live", "wrong")).await;
    assert!(!ok, "ffmpeg succeeded with a wrong key");
    assert!(stderr.contains("unknown stream key"), "stderr: {stderr}");
    eprintln!("ffmpeg with a wrong key said: {}", stderr.trim());

    let (ok, stderr) = finish(spawn_push(server.addr, "other", "good")).await;
    assert!(!ok, "ffmpeg succeeded with a wrong app");
    assert!(stderr.contains("wrong application"), "stderr: {stderr}");
    eprintln!("ffmpeg with a wrong app said: {}", stderr.trim());

    // A second publisher on a live key, while the first is live.
    let first = spawn_push(server.addr, "live", "good");
    wait_until(Duration::from_secs(10), "the first publish", || {
        server.gate.publishes() == 1
    })
    .await;
    let (ok, stderr) = finish(spawn_push(server.addr, "live", "good")).await;
    assert!(!ok, "a second publisher was accepted");
    assert!(stderr.contains("already live"), "stderr: {stderr}");
    eprintln!("a second ffmpeg on a live key said: {}", stderr.trim());

    let (ok, stderr) = finish(first).await;
    assert!(ok, "the first publisher failed: {stderr}");
    let recording = server.gate.recording(0).unwrap();
    wait_until(Duration::from_secs(10), "the publication to close", || {
        recording.lock().unwrap().ended
    })
    .await;
    assert_complete_push(&recording.lock().unwrap());
    assert_eq!(server.gate.publishes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_ffmpeg_ends_the_publication() {
    let server = start_server(config(10)).await;
    let mut push = spawn_push(server.addr, "live", "good");
    wait_until(Duration::from_secs(15), "media to flow", || {
        server
            .gate
            .recording(0)
            .map(|r| summarise(&r.lock().unwrap()).video >= 20)
            .unwrap_or(false)
    })
    .await;
    push.start_kill().unwrap();
    let _ = push.wait().await;
    let recording = server.gate.recording(0).unwrap();
    // TCP close is seen at once; the idle timeout (10 s) is the upper bound.
    wait_until(Duration::from_secs(12), "the publication to close", || {
        recording.lock().unwrap().ended
    })
    .await;
    let counts = summarise(&recording.lock().unwrap());
    assert!(counts.video < flv_tag_counts(&data_path(PUSH_FILE)).video);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_are_closed_while_a_good_push_completes() {
    const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(4);
    let server = start_server(config(HANDSHAKE_TIMEOUT.as_secs())).await;
    let push = spawn_push(server.addr, "live", "good");
    wait_until(Duration::from_secs(10), "the good publish", || {
        server.gate.publishes() == 1
    })
    .await;

    let payloads = hostile_payloads();
    for (name, bytes) in &payloads {
        check_saved(name, bytes);
    }
    let addr = server.addr;
    let mut checks = Vec::new();
    for (name, bytes) in payloads {
        checks.push(tokio::spawn(async move {
            if name == "hostile_random_bytes.bin" {
                // Instead of a handshake.
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let (_, took) = expect_closed(&mut stream, &bytes, Duration::from_secs(3)).await;
                return (name, took);
            }
            let mut stream = handshaken(addr).await;
            // Protocol violations are refused as they arrive, well before the handshake
            // (setup) timeout could close the connection.
            let (answer, took) = expect_closed(
                &mut stream,
                &bytes,
                HANDSHAKE_TIMEOUT - Duration::from_secs(1),
            )
            .await;
            if name == "hostile_play_without_name.bin" {
                assert!(contains(&answer, b"NetConnection.Connect.Success"));
                assert!(
                    contains(&answer, b"NetStream.Play.Failed"),
                    "no play refusal"
                );
            }
            (name, took)
        }));
    }
    // Random bytes after a valid handshake: refused or, at worst, timed out.
    checks.push(tokio::spawn(async move {
        let mut stream = handshaken(addr).await;
        let noise = pseudo_random_bytes(8192, 11);
        let (_, took) = expect_closed(
            &mut stream,
            &noise,
            HANDSHAKE_TIMEOUT + Duration::from_secs(3),
        )
        .await;
        ("random bytes after the handshake", took)
    }));
    // A truncated handshake, then silence: closed at the handshake timeout.
    checks.push(tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut partial = vec![3u8];
        partial.extend([0u8; 100]);
        let (_, took) = expect_closed(
            &mut stream,
            &partial,
            HANDSHAKE_TIMEOUT + Duration::from_secs(3),
        )
        .await;
        assert!(
            took >= HANDSHAKE_TIMEOUT - Duration::from_millis(500),
            "closed after {took:?}, before the handshake timeout"
        );
        ("truncated handshake", took)
    }));
    for check in checks {
        let (name, took) = check.await.expect("hostile check panicked");
        eprintln!("{name}: closed by the server after {took:?}");
    }

    let (ok, stderr) = finish(push).await;
    assert!(ok, "the good push failed beside hostile peers: {stderr}");
    let recording = server.gate.recording(0).unwrap();
    wait_until(Duration::from_secs(10), "the publication to close", || {
        recording.lock().unwrap().ended
    })
    .await;
    assert_complete_push(&recording.lock().unwrap());
    // And the server still accepts.
    drop(handshaken(server.addr).await);
}

/// Connects from a given loopback address (the loopback range is ours for tests).
async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Whether the server closed this connection at once (anything it had sent is read past).
async fn closed_at_once(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    timeout(Duration::from_secs(2), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// Publishers fill the limits; unauthenticated connections only ever evict each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_close_extra_connections() {
    let mut cfg = config(10);
    cfg.max_connections = 3;
    cfg.max_connections_per_ip = 2;
    let server = start_server(cfg).await;
    let addr = server.addr;

    // A silent connection from a full address is evicted by the next one from it.
    let mut a1 = connect_from("127.0.0.1", addr).await;
    client_handshake(&mut a1)
        .await
        .expect("first connection admitted");
    let mut a2 = connect_from("127.0.0.1", addr).await;
    client_handshake(&mut a2)
        .await
        .expect("second connection admitted");
    let mut a3 = connect_from("127.0.0.1", addr).await;
    client_handshake(&mut a3)
        .await
        .expect("third connection admitted");
    assert!(
        closed_at_once(&mut a1).await,
        "the oldest silent one was evicted"
    );
    // One of them publishes: it now holds its place for good.
    assert!(
        rtmp_bytes::publish_started(&mut a2, "good").await,
        "publish accepted"
    );
    let mut b1 = connect_from("127.0.0.2", addr).await;
    client_handshake(&mut b1)
        .await
        .expect("another address admitted");
    // Full (a2 publishing, a3 and b1 silent): a new one evicts the oldest silent (a3).
    let mut c1 = connect_from("127.0.0.3", addr).await;
    client_handshake(&mut c1)
        .await
        .expect("a new connection gets in");
    assert!(closed_at_once(&mut a3).await, "a3 was evicted");
    // The publisher is never evicted.
    let mut byte = [0u8; 1];
    assert!(
        timeout(Duration::from_millis(300), a2.read(&mut byte))
            .await
            .is_err(),
        "the publisher's connection stays open"
    );
    drop((a2, b1, c1));
}

/// Before: 64 silent TCP connections from 64 loopback addresses took every place for the
/// whole handshake deadline, and ffmpeg got "Connection reset by peer". Now they share a budget
/// of 16 (`rtmp.max_unauthenticated`), the oldest evicted for each new connection, and the push
/// arrives complete while they are held open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_from_many_addresses_never_lock_a_publisher_out() {
    let server = start_server(config(60)).await;
    let mut silent = Vec::new();
    for i in 0..80u32 {
        silent.push(
            connect_from(
                &format!("127.0.{}.{}", 10 + i / 200, i % 200 + 1),
                server.addr,
            )
            .await,
        );
    }
    let push = spawn_push(server.addr, "live", "good");
    let (ok, stderr) = finish(push).await;
    assert!(
        ok,
        "ffmpeg failed while silent connections were open: {stderr}"
    );
    let recording = server.gate.recording(0).expect("the publish was accepted");
    wait_until(Duration::from_secs(10), "the publication to close", || {
        recording.lock().unwrap().ended
    })
    .await;
    assert_complete_push(&recording.lock().unwrap());
    // At most 16 silent connections were kept: the others were closed by the server.
    let mut closed = 0;
    for stream in &mut silent {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            timeout(Duration::from_millis(200), stream.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= 80 - 16,
        "{closed} of 80 silent connections closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_live_publishes_and_returns() {
    let server = start_server(config(10)).await;
    let push = spawn_push(server.addr, "live", "good");
    wait_until(Duration::from_secs(15), "media to flow", || {
        server
            .gate
            .recording(0)
            .map(|r| summarise(&r.lock().unwrap()).video >= 10)
            .unwrap_or(false)
    })
    .await;
    server.shutdown.cancel();
    timeout(Duration::from_secs(8), server.task)
        .await
        .expect("serve did not return after shutdown")
        .unwrap();
    let recording = server.gate.recording(0).unwrap();
    wait_until(Duration::from_secs(2), "the publication to close", || {
        recording.lock().unwrap().ended
    })
    .await;
    let (ok, _) = finish(push).await;
    assert!(!ok, "ffmpeg should see the server go away");
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "still accepting"
    );
}

/// Not a check: records what ffmpeg sends after the handshake (through a proxy in front of the
/// server) into tests/data/ffmpeg5_publish_first_32k.bin, which unit tests replay without a
/// socket. Run when the ffmpeg version changes:
/// `cargo test --test ingest_rtmp capture -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "tool: rewrites tests/data/ffmpeg5_publish_first_32k.bin"]
async fn capture_ffmpeg_publish() {
    const KEEP: usize = 32 * 1024;
    let server = start_server(config(10)).await;
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let server_addr = server.addr;
    let relay = tokio::spawn(async move {
        let (client, _) = proxy.accept().await.unwrap();
        let upstream = TcpStream::connect(server_addr).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut up_read, mut up_write) = upstream.into_split();
        let down = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut up_read, &mut client_write).await;
        });
        let mut sent = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    sent.extend_from_slice(&buf[..n]);
                    if up_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        drop(up_write);
        let _ = down.await;
        sent
    });
    let (ok, stderr) = finish(spawn_push(proxy_addr, "live", "good")).await;
    assert!(ok, "ffmpeg failed through the proxy: {stderr}");
    let sent = relay.await.unwrap();
    let after_handshake = &sent[1 + 2 * HANDSHAKE_SIZE..];
    let kept = &after_handshake[..after_handshake.len().min(KEEP)];
    std::fs::write(data_path("tests/data/ffmpeg5_publish_first_32k.bin"), kept).unwrap();
}
