//! What a host sees, in a real browser (`tests/browser/hostview.mjs`): ffmpeg pushes with an
//! 8 s keyframe interval; the home page shows the room's still, the host console's charts draw
//! and move (gifts, and a burst of danmaku over a real socket, some refused) and its health panel gives the keyframe advice, and once the push stops the
//! console's and the viewer page's replay lists link the MP4 download. Screenshots:
//! test-artifacts/home-thumbnails.png, host-charts-health.png, host-replays.png.

mod browser_common;

use std::path::Path;

use barrage::testutil::{test_config, TEST_ADMIN_KEY};
use browser_common::*;

const CHECKS: &[&str] = &[
    "home_shows_thumbnail",
    "console_charts_draw_and_move",
    "console_health_advice",
    "replay_download_links",
    "no_page_errors",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_sees_stills_charts_health_and_downloads() {
    let dir = tempfile::tempdir().expect("temp dir");
    // An 8 s keyframe interval, for the health panel's advice.
    let mut demo = LiveDemo::start(test_config(dir.path()), 300, 240).await;

    let token = demo.server.state.tokens.mint(
        "burst",
        "Burst",
        barrage::auth::Role::Viewer,
        Some("demo"),
        std::time::Duration::from_secs(3600),
    );
    let artifacts = repo().join("test-artifacts");
    let env = [
        ("BARRAGE_URL", demo.base.clone()),
        ("BARRAGE_TOKEN", token),
        ("BARRAGE_ADMIN_KEY", TEST_ADMIN_KEY.to_string()),
        ("BARRAGE_ARTIFACTS", artifacts.display().to_string()),
        ("BARRAGE_CHROMIUM", demo.chromium.display().to_string()),
    ];
    let (exit_ok, result) = run_browser_script("hostview.mjs", &env, &mut demo.pusher).await;
    demo.stop().await;
    assert_checks(&result, exit_ok, CHECKS);
    for shot in ["home-thumbnails", "host-charts-health", "host-replays"] {
        assert!(
            Path::new(&artifacts).join(format!("{shot}.png")).is_file(),
            "screenshot {shot}.png was not saved"
        );
    }
}

/// The chart module's pure parts under node's own test runner.
#[test]
fn chart_module_passes_its_unit_tests() {
    run_node_tests("tests/browser/charts.test.mjs");
}
