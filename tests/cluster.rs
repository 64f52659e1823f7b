//! Several nodes as one system, in this process, on the machine's Redis (each test under a key
//! prefix of its own) or on a redis-server of the test's own (the outage test): events reach
//! every node once in one seq order, the CDN files are written once, the owner's death is
//! taken over without a gap or a duplicate, limits hold across nodes, and nodes keep serving
//! their viewers through a Redis outage and rejoin after it.

mod chat_common;
mod cluster_common;

use std::time::{Duration, Instant};

use barrage::cdn::{BatchFile, IndexFile};
use barrage::chat::codec::Format;
use barrage::chat::protocol::{AckStatus, Event};
use barrage::testutil::{redis_cleanup, redis_prefix, redis_url, require_redis, RedisServer};
use chat_common::{start, Client, TestServer, WAIT};
use cluster_common::{
    assert_contiguous, assert_once, cluster, collect, label, node, owner_of, until,
};

async fn get_json<T: serde::de::DeserializeOwned>(s: &TestServer, path: &str) -> Option<T> {
    let r = s.api.get(format!("{}{path}", s.http)).send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json().await.ok()
}

fn generous_limits(c: &mut barrage::config::Config) {
    c.chat.user_rate_per_s = 100.0;
    c.chat.user_burst = 100;
    c.chat.conn_rate_per_s = 100.0;
    c.chat.conn_burst = 100;
}

/// Reads a room's files under one index from `s` and returns their events' seqs, checking
/// that file numbers and seq ranges are contiguous.
async fn file_seqs(s: &TestServer, room: &str, index: &IndexFile) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut next_from = None;
    for n in 1..=index.latest {
        let path = format!("/danmaku/{room}/{}/{n}.json", index.session);
        let file: BatchFile = get_json(s, &path).await.unwrap_or_else(|| panic!("{path}"));
        assert_eq!(file.n, n);
        if let Some(expected) = next_from {
            assert_eq!(file.from_seq, expected, "file {n} continues file {}", n - 1);
        }
        next_from = Some(file.to_seq + 1);
        assert_eq!(
            file.to_seq + 1 - file.from_seq,
            file.events.len() as u64,
            "{path}"
        );
        for e in file.events {
            let e: Event = serde_json::from_value(e).expect("an event in a file");
            out.push((e.seq, label(&e)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_sent_on_one_node_reach_every_node_once_in_one_order() {
    let redis = redis_url();
    require_redis(&redis).await;
    let prefix = redis_prefix("fanout");
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(node(&redis, &prefix, generous_limits).await);
    }
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let (mut vb, _) = Client::join(b, "demo", None, Format::Json).await;
    let (mut vc, _) = Client::join(c, "demo", None, Format::Proto).await;
    let owner = owner_of(&nodes, "demo").await;
    let token = a.token("alice", "demo");
    let (mut sa, _) = Client::join(a, "demo", Some(&token), Format::Json).await;

    let mut want = Vec::new();
    for i in 0..20u64 {
        let text = format!("m{i}");
        let ack = sa.say_and_ack(i + 1, &text).await;
        assert_eq!(ack.status, AckStatus::Accepted, "{ack:?}");
        want.push(text);
    }
    c.system("demo", "system from c").await;
    want.push("system from c".into());
    let (status, body) = a
        .admin(
            reqwest::Method::POST,
            "/api/rooms/demo/gifts",
            Some(serde_json::json!({"user":"g","gift_id":"rocket","value":500})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    want.push("rocket".into());

    let (on_b, gaps_b) = collect(&mut vb, &want).await;
    let (on_c, gaps_c) = collect(&mut vc, &want).await;
    assert!(
        gaps_b.is_empty() && gaps_c.is_empty(),
        "{gaps_b:?} {gaps_c:?}"
    );
    assert_once(&on_b, &want, "viewer on b");
    assert_once(&on_c, &want, "viewer on c");
    assert_contiguous(&on_b, "viewer on b");
    assert_eq!(
        on_b, on_c,
        "both viewers got the same events with the same seqs"
    );
    let danmaku: Vec<String> = on_b
        .iter()
        .map(label)
        .filter(|l| l.starts_with('m'))
        .collect();
    assert_eq!(danmaku, want[..20], "one sender's danmaku stay in order");

    // The CDN files are written by the owner only, and hold exactly what sockets got.
    let last = on_b.last().expect("events").seq;
    let owner_node = &nodes[owner];
    let index: IndexFile =
        chat_common_poll(WAIT, "the owner's index covering the last seq", || async {
            let index: IndexFile = get_json(owner_node, "/danmaku/demo/index.json").await?;
            let newest: BatchFile = get_json(
                owner_node,
                &format!("/danmaku/demo/{}/{}.json", index.session, index.latest),
            )
            .await?;
            (newest.to_seq >= last).then_some(index)
        })
        .await;
    for (i, n) in nodes.iter().enumerate() {
        if i != owner {
            let r = n
                .api
                .get(format!("{}/danmaku/demo/index.json", n.http))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                404,
                "node {i} is not the owner and wrote no files"
            );
        }
    }
    let in_files = file_seqs(owner_node, "demo", &index).await;
    let first = on_b[0].seq;
    let from_sockets: Vec<(u64, String)> = on_b.iter().map(|e| (e.seq, label(e))).collect();
    let files_part: Vec<(u64, String)> = in_files
        .into_iter()
        .filter(|(s, _)| *s >= first && *s <= last)
        .collect();
    assert_eq!(files_part, from_sockets);

    // Online counts and stats are summed across nodes.
    until("every node counting 3 viewers", || {
        nodes
            .iter()
            .all(|n| n.server.state.chat.online("demo") == 3)
    })
    .await;
    let stats = c.stats("demo").await;
    assert!(
        stats["uplink_accepted_total"].as_u64().unwrap_or(0) >= 20,
        "c sums a's accepted sends: {stats}"
    );
    assert_eq!(stats["online"], 3, "{stats}");

    // A mute made on b applies on a.
    let (status, body) = b
        .admin(reqwest::Method::POST, "/api/rooms/demo/mutes/alice", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let mut muted = false;
    for i in 0..100u64 {
        if sa.say_and_ack(1000 + i, "after mute").await.status == AckStatus::Muted {
            muted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(muted, "a mute made on another node reached this one");

    drop((sa, vb, vc));
    for n in nodes {
        n.stop().await;
    }
    redis_cleanup(&redis, &prefix).await;
}

/// Polls until `f` gives a value (the chat tests' helper takes a fixed name; this one's own).
async fn chat_common_poll<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
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
    for i in 0..10u64 {
        let text = format!("before {i}");
        assert_eq!(
            sender.say_and_ack(i + 1, &text).await.status,
            AckStatus::Accepted
        );
        want.push(text);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let (mut got0, _) = collect(&mut viewers[0], &want).await;
    let (mut got1, _) = collect(&mut viewers[1], &want).await;

    // The owner stops; sends go on meanwhile (they wait in the room's list for a new owner).
    let stopping = tokio::spawn(owner_node.stop());
    for i in 0..5u64 {
        let text = format!("during {i}");
        assert_eq!(
            sender.say_and_ack(100 + i, &text).await.status,
            AckStatus::Accepted
        );
        want.push(text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stopping.await.expect("the owner stopped");
    let new_owner = owner_of(&nodes, "demo").await;
    for i in 0..10u64 {
        let text = format!("after {i}");
        assert_eq!(
            sender.say_and_ack(200 + i, &text).await.status,
            AckStatus::Accepted
        );
        want.push(text);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let (more0, gaps0) = collect(&mut viewers[0], &want[10..]).await;
    let (more1, gaps1) = collect(&mut viewers[1], &want[10..]).await;
    assert!(gaps0.is_empty() && gaps1.is_empty(), "{gaps0:?} {gaps1:?}");
    got0.extend(more0);
    got1.extend(more1);
    assert_contiguous(&got0, "viewer 0");
    assert_once(&got0, &want, "viewer 0");
    assert_eq!(
        got0, got1,
        "both viewers got the same events with the same seqs"
    );

    // The files, written by the old owner then the new one, are one contiguous sequence
    // holding exactly what the sockets got.
    let reader = &nodes[new_owner];
    let last = got0.last().expect("events").seq;
    let index: IndexFile = chat_common_poll(WAIT, "the index covering the last seq", || async {
        let index: IndexFile = get_json(reader, "/danmaku/demo/index.json").await?;
        let newest: BatchFile = get_json(
            reader,
            &format!("/danmaku/demo/{}/{}.json", index.session, index.latest),
        )
        .await?;
        (newest.to_seq >= last).then_some(index)
    })
    .await;
    let in_files = file_seqs(reader, "demo", &index).await;
    let from_sockets: Vec<(u64, String)> = got0.iter().map(|e| (e.seq, label(e))).collect();
    let files_part: Vec<(u64, String)> = in_files
        .into_iter()
        .filter(|(s, _)| *s >= got0[0].seq && *s <= last)
        .collect();
    assert_eq!(files_part, from_sockets);

    drop((sender, viewers));
    for n in nodes {
        n.stop().await;
    }
    redis_cleanup(&redis, &prefix).await;
}

async fn send_six(c: &mut Client, base: u64) -> Vec<barrage::chat::protocol::Ack> {
    let mut acks = Vec::new();
    for i in 0..6u64 {
        acks.push(c.say_and_ack(base + i, "hi").await);
    }
    acks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_users_limit_holds_when_they_send_through_two_nodes() {
    let redis = redis_url();
    require_redis(&redis).await;
    let prefix = redis_prefix("limits");
    let strict = |c: &mut barrage::config::Config| {
        c.chat.user_rate_per_s = 0.2;
        c.chat.user_burst = 3;
    };
    let a = node(&redis, &prefix, strict).await;
    let b = node(&redis, &prefix, strict).await;
    let token = a.token("bob", "demo");
    let (mut on_a, _) = Client::join(&a, "demo", Some(&token), Format::Json).await;
    let (mut on_b, _) = Client::join(&b, "demo", Some(&token), Format::Proto).await;
    let started = Instant::now();
    let (acks_a, acks_b) = tokio::join!(send_six(&mut on_a, 1), send_six(&mut on_b, 100));
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = acks_a
        .iter()
        .chain(&acks_b)
        .filter(|a| a.status == AckStatus::Accepted)
        .count();
    for refused in acks_a
        .iter()
        .chain(&acks_b)
        .filter(|a| a.status != AckStatus::Accepted)
    {
        assert_eq!(refused.status, AckStatus::RateLimited, "{refused:?}");
        assert!(
            refused.retry_after_ms.is_some_and(|ms| ms > 0),
            "{refused:?}"
        );
    }
    // Each node alone would accept its burst (3 + 3); shared, the user has one budget.
    let allowed = 3 + (elapsed * 0.2).floor() as usize + 1;
    assert!(
        accepted <= allowed && accepted < 6,
        "{accepted} accepted in {elapsed:.1} s; at most {allowed} allowed"
    );
    assert!(accepted >= 3, "the burst passes: {accepted}");
    drop((on_a, on_b));
    a.stop().await;
    b.stop().await;
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
    until("both nodes rejoining", || {
        nodes.iter().all(|n| cluster(n).is_up())
    })
    .await;
    owner_of(&nodes, "demo").await;
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
    let metrics = nodes[0]
        .api
        .get(format!("{}/metrics", nodes[0].http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("barrage_cluster_local_mode_total"),
        "the outage is counted"
    );
    drop((sa, sb, va, vb));
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_hands_out_the_least_loaded_nodes_or_the_node_itself() {
    // Alone: itself.
    let alone = start(|_| {}).await;
    let answer: serde_json::Value = get_json(&alone, "/api/rooms/demo/connect")
        .await
        .expect("connect");
    assert_eq!(
        answer["ws_urls"],
        serde_json::json!([format!("{}/ws/demo", alone.ws)]),
        "{answer}"
    );
    assert_eq!(answer["nodes"], 1);
    assert!(answer["hls_url"]
        .as_str()
        .unwrap()
        .ends_with("/hls/demo/live.m3u8"));
    assert!(answer["danmaku_index"]
        .as_str()
        .unwrap()
        .ends_with("/danmaku/demo/index.json"));
    let missing = alone
        .api
        .get(format!("{}/api/rooms/nope/connect", alone.http))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    alone.stop().await;

    // Three nodes, one of them loaded: it comes last, the others first.
    let redis = redis_url();
    require_redis(&redis).await;
    let prefix = redis_prefix("connect");
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(
            node(&redis, &prefix, |c| {
                c.cluster.assignments_per_node = 1000;
                c.cluster.connect_urls = 3;
            })
            .await,
        );
    }
    let mut load = Vec::new();
    for _ in 0..3 {
        load.push(Client::join(&nodes[2], "other", None, Format::Json).await.0);
    }
    let busy = format!("{}/ws/demo", nodes[2].ws);
    until("every node's table showing the loaded node", || {
        cluster(&nodes[0])
            .reports()
            .iter()
            .filter(|r| r.connections >= 3)
            .count()
            == 1
            && cluster(&nodes[0]).reports().len() == 3
    })
    .await;
    for _ in 0..5 {
        let answer: serde_json::Value = get_json(&nodes[0], "/api/rooms/demo/connect")
            .await
            .expect("connect");
        let urls: Vec<String> = serde_json::from_value(answer["ws_urls"].clone()).unwrap();
        assert_eq!(urls.len(), 3, "{answer}");
        assert_eq!(urls[2], busy, "the loaded node comes last: {answer}");
        assert_eq!(answer["nodes"], 3);
    }
    drop(load);
    for n in nodes {
        n.stop().await;
    }
    redis_cleanup(&redis, &prefix).await;
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
    chat_common_poll(WAIT, "the child owning the room", || async {
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
    for i in 0..10u64 {
        let text = format!("before {i}");
        assert_eq!(
            sender.say_and_ack(i + 1, &text).await.status,
            AckStatus::Accepted
        );
        want.push(text);
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    let (mut got0, _) = collect(&mut v0, &want).await;
    let (mut got1, _) = collect(&mut v1, &want).await;
    assert!(
        !nodes.iter().any(|n| cluster(n).owns("demo")),
        "the child owns the room"
    );

    // SIGKILL: no lease given back, no last files; the lease has to run out.
    let _ = child.0.kill();
    let _ = child.0.wait();
    for i in 0..5u64 {
        let text = format!("during {i}");
        assert_eq!(
            sender.say_and_ack(100 + i, &text).await.status,
            AckStatus::Accepted
        );
        want.push(text);
    }
    let new_owner = owner_of(&nodes, "demo").await;
    for i in 0..10u64 {
        let text = format!("after {i}");
        assert_eq!(
            sender.say_and_ack(200 + i, &text).await.status,
            AckStatus::Accepted
        );
        want.push(text);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let (more0, gaps0) = collect(&mut v0, &want[10..]).await;
    let (more1, gaps1) = collect(&mut v1, &want[10..]).await;
    assert!(gaps0.is_empty() && gaps1.is_empty(), "{gaps0:?} {gaps1:?}");
    got0.extend(more0);
    got1.extend(more1);
    assert_contiguous(&got0, "viewer 0");
    assert_once(&got0, &want, "viewer 0");
    assert_eq!(
        got0, got1,
        "both viewers got the same events with the same seqs"
    );

    let reader = &nodes[new_owner];
    let last = got0.last().expect("events").seq;
    let index: IndexFile = chat_common_poll(WAIT, "the index covering the last seq", || async {
        let index: IndexFile = get_json(reader, "/danmaku/demo/index.json").await?;
        let newest: BatchFile = get_json(
            reader,
            &format!("/danmaku/demo/{}/{}.json", index.session, index.latest),
        )
        .await?;
        (newest.to_seq >= last).then_some(index)
    })
    .await;
    let in_files = file_seqs(reader, "demo", &index).await;
    let from_sockets: Vec<(u64, String)> = got0.iter().map(|e| (e.seq, label(e))).collect();
    let files_part: Vec<(u64, String)> = in_files
        .into_iter()
        .filter(|(s, _)| *s >= got0[0].seq && *s <= last)
        .collect();
    assert_eq!(
        files_part, from_sockets,
        "the files continue the dead owner's"
    );

    drop((sender, v0, v1));
    for n in nodes {
        n.stop().await;
    }
    redis_cleanup(&redis, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rooms_made_and_closed_on_one_node_reach_the_others_through_postgres() {
    let redis = redis_url();
    require_redis(&redis).await;
    let prefix = redis_prefix("rooms");
    let pg = barrage::testutil::ScratchPostgres::create().await;
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let url = pg.url.clone();
        nodes.push(
            node(&redis, &prefix, move |c| {
                generous_limits(c);
                c.db.url = url;
            })
            .await,
        );
    }
    let (status, body) = nodes[0]
        .admin(
            reqwest::Method::POST,
            "/api/rooms",
            Some(serde_json::json!({"id": "fresh", "title": "Made on node 0"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    until("node 1 knowing the new room", || {
        nodes[1].server.state.rooms.is_open("fresh")
    })
    .await;
    let (mut viewer, _) = Client::join(&nodes[1], "fresh", None, Format::Json).await;
    let token = nodes[0].token("ola", "fresh");
    let (mut sender, _) = Client::join(&nodes[0], "fresh", Some(&token), Format::Json).await;
    assert_eq!(
        sender.say_and_ack(1, "hello fresh").await.status,
        AckStatus::Accepted
    );
    collect(&mut viewer, &["hello fresh".to_string()]).await;

    let (status, body) = nodes[0]
        .admin(reqwest::Method::POST, "/api/rooms/fresh/close", None)
        .await;
    assert!(status < 300, "{body}");
    let (code, close) = viewer.error_and_close().await;
    assert_eq!(
        (code.as_str(), close),
        ("room_closed", 4410),
        "closed on node 1 too"
    );
    drop(sender);
    for n in nodes {
        n.stop().await;
    }
    pg.drop_database().await;
    redis_cleanup(&redis, &prefix).await;
}
