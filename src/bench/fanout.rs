//! `barrage bench fanout`: C WebSocket viewers in one room on loopback, U danmaku/s from S
//! senders. Each side runs in a fresh child process of its own (`--side barrage`, then
//! `--side baseline`), so its CPU seconds and RSS are that process's alone: in one process the
//! second side would reuse the heap the first one freed and look free. Viewers run in further
//! child processes spread over 127.0.0.x addresses. The raw baseline broadcaster serves the same
//! viewers with frames of the same size and rate as barrage's, and barrage's figures are
//! reported as ratios to it.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;

use super::viewers::{merge, now_us, ViewerReport};
use crate::proc_stats::{cpu_seconds, raise_open_files_limit, rss_kib};

/// What to run.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    pub viewers: usize,
    pub uplink_per_s: u32,
    pub senders: usize,
    pub seconds: u64,
    pub per_process: usize,
    /// `chat.budget` for the run (events per viewer per second); None keeps the default (60).
    /// A larger budget means larger batches: more events per frame for the same frames.
    pub budget: Option<u32>,
    /// `chat.tick_ms` for both sides; None keeps the default (100 ms). goim's shape is one
    /// frame a second per viewer: `--tick-ms 1000 --budget 36`.
    pub tick_ms: Option<u64>,
}

/// goim's published load shape (each viewer gets one frame a second carrying ~36 events):
/// a 1 s tick and a budget of 36 events per viewer per second, unless the options set them.
pub fn goim_shape(opts: FanoutOptions) -> FanoutOptions {
    FanoutOptions {
        tick_ms: opts.tick_ms.or(Some(1000)),
        budget: opts.budget.or(Some(36)),
        ..opts
    }
}

/// Which server a side process runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Side {
    Barrage,
    /// The raw broadcaster, sending frames shaped like barrage's.
    Baseline {
        events_per_frame: usize,
        bytes_per_frame: f64,
    },
}

/// One side's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SideReport {
    pub name: String,
    pub viewers_connected: u64,
    pub delivered_events_per_s: f64,
    pub frames_per_s: f64,
    pub bytes_per_frame: f64,
    pub events_per_frame: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// CPU seconds of the serving process during the measurement (barrage: incl. senders).
    pub server_cpu_s: f64,
    pub server_rss_mib: f64,
    /// (RSS with idle viewers connected - RSS before) / viewers.
    pub rss_per_idle_viewer_kib: f64,
    pub client_cpu_s: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub viewers: usize,
    pub uplink_per_s: u32,
    /// The chat tick both sides ran with (one frame per viewer per tick).
    pub tick_ms: u64,
    pub seconds: u64,
    pub barrage: SideReport,
    pub baseline: SideReport,
    pub frames_ratio: f64,
    pub cpu_per_frame_ratio: f64,
}

struct ViewerProcs {
    children: Vec<(Child, ChildStdin, BufReader<std::process::ChildStdout>)>,
}

fn spawn_viewers(
    url: &str,
    server: SocketAddr,
    opts: &FanoutOptions,
) -> std::io::Result<ViewerProcs> {
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    let mut left = opts.viewers;
    let mut i = 0u8;
    while left > 0 {
        let n = left.min(opts.per_process);
        left -= n;
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i));
        i = i.wrapping_add(1);
        let mut child = Command::new(&exe)
            .args([
                "bench",
                "viewers",
                "--url",
                url,
                "--server",
                &server.to_string(),
            ])
            .args(["--bind", &ip.to_string(), "--count", &n.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| std::io::Error::other("no stdout"))?,
        );
        children.push((child, stdin, stdout));
    }
    Ok(ViewerProcs { children })
}

impl ViewerProcs {
    /// Waits for every child's `ready N`; returns how many connected.
    fn wait_ready(&mut self) -> u64 {
        let mut total = 0;
        for (_, _, out) in &mut self.children {
            let mut line = String::new();
            if out.read_line(&mut line).is_ok() {
                total += line
                    .trim()
                    .strip_prefix("ready ")
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        total
    }

    /// Tells every child to stop and collects their reports.
    fn finish(self) -> Vec<ViewerReport> {
        let mut reports = Vec::new();
        for (mut child, stdin, mut out) in self.children {
            drop(stdin);
            let mut line = String::new();
            let _ = out.read_line(&mut line);
            if let Ok(r) = serde_json::from_str::<ViewerReport>(line.trim()) {
                reports.push(r);
            }
            let _ = child.wait();
        }
        reports
    }
}

fn progress(label: &str, start: Instant, seconds: u64, events: &AtomicU64) {
    eprint!(
        "\r  {label}: {:>3}/{seconds} s, sent {}   ",
        start.elapsed().as_secs(),
        events.load(Ordering::Relaxed)
    );
    let _ = std::io::stderr().flush();
}

/// Server RSS (KiB) before viewers, with them idle, and at the end of the measurement.
struct Memory {
    before: u64,
    idle: u64,
    end: u64,
}

fn side(
    name: &str,
    merged: (ViewerReport, hdrhistogram::Histogram<u64>),
    secs: f64,
    cpu: f64,
    mem: Memory,
    viewers: usize,
) -> SideReport {
    let (r, h) = merged;
    let q = |p: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(p) as f64 / 1000.0
        }
    };
    SideReport {
        name: name.to_string(),
        viewers_connected: r.connected,
        delivered_events_per_s: r.events as f64 / secs,
        frames_per_s: r.frames as f64 / secs,
        bytes_per_frame: if r.frames > 0 {
            r.bytes as f64 / r.frames as f64
        } else {
            0.0
        },
        events_per_frame: if r.frames > 0 {
            r.events as f64 / r.frames as f64
        } else {
            0.0
        },
        latency_p50_ms: q(0.5),
        latency_p99_ms: q(0.99),
        latency_max_ms: if h.is_empty() {
            0.0
        } else {
            h.max() as f64 / 1000.0
        },
        server_cpu_s: cpu,
        server_rss_mib: mem.end as f64 / 1024.0,
        rss_per_idle_viewer_kib: mem.idle.saturating_sub(mem.before) as f64 / viewers.max(1) as f64,
        client_cpu_s: r.cpu_s,
    }
}

/// Waits `seconds` with a progress line; returns the elapsed seconds, this process's CPU
/// seconds over them, and its RSS at the end.
async fn measure(label: &str, seconds: u64, sent: &AtomicU64) -> (f64, f64, u64) {
    let cpu0 = cpu_seconds(None);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress(label, start, seconds, sent);
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(None) - cpu0;
    eprintln!();
    (secs, cpu, rss_kib(None))
}

/// Runs one side in a child process of this executable and reads its JSON report.
fn run_side_process(opts: &FanoutOptions, side: Side) -> Result<SideReport, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "fanout", "--json"])
        .args(["--viewers", &opts.viewers.to_string()])
        .args(["--uplink", &opts.uplink_per_s.to_string()])
        .args(["--senders", &opts.senders.to_string()])
        .args(["--seconds", &opts.seconds.to_string()])
        .args(["--per-process", &opts.per_process.to_string()]);
    if let Some(budget) = opts.budget {
        cmd.args(["--budget", &budget.to_string()]);
    }
    if let Some(tick_ms) = opts.tick_ms {
        cmd.args(["--tick-ms", &tick_ms.to_string()]);
    }
    match side {
        Side::Barrage => cmd.args(["--side", "barrage"]),
        Side::Baseline {
            events_per_frame,
            bytes_per_frame,
        } => cmd
            .args(["--side", "baseline"])
            .args(["--frame-events", &events_per_frame.to_string()])
            .args(["--frame-bytes", &format!("{bytes_per_frame:.0}")]),
    };
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the side process: {e}"))?;
    if !out.status.success() {
        return Err(format!("the {side:?} side failed ({})", out.status));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("bad report from the {side:?} side: {e}"))
}

/// Runs barrage then the baseline, each in its own process, and reports both.
pub async fn run(opts: FanoutOptions) -> Result<FanoutReport, String> {
    tokio::task::spawn_blocking(move || {
        let barrage = run_side_process(&opts, Side::Barrage)?;
        let baseline = run_side_process(
            &opts,
            Side::Baseline {
                events_per_frame: barrage.events_per_frame.round().max(1.0) as usize,
                bytes_per_frame: barrage.bytes_per_frame,
            },
        )?;
        Ok(compare(&opts, barrage, baseline))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Runs one side in this process: its server, the viewers, the measurement.
pub async fn run_side(opts: FanoutOptions, side: Side) -> Result<SideReport, String> {
    let limit = raise_open_files_limit();
    if (limit as usize) < opts.viewers + 200 {
        return Err(format!(
            "open-files limit {limit} is below {} viewers; raise it (ulimit -n)",
            opts.viewers
        ));
    }
    match side {
        Side::Barrage => run_barrage(&opts).await,
        Side::Baseline {
            events_per_frame,
            bytes_per_frame,
        } => run_baseline(&opts, events_per_frame, bytes_per_frame).await,
    }
}

async fn run_barrage(opts: &FanoutOptions) -> Result<SideReport, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut config = crate::testutil::test_config(dir.path());
    config.log = "warn".into();
    config.chat.user_rate_per_s = (opts.uplink_per_s as f64).max(1.0);
    config.chat.user_burst = opts.uplink_per_s.max(1);
    if let Some(budget) = opts.budget {
        config.chat.budget = budget.max(1);
    }
    if let Some(tick_ms) = opts.tick_ms {
        config.chat.tick_ms = tick_ms.clamp(1, 10_000);
    }
    // Each sender's connection carries uplink/S frames a second.
    config.chat.conn_rate_per_s =
        (opts.uplink_per_s as f64 / opts.senders.max(1) as f64).max(1.0) * 2.0;
    config.chat.conn_burst = opts.uplink_per_s.max(1);
    config.chat.room_rate_per_s = opts.uplink_per_s.max(1) * 2;
    config.chat.node_rate_per_s = opts.uplink_per_s.max(1) * 2;
    // Viewer processes each connect thousands of sockets from one loopback address.
    config.http.max_connections = opts.viewers + opts.senders + 100;
    config.http.max_connections_per_ip = config.http.max_connections;
    let server = crate::app::start(config).await.map_err(|e| e.to_string())?;
    let addr = server.http_addr;
    eprintln!(
        "fanout: barrage on {addr}, {} viewers, {} danmaku/s from {} senders, {} s",
        opts.viewers, opts.uplink_per_s, opts.senders, opts.seconds
    );

    let rss_before = rss_kib(None);
    let url = format!("ws://{addr}/ws/demo?format=json");
    let mut procs = spawn_viewers(&url, addr, opts).map_err(|e| e.to_string())?;
    let connected = tokio::task::block_in_place(|| procs.wait_ready());
    eprintln!("  {connected} viewers connected");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(None);

    // Senders.
    let sent = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let per_sender = (opts.uplink_per_s as f64 / opts.senders.max(1) as f64).max(0.001);
    let mut sender_tasks = Vec::new();
    let senders = opts.senders.max(1);
    for s in 0..senders {
        let token = server.state.tokens.mint(
            &format!("bench-sender-{s}"),
            "bench",
            crate::auth::Role::Viewer,
            Some("demo"),
            Duration::from_secs(3600),
        );
        let url = format!("ws://{addr}/ws/demo?format=json&token={token}");
        // The senders live in barrage's process, so their buffers count against it: the small
        // viewer config, not tungstenite's 128 KiB read buffer zero-filled on every read.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(
            url.as_str(),
            Some(super::viewers::small_ws_config()),
            true,
        )
        .await
        .map_err(|e| format!("sender connect: {e}"))?;
        let (mut write, mut read) = ws.split();
        let sent = sent.clone();
        let stop = stop.clone();
        sender_tasks.push(tokio::spawn(async move {
            tokio::spawn(async move { while let Some(Ok(_)) = read.next().await {} });
            // Senders are spread over the period: real viewers do not type in step, and
            // senders in lockstep would make every tick's arrivals one burst.
            let period = Duration::from_secs_f64(1.0 / per_sender);
            let offset = period.mul_f64(s as f64 / senders as f64);
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
            let mut id = 0u64;
            loop {
                tokio::select! { _ = stop.cancelled() => return, _ = ticker.tick() => {} }
                id += 1;
                let frame = format!("{{\"type\":\"send\",\"client_id\":{id},\"text\":\"b:{}\",\"color\":16777215,\"mode\":\"scroll\"}}", now_us());
                if write.send(Message::text(frame)).await.is_err() { return; }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let (secs, cpu, rss_end) = measure("barrage", opts.seconds, &sent).await;
    let reports = tokio::task::block_in_place(|| procs.finish());
    stop.cancel();
    for t in sender_tasks {
        let _ = t.await;
    }
    server.stop().await;
    Ok(side(
        "barrage",
        merge(&reports),
        secs,
        cpu,
        Memory {
            before: rss_before,
            idle: rss_idle,
            end: rss_end,
        },
        opts.viewers,
    ))
}

/// The raw broadcaster: same viewers, frames of `events` events and about `frame_bytes` bytes
/// every tick.
async fn run_baseline(
    opts: &FanoutOptions,
    events: usize,
    frame_bytes: f64,
) -> Result<SideReport, String> {
    // The tick the barrage side ran with: the option's, or barrage's default.
    let defaults = crate::config::Config::from_toml_str("").map_err(|e| e.to_string())?;
    let tick = Duration::from_millis(
        opts.tick_ms
            .map_or(defaults.chat.tick_ms, |t| t.clamp(1, 10_000)),
    );
    let base = super::baseline::Baseline::start()
        .await
        .map_err(|e| e.to_string())?;
    let rss_before = rss_kib(None);
    let url = format!("ws://{}/", base.addr);
    let mut procs = spawn_viewers(&url, base.addr, opts).map_err(|e| e.to_string())?;
    tokio::task::block_in_place(|| procs.wait_ready());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(None);
    let events = events.max(1);
    // Pad each event so the baseline's frames are as large as barrage's were.
    let plain = 150.0 * events as f64;
    let pad = ((frame_bytes - plain) / events as f64).max(0.0) as usize;
    let pacer = base.pace(tick, events, pad);
    let (secs, cpu, rss_end) = measure("baseline", opts.seconds, &AtomicU64::new(0)).await;
    let reports = tokio::task::block_in_place(|| procs.finish());
    base.stop();
    pacer.abort();
    Ok(side(
        "baseline",
        merge(&reports),
        secs,
        cpu,
        Memory {
            before: rss_before,
            idle: rss_idle,
            end: rss_end,
        },
        opts.viewers,
    ))
}

/// Both sides and their ratios.
fn compare(opts: &FanoutOptions, barrage: SideReport, baseline: SideReport) -> FanoutReport {
    let secs = opts.seconds as f64;
    let per_frame = |s: &SideReport| {
        if s.frames_per_s > 0.0 {
            s.server_cpu_s / (s.frames_per_s * secs)
        } else {
            0.0
        }
    };
    FanoutReport {
        viewers: opts.viewers,
        uplink_per_s: opts.uplink_per_s,
        tick_ms: opts.tick_ms.unwrap_or(100),
        seconds: opts.seconds,
        frames_ratio: if baseline.frames_per_s > 0.0 {
            barrage.frames_per_s / baseline.frames_per_s
        } else {
            0.0
        },
        cpu_per_frame_ratio: if per_frame(&baseline) > 0.0 {
            per_frame(&barrage) / per_frame(&baseline)
        } else {
            0.0
        },
        barrage,
        baseline,
    }
}

/// The report as a Markdown table.
pub fn table(r: &FanoutReport) -> String {
    let mut out = format!(
        "fanout: {} viewers, {} danmaku/s uplink, tick {} ms, {} s\n\n| | viewers | events/s | frames/s | B/frame | p50 ms | p99 ms | max ms | server CPU s | RSS MiB | RSS/idle viewer KiB |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
        r.viewers, r.uplink_per_s, r.tick_ms, r.seconds
    );
    for s in [&r.barrage, &r.baseline] {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {:.2} |\n",
            s.name,
            s.viewers_connected,
            s.delivered_events_per_s,
            s.frames_per_s,
            s.bytes_per_frame,
            s.latency_p50_ms,
            s.latency_p99_ms,
            s.latency_max_ms,
            s.server_cpu_s,
            s.server_rss_mib,
            s.rss_per_idle_viewer_kib
        ));
    }
    out.push_str(&format!(
        "\nframes/s ratio barrage/baseline: {:.2}; server CPU per frame ratio: {:.2}\n",
        r.frames_ratio, r.cpu_per_frame_ratio
    ));
    let per_cpu = |s: &SideReport| {
        if s.server_cpu_s > 0.0 {
            s.delivered_events_per_s * r.seconds as f64 / s.server_cpu_s
        } else {
            0.0
        }
    };
    let (b, raw) = (per_cpu(&r.barrage), per_cpu(&r.baseline));
    out.push_str(&format!(
        "delivered events per server CPU-second: barrage {b:.0}, baseline {raw:.0} (ratio {:.2}); {:.1} events per frame\n",
        if raw > 0.0 { b / raw } else { 0.0 },
        r.barrage.events_per_frame
    ));
    out
}
