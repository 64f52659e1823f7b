//! Helpers for the page tests in a real browser: the peers (chromium, node and the npm
//! modules of tests/browser, ffmpeg; `scripts/test.sh` installs them and a missing one fails
//! with that advice), ffmpeg pushes, and running a script of tests/browser.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

pub const INSTALL: &str = "run scripts/test.sh (as root) to install the browser test peers";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The browser: `BARRAGE_CHROMIUM` or Debian's /usr/bin/chromium.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("BARRAGE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "chromium is missing at {}: {INSTALL} (apt-get install -y chromium)",
        path.display()
    );
    path
}

/// Fails with how to install when node or the npm modules of tests/browser are missing.
pub fn require_node_modules() {
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        node,
        "node is missing: {INSTALL} (apt-get install -y nodejs npm)"
    );
    for module in ["playwright-core", "ws"] {
        let manifest = repo()
            .join("tests/browser/node_modules")
            .join(module)
            .join("package.json");
        assert!(
            manifest.is_file(),
            "npm module {module} is missing in tests/browser: {INSTALL} (npm ci --prefix tests/browser)"
        );
    }
}

pub fn require_ffmpeg() {
    let ok = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "ffmpeg is missing: {INSTALL} (apt-get install -y ffmpeg)"
    );
}

/// ffmpeg pushing a generated 640x360 picture with a tone, in real time, for `seconds`.
pub fn push(url: &str, seconds: u32) -> tokio::process::Child {
    push_with_gop(url, seconds, 60)
}

/// [`push`] with a keyframe every `gop` frames (30 fps: 240 is an 8 s interval).
pub fn push_with_gop(url: &str, seconds: u32, gop: u32) -> tokio::process::Child {
    let gop = gop.to_string();
    tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args([
            "-g",
            &gop,
            "-keyint_min",
            &gop,
            "-sc_threshold",
            "0",
            "-b:v",
            "600k",
        ])
        .args(["-c:a", "aac", "-b:a", "64k", "-ac", "2"])
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start ffmpeg")
}

/// Asks ffmpeg to finish (SIGINT: it closes the RTMP stream properly), then waits for it.
pub async fn stop_push(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Polls the room until it is on air with a playlist to serve.
pub async fn wait_live(http: &reqwest::Client, base: &str, room: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let live = http
            .get(format!("{base}/api/rooms/{room}"))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        let on_air = match live {
            Some(r) => r
                .json::<serde_json::Value>()
                .await
                .map(|v| !v["live"].is_null())
                .unwrap_or(false),
            None => false,
        };
        let playlist = http
            .get(format!("{base}/hls/{room}/live.m3u8"))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if on_air && playlist {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "room {room} did not go live with a playlist within 60 s of the ffmpeg push"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Pushes for a browser script: the ffmpeg publishing now, if any, and where it publishes.
pub struct Pusher {
    url: String,
    /// Frames between keyframes.
    gop: u32,
    current: Option<tokio::process::Child>,
}

impl Pusher {
    /// Pushes to `url` for `seconds` at once.
    pub fn start(url: &str, seconds: u32) -> Pusher {
        Pusher::start_with_gop(url, seconds, 60)
    }

    /// Pushes to `url` for `seconds` at once, a keyframe every `gop` frames.
    pub fn start_with_gop(url: &str, seconds: u32, gop: u32) -> Pusher {
        Pusher {
            url: url.to_string(),
            gop,
            current: Some(push_with_gop(url, seconds, gop)),
        }
    }

    /// Stops the push (a clean end of stream), if one runs.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.current.take() {
            stop_push(&mut child).await;
        }
    }

    /// Pushes again for `seconds` (after stopping the current push).
    pub async fn again(&mut self, seconds: u32) {
        self.stop().await;
        self.current = Some(push_with_gop(&self.url, seconds, self.gop));
    }
}

/// Runs a script of tests/browser with node; answers its "@@stop-push" by stopping the push
/// and "@@push N" by pushing again for N seconds; returns (exit ok, its final JSON line).
pub async fn run_browser_script(
    script: &str,
    env: &[(&str, String)],
    pusher: &mut Pusher,
) -> (bool, serde_json::Value) {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(repo().join("tests/browser").join(script))
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .expect("start node with a script of tests/browser");
    let stdout = child.stdout.take().expect("node stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut result = serde_json::Value::Null;
    let run = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let line = line.trim();
            if line == "@@stop-push" {
                pusher.stop().await;
            } else if let Some(seconds) = line.strip_prefix("@@push ") {
                pusher.again(seconds.parse().unwrap_or(10)).await;
            } else if line.starts_with('{') {
                result = serde_json::from_str(line).unwrap_or(serde_json::Value::Null);
            } else {
                eprintln!("[{script} stdout] {line}");
            }
        }
        child.wait().await
    };
    let status = tokio::time::timeout(Duration::from_secs(420), run)
        .await
        .expect("the browser script did not finish within 7 minutes")
        .expect("wait for node");
    (status.success(), result)
}

/// Asserts that every named check of a script's result passed, and the script too.
pub fn assert_checks(result: &serde_json::Value, exit_ok: bool, names: &[&str]) {
    let checks = &result["checks"];
    let failed: Vec<String> = names
        .iter()
        .filter(|name| checks[**name]["ok"] != serde_json::Value::Bool(true))
        .map(|name| format!("{name}: {}", checks[*name]))
        .collect();
    assert!(
        failed.is_empty() && exit_ok && result["ok"] == true,
        "browser checks failed (screenshots in test-artifacts/):\n{}\nfull result: {result}",
        failed.join("\n")
    );
}

/// Runs a unit-test file of tests/browser under node's own test runner; fails with its output.
pub fn run_node_tests(file: &str) {
    require_node_modules();
    let out = std::process::Command::new("node")
        .args(["--test", file])
        .current_dir(repo())
        .output()
        .expect("run node --test");
    assert!(
        out.status.success(),
        "node --test {file} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What every browser test starts from: the peers checked, barrage running on `config`, and
/// its `demo` room live from an ffmpeg push.
pub struct LiveDemo {
    pub server: barrage::app::RunningServer,
    /// `http://{addr}` of the server.
    pub base: String,
    pub pusher: Pusher,
    pub chromium: PathBuf,
}

impl LiveDemo {
    /// Checks chromium, the npm modules and ffmpeg, starts barrage, pushes to `demo` for
    /// `seconds` with a keyframe every `gop` frames, and waits until the room is live.
    pub async fn start(config: barrage::config::Config, seconds: u32, gop: u32) -> LiveDemo {
        let chromium = chromium();
        require_node_modules();
        require_ffmpeg();
        let server = barrage::app::start(config).await.expect("start barrage");
        let base = format!("http://{}", server.http_addr);
        let key = server.state.secrets.stream_keys["demo"].clone();
        let url = format!("rtmp://{}/live/{key}", server.rtmp_addr);
        let pusher = Pusher::start_with_gop(&url, seconds, gop);
        wait_live(&reqwest::Client::new(), &base, "demo").await;
        LiveDemo {
            server,
            base,
            pusher,
            chromium,
        }
    }

    /// Stops the push, then the server.
    pub async fn stop(mut self) {
        self.pusher.stop().await;
        self.server.stop().await;
    }
}
