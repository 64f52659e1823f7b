//! Two nodes on one Redis and one PostgreSQL: a room pushed to node A is live in node B's API
//! too (room JSON with A's name, the `?live=true` list, the session's live flag), and offline
//! on both once the push ends.

mod chat_common;
mod cluster_common;
mod common;

use std::time::Duration;

use barrage::testutil::{redis_cleanup, redis_prefix, redis_url, require_redis, ScratchPostgres};
use chat_common::TestServer;
use cluster_common::{get_json, node};

async fn room(s: &TestServer) -> Option<serde_json::Value> {
    get_json(s, "/api/rooms/demo").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_room_live_on_one_node_is_live_in_every_nodes_api() {
    let redis = redis_url();
    require_redis(&redis).await;
    common::require_tool("ffmpeg");
    let prefix = redis_prefix("livestatus");
    let db = ScratchPostgres::create().await;
    // One bucket for both, as a cluster has.
    let bucket = tempfile::tempdir().unwrap();
    let store_url = format!("file://{}", bucket.path().display());
    const KEY: &str = "live_cluster_live_status_key";
    let shared = |name: &'static str| {
        let url = db.url.clone();
        let store_url = store_url.clone();
        move |c: &mut barrage::config::Config| {
            c.db.url = url;
            c.storage.url = store_url;
            c.cluster.node_id = name.into();
            for room in c.rooms.iter_mut().filter(|r| r.id == "demo") {
                room.stream_key = KEY.into();
            }
        }
    };
    let a = node(&redis, &prefix, shared("node-a")).await;
    let b = node(&redis, &prefix, shared("node-b")).await;
    let offline = room(&b).await.expect("room JSON on b");
    assert!(offline["live"].is_null(), "{offline}");

    let mut pusher =
        common::push_generated(&format!("rtmp://{}/live/{KEY}", a.server.rtmp_addr), 30);
    let session = common::poll(Duration::from_secs(20), "the push live on a", || async {
        a.server.state.live.get("demo").map(|l| l.session)
    })
    .await;
    assert!(b.server.state.live.get("demo").is_none(), "b takes no push");

    // b's API says what a reports: live, which session, on which node, with its media.
    let seen = common::poll(Duration::from_secs(20), "b's room JSON live", || async {
        room(&b)
            .await
            .filter(|r| r["live"]["session"] == session.as_str() && r["live"]["width"] == 320)
    })
    .await;
    assert_eq!(seen["live"]["node"], "node-a", "{seen}");
    assert_eq!(room(&a).await.unwrap()["live"]["node"], "node-a");
    let listed: serde_json::Value = get_json(&b, "/api/rooms?live=true").await.unwrap();
    let ids: Vec<&str> = listed["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["demo"], "{listed}");
    let sessions: serde_json::Value = get_json(&b, "/api/rooms/demo/sessions").await.unwrap();
    assert_eq!(sessions["sessions"][0]["session"], session.as_str());
    assert_eq!(sessions["sessions"][0]["live"], true, "{sessions}");
    // b serves the live playlist from the shared bucket once a's first segment is listed.
    common::poll(
        Duration::from_secs(20),
        "the live playlist on b",
        || async { common::get_ok(&b.api, &format!("{}/hls/demo/live.m3u8", b.http)).await },
    )
    .await;

    // The push ends: offline on both nodes.
    let _ = pusher.kill();
    let _ = pusher.wait();
    common::poll(Duration::from_secs(30), "offline on b", || async {
        let r = room(&b).await?;
        r["live"].is_null().then_some(())
    })
    .await;
    let listed: serde_json::Value = get_json(&b, "/api/rooms?live=true").await.unwrap();
    assert_eq!(listed["total"], 0, "{listed}");
    for n in [a, b] {
        n.stop().await;
    }
    db.drop_database().await;
    redis_cleanup(&redis, &prefix).await;
}
