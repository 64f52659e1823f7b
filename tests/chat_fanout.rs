//! Room-level load in one process: a thousand sockets receiving every batch, and a flood that
//! the scheduler must keep within the per-tick budget without losing system messages or gifts.
//! Timings are printed for information only; benchmarks own the numbers.

mod chat_common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use barrage::chat::codec::Format;
use barrage::chat::protocol::{AckStatus, Body, Priority, ServerFrame};
use chat_common::{start, Client, Incoming, WAIT};
use reqwest::Method;

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sockets_in_one_room_all_receive_every_batch() {
    const SOCKETS: usize = 1000;
    const MESSAGES: u64 = 20;
    let s = start(|c| c.chat.tick_ms = 50).await;
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut clients = Vec::with_capacity(SOCKETS);
    let mut pending = futures::stream::iter((0..SOCKETS).map(|i| {
        let format = if i % 2 == 0 {
            Format::Json
        } else {
            Format::Proto
        };
        Client::join(&s, "demo", None, format)
    }))
    .buffer_unordered(64);
    use futures::StreamExt;
    while let Some((client, welcome)) = pending.next().await {
        assert_eq!(welcome.seq, 0);
        clients.push(client);
    }
    drop(pending);
    let connect_time = started.elapsed();
    let rss_after = rss_kib();
    assert_eq!(s.stats("demo").await["online"], SOCKETS as u64);

    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let mut batches = Vec::new();
                let mut last = 0;
                while last < MESSAGES {
                    match c.next().await {
                        Incoming::Frame(ServerFrame::Batch { events }) => {
                            let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
                            assert_eq!(seqs.first(), Some(&(last + 1)), "contiguous");
                            last = *seqs.last().unwrap();
                            batches.push((seqs[0], last));
                        }
                        Incoming::Frame(ServerFrame::Gap { from_seq, to_seq }) => {
                            panic!("a fast reader was told of a gap {from_seq}..{to_seq}")
                        }
                        Incoming::Frame(_) => {}
                        Incoming::Close(code, reason) => panic!("closed {code} {reason}"),
                    }
                }
                (c, batches)
            })
        })
        .collect();
    let sent = Instant::now();
    for round in 0..4 {
        for i in 0..MESSAGES / 4 {
            s.system("demo", &format!("round {round} message {i}"))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let mut first: Option<Vec<(u64, u64)>> = None;
    let mut kept = Vec::new();
    for r in readers {
        let (c, batches) = tokio::time::timeout(WAIT, r)
            .await
            .expect("every socket got every event in time")
            .expect("reader task");
        match &first {
            None => first = Some(batches),
            Some(f) => assert_eq!(&batches, f, "every socket gets the same shared batches"),
        }
        kept.push(c);
    }
    let batches = first.unwrap();
    assert!(batches.len() >= 4, "several ticks' batches: {batches:?}");
    println!(
        "{SOCKETS} sockets: connected in {connect_time:?}; {} batches, {MESSAGES} events delivered to all in {:?}; RSS {:?} -> {:?} KiB ({:.1} KiB per client+server socket pair)",
        batches.len(),
        sent.elapsed(),
        rss_before,
        rss_after,
        match (rss_before, rss_after) {
            (Some(a), Some(b)) => (b.saturating_sub(a)) as f64 / SOCKETS as f64,
            _ => f64::NAN,
        }
    );
    drop(kept);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_flood_keeps_the_budget_per_tick_and_loses_no_system_message_or_high_gift() {
    // 40 events/s at 50 ms ticks: at most 2 per tick. Small danmaku and low-gift queues overflow.
    let s = start(|c| {
        c.chat.tick_ms = 50;
        c.chat.budget = 40;
        c.chat.danmaku_queue = 30;
        c.chat.gift_low_queue = 5;
        c.chat.max_age_ms = 600_000;
        c.chat.user_rate_per_s = 1000.0;
        c.chat.user_burst = 1000;
        c.chat.conn_burst = 1000;
    })
    .await;
    let max_per_tick = 2;
    let (mut reader, _) = Client::join(&s, "demo", None, Format::Proto).await;

    let mut flooders = Vec::new();
    for u in 0..10 {
        let token = s.token(&format!("flooder{u}"), "demo");
        let (c, _) = Client::join(&s, "demo", Some(&token), Format::Json).await;
        flooders.push(c);
    }
    let flood = tokio::spawn(async move {
        let mut accepted = 0;
        for round in 0..40u64 {
            for c in flooders.iter_mut() {
                c.say(round, &format!("spam {round}")).await;
            }
        }
        for c in flooders.iter_mut() {
            for round in 0..40 {
                if c.ack(round).await.status == AckStatus::Accepted {
                    accepted += 1;
                }
            }
        }
        (flooders, accepted)
    });
    for i in 0..15 {
        s.system("demo", &format!("system {i}")).await;
        for value in [1000, 1] {
            let (status, body) = s
                .admin(
                    Method::POST,
                    "/api/rooms/demo/gifts",
                    Some(serde_json::json!({"user":"fan","name":"Fan","gift_id":"g","gift_name":"G","count":i + 1,"value":value})),
                )
                .await;
            assert_eq!(status, 202, "{body}");
        }
    }
    let (_flooders, accepted) = flood.await.expect("flood task");
    assert_eq!(
        accepted, 400,
        "the room and user limits are above this flood"
    );

    // Read batches until the room is drained.
    let mut events = Vec::new();
    let mut batch_sizes = Vec::new();
    loop {
        let stats = s.stats("demo").await;
        let queued: u64 = stats["queues"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        let last_seq = stats["last_seq"].as_u64().unwrap();
        if queued == 0 && events.last().map(|e: &barrage::chat::Event| e.seq) == Some(last_seq) {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), reader.next()).await {
            Ok(Incoming::Frame(ServerFrame::Batch { events: batch })) => {
                batch_sizes.push(batch.len());
                events.extend(batch);
            }
            Ok(Incoming::Frame(ServerFrame::Gap { from_seq, to_seq })) => {
                panic!("reader skipped {from_seq}..{to_seq}")
            }
            Ok(Incoming::Frame(_)) => {}
            Ok(Incoming::Close(code, reason)) => panic!("closed {code} {reason}"),
            Err(_) => {}
        }
    }
    assert!(
        batch_sizes.iter().all(|&n| n <= max_per_tick),
        "a batch over the per-tick budget: {batch_sizes:?}"
    );
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "contiguous seqs"
    );

    let mut by_priority: BTreeMap<&str, Vec<&Body>> = BTreeMap::new();
    for e in &events {
        by_priority
            .entry(e.priority.as_str())
            .or_default()
            .push(&e.body);
    }
    let system: Vec<String> = by_priority["system"]
        .iter()
        .map(|b| match b {
            Body::System(m) => m.text.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        system,
        (0..15).map(|i| format!("system {i}")).collect::<Vec<_>>()
    );
    let high: Vec<u32> = by_priority["gift_high"]
        .iter()
        .map(|b| match b {
            Body::Gift(g) => g.count,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        high,
        (1..=15).collect::<Vec<_>>(),
        "every high gift, in order"
    );

    let stats = s.stats("demo").await;
    let dropped = &stats["dropped_by_queue"];
    for queue in [Priority::System, Priority::GiftHigh] {
        assert_eq!(dropped[queue.as_str()]["overflow"], 0);
        assert_eq!(dropped[queue.as_str()]["stale"], 0);
    }
    let danmaku_delivered = by_priority.get("danmaku").map_or(0, |v| v.len()) as u64;
    let danmaku_dropped = dropped["danmaku"]["overflow"].as_u64().unwrap();
    assert!(
        danmaku_dropped > 0,
        "the flood overflowed the danmaku queue: {stats}"
    );
    assert_eq!(
        danmaku_delivered + danmaku_dropped,
        400,
        "every accepted danmaku is delivered or counted as dropped"
    );
    let low_delivered = by_priority.get("gift_low").map_or(0, |v| v.len()) as u64;
    assert_eq!(
        low_delivered + dropped["gift_low"]["overflow"].as_u64().unwrap(),
        15
    );
    println!(
        "flood: {} events in {} batches (max {} per batch), {danmaku_dropped} danmaku dropped as overflow",
        events.len(),
        batch_sizes.len(),
        batch_sizes.iter().max().unwrap_or(&0)
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_skipped_to_the_newest_batch_with_a_gap_and_nobody_waits_for_it() {
    use barrage::chat::codec::{encode_client, Encoded};
    use barrage::chat::protocol::{ClientFrame, SendDanmaku, WHITE};
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let s = start(|c| {
        c.chat.tick_ms = 10;
        c.chat.budget = 100_000;
        c.chat.danmaku_queue = 100_000;
        c.chat.max_age_ms = 600_000;
        c.chat.user_rate_per_s = 1e6;
        c.chat.user_burst = 100_000;
        c.chat.conn_rate_per_s = 1e6;
        c.chat.conn_burst = 100_000;
        c.chat.room_rate_per_s = 1_000_000;
        c.chat.node_rate_per_s = 1_000_000;
        c.chat.max_text_chars = 4000;
        c.chat.max_frame_bytes = 8192;
        // 160 ms of slack for the fast reader on a busy machine; the slow one stalls for seconds.
        c.chat.socket_backlog = 16;
    })
    .await;
    let text = |e: &barrage::chat::Event| match &e.body {
        Body::Danmaku(d) => d.text.clone(),
        _ => String::new(),
    };
    let mut slow = Client::connect_slow(&s, "demo", Format::Json).await;
    let joined_at = slow.hello(None).await.seq;
    let (mut fast, _) = Client::join(&s, "demo", None, Format::Proto).await;
    let fast_reader = tokio::spawn(async move {
        let events = fast.events_until(|e| text(e) == "end").await;
        (fast, events)
    });

    let token = s.token("flooder", "demo");
    let (flooder, _) = Client::join(&s, "demo", Some(&token), Format::Json).await;
    let (mut sink, mut stream) = flooder.ws.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    // About 8 MB: more than the server's send buffer to a non-reading peer can absorb (on
    // loopback it autotunes to a few MB).
    const BURSTS: usize = 40;
    const PER_BURST: usize = 50;
    let big = "x".repeat(4000);
    let mut id = 0;
    for _burst in 0..BURSTS {
        for _ in 0..PER_BURST {
            id += 1;
            let frame = ClientFrame::Send(SendDanmaku {
                client_id: id,
                text: big.clone(),
                color: WHITE,
                mode: Default::default(),
                stream_ms: None,
            });
            if let Encoded::Text(t) = encode_client(&frame, Format::Json) {
                sink.send(Message::Text(t.into())).await.expect("flood");
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let end = ClientFrame::Send(SendDanmaku {
        client_id: 0,
        text: "end".into(),
        color: WHITE,
        mode: Default::default(),
        stream_ms: None,
    });
    if let Encoded::Text(t) = encode_client(&end, Format::Json) {
        sink.send(Message::Text(t.into())).await.expect("end");
    }

    // The room did not wait for the slow reader: the fast one got everything meanwhile.
    let (_fast, fast_events) = tokio::time::timeout(WAIT, fast_reader)
        .await
        .expect("the fast reader finished while the slow one was stalled")
        .expect("reader task");
    assert_eq!(fast_events.len(), BURSTS * PER_BURST + 1);

    // Now the slow reader reads: old frames from its buffers, then a gap, then the newest.
    let mut last = joined_at;
    let mut gaps = Vec::new();
    loop {
        match slow.next().await {
            Incoming::Frame(ServerFrame::Batch { events }) => {
                assert_eq!(
                    events[0].seq,
                    last + 1,
                    "contiguous apart from announced gaps"
                );
                last = events.last().unwrap().seq;
                if events.iter().any(|e| text(e) == "end") {
                    break;
                }
            }
            Incoming::Frame(ServerFrame::Gap { from_seq, to_seq }) => {
                assert_eq!(from_seq, last + 1);
                assert!(to_seq >= from_seq);
                gaps.push((from_seq, to_seq));
                last = to_seq;
            }
            Incoming::Frame(_) => {}
            Incoming::Close(code, reason) => panic!("closed {code} {reason}"),
        }
    }
    assert!(!gaps.is_empty(), "the slow reader was told what it skipped");
    let stats = s.stats("demo").await;
    assert!(stats["slow_socket_skips"].as_u64().unwrap() >= 1, "{stats}");
    println!(
        "slow reader: gaps {gaps:?}; stats {}",
        stats["slow_socket_skips"]
    );
    drain.abort();
    s.stop().await;
}
