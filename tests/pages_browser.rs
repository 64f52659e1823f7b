//! The pages in a real browser: barrage runs in-process, ffmpeg pushes a generated stream over
//! RTMP, and `tests/browser/pages.mjs` drives Debian's chromium (playwright-core) through the
//! home page, the viewer page (video, danmaku, join and send, CDN mode, resume, replay, a
//! moderator's delete and mute), the OBS overlay and the host console (with the admin key, and
//! with a room's host key), with node-side WebSocket clients on the other end.
//!
//! Peers: chromium, node and the npm modules of tests/browser, ffmpeg. `scripts/test.sh`
//! installs them; a missing one fails the test with that advice (never a silent skip).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use barrage::auth::Role;
use barrage::testutil::{test_config, TEST_ADMIN_KEY};
use tokio::io::{AsyncBufReadExt, BufReader};

const INSTALL: &str = "run scripts/test.sh (as root) to install the browser test peers";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The browser: `BARRAGE_CHROMIUM` or Debian's /usr/bin/chromium.
fn chromium() -> PathBuf {
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
fn require_node_modules() {
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

fn require_ffmpeg() {
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
fn push(url: &str, seconds: u32) -> tokio::process::Child {
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
            "60",
            "-keyint_min",
            "60",
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
async fn stop_push(child: &mut tokio::process::Child) {
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
async fn wait_live(http: &reqwest::Client, base: &str, room: &str) {
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

/// Runs pages.mjs; answers its "@@stop-push" by stopping ffmpeg; returns (exit ok, result).
async fn run_browser_script(
    env: &[(&str, String)],
    ffmpeg: &mut tokio::process::Child,
) -> (bool, serde_json::Value) {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(repo().join("tests/browser/pages.mjs"))
        .current_dir(repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start node tests/browser/pages.mjs");
    let stdout = child.stdout.take().expect("node stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut result = serde_json::Value::Null;
    let run = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == "@@stop-push" {
                stop_push(ffmpeg).await;
            } else if line.starts_with('{') {
                result = serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
            } else {
                eprintln!("[pages stdout] {line}");
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

/// Every check pages.mjs runs; each must be present and passed.
const CHECKS: &[&str] = &[
    "home_lists_live_room",
    "viewer_video_plays",
    "viewer_video_plays_with_hlsjs",
    "pages_connect_websockets",
    "node_danmaku_reaches_overlay",
    "page_danmaku_reaches_ws_client",
    "xss_renders_as_text",
    "gift_and_system_shown_distinctly",
    "cdn_mode_shows_batch_files",
    "reconnect_and_resume",
    "host_console",
    "host_deletes_message",
    "host_console_with_host_key",
    "moderator_deletes_from_viewer_page",
    "comments_do_not_overlap",
    "viewer_screenshot",
    "danmaku_controls",
    "replay_shows_comments_at_stream_time",
    "no_page_errors",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_work_in_a_real_browser() {
    let chromium = chromium();
    require_node_modules();
    require_ffmpeg();

    let dir = tempfile::tempdir().expect("temp dir");
    let server = barrage::app::start(test_config(dir.path()))
        .await
        .expect("start barrage");
    let base = format!("http://{}", server.http_addr);
    let room = "demo";
    let key = server.state.secrets.stream_keys[room].clone();
    let mut ffmpeg = push(&format!("rtmp://{}/live/{key}", server.rtmp_addr), 300);
    let http = reqwest::Client::new();
    wait_live(&http, &base, room).await;

    let mint = |user: &str, name: &str, role: Role| {
        server
            .state
            .tokens
            .mint(user, name, role, Some(room), Duration::from_secs(3600))
    };
    let token = mint("node-bot", "NodeBot", Role::Viewer);
    let token_2 = mint("node-bot-2", "NodeBot2", Role::Viewer);
    let moderator = mint("mod-1", "Mia (mod)", Role::Moderator);
    let host_key = server.state.secrets.host_keys[room].clone();
    let artifacts = repo().join("test-artifacts");
    let env = [
        ("BARRAGE_URL", base.clone()),
        ("BARRAGE_ADMIN_KEY", TEST_ADMIN_KEY.to_string()),
        ("BARRAGE_TOKEN", token),
        ("BARRAGE_TOKEN_2", token_2),
        ("BARRAGE_MOD_TOKEN", moderator),
        ("BARRAGE_HOST_KEY", host_key),
        ("BARRAGE_ROOM", room.to_string()),
        ("BARRAGE_ARTIFACTS", artifacts.display().to_string()),
        ("BARRAGE_CHROMIUM", chromium.display().to_string()),
    ];
    let (exit_ok, result) = run_browser_script(&env, &mut ffmpeg).await;
    stop_push(&mut ffmpeg).await;
    server.stop().await;

    let checks = &result["checks"];
    let failed: Vec<String> = CHECKS
        .iter()
        .filter(|name| checks[**name]["ok"] != serde_json::Value::Bool(true))
        .map(|name| format!("{name}: {}", checks[*name]))
        .collect();
    assert!(
        failed.is_empty() && exit_ok && result["ok"] == true,
        "browser checks failed (screenshots in {}):\n{}\nfull result: {result}",
        artifacts.display(),
        failed.join("\n")
    );
    for shot in [
        "home",
        "viewer",
        "viewer-cdn",
        "overlay",
        "host",
        "host-key",
        "viewer-moderator",
        "replay",
    ] {
        assert!(
            Path::new(&artifacts).join(format!("{shot}.png")).is_file(),
            "screenshot {shot}.png was not saved"
        );
    }
}

/// The pages' pure modules (lanes, seq filter, replay timeline, CDN base choice) under node's
/// own test runner.
#[test]
fn page_modules_pass_their_unit_tests() {
    require_node_modules();
    let out = std::process::Command::new("node")
        .args(["--test", "tests/browser/unit.test.mjs"])
        .current_dir(repo())
        .output()
        .expect("run node --test");
    assert!(
        out.status.success(),
        "node --test failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// For a person to look at the pages: serves them (with a live push) for `BARRAGE_LOOK_S`
/// seconds on `BARRAGE_LOOK_PORT`. `cargo test --test pages_browser serve_for_a_look -- --ignored`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "manual: serves the pages for a person to look at"]
async fn serve_for_a_look() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(dir.path());
    if let Ok(port) = std::env::var("BARRAGE_LOOK_PORT") {
        config.http.listen = format!("127.0.0.1:{port}").parse().expect("port");
    }
    let server = barrage::app::start(config).await.expect("start barrage");
    let key = server.state.secrets.stream_keys["demo"].clone();
    let seconds: u64 = std::env::var("BARRAGE_LOOK_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let mut ffmpeg = push(
        &format!("rtmp://{}/live/{key}", server.rtmp_addr),
        seconds as u32,
    );
    eprintln!(
        "pages at http://{} (admin key {TEST_ADMIN_KEY}) for {seconds} s",
        server.http_addr
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop_push(&mut ffmpeg).await;
    server.stop().await;
}
