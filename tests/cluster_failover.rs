//! Failures of a many-node system, on real Redis: the room's owner stops (its lease is given
//! back) or is killed (SIGKILL: the lease has to run out) and another node continues the seqs
//! and the CDN files without a gap or a duplicate; Redis itself goes away (a redis-server of
//! the test's own) and every node keeps serving its viewers, then rejoins.

mod chat_common;
mod cluster_common;
mod common;

use std::time::{Duration, Instant};

use barrage::chat::codec::Format;
use barrage::chat::protocol::AckStatus;
use barrage::testutil::{redis_cleanup, redis_prefix, redis_url, require_redis, RedisServer};
use chat_common::{Client, WAIT};
use cluster_common::{
    assert_files_hold, assert_once, cluster, collect, collect_both, generous_limits, node,
    owner_of, send_accepted, until,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_owner_stops_another_node_continues_the_seqs_and_the_files() {
    let redis = redis_url();
    require_redis(&redis).await;
    let prefix = redis_prefix("takeover");
    let shared = tempfile::tempdir().expect("tempdir");
    let store = format!("file://{}", shared.path().display());
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let store = store.clone();
        nodes.push(
            node(&redis, &prefix, move |c| {
                generous_limits(c);
                c.storage.url = store;
                c.cluster.lease_ms = 1500;
            })
            .await,
        );
    }
    // A viewer on every node, then find the owner; senders and watchers are the others.
    let mut viewers = Vec::new();
    for n in &nodes {
        viewers.push(Client::join(n, "demo", None, Format::Json).await.0);
    }
    let owner = owner_of(&nodes, "demo").await;
    let owner_node = nodes.remove(owner);
    drop(viewers.remove(owner));
    let token = nodes[0].token("sam", "demo");
    let (mut sender, _) = Client::join(&nodes[0], "demo", Some(&token), Format::Json).await;

    let mut want = Vec::new();
    send_accepted(
        &mut sender,
        "before",
        1,
        10,
        Duration::from_millis(60),
        &mut want,
    )
    .await;
    let (mut got0, _) = collect(&mut viewers[0], &want).await;
    let (mut got1, _) = collect(&mut viewers[1], &want).await;

    // The owner stops; sends go on meanwhile (they wait in the room's list for a new owner).
    let stopping = tokio::spawn(owner_node.stop());
    send_accepted(
        &mut sender,
        "during",
        100,
        5,
        Duration::from_millis(100),
        &mut want,
    )
    .await;
    stopping.await.expect("the owner stopped");
    let new_owner = owner_of(&nodes, "demo").await;
    send_accepted(
        &mut sender,
        "after",
        200,
        10,
        Duration::from_millis(60),
        &mut want,
    )
    .await;
    let [v0, v1] = &mut viewers[..] else {
        unreachable!("two viewers")
    };
    collect_both([v0, v1], &want, 10, &mut got0, &mut got1).await;

    // The files, written by the old owner then the new one, are one contiguous sequence
    // holding exactly what the sockets got.
    assert_files_hold(
        &nodes[new_owner],
        "demo",
        &got0,
        "files continue across the stop",
    )
    .await;

    drop((sender, viewers));
    for n in nodes {
        n.stop().await;
    }
    redis_cleanup(&redis, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_serve_their_viewers_through_a_redis_outage_and_rejoin() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    require_redis(&url).await;
    let prefix = redis_prefix("outage");
    let tweak = |c: &mut barrage::config::Config| {
        generous_limits(c);
        c.cluster.lease_ms = 1200;
    };
    let nodes = vec![
        node(&url, &prefix, tweak).await,
        node(&url, &prefix, tweak).await,
    ];
    let (mut va, _) = Client::join(&nodes[0], "demo", None, Format::Json).await;
    let (mut vb, _) = Client::join(&nodes[1], "demo", None, Format::Json).await;
    owner_of(&nodes, "demo").await;
    let (mut sa, _) = Client::join(
        &nodes[0],
        "demo",
        Some(&nodes[0].token("ann", "demo")),
        Format::Json,
    )
    .await;
    let (mut sb, _) = Client::join(
        &nodes[1],
        "demo",
        Some(&nodes[1].token("ben", "demo")),
        Format::Json,
    )
    .await;

    assert_eq!(
        sa.say_and_ack(1, "shared before").await.status,
        AckStatus::Accepted
    );
    let want = vec!["shared before".to_string()];
    let (mut got_a, _) = collect(&mut va, &want).await;
    let (mut got_b, _) = collect(&mut vb, &want).await;

    redis.stop();
    until("both nodes noticing Redis is gone", || {
        nodes.iter().all(|n| !cluster(n).is_up())
    })
    .await;
    assert_eq!(
        sa.say_and_ack(2, "alone on a").await.status,
        AckStatus::Accepted
    );
    assert_eq!(
        sb.say_and_ack(2, "alone on b").await.status,
        AckStatus::Accepted
    );
    let (more, _) = collect(&mut va, &["alone on a".to_string()]).await;
    got_a.extend(more);
    let (more, _) = collect(&mut vb, &["alone on b".to_string()]).await;
    got_b.extend(more);

    redis.restart();
    let restarted = Instant::now();
    until("both nodes rejoining", || {
        nodes.iter().all(|n| cluster(n).is_up())
    })
    .await;
    owner_of(&nodes, "demo").await;
    let rejoined = restarted.elapsed();
    assert_eq!(
        sa.say_and_ack(3, "shared after a").await.status,
        AckStatus::Accepted
    );
    assert_eq!(
        sb.say_and_ack(3, "shared after b").await.status,
        AckStatus::Accepted
    );
    let want = vec!["shared after a".to_string(), "shared after b".to_string()];
    let (more, _) = collect(&mut va, &want).await;
    got_a.extend(more);
    let (more, _) = collect(&mut vb, &want).await;
    got_b.extend(more);

    for (got, who) in [(&got_a, "viewer on a"), (&got_b, "viewer on b")] {
        for w in got.windows(2) {
            assert!(
                w[1].seq > w[0].seq,
                "{who}: seqs only go up: {} then {}",
                w[0].seq,
                w[1].seq
            );
        }
        assert_once(got, &want, who);
    }
    println!(
        "DRILL redis_outage got_on_a={} got_on_b={} rejoin_s={:.1}",
        got_a.len(),
        got_b.len(),
        rejoined.as_secs_f64()
    );
    let metrics = common::metrics_text(&nodes[0].api, &nodes[0].http).await;
    assert!(
        metrics.contains("barrage_cluster_local_mode_total"),
        "the outage is counted"
    );
    drop((sa, sb, va, vb));
    for n in nodes {
        n.stop().await;
    }
}

/// Where a child node writes its HTTP address (set only for the child process).
/// (Not BARRAGE_*: the config loader refuses names it does not know.)
const CHILD_ADDR_FILE: &str = "CLUSTER_TEST_CHILD_ADDR_FILE";

/// Not a test of its own: the node process that `a_killed_owner_is_taken_over_*` starts (this
/// test binary again, running only this function) and kills with SIGKILL. Its config comes
/// from BARRAGE_* variables; without them it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper: the node process the crash test starts and kills"]
async fn crash_test_child_node() {
    let Ok(addr_file) = std::env::var(CHILD_ADDR_FILE) else {
        return;
    };
    let config = barrage::config::Config::load(None).expect("child config from BARRAGE_*");
    let server = barrage::app::start(config)
        .await
        .expect("child node starts");
    std::fs::write(&addr_file, server.http_addr.to_string()).expect("write the address");
    // Killed by the test long before this; bounded so an orphan ends by itself.
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// Kills its child on drop, so a failing test leaves no node behind.
struct ChildNode(std::process::Child);

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_owner_is_taken_over_without_a_gap_or_a_duplicate() {
    let redis = redis_url();
    require_redis(&redis).await;
    let prefix = redis_prefix("crash");
    let shared = tempfile::tempdir().expect("tempdir");
    let store = format!("file://{}", shared.path().display());
    let child_dir = tempfile::tempdir().expect("tempdir");
    let addr_file = child_dir.path().join("addr");
    let exe = std::env::current_exe().expect("this test binary");
    let child = std::process::Command::new(exe)
        .args([
            "crash_test_child_node",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ADDR_FILE, &addr_file)
        .env("BARRAGE_DATA_DIR", child_dir.path().join("data"))
        .env("BARRAGE_HTTP__LISTEN", "127.0.0.1:0")
        .env("BARRAGE_RTMP__LISTEN", "127.0.0.1:0")
        .env(
            "BARRAGE_AUTH__TOKEN_SECRET",
            barrage::testutil::TEST_TOKEN_SECRET,
        )
        .env("BARRAGE_AUTH__ADMIN_KEY", barrage::testutil::TEST_ADMIN_KEY)
        .env("BARRAGE_STORAGE__URL", &store)
        .env("BARRAGE_CLUSTER__REDIS_URL", &redis)
        .env("BARRAGE_CLUSTER__KEY_PREFIX", &prefix)
        .env("BARRAGE_CLUSTER__LEASE_MS", "1500")
        .env("BARRAGE_CLUSTER__REPORT_MS", "200")
        .env("BARRAGE_CHAT__USER_RATE_PER_S", "100.0")
        .env("BARRAGE_CHAT__USER_BURST", "100")
        .env("BARRAGE_CHAT__CONN_BURST", "100")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the child node");
    let mut child = ChildNode(child);
    let started = Instant::now();
    let child_addr = loop {
        if let Ok(a) = std::fs::read_to_string(&addr_file) {
            if !a.is_empty() {
                break a;
            }
        }
        assert!(started.elapsed() < WAIT, "the child node did not start");
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("the child node exited at start: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The child activates the room first, so it is the owner.
    let child_ws = format!("ws://{child_addr}/ws/demo");
    let (_child_viewer, _) = tokio_tungstenite::connect_async(&child_ws)
        .await
        .expect("a viewer on the child");
    let api = reqwest::Client::new();
    common::poll(WAIT, "the child owning the room", || async {
        let view: serde_json::Value = api
            .get(format!("http://{child_addr}/api/cluster"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let mine = view["node_id"].clone();
        view["nodes"]
            .as_array()?
            .iter()
            .any(|n| n["id"] == mine && n["rooms"]["demo"]["owner"] == true)
            .then_some(())
    })
    .await;

    let mut nodes = Vec::new();
    for _ in 0..2 {
        let store = store.clone();
        nodes.push(
            node(&redis, &prefix, move |c| {
                generous_limits(c);
                c.storage.url = store;
                c.cluster.lease_ms = 1500;
            })
            .await,
        );
    }
    let (mut v0, _) = Client::join(&nodes[0], "demo", None, Format::Json).await;
    let (mut v1, _) = Client::join(&nodes[1], "demo", None, Format::Proto).await;
    let token = nodes[0].token("kim", "demo");
    let (mut sender, _) = Client::join(&nodes[0], "demo", Some(&token), Format::Json).await;
    let mut want = Vec::new();
    send_accepted(
        &mut sender,
        "before",
        1,
        10,
        Duration::from_millis(80),
        &mut want,
    )
    .await;
    let (mut got0, _) = collect(&mut v0, &want).await;
    let (mut got1, _) = collect(&mut v1, &want).await;
    assert!(
        !nodes.iter().any(|n| cluster(n).owns("demo")),
        "the child owns the room"
    );

    // SIGKILL: no lease given back, no last files; the lease has to run out.
    let _ = child.0.kill();
    let _ = child.0.wait();
    let killed = Instant::now();
    for i in 0..5u64 {
        let text = format!("during {i}");
        assert_eq!(
            sender.say_and_ack(100 + i, &text).await.status,
            AckStatus::Accepted
        );
        want.push(text);
    }
    let new_owner = owner_of(&nodes, "demo").await;
    let takeover = killed.elapsed();
    send_accepted(
        &mut sender,
        "after",
        200,
        10,
        Duration::from_millis(60),
        &mut want,
    )
    .await;
    collect_both([&mut v0, &mut v1], &want, 10, &mut got0, &mut got1).await;
    assert_files_hold(
        &nodes[new_owner],
        "demo",
        &got0,
        "the files continue the dead owner's",
    )
    .await;
    // Figures for docs/RELIABILITY.md (printed, not asserted: the lease decides them).
    println!(
        "DRILL kill_owner lease_ms=1500 accepted={} delivered_on_0={} delivered_on_1={} takeover_s={:.1}",
        want.len(),
        got0.len(),
        got1.len(),
        takeover.as_secs_f64()
    );

    drop((sender, v0, v1));
    for n in nodes {
        n.stop().await;
    }
    redis_cleanup(&redis, &prefix).await;
}
