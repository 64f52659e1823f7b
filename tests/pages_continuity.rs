//! The viewer page never needs a reload (issue #20), in a real browser: ffmpeg pushes, stops,
//! pushes again within the reconnect grace, then once more after the broadcast ended;
//! `tests/browser/continuity.mjs` watches the page play on through all of it, the host console's
//! notices, the danmaku index read through a CDN base, and the replay's one danmaku request.
//! The CDN base is this server under another host name (`localhost` for `127.0.0.1`), so the
//! browser's requests tell which way they went.

mod browser_common;

use barrage::config::{CdnBase, Config};
use barrage::testutil::{free_port, test_config, TEST_ADMIN_KEY};
use browser_common::*;

const CHECKS: &[&str] = &[
    "page_plays_the_first_push",
    "live_index_through_the_cdn_base",
    "page_says_reconnecting",
    "page_plays_into_the_second_push",
    "host_console_shows_notices",
    "page_waits_offline_then_plays_the_next_broadcast",
    "replay_reads_one_danmaku_file_through_the_cdn",
    "no_page_errors",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_page_plays_on_through_reconnects_and_broadcasts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut config = test_config(dir.path());
    config.http.listen = format!("127.0.0.1:{port}").parse().unwrap();
    // What a user gets: the default grace.
    config.rtmp.reconnect_grace_s = Config::from_toml_str("").unwrap().rtmp.reconnect_grace_s;
    let cdn = format!("http://localhost:{port}");
    config.cdn.bases = vec![CdnBase {
        url: cdn.clone(),
        weight: 1,
    }];
    let mut demo = LiveDemo::start(config, 12, 60).await;

    let artifacts = repo().join("test-artifacts");
    let env = [
        ("BARRAGE_URL", demo.base.clone()),
        ("BARRAGE_ADMIN_KEY", TEST_ADMIN_KEY.to_string()),
        ("BARRAGE_CDN", cdn),
        ("BARRAGE_ARTIFACTS", artifacts.display().to_string()),
        ("BARRAGE_CHROMIUM", demo.chromium.display().to_string()),
    ];
    let (exit_ok, result) = run_browser_script("continuity.mjs", &env, &mut demo.pusher).await;
    demo.stop().await;
    assert_checks(&result, exit_ok, CHECKS);
}
