//! Helpers for the many-node tests: several servers in this process, each with its own ports
//! and data folder, sharing one Redis under a key prefix of the test's own.
//! Uses `chat_common` and `common`: a test file that has this module declares those too.
#![allow(dead_code)]

use std::collections::HashSet;
use std::time::Duration;

use barrage::cdn::{BatchFile, IndexFile};
use barrage::chat::protocol::{Body, Event, ServerFrame};
use barrage::cluster::Cluster;
use barrage::config::Config;

use crate::chat_common::{start, Client, Incoming, TestServer, WAIT};

/// Starts a node of the cluster at `redis` / `prefix`, after `tweak` edits its config.
pub async fn node(redis: &str, prefix: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let redis = redis.to_string();
    let prefix = prefix.to_string();
    init_logs();
    start(move |c| {
        // Nodes of one cluster share the token secret and the admin key.
        c.auth.token_secret = barrage::testutil::TEST_TOKEN_SECRET.into();
        c.auth.admin_key = barrage::testutil::TEST_ADMIN_KEY.into();
        c.cluster.redis_url = redis;
        c.cluster.key_prefix = prefix;
        c.cluster.report_ms = 200;
        tweak(c);
    })
    .await
}

/// Logs to the test output when RUST_LOG is set (e.g. RUST_LOG=barrage=info).
pub fn init_logs() {
    if std::env::var("RUST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

pub fn cluster(s: &TestServer) -> &Cluster {
    s.server
        .state
        .cluster
        .as_deref()
        .expect("a node with cluster.redis_url set")
}

/// Polls `cond` every 50 ms until it holds, failing with `what` after [`WAIT`].
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The index of the node that owns `room`, once one does.
pub async fn owner_of(nodes: &[TestServer], room: &str) -> usize {
    until(&format!("an owner for {room}"), || {
        nodes.iter().any(|n| cluster(n).owns(room))
    })
    .await;
    nodes
        .iter()
        .position(|n| cluster(n).owns(room))
        .expect("an owner")
}

/// The text that identifies an event in these tests (danmaku text, system text, gift id).
pub fn label(e: &Event) -> String {
    match &e.body {
        Body::Danmaku(d) => d.text.clone(),
        Body::System(s) => s.text.clone(),
        Body::Gift(g) => g.gift_id.clone(),
        Body::Moderation(m) => format!("delete {}", m.delete_seq),
    }
}

/// Reads batches until every label in `want` was seen; returns every event read (in order)
/// and the gaps announced.
pub async fn collect(c: &mut Client, want: &[String]) -> (Vec<Event>, Vec<(u64, u64)>) {
    let want: HashSet<&String> = want.iter().collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut events = Vec::new();
    let mut gaps = Vec::new();
    while !want.iter().all(|w| seen.contains(*w)) {
        match c.next().await {
            Incoming::Frame(ServerFrame::Batch { events: batch }) => {
                for e in batch {
                    if std::env::var("RUST_LOG").is_ok() {
                        eprintln!("collect: seq {} {:?}", e.seq, label(&e));
                    }
                    seen.insert(label(&e));
                    events.push(e);
                }
            }
            Incoming::Frame(ServerFrame::Gap { from_seq, to_seq }) => gaps.push((from_seq, to_seq)),
            Incoming::Frame(_) => {}
            Incoming::Close(code, reason) => panic!("closed {code} {reason} while collecting"),
        }
    }
    (events, gaps)
}

/// Asserts seqs go up by exactly one from event to event.
pub fn assert_contiguous(events: &[Event], who: &str) {
    for w in events.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq + 1,
            "{who}: seq {} follows {} ({:?} after {:?})",
            w[1].seq,
            w[0].seq,
            label(&w[1]),
            label(&w[0])
        );
    }
}

/// Asserts every label appears exactly once.
pub fn assert_once(events: &[Event], labels: &[String], who: &str) {
    for l in labels {
        let n = events.iter().filter(|e| &label(e) == l).count();
        assert_eq!(n, 1, "{who}: {l:?} delivered {n} times");
    }
}

/// A JSON document from a node's HTTP (None unless 200 with JSON).
pub async fn get_json<T: serde::de::DeserializeOwned>(s: &TestServer, path: &str) -> Option<T> {
    let r = s.api.get(format!("{}{path}", s.http)).send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json().await.ok()
}

/// Limits that never refuse these tests' senders.
pub fn generous_limits(c: &mut barrage::config::Config) {
    c.chat.user_rate_per_s = 100.0;
    c.chat.user_burst = 100;
    c.chat.conn_rate_per_s = 100.0;
    c.chat.conn_burst = 100;
    // These tests send one user's bursts past the per-tick budget and check that they arrive in
    // order; the default (newest first under a backlog) would show a burst's tail first.
    c.chat.backlog_order = barrage::config::BacklogOrder::Oldest;
}

/// Reads a room's files under one index from `s` and returns their events' seqs, checking
/// that file numbers and seq ranges are contiguous.
pub async fn file_seqs(s: &TestServer, room: &str, index: &IndexFile) -> Vec<(u64, String)> {
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

/// Waits until the room's index (read from `s`) covers `last`, and returns it.
pub async fn index_covering(s: &TestServer, room: &str, last: u64) -> IndexFile {
    crate::common::poll(WAIT, "the index covering the last seq", || async {
        let index: IndexFile = get_json(s, &format!("/danmaku/{room}/index.json")).await?;
        let newest: BatchFile = get_json(
            s,
            &format!("/danmaku/{room}/{}/{}.json", index.session, index.latest),
        )
        .await?;
        (newest.to_seq >= last).then_some(index)
    })
    .await
}

/// Reads the rest of `want` on two viewers into `got0`/`got1`, then checks that neither saw a
/// gap, that both got the same events with the same seqs, contiguous, each wanted label once.
pub async fn collect_both(
    viewers: [&mut Client; 2],
    want: &[String],
    rest_from: usize,
    got0: &mut Vec<Event>,
    got1: &mut Vec<Event>,
) {
    let [v0, v1] = viewers;
    let (more0, gaps0) = collect(v0, &want[rest_from..]).await;
    let (more1, gaps1) = collect(v1, &want[rest_from..]).await;
    assert!(gaps0.is_empty() && gaps1.is_empty(), "{gaps0:?} {gaps1:?}");
    got0.extend(more0);
    got1.extend(more1);
    assert_contiguous(got0, "viewer 0");
    assert_once(got0, want, "viewer 0");
    assert_eq!(
        got0, got1,
        "both viewers got the same events with the same seqs"
    );
}

/// Checks that `reader`'s danmaku files for `room` hold exactly the events a socket got, in the
/// same seqs (the files' part from the first to the last of `got`).
pub async fn assert_files_hold(reader: &TestServer, room: &str, got: &[Event], why: &str) {
    let first = got.first().expect("events").seq;
    let last = got.last().expect("events").seq;
    let index = index_covering(reader, room, last).await;
    let in_files = file_seqs(reader, room, &index).await;
    let from_sockets: Vec<(u64, String)> = got.iter().map(|e| (e.seq, label(e))).collect();
    let files_part: Vec<(u64, String)> = in_files
        .into_iter()
        .filter(|(s, _)| *s >= first && *s <= last)
        .collect();
    assert_eq!(files_part, from_sockets, "{why}");
}

/// Sends `count` danmaku "{prefix} {i}" from `sender` (client ids from `first_id`), checks that
/// each is accepted, waits `pause` after each, and adds their texts to `want`.
pub async fn send_accepted(
    sender: &mut Client,
    prefix: &str,
    first_id: u64,
    count: u64,
    pause: Duration,
    want: &mut Vec<String>,
) {
    for i in 0..count {
        let text = format!("{prefix} {i}");
        let ack = sender.say_and_ack(first_id + i, &text).await;
        assert_eq!(
            ack.status,
            barrage::chat::protocol::AckStatus::Accepted,
            "{text}"
        );
        want.push(text);
        tokio::time::sleep(pause).await;
    }
}
