//! Several nodes as one system, in this process, on the machine's Redis (each test under a key
//! prefix of its own): events reach every node once in one seq order, the CDN files are
//! written once (by the owner), online counts, stats, moderation and rooms are shared, limits
//! hold across nodes, and the connect endpoint hands out the least-loaded nodes. Failures
//! (owner stop and kill, Redis outage) are in `cluster_failover.rs`.

mod chat_common;
mod cluster_common;
mod common;

use std::time::{Duration, Instant};

use barrage::chat::codec::Format;
use barrage::chat::protocol::AckStatus;
use barrage::testutil::{redis_cleanup, redis_prefix, redis_url, require_redis};
use chat_common::{start, Client, WAIT};
use cluster_common::{
    assert_contiguous, assert_files_hold, assert_once, cluster, collect, generous_limits, get_json,
    index_covering, label, node, owner_of, until,
};

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
    let owner_node = &nodes[owner];
    assert_files_hold(
        owner_node,
        "demo",
        &on_b,
        "the owner's files hold what sockets got",
    )
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
    // Each node alone would accept its burst (3 + 3); shared, the user has one budget: the
    // burst plus what refilled while the sends took (so a slow machine cannot fail this).
    let allowed = 3 + (elapsed * 0.2).floor() as usize + 1;
    assert!(
        accepted <= allowed,
        "{accepted} accepted in {elapsed:.1} s; at most {allowed} allowed"
    );
    assert!(accepted >= 3, "the burst passes: {accepted}");
    drop((on_a, on_b));
    a.stop().await;
    b.stop().await;
    redis_cleanup(&redis, &prefix).await;
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
    // All nodes of this test share one process, so their CPU figures are the same process's
    // seen at different moments; the order by connections shows once no sample reads as hot.
    let answer = common::poll(WAIT, "an answer ranking by connections", || async {
        let answer: serde_json::Value = get_json(&nodes[0], "/api/rooms/demo/connect").await?;
        let urls: Vec<String> = serde_json::from_value(answer["ws_urls"].clone()).ok()?;
        let cool = cluster(&nodes[0])
            .reports()
            .iter()
            .all(|r| r.cpu < barrage::cluster::allocate::HOT_CPU);
        (cool && urls.len() == 3).then_some(answer)
    })
    .await;
    let urls: Vec<String> = serde_json::from_value(answer["ws_urls"].clone()).unwrap();
    assert_eq!(urls[2], busy, "the loaded node comes last: {answer}");
    let distinct: std::collections::HashSet<&String> = urls.iter().collect();
    assert_eq!(distinct.len(), 3, "{answer}");
    assert_eq!(answer["nodes"], 3);
    drop(load);
    for n in nodes {
        n.stop().await;
    }
    redis_cleanup(&redis, &prefix).await;
}

/// `n` nodes sharing a scratch PostgreSQL database (rooms, keys and the audit log).
async fn nodes_on_postgres(
    redis: &str,
    prefix: &str,
    n: usize,
) -> (
    barrage::testutil::ScratchPostgres,
    Vec<chat_common::TestServer>,
) {
    let pg = barrage::testutil::ScratchPostgres::create().await;
    let mut nodes = Vec::new();
    for _ in 0..n {
        let url = pg.url.clone();
        nodes.push(
            node(redis, prefix, move |c| {
                generous_limits(c);
                c.db.url = url;
            })
            .await,
        );
    }
    (pg, nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rooms_made_and_closed_on_one_node_reach_the_others_through_postgres() {
    let redis = redis_url();
    require_redis(&redis).await;
    let prefix = redis_prefix("rooms");
    let (pg, nodes) = nodes_on_postgres(&redis, &prefix, 2).await;
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

/// The status of `GET /api/rooms/demo/audit` on `node` with `key` as the Bearer.
async fn audit_status(node: &chat_common::TestServer, key: &str) -> u16 {
    node.call(
        reqwest::Method::GET,
        "/api/rooms/demo/audit",
        Some(key),
        None,
    )
    .await
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_host_key_dies_on_every_node_and_socket_moderation_reaches_them_all() {
    let redis = redis_url();
    require_redis(&redis).await;
    let prefix = redis_prefix("hosts");
    let (pg, nodes) = nodes_on_postgres(&redis, &prefix, 2).await;
    // Made on node 0; node 1 learns the new digest from the shared database.
    let (status, body) = nodes[0]
        .admin(reqwest::Method::POST, "/api/rooms/demo/host-key", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let first = body["host_key"].as_str().unwrap().to_string();
    assert_eq!(audit_status(&nodes[0], &first).await, 200);
    common::poll(
        WAIT,
        "node 1 to take the host key made on node 0",
        || async { (audit_status(&nodes[1], &first).await == 200).then_some(()) },
    )
    .await;

    // The host rotates it on node 1: dead there at once, and on node 0 once it reloads.
    let (status, body) = nodes[1]
        .call(
            reqwest::Method::POST,
            "/api/rooms/demo/host-key",
            Some(&first),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let second = body["host_key"].as_str().unwrap().to_string();
    assert_eq!(audit_status(&nodes[1], &first).await, 403);
    common::poll(
        WAIT,
        "node 0 to refuse the rotated-out host key",
        || async { (audit_status(&nodes[0], &first).await == 403).then_some(()) },
    )
    .await;
    assert_eq!(audit_status(&nodes[0], &second).await, 200);

    // A moderator on node 1 deletes a message said on node 0; the viewer on node 0 loses it.
    let (mut viewer, _) = Client::join(&nodes[0], "demo", None, Format::Json).await;
    let token = nodes[0].token("ola", "demo");
    let (mut sender, _) = Client::join(&nodes[0], "demo", Some(&token), Format::Json).await;
    let moderator = nodes[1].token_as(
        "mod-1",
        barrage::auth::Role::Moderator,
        Some("demo"),
        Duration::from_secs(600),
    );
    let (mut m, _) = Client::join(&nodes[1], "demo", Some(&moderator), Format::Proto).await;
    assert_eq!(
        sender.say_and_ack(1, "delete me").await.status,
        AckStatus::Accepted
    );
    let is_it = |e: &barrage::chat::protocol::Event| label(e) == "delete me";
    let seq = m
        .events_until(is_it)
        .await
        .into_iter()
        .find(is_it)
        .unwrap()
        .seq;
    m.send_frame(&barrage::chat::protocol::ClientFrame::Delete(
        barrage::chat::protocol::DeleteRequest { request_id: 1, seq },
    ))
    .await;
    viewer
        .events_until(|e| {
            matches!(e.body, barrage::chat::protocol::Body::Moderation(d) if d.delete_seq == seq)
        })
        .await;
    // Both nodes write to one audit log.
    let (_, log) = nodes[0]
        .call(
            reqwest::Method::GET,
            "/api/rooms/demo/audit",
            Some(&second),
            None,
        )
        .await;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"delete") && actions.contains(&"rotate_host_key"),
        "{log}"
    );
    drop((viewer, sender, m));
    for n in nodes {
        n.stop().await;
    }
    pg.drop_database().await;
    redis_cleanup(&redis, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ingest_node_owns_the_room_and_danmaku_from_any_node_carry_the_stream_time() {
    let redis = redis_url();
    require_redis(&redis).await;
    let prefix = redis_prefix("live");
    let nodes = vec![
        node(&redis, &prefix, generous_limits).await,
        node(&redis, &prefix, generous_limits).await,
    ];
    // A viewer on node 1 first: node 1 owns the room until node 0 takes the broadcast in.
    let (mut viewer, _) = Client::join(&nodes[1], "demo", None, Format::Json).await;
    owner_of(&nodes, "demo").await;
    let key = nodes[0].server.state.secrets.stream_keys["demo"].clone();
    let mut pusher = common::push_generated(
        &format!("rtmp://{}/live/{key}", nodes[0].server.rtmp_addr),
        15,
    );
    until("the push reaching its first frame on node 0", || {
        nodes[0]
            .server
            .state
            .live
            .get("demo")
            .is_some_and(|l| l.first_frame_at.is_some())
    })
    .await;
    until("node 1 learning of the broadcast", || {
        cluster(&nodes[1]).reports().iter().any(|r| {
            r.live
                .get("demo")
                .is_some_and(|l| l.first_frame_ms.is_some())
        })
    })
    .await;
    assert!(
        nodes[1].server.state.live.get("demo").is_none(),
        "node 1 takes no push"
    );
    until("the ingest node owning the room", || {
        cluster(&nodes[0]).owns("demo") && !cluster(&nodes[1]).owns("demo")
    })
    .await;
    let token = nodes[1].token("tia", "demo");
    let (mut sender, _) = Client::join(&nodes[1], "demo", Some(&token), Format::Json).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sender.say_and_ack(1, "on time").await.status,
        AckStatus::Accepted
    );
    let (events, _) = collect(&mut viewer, &["on time".to_string()]).await;
    let event = events
        .iter()
        .find(|e| label(e) == "on time")
        .expect("the event");
    assert!(
        event.stream_ms >= 400,
        "stream time of the other node's broadcast: {}",
        event.stream_ms
    );
    // The files follow the broadcast's session, written by the ingest node.
    let session = nodes[0]
        .server
        .state
        .live
        .get("demo")
        .expect("still live")
        .session;
    let index = index_covering(&nodes[0], "demo", event.seq).await;
    assert_eq!(index.session, session);
    assert!(index.live, "{index:?}");
    let _ = pusher.kill();
    let _ = pusher.wait();
    drop((viewer, sender));
    for n in nodes {
        n.stop().await;
    }
    redis_cleanup(&redis, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_room_live_on_one_node_refuses_a_push_to_another_until_it_ends() {
    let redis = redis_url();
    require_redis(&redis).await;
    common::require_tool("ffmpeg");
    let prefix = redis_prefix("live");
    const KEY: &str = "live_cluster_one_publisher_key";
    let same_key = |c: &mut barrage::config::Config| {
        for room in c.rooms.iter_mut().filter(|r| r.id == "demo") {
            room.stream_key = KEY.into();
        }
    };
    let a = node(&redis, &prefix, same_key).await;
    let b = node(&redis, &prefix, same_key).await;
    let push = |s: &chat_common::TestServer, seconds| {
        common::push_generated(
            &format!("rtmp://{}/live/{KEY}", s.server.rtmp_addr),
            seconds,
        )
    };
    let wait = |child, secs| {
        tokio::task::spawn_blocking(move || common::wait_child(child, Duration::from_secs(secs)))
    };

    let first = push(&a, 8);
    poll_live(&a, true).await;
    let (ok, stderr) = wait(push(&b, 3), 20).await.unwrap();
    assert!(
        !ok && stderr.contains("already live"),
        "a push of the same room to another node is refused while it is live: {stderr}"
    );
    assert!(b.server.state.live.get("demo").is_none());

    // When the first push ends, its node gives the room back at once: b takes the next push.
    let (ok, stderr) = wait(first, 30).await.unwrap();
    assert!(ok, "the first publisher is unaffected: {stderr}");
    poll_live(&a, false).await;
    let third = push(&b, 3);
    poll_live(&b, true).await;
    let (ok, stderr) = wait(third, 20).await.unwrap();
    assert!(ok, "after the room ended on a, b takes it: {stderr}");
    redis_cleanup(&redis, &prefix).await;
}

/// Waits until the node has `demo` live (or no longer live).
async fn poll_live(s: &chat_common::TestServer, live: bool) {
    let what = if live { "demo live" } else { "demo ended" };
    until(what, || s.server.state.live.get("demo").is_some() == live).await;
}

/// A whole-cluster restart with Redis kept: on the new node the room's stream tail is history
/// (a resume from 0 gets it), never news for a socket that said hello without `resume_from`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_cluster_does_not_replay_the_stream_tail_as_live() {
    let redis = redis_url();
    require_redis(&redis).await;
    let prefix = redis_prefix("tail");
    let before: Vec<String> = (0..3).map(|i| format!("before restart {i}")).collect();
    let old = node(&redis, &prefix, |_| {}).await;
    let (mut watcher, _) = Client::join(&old, "demo", None, Format::Json).await;
    for text in &before {
        old.system("demo", text).await;
    }
    // Read back from the stream by the owner: the batches are in Redis.
    collect(&mut watcher, &before).await;
    drop(watcher);
    old.stop().await;

    let new = node(&redis, &prefix, |_| {}).await;
    let (mut viewer, _) = Client::join(&new, "demo", None, Format::Json).await;
    // The new node has read the tail (its history reaches the old seqs) before news is sent.
    new.wait_seq("demo", 3).await;
    let news = vec!["after restart".to_string()];
    new.system("demo", &news[0]).await;
    let (got, _) = collect(&mut viewer, &news).await;
    let replayed: Vec<String> = got
        .iter()
        .map(label)
        .filter(|l| before.contains(l))
        .collect();
    assert!(
        replayed.is_empty(),
        "old batches delivered as live: {replayed:?}"
    );
    assert!(got[0].seq > 3, "news continues the room's seqs: {got:?}");
    // History still covers them for a client that asks.
    let mut resumer = Client::connect(&new, "demo", None, Format::Json).await;
    resumer.hello(Some(0)).await;
    collect(&mut resumer, &before).await;
    drop((viewer, resumer));
    new.stop().await;
    redis_cleanup(&redis, &prefix).await;
}
