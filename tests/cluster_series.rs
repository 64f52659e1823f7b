//! The host console's series across two nodes on one Redis: gifts posted to either node add
//! up in both nodes' answers, and the ingest bitrate of a push taken in by node A shows in node
//! B's series.

mod chat_common;
mod cluster_common;
mod common;

use std::time::Duration;

use barrage::testutil::{redis_cleanup, redis_prefix, redis_url, require_redis};
use chat_common::TestServer;
use cluster_common::node;
use serde_json::Value;

async fn gifts(s: &TestServer, n: usize) {
    for _ in 0..n {
        let r = s
            .api
            .post(format!("{}/api/rooms/demo/gifts", s.http))
            .bearer_auth(&s.admin_key)
            .json(&serde_json::json!({"user": "fan", "gift_id": "rose", "value": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
}

/// The total of gifts and the highest ingest bitrate in `s`'s series of the last 2 minutes.
async fn totals(s: &TestServer) -> Option<(u64, f64)> {
    let r = s
        .api
        .get(format!("{}/api/rooms/demo/series?seconds=120", s.http))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    let gifts = v["gifts"]
        .as_array()?
        .iter()
        .filter_map(Value::as_u64)
        .sum();
    let kbps = v["ingest_kbps"]
        .as_array()?
        .iter()
        .filter_map(Value::as_f64)
        .fold(0.0, f64::max);
    Some((gifts, kbps))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_answers_the_sum_of_the_cluster() {
    let redis = redis_url();
    require_redis(&redis).await;
    let prefix = redis_prefix("series");
    const KEY: &str = "live_cluster_series_key";
    let with_key = |name: &'static str| {
        move |c: &mut barrage::config::Config| {
            c.cluster.node_id = name.into();
            for room in c.rooms.iter_mut().filter(|r| r.id == "demo") {
                room.stream_key = KEY.into();
            }
        }
    };
    let a = node(&redis, &prefix, with_key("node-a")).await;
    let b = node(&redis, &prefix, with_key("node-b")).await;
    let pusher = common::push_generated(&format!("rtmp://{}/live/{KEY}", a.server.rtmp_addr), 10);
    gifts(&a, 3).await;
    gifts(&b, 4).await;
    for (name, s) in [("a", &a), ("b", &b)] {
        common::poll(
            Duration::from_secs(30),
            &format!("node {name}: 7 gifts and a's ingest bitrate"),
            || async { totals(s).await.filter(|(g, kbps)| *g == 7 && *kbps > 0.0) },
        )
        .await;
    }
    let _ = common::wait_child(pusher, Duration::from_secs(60));
    a.server.stop().await;
    b.server.stop().await;
    redis_cleanup(&redis, &prefix).await;
}
