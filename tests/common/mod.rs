//! Shared helpers for integration tests: real peers (ffmpeg, ffprobe) and HTTP polling.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Fails (never skips) when a peer tool is missing, saying how to install it.
pub fn require_tool(tool: &str) {
    let ok = Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "{tool} is needed by this test: run scripts/test.sh or apt-get install -y ffmpeg"
    );
}

/// Starts ffmpeg pushing a generated stream (testsrc + sine, H.264 with B-frames, 2 s GOP,
/// AAC) in real time for `seconds` to `url`.
pub fn push_generated(url: &str, seconds: u32) -> Child {
    push_with_gop(url, seconds, 60)
}

/// [`push_generated`] with a keyframe every `gop` frames (30 fps: 240 is an 8 s interval).
pub fn push_with_gop(url: &str, seconds: u32, gop: u32) -> Child {
    require_tool("ffmpeg");
    let gop = gop.to_string();
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
        ])
        .args([
            "-bf",
            "2",
            "-g",
            &gop,
            "-keyint_min",
            &gop,
            "-sc_threshold",
            "0",
        ])
        .args(["-pix_fmt", "yuv420p", "-b:v", "400k"])
        .args(["-c:a", "aac", "-b:a", "64k", "-ac", "2"])
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffmpeg")
}

/// Waits for a child with a deadline; returns (success, stderr).
pub fn wait_child(mut child: Child, limit: Duration) -> (bool, String) {
    let start = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("child output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// ffprobe's JSON (streams + format) for a file.
pub fn ffprobe(path: &Path) -> serde_json::Value {
    require_tool("ffprobe");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// The text of `{base}/metrics` (panics when the node does not answer: every test that reads
/// it expects a running node).
pub async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// GETs a URL; Some(body) on 200.
pub async fn get_ok(http: &reqwest::Client, url: &str) -> Option<bytes::Bytes> {
    let r = http.get(url).send().await.ok()?;
    if r.status() == 200 {
        r.bytes().await.ok()
    } else {
        None
    }
}

/// Polls `f` every 100 ms until it gives Some or `limit` passes (then panics with `what`).
pub async fn poll<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GETs a URL and reads its JSON; Some only on 200 with a JSON body.
pub async fn fetch_json(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    serde_json::from_slice(&get_ok(http, url).await?).ok()
}
