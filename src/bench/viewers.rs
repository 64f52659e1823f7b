//! The viewer side of the fan-out benchmark, run as a child process (`barrage bench viewers`):
//! holds many WebSocket connections from one loopback address, reads every frame, and measures
//! send-to-receive latency from the send time each benchmark danmaku carries (`b:<unix µs>`).
//! Child processes keep the server's process under the open-files limit (CRATE-NOTES).

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// What one viewer process saw.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ViewerReport {
    pub connected: u64,
    pub failed: u64,
    pub frames: u64,
    pub events: u64,
    pub bytes: u64,
    /// Latency samples (µs), encoded as `[value, count]` pairs of the histogram.
    pub latency_us: Vec<(u64, u64)>,
    pub cpu_s: f64,
    pub rss_kib: u64,
}

/// Microseconds since the epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Pulls every `b:<µs>` send time out of a batch frame (JSON), returning the event count.
fn send_times(frame: &str, out: &mut Vec<u64>) -> u64 {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(frame) else {
        return 0;
    };
    let Some(events) = value.get("events").and_then(|e| e.as_array()) else {
        return 0;
    };
    for e in events {
        if let Some(t) = e
            .get("danmaku")
            .and_then(|d| d.get("text"))
            .and_then(|t| t.as_str())
            .and_then(|t| t.strip_prefix("b:"))
            .and_then(|t| t.parse::<u64>().ok())
        {
            out.push(t);
        }
    }
    events.len() as u64
}

/// Small buffers: the default 128 KiB read buffer per socket costs memory and CPU (CRATE-NOTES).
pub fn small_ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

struct Shared {
    report: ViewerReport,
    hist: Histogram<u64>,
}

/// Runs the viewer process: connects `count` sockets from `bind_ip` to `url` (at `server`),
/// prints `ready N` when connected, reads until stdin closes, then prints its report as JSON.
pub fn run(url: String, server: SocketAddr, bind_ip: IpAddr, count: usize) -> std::io::Result<()> {
    crate::proc_stats::raise_open_files_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let shared = Rc::new(RefCell::new(Shared {
            report: ViewerReport::default(),
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
        }));
        let stop = tokio_util::sync::CancellationToken::new();
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
        for _ in 0..count {
            let url = url.clone();
            let shared = shared.clone();
            let stop = stop.clone();
            let conn_tx = conn_tx.clone();
            tokio::task::spawn_local(async move {
                let ws = connect(&url, server, bind_ip).await;
                let mut ws = match ws {
                    Ok(ws) => {
                        let _ = conn_tx.send(true);
                        ws
                    }
                    Err(_) => {
                        let _ = conn_tx.send(false);
                        return;
                    }
                };
                let mut times = Vec::new();
                loop {
                    let msg = tokio::select! {
                        _ = stop.cancelled() => break,
                        m = ws.next() => m,
                    };
                    let Some(Ok(msg)) = msg else { break };
                    let now = now_us();
                    if let Message::Text(text) = msg {
                        times.clear();
                        let events = send_times(&text, &mut times);
                        let mut s = shared.borrow_mut();
                        s.report.frames += 1;
                        s.report.events += events;
                        s.report.bytes += text.len() as u64;
                        for t in &times {
                            let _ = s.hist.record(now.saturating_sub(*t).max(1));
                        }
                    }
                }
            });
            // Pace connection setup a little so the accept queue keeps up.
            tokio::task::yield_now().await;
        }
        drop(conn_tx);
        let mut done = 0;
        while done < count {
            match conn_rx.recv().await {
                Some(ok) => {
                    let mut s = shared.borrow_mut();
                    if ok {
                        s.report.connected += 1;
                    } else {
                        s.report.failed += 1;
                    }
                    done += 1;
                }
                None => break,
            }
        }
        println!("ready {}", shared.borrow().report.connected);
        // Clear what was counted while connecting: the measurement starts now.
        {
            let mut s = shared.borrow_mut();
            s.report.frames = 0;
            s.report.events = 0;
            s.report.bytes = 0;
            s.hist.reset();
        }
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(_)) = lines.next_line().await {}
        let mut report = {
            let s = shared.borrow();
            let mut report = s.report.clone();
            report.latency_us = s
                .hist
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect();
            report
        };
        report.cpu_s = crate::proc_stats::cpu_seconds(None);
        report.rss_kib = crate::proc_stats::rss_kib(None);
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    Ok(())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(url: &str, server: SocketAddr, bind_ip: IpAddr) -> Result<Ws, String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(bind_ip, 0))
        .map_err(|e| e.to_string())?;
    let stream = tokio::time::timeout(Duration::from_secs(30), socket.connect(server))
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(small_ws_config()))
            .await
            .map_err(|e| e.to_string())?;
    // A viewer says hello first (barrage joins a silent socket to the room only after a wait;
    // the baseline ignores it).
    futures::SinkExt::send(&mut ws, Message::text("{\"type\":\"hello\"}"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Merges reports and their histograms.
pub fn merge(reports: &[ViewerReport]) -> (ViewerReport, Histogram<u64>) {
    let mut total = ViewerReport::default();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    for r in reports {
        total.connected += r.connected;
        total.failed += r.failed;
        total.frames += r.frames;
        total.events += r.events;
        total.bytes += r.bytes;
        total.cpu_s += r.cpu_s;
        total.rss_kib += r.rss_kib;
        for (v, c) in &r.latency_us {
            let _ = hist.record_n(*v, *c);
        }
    }
    (total, hist)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_times_are_read_from_batches() {
        let mut out = Vec::new();
        let n = send_times(
            r#"{"type":"batch","events":[{"seq":1,"danmaku":{"text":"b:123"}},{"seq":2,"system":{"text":"x"}}]}"#,
            &mut out,
        );
        assert_eq!((n, out), (2, vec![123]));
        assert_eq!(send_times("not json", &mut Vec::new()), 0);
    }
}
