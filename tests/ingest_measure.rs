//! Measurements of RTMP ingest (not pass/fail goals): memory per waiting connection and CPU
//! per pushed second of media. Ignored by default; run with
//! `cargo test --test ingest_measure -- --ignored --nocapture --test-threads 1`.
//! Numbers from a debug build are pessimistic for CPU.

mod rtmp_bytes;
use rtmp_bytes::amf_string;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barrage::config::RtmpConfig;
use barrage::ingest::{
    serve, ImmediateGate, MediaMessage, Publication, PublishRefusal, PublishRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

/// Accepts every key; counts bytes of media delivered.
#[derive(Default)]
struct CountingGate {
    media_bytes: Arc<Mutex<usize>>,
}

impl ImmediateGate for CountingGate {
    fn decide(&self, _request: &PublishRequest) -> Result<Publication, PublishRefusal> {
        let (media, mut rx) = tokio::sync::mpsc::channel(64);
        let counter = self.media_bytes.clone();
        tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                for m in batch {
                    if let MediaMessage::Video { body, .. } | MediaMessage::Audio { body, .. } = m {
                        *counter.lock().unwrap() += body.len();
                    }
                }
            }
        });
        Ok(Publication {
            room: "measure".into(),
            session: "s".into(),
            media,
        })
    }
}

fn config() -> RtmpConfig {
    RtmpConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        app: "live".into(),
        max_connections: 4000,
        max_connections_per_ip: 4000,
        max_unauthenticated: 4000,
        handshake_timeout_s: 120,
        idle_timeout_s: 120,
        max_chunk_size: 65536,
        max_message_bytes: 8 << 20,
        max_chunk_streams: 16,
        gather_ms: 25,
        reconnect_grace_s: 0,
    }
}

async fn start() -> (SocketAddr, Arc<CountingGate>, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new(CountingGate::default());
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(
        listener,
        Arc::new(config()),
        gate.clone(),
        shutdown.clone(),
    ));
    (addr, gate, shutdown)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// This process's user+system CPU time.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 after the name).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// Handshake, then `connect` to `live`, then wait for the answer: a session waiting to publish.
async fn waiting_publisher(addr: SocketAddr, source: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend([0u8; 1536]);
    stream.write_all(&c0c1).await.unwrap();
    let mut s = vec![0u8; 3073];
    stream.read_exact(&mut s).await.unwrap();
    stream.write_all(&s[1..1537]).await.unwrap();
    let mut body = amf_string("connect");
    body.push(0);
    body.extend(1f64.to_be_bytes());
    body.extend([3, 0, 3]);
    body.extend(b"app");
    body.extend(amf_string("live"));
    body.extend([0, 0, 9]);
    let mut chunk = vec![3, 0, 0, 0];
    chunk.extend(&(body.len() as u32).to_be_bytes()[1..]);
    chunk.push(20);
    chunk.extend([0, 0, 0, 0]);
    chunk.extend(body);
    stream.write_all(&chunk).await.unwrap();
    let mut answer = vec![0u8; 256];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await;
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn memory_per_waiting_connection() {
    let (addr, _gate, shutdown) = start().await;
    // Warm up allocator and runtime.
    let warm: Vec<_> =
        futures::future::join_all((0..50).map(|_| waiting_publisher(addr, "127.0.0.1"))).await;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib();
    const N: usize = 1000;
    let mut streams = Vec::with_capacity(N);
    for batch in 0..(N / 100) {
        let source = format!("127.0.1.{}", batch + 1);
        streams.extend(
            futures::future::join_all((0..100).map(|_| waiting_publisher(addr, &source))).await,
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_kib();
    println!(
        "{N} connections waiting to publish: RSS +{} KiB, {:.1} KiB per connection (both ends in this process)",
        after - before,
        (after - before) as f64 / N as f64
    );
    drop(streams);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn cpu_per_pushed_second() {
    let (addr, gate, shutdown) = start().await;
    const LOOPS: u32 = 100; // 100 x 6 s of media, pushed as fast as ffmpeg goes
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ffmpeg_push_6s.flv");
    let cpu_before = cpu_time();
    let start = Instant::now();
    let status = tokio::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-stream_loop",
        ])
        .arg((LOOPS - 1).to_string())
        .args(["-i", file, "-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://{addr}/live/any"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .expect("ffmpeg (apt-get install ffmpeg)");
    let wall = start.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu = cpu_time() - cpu_before;
    assert!(status.success());
    let bytes = *gate.media_bytes.lock().unwrap();
    let media_s = 6.0 * f64::from(LOOPS);
    println!(
        "pushed {media_s} s of media ({:.1} MB) in {wall:?}: server-side CPU {cpu:?} = {:.2} ms per media second, {:.1} ms per MB (debug build)",
        bytes as f64 / 1e6,
        cpu.as_secs_f64() * 1000.0 / media_s,
        cpu.as_secs_f64() * 1000.0 / (bytes as f64 / 1e6),
    );
    shutdown.cancel();
}
