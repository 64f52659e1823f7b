//! Hostile input against a running barrage (in-process `app::start`, real sockets), while a good
//! ffmpeg push goes on: the known abort payloads of the `rtmp` crate (70-byte `connect` with a
//! huge AMF0 count, 20,000 nested AMF0 objects, interleaved chunk streams, `play` with no name),
//! a well-formed `connect` nesting 10,000 objects, and the other hostile RTMP inputs under
//! tests/data, repeated many times; and the HTTP side (oversized bodies, garbage JSON,
//! WebSocket frames over the limit, too many connections from one address, a request trickled
//! byte by byte). Checks: every bad connection is closed, the push is unaffected (its session
//! ends as a complete VOD), and the process's resident memory stays bounded across the
//! repetitions (an unbounded allocation per bad connection would show as growth far past the
//! fixed bound).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use barrage::testutil::{test_config, TEST_ADMIN_KEY};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

/// Rounds of all the payloads before measuring (allocator pools, tokio, metrics settle).
const WARM_UP_ROUNDS: usize = 5;
/// Rounds measured: each round opens one connection per payload.
const MEASURED_ROUNDS: usize = 100;
/// Hostile connections at once (under the default 8 per address for RTMP).
const PARALLEL: usize = 4;
/// Allowed growth of VmRSS over the measured rounds: generous, fixed; a leak or unbounded
/// allocation per connection (a 2^32-element Vec, a 16 MiB message buffer) would exceed it.
const RSS_GROWTH_LIMIT_KIB: u64 = 64 * 1024;
/// How long the server may take to close a hostile connection.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);
/// Per-address HTTP limit for this server; the flood comes from 127.0.0.9.
const HTTP_PER_IP: usize = 4;
/// `http.request_timeout_s` for this server: a trickled request is cut after it.
const HTTP_REQUEST_TIMEOUT_S: u64 = 2;

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The hostile RTMP inputs: (name, bytes, sent after a valid handshake).
fn payloads() -> Vec<(&'static str, Vec<u8>, bool)> {
    [
        "hostile_amf0_huge_count.bin",
        "hostile_amf0_nested_20000.bin",
        "hostile_interleaved_chunk_streams.bin",
        "hostile_play_without_name.bin",
        "hostile_set_chunk_size_0.bin",
        "hostile_set_chunk_size_2_31.bin",
        "hostile_message_length_2_24.bin",
        "hostile_too_many_chunk_streams.bin",
        "hostile_random_bytes.bin",
    ]
    .into_iter()
    .map(|name| (name, data(name), name != "hostile_random_bytes.bin"))
    .chain(std::iter::once((
        "connect_nested_10000_closed",
        nested_connect_after_handshake(),
        true,
    )))
    .collect()
}

/// A well-formed `connect` nesting 10,000 closed objects (only the AMF0 depth limit refuses
/// it; the 20,000-level payload above is cut short, so the guard's walk refuses it earlier):
/// the fuzz seed of that name, minus its handshake.
fn nested_connect_after_handshake() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/rtmp_session/connect_nested_10000_closed.bin");
    let seed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    seed[1 + 2 * 1536..].to_vec()
}

/// VmRSS of this process, KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// A plain client handshake (C0+C1, read S0+S1+S2, C2).
async fn handshake(stream: &mut TcpStream) {
    let mut c0c1 = vec![3u8];
    c0c1.resize(1 + 1536, 0);
    stream.write_all(&c0c1).await.unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 2 * 1536];
    timeout(Duration::from_secs(5), stream.read_exact(&mut s0s1s2))
        .await
        .expect("S0S1S2 in time")
        .expect("S0S1S2");
    stream.write_all(&s0s1s2[1..1 + 1536]).await.unwrap();
}

/// Sends one payload on a new connection and waits until the server closes it.
async fn hostile_connection(addr: SocketAddr, source: String, payload: Vec<u8>, handshaken: bool) {
    let mut stream = connect_from(&source, addr).await;
    if handshaken {
        handshake(&mut stream).await;
    }
    let start = Instant::now();
    let _ = stream.write_all(&payload).await; // the server may close before reading it all
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match timeout(
            CLOSE_WITHIN.saturating_sub(start.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => panic!("a hostile connection was still open after {CLOSE_WITHIN:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}

/// One connection per payload, `PARALLEL` at a time, from rotating loopback addresses.
async fn hostile_round(addr: SocketAddr, round: usize) {
    let mut pending = Vec::new();
    for (i, (_, bytes, handshaken)) in payloads().into_iter().enumerate() {
        let source = format!("127.0.0.{}", 2 + (round + i) % 4);
        pending.push(tokio::spawn(hostile_connection(
            addr, source, bytes, handshaken,
        )));
        if pending.len() == PARALLEL {
            for task in pending.drain(..) {
                task.await.expect("hostile connection check");
            }
        }
    }
    for task in pending {
        task.await.expect("hostile connection check");
    }
}

/// A WebSocket viewer that sends one text frame over `chat.max_frame_bytes`: the server must
/// close with 1009 (message too big).
async fn oversized_ws_frame(http_addr: SocketAddr, max_frame_bytes: usize) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("ws://{http_addr}/ws/demo?format=json");
    let (mut ws, _) = timeout(CLOSE_WITHIN, tokio_tungstenite::connect_async(url))
        .await
        .expect("websocket connect in time")
        .expect("websocket handshake");
    let _ = ws
        .send(Message::Text("x".repeat(max_frame_bytes + 1).into()))
        .await;
    let close = timeout(CLOSE_WITHIN, async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the oversized WebSocket was closed in time");
    assert_eq!(close, Some(1009), "close code for an oversized frame");
}

/// A raw HTTP/1.1 GET on `stream`; returns the status line and body text.
async fn raw_get(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Enough for a small answer: read until the headers and a body arrived or the peer closes.
    while let Ok(Ok(n)) = timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_leaves_a_good_push_and_memory_alone() {
    require_tool("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.log = "warn".into();
    config.http.max_connections_per_ip = HTTP_PER_IP;
    config.http.request_timeout_s = HTTP_REQUEST_TIMEOUT_S;
    let server = barrage::app::start(config).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();
    let key = server.state.secrets.stream_keys["demo"].clone();

    // The good push: the captured 6 s FLV, in real time.
    let push = tokio::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-i",
        ])
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ffmpeg_push_6s.flv"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://{}/live/{key}", server.rtmp_addr))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start ffmpeg (apt-get install ffmpeg)");
    let session = poll(Duration::from_secs(15), "the push to go live", || async {
        server.state.live.get("demo").map(|l| l.session)
    })
    .await;

    // Hostile RTMP peers beside it; memory measured over the repetitions.
    for round in 0..WARM_UP_ROUNDS {
        hostile_round(server.rtmp_addr, round).await;
    }
    let rss_before = rss_kib();
    let started = Instant::now();
    for round in 0..MEASURED_ROUNDS {
        hostile_round(server.rtmp_addr, round).await;
    }
    // The HTTP side within the same measurement: oversized bodies and garbage JSON.
    let oversized = vec![b'x'; server.state.config.http.max_body_bytes + 1];
    for _ in 0..MEASURED_ROUNDS {
        let r = http
            .post(format!("{base}/api/rooms"))
            .bearer_auth(TEST_ADMIN_KEY)
            .header("content-type", "application/json")
            .body(oversized.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        let body: serde_json::Value = r.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], "too_large");
        let r = http
            .post(format!("{base}/api/rooms"))
            .bearer_auth(TEST_ADMIN_KEY)
            .header("content-type", "application/json")
            .body("}{ not json \u{0}\u{ffff}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let body: serde_json::Value = r.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], "bad_json");
    }
    // And WebSocket frames over the limit.
    for _ in 0..MEASURED_ROUNDS / 4 {
        oversized_ws_frame(server.http_addr, server.state.config.chat.max_frame_bytes).await;
    }
    let rss_after = rss_kib();
    let connections = MEASURED_ROUNDS * payloads().len();
    eprintln!(
        "{connections} hostile RTMP connections, {} bad HTTP requests and {} oversized WebSocket \
         frames in {:?}: VmRSS {} -> {} KiB",
        2 * MEASURED_ROUNDS,
        MEASURED_ROUNDS / 4,
        started.elapsed(),
        rss_before,
        rss_after
    );
    assert!(
        rss_after.saturating_sub(rss_before) < RSS_GROWTH_LIMIT_KIB,
        "VmRSS grew {} KiB over {connections} hostile connections (limit {RSS_GROWTH_LIMIT_KIB} KiB)",
        rss_after.saturating_sub(rss_before)
    );

    // Too many HTTP connections from one address: refused with 503 and a JSON error; a closed
    // connection gives its place back.
    let mut held = Vec::new();
    for _ in 0..HTTP_PER_IP {
        let mut stream = connect_from("127.0.0.9", server.http_addr).await;
        let answer = raw_get(&mut stream, "/healthz").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(stream);
    }
    let mut extra = connect_from("127.0.0.9", server.http_addr).await;
    let answer = raw_get(&mut extra, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    let mut buf = [0u8; 16];
    assert!(
        matches!(
            timeout(Duration::from_secs(3), extra.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        ),
        "the refused connection stayed open"
    );
    // Other addresses are not affected.
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(held.pop());
    poll(Duration::from_secs(5), "a place given back", || async {
        let mut again = connect_from("127.0.0.9", server.http_addr).await;
        raw_get(&mut again, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
            .then_some(())
    })
    .await;
    drop(held);

    // A peer that trickles its request head (slowloris) is closed at http.request_timeout_s.
    let mut slow = connect_from("127.0.0.10", server.http_addr).await;
    let start = Instant::now();
    let _ = slow.write_all(b"GET /healthz HTTP/1.1\r\n").await;
    let closed = loop {
        let _ = slow.write_all(b"x-slow: 1\r\n").await;
        match timeout(Duration::from_millis(300), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break start.elapsed(),
            _ => assert!(
                start.elapsed() < Duration::from_secs(HTTP_REQUEST_TIMEOUT_S + 5),
                "a trickled request was never cut"
            ),
        }
    };
    assert!(
        closed >= Duration::from_secs(HTTP_REQUEST_TIMEOUT_S - 1),
        "cut after {closed:?}"
    );

    // The push was unaffected: ffmpeg succeeded and its session is a complete VOD.
    let output = timeout(Duration::from_secs(40), push.wait_with_output())
        .await
        .expect("ffmpeg finished")
        .expect("ffmpeg output");
    assert!(
        output.status.success(),
        "the good push failed beside hostile peers: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let vod_url = format!("{base}/hls/demo/{session}/index.m3u8");
    let vod = poll(
        Duration::from_secs(20),
        "the VOD playlist (EXT-X-ENDLIST)",
        || {
            let http = http.clone();
            let vod_url = vod_url.clone();
            async move {
                let body = get_ok(&http, &vod_url).await?;
                let text = String::from_utf8_lossy(&body).into_owned();
                text.contains("#EXT-X-ENDLIST").then_some(text)
            }
        },
    )
    .await;
    let seconds: f64 = vod
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|v| {
            v.trim_end_matches(',')
                .split(',')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum();
    assert!(
        (seconds - 6.0).abs() < 0.5,
        "the VOD covers {seconds} s of the 6 s push"
    );
    server.stop().await;
}
