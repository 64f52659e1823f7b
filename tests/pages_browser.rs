//! The pages in a real browser: barrage runs in-process, ffmpeg pushes a generated stream over
//! RTMP, and `tests/browser/pages.mjs` drives Debian's chromium (playwright-core) through the
//! home page, the viewer page (video, danmaku, join and send, CDN mode, resume, replay, a
//! moderator's delete and mute), the OBS overlay and the host console (with the admin key, and
//! with a room's host key), with node-side WebSocket clients on the other end.
//!
//! Peers: chromium, node and the npm modules of tests/browser, ffmpeg. `scripts/test.sh`
//! installs them; a missing one fails the test with that advice (never a silent skip).

mod browser_common;

use std::path::Path;
use std::time::Duration;

use barrage::auth::Role;
use barrage::testutil::{test_config, TEST_ADMIN_KEY};
use browser_common::*;

/// Every check pages.mjs runs; each must be present and passed.
const CHECKS: &[&str] = &[
    "home_lists_live_room",
    "viewer_video_plays",
    "viewer_video_plays_with_hlsjs",
    "viewer_video_plays_http_flv",
    "pages_connect_websockets",
    "node_danmaku_reaches_overlay",
    "page_danmaku_reaches_ws_client",
    "viewer_sends_its_player_position",
    "player_position_is_broadcast_time",
    "live_comment_waits_for_the_picture",
    "stream_mode_reads_danmaku_from_the_segments",
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
    let dir = tempfile::tempdir().expect("temp dir");
    let mut demo = LiveDemo::start(test_config(dir.path()), 300, 60).await;
    let room = "demo";

    let server = &demo.server;
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
        ("BARRAGE_URL", demo.base.clone()),
        ("BARRAGE_ADMIN_KEY", TEST_ADMIN_KEY.to_string()),
        ("BARRAGE_TOKEN", token),
        ("BARRAGE_TOKEN_2", token_2),
        ("BARRAGE_MOD_TOKEN", moderator),
        ("BARRAGE_HOST_KEY", host_key),
        ("BARRAGE_ROOM", room.to_string()),
        ("BARRAGE_ARTIFACTS", artifacts.display().to_string()),
        ("BARRAGE_CHROMIUM", demo.chromium.display().to_string()),
    ];
    let (exit_ok, result) = run_browser_script("pages.mjs", &env, &mut demo.pusher).await;
    demo.stop().await;
    assert_checks(&result, exit_ok, CHECKS);
    for shot in [
        "home",
        "viewer",
        "viewer-cdn",
        "viewer-stream",
        "viewer-flv",
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

/// The pages' pure modules (lanes, seq filter, replay timeline, CDN base choice, sync gate,
/// in-stream reader) under node's own test runner.
#[test]
fn page_modules_pass_their_unit_tests() {
    run_node_tests("tests/browser/unit.test.mjs");
    run_node_tests("tests/browser/sync.test.mjs");
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
