//! The chat socket end to end: real WebSocket clients against an in-process server.

mod common;

mod chat_common;

use std::time::Duration;

use barrage::chat::codec::Format;
use barrage::chat::protocol::{AckStatus, Body, ClientFrame, Priority, ServerFrame};
use chat_common::{start, Client, Incoming};
use reqwest::Method;
use tokio_tungstenite::tungstenite::Message;

fn danmaku_text(e: &barrage::chat::Event) -> Option<&str> {
    match &e.body {
        Body::Danmaku(d) => Some(d.text.as_str()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_receive_in_both_formats() {
    let s = start(|c| c.chat.tick_ms = 20).await;
    let t1 = s.token("u1", "demo");
    let (mut json, welcome) = Client::join(&s, "demo", Some(&t1), Format::Json).await;
    assert_eq!(welcome.room, "demo");
    assert_eq!(welcome.user, "u1");
    assert!(welcome.limits.can_send);
    assert_eq!(welcome.limits.max_text_chars, 100);
    assert!(
        welcome.hls_url.ends_with("/hls/demo/live.m3u8"),
        "{}",
        welcome.hls_url
    );
    assert_eq!(welcome.cdn_bases.len(), 1);
    let (mut proto, anon) = Client::join(&s, "demo", None, Format::Proto).await;
    assert_eq!(anon.user, "");
    assert!(!anon.limits.can_send);
    assert_eq!(anon.online, 2);

    json.say(7, "hello from json").await;
    let ack = json.ack(7).await;
    assert_eq!(ack.status, AckStatus::Accepted);
    for c in [&mut json, &mut proto] {
        let events = c
            .events_until(|e| danmaku_text(e) == Some("hello from json"))
            .await;
        let e = events.last().unwrap();
        assert_eq!(e.priority, Priority::Danmaku);
        match &e.body {
            Body::Danmaku(d) => {
                assert_eq!(
                    (d.user.as_str(), d.name.as_str(), d.color),
                    ("u1", "name-u1", 0xFFFFFF)
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(e.ts_ms > 1_700_000_000_000);
    }

    // Reading is anonymous; sending is not.
    proto.say(8, "anonymous").await;
    assert_eq!(proto.ack(8).await.status, AckStatus::Unauthenticated);

    // A signed-in protobuf client sends; the JSON client sees it.
    let t2 = s.token("u2", "demo");
    let (mut proto2, _) = Client::join(&s, "demo", Some(&t2), Format::Proto).await;
    proto2.say(1, "hello from proto").await;
    assert_eq!(proto2.ack(1).await.status, AckStatus::Accepted);
    json.events_until(|e| danmaku_text(e) == Some("hello from proto"))
        .await;

    // Heartbeats are answered with the online count.
    json.send_frame(&ClientFrame::Heartbeat).await;
    let online = json
        .until(|f| match f {
            ServerFrame::Heartbeat { online } => Some(*online),
            _ => None,
        })
        .await;
    assert_eq!(online, 3);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_message_overtakes_queued_danmaku() {
    // One event per tick, system and danmaku sharing it: a backlog of danmaku takes 100 ticks
    // (10 s), a system message posted after them gets out within a couple.
    const QUEUED: u64 = 100;
    const LAST: &str = "d99";
    let s = start(|c| {
        c.chat.tick_ms = 100;
        c.chat.budget = 10;
        c.chat.ratio_system = 0.5;
        c.chat.ratio_gift_high = 0.0;
        c.chat.ratio_gift_low = 0.0;
        c.chat.ratio_danmaku = 0.5;
        c.chat.user_rate_per_s = 1000.0;
        c.chat.user_burst = 1000;
        c.chat.conn_burst = 1000;
        c.chat.max_age_ms = 600_000;
        // This test checks strict FIFO of a backlog; the default sends the newest first.
        c.chat.backlog_order = barrage::config::BacklogOrder::Oldest;
    })
    .await;
    let token = s.token("u1", "demo");
    let (mut c, _) = Client::join(&s, "demo", Some(&token), Format::Json).await;
    for i in 0..QUEUED {
        c.say(i, &format!("d{i}")).await;
    }
    // Read the acks, keeping any batch that already arrives meanwhile.
    let mut events = Vec::new();
    let mut acks = 0;
    while acks < QUEUED {
        match c.next().await {
            Incoming::Frame(ServerFrame::Ack(a)) => {
                assert_eq!(a.status, AckStatus::Accepted);
                acks += 1;
            }
            Incoming::Frame(ServerFrame::Batch { events: batch }) => events.extend(batch),
            other => panic!("{other:?}"),
        }
    }
    s.system("demo", "announcement").await;
    events.extend(c.events_until(|e| danmaku_text(e) == Some(LAST)).await);
    let system_at = events
        .iter()
        .position(|e| matches!(&e.body, Body::System(m) if m.text == "announcement"))
        .expect("the system message was delivered before the last queued danmaku");
    let danmaku: Vec<&str> = events.iter().filter_map(danmaku_text).collect();
    assert_eq!(danmaku.len() as u64, QUEUED, "no danmaku lost");
    assert!(danmaku
        .windows(2)
        .all(|w| { w[0][1..].parse::<u32>().unwrap() < w[1][1..].parse::<u32>().unwrap() }));
    let danmaku_before = events[..system_at]
        .iter()
        .filter(|e| danmaku_text(e).is_some())
        .count();
    assert!(
        (danmaku_before as u64) < QUEUED,
        "system came after all {danmaku_before} danmaku"
    );
    assert_eq!(events[system_at].priority, Priority::System);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_room_ticks_at_most_once_per_tick() {
    // The first comment after a quiet spell goes out at once; the ones right after it wait for
    // the next tick instead of each waking the room (the budget is per tick). So six comments
    // sent one after the other arrive in at most one batch per 4 s tick that could have passed
    // meanwhile, plus one: two on any machine that sends them within 4 s.
    const SENT: u64 = 6;
    const TICK_MS: u128 = 4000;
    let s = start(|c| {
        c.chat.tick_ms = TICK_MS as u64;
        c.chat.user_rate_per_s = 1000.0;
        c.chat.user_burst = 1000;
        c.chat.conn_burst = 1000;
    })
    .await;
    let token = s.token("u1", "demo");
    let (mut c, _) = Client::join(&s, "demo", Some(&token), Format::Json).await;
    let mut batches = 0;
    let mut delivered = 0;
    let started = std::time::Instant::now();
    for i in 0..SENT {
        c.say(i, &format!("q{i}")).await;
        // Wait for this comment's ack before the next: each comment finds the room idle.
        loop {
            match c.next().await {
                Incoming::Frame(ServerFrame::Ack(a)) => {
                    assert_eq!(a.status, AckStatus::Accepted);
                    break;
                }
                Incoming::Frame(ServerFrame::Batch { events }) => {
                    batches += 1;
                    delivered += events.iter().filter(|e| danmaku_text(e).is_some()).count() as u64;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    while delivered < SENT {
        match c.next().await {
            Incoming::Frame(ServerFrame::Batch { events }) => {
                batches += 1;
                delivered += events.iter().filter(|e| danmaku_text(e).is_some()).count() as u64;
            }
            other => panic!("{other:?}"),
        }
    }
    let ticks_possible = 1 + started.elapsed().as_millis() / TICK_MS;
    assert!(
        batches <= ticks_possible,
        "{SENT} comments came in {batches} batches, more than the {ticks_possible} ticks that fit"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_flood_is_limited_while_others_get_through() {
    let s = start(|c| {
        c.chat.tick_ms = 20;
        // One token per 20 s after a burst of 3: no timing in the test.
        c.chat.user_rate_per_s = 0.05;
        c.chat.user_burst = 3;
    })
    .await;
    let (ta, tb) = (s.token("flooder", "demo"), s.token("calm", "demo"));
    let (mut a, _) = Client::join(&s, "demo", Some(&ta), Format::Json).await;
    let (mut b, _) = Client::join(&s, "demo", Some(&tb), Format::Proto).await;
    for i in 0..8 {
        a.say(i, &format!("flood {i}")).await;
    }
    let mut statuses = Vec::new();
    for i in 0..8 {
        let ack = a.ack(i).await;
        if ack.status == AckStatus::RateLimited {
            let retry = ack
                .retry_after_ms
                .expect("rate_limited carries retry_after_ms");
            assert!(retry > 0 && retry <= 20_000, "{retry}");
        } else {
            assert_eq!(ack.retry_after_ms, None);
        }
        statuses.push(ack.status);
    }
    assert_eq!(&statuses[..3], &[AckStatus::Accepted; 3]);
    assert_eq!(&statuses[3..], &[AckStatus::RateLimited; 5]);

    b.say(1, "still here").await;
    assert_eq!(b.ack(1).await.status, AckStatus::Accepted);
    a.events_until(|e| danmaku_text(e) == Some("still here"))
        .await;
    let stats = s.stats("demo").await;
    assert_eq!(stats["refused"]["user"], 5, "{stats}");
    assert_eq!(stats["uplink_accepted_total"], 4, "{stats}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_disconnect_returns_exactly_the_missed_seqs() {
    let s = start(|c| c.chat.tick_ms = 20).await;
    let (mut c, _) = Client::join(&s, "demo", None, Format::Json).await;
    for i in 0..3 {
        s.system("demo", &format!("before {i}")).await;
    }
    let seen = c
        .events_until(|e| matches!(&e.body, Body::System(m) if m.text == "before 2"))
        .await;
    let last = seen.last().unwrap().seq;
    c.ws.close(None).await.ok();
    drop(c);

    for i in 0..5 {
        s.system("demo", &format!("missed {i}")).await;
    }
    s.wait_seq("demo", last + 5).await;

    for (newest, format) in (last + 5..).zip([Format::Json, Format::Proto]) {
        let mut again = Client::connect(&s, "demo", None, format).await;
        let welcome = again.hello(Some(last)).await;
        assert_eq!(welcome.seq, newest);
        match again.next().await {
            Incoming::Frame(ServerFrame::Batch { events }) => {
                let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
                assert_eq!(seqs, (last + 1..=newest).collect::<Vec<_>>());
                assert!(matches!(&events[0].body, Body::System(m) if m.text == "missed 0"));
            }
            other => panic!("expected the missed batch, got {other:?}"),
        }
        // Live events continue right after the resumed ones.
        let live = format!("live {}", format.as_str());
        s.system("demo", &live).await;
        let next = again
            .events_until(|e| matches!(&e.body, Body::System(m) if m.text == live))
            .await;
        assert_eq!(next.first().map(|e| e.seq), Some(newest + 1));
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_too_old_a_seq_is_told_the_gap() {
    let s = start(|c| {
        c.chat.tick_ms = 20;
        c.chat.history = 4;
    })
    .await;
    for i in 0..8 {
        s.system("demo", &format!("m{i}")).await;
    }
    s.wait_seq("demo", 8).await;
    let mut c = Client::connect(&s, "demo", None, Format::Proto).await;
    let welcome = c.hello(Some(1)).await;
    assert_eq!(welcome.seq, 8);
    assert_eq!(
        c.next().await,
        Incoming::Frame(ServerFrame::Gap {
            from_seq: 2,
            to_seq: 4
        })
    );
    match c.next().await {
        Incoming::Frame(ServerFrame::Batch { events }) => {
            assert_eq!(
                events.iter().map(|e| e.seq).collect::<Vec<_>>(),
                vec![5, 6, 7, 8]
            )
        }
        other => panic!("{other:?}"),
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_and_rooms_get_an_error_frame_and_a_close_code() {
    let s = start(|c| c.chat.tick_ms = 20).await;
    let forged = barrage::auth::TokenSigner::new("not-the-secret").mint(
        "u1",
        "Ann",
        barrage::auth::Role::Viewer,
        Some("demo"),
        Duration::from_secs(60),
    );
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &barrage::auth::Claims {
            sub: "u1".into(),
            name: String::new(),
            role: barrage::auth::Role::Viewer,
            room: Some("demo".into()),
            exp: 1_000,
            iat: 0,
        },
        &jsonwebtoken::EncodingKey::from_secret(s.server.state.secrets.token_secret.as_bytes()),
    )
    .unwrap();
    let other_room = s.token("u1", "other");
    for (token, format, code) in [
        (forged.as_str(), Format::Json, "bad_token"),
        (forged.as_str(), Format::Proto, "bad_token"),
        ("garbage", Format::Json, "bad_token"),
        (expired.as_str(), Format::Json, "token_expired"),
        (other_room.as_str(), Format::Proto, "wrong_room"),
    ] {
        let mut c = Client::connect(&s, "demo", Some(token), format).await;
        assert_eq!(
            c.error_and_close().await,
            (code.to_string(), 1008),
            "{code}"
        );
    }
    let mut c = Client::connect(&s, "nope", None, Format::Json).await;
    assert_eq!(
        c.error_and_close().await,
        ("room_not_found".to_string(), 4404)
    );
    s.stop().await;

    let s = start(|c| c.chat.read_needs_token = true).await;
    let mut c = Client::connect(&s, "demo", None, Format::Json).await;
    assert_eq!(
        c.error_and_close().await,
        ("token_required".to_string(), 1008)
    );
    let t = s.token("u1", "demo");
    let (_ok, welcome) = Client::join(&s, "demo", Some(&t), Format::Json).await;
    assert_eq!(welcome.user, "u1");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_closes_with_1009_and_others_carry_on() {
    let s = start(|c| {
        c.chat.tick_ms = 20;
        c.chat.max_frame_bytes = 1024;
    })
    .await;
    let (mut big, _) = Client::join(&s, "demo", None, Format::Json).await;
    let (mut other, _) = Client::join(&s, "demo", None, Format::Json).await;
    big.send_raw(Message::Text("x".repeat(2000).into())).await;
    let close = loop {
        match big.next().await {
            Incoming::Close(code, _) => break code,
            Incoming::Frame(ServerFrame::Error { code, .. }) => assert_eq!(code, "too_large"),
            Incoming::Frame(_) => {}
        }
    };
    assert_eq!(close, 1009);
    s.system("demo", "after the big frame").await;
    other
        .events_until(|e| matches!(&e.body, Body::System(m) if m.text == "after the big frame"))
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_get_an_error_frame_and_nobody_is_disconnected() {
    let s = start(|c| c.chat.tick_ms = 20).await;
    let (mut bad, _) = Client::join(&s, "demo", None, Format::Proto).await;
    let (mut good, _) = Client::join(&s, "demo", None, Format::Json).await;
    for garbage in [
        Message::Binary(vec![0xff, 0xff, 0xff].into()),
        Message::Text("not json".into()),
        Message::Text(r#"{"type":"send","client_id":1}"#.into()),
        Message::Binary(Vec::new().into()),
    ] {
        bad.send_raw(garbage).await;
        let code = bad
            .until(|f| match f {
                ServerFrame::Error { code, .. } => Some(code.clone()),
                _ => None,
            })
            .await;
        assert_eq!(code, "bad_frame");
    }
    // Both sockets still work.
    bad.send_frame(&ClientFrame::Heartbeat).await;
    bad.until(|f| matches!(f, ServerFrame::Heartbeat { .. }).then_some(()))
        .await;
    s.system("demo", "still delivering").await;
    for c in [&mut bad, &mut good] {
        c.events_until(|e| matches!(&e.body, Body::System(m) if m.text == "still delivering"))
            .await;
    }
    // A text frame that is not UTF-8 breaks the WebSocket protocol itself: error, close 1007.
    use tokio_tungstenite::tungstenite::protocol::frame::{coding::Data, coding::OpCode, Frame};
    bad.send_raw(Message::Frame(Frame::message(
        vec![0xc3, 0x28],
        OpCode::Data(Data::Text),
        true,
    )))
    .await;
    assert_eq!(bad.error_and_close().await, ("bad_frame".to_string(), 1007));
    s.system("demo", "after the bad utf-8").await;
    good.events_until(|e| matches!(&e.body, Body::System(m) if m.text == "after the bad utf-8"))
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_room_closes_its_sockets_and_refuses_new_ones() {
    let s = start(|c| c.chat.tick_ms = 20).await;
    let (mut c, _) = Client::join(&s, "demo", None, Format::Json).await;
    let (mut other, _) = Client::join(&s, "other", None, Format::Proto).await;
    s.server.state.rooms.set_closed("demo", true);
    assert_eq!(c.error_and_close().await, ("room_closed".to_string(), 4410));
    let mut late = Client::connect(&s, "demo", None, Format::Json).await;
    assert_eq!(
        late.error_and_close().await,
        ("room_not_found".to_string(), 4404)
    );
    let (status, _) = s
        .admin(
            Method::POST,
            "/api/rooms/demo/system",
            Some(serde_json::json!({"text": "x"})),
        )
        .await;
    assert_eq!(status, 404);
    // Other rooms carry on.
    s.system("other", "still open").await;
    other
        .events_until(|e| matches!(&e.body, Body::System(m) if m.text == "still open"))
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_closed_after_the_idle_timeout() {
    let s = start(|c| c.chat.idle_timeout_s = 1).await;
    let (mut c, welcome) = Client::join(&s, "demo", None, Format::Json).await;
    assert_eq!(welcome.limits.idle_timeout_s, 1);
    assert_eq!(
        c.error_and_close().await,
        ("idle_timeout".to_string(), 4408)
    );
    s.stop().await;
}

/// The server writes its frames itself (not through tungstenite), so the replies tungstenite
/// makes while reading must still go out on their own: a pong with no batch to carry it, and
/// the reply to a client's close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_gets_its_pong_and_a_client_close_its_reply() {
    use futures::{SinkExt, StreamExt};
    let s = start(|_| {}).await;
    let (mut c, _) = Client::join(&s, "demo", None, Format::Json).await;
    c.send_raw(Message::Ping("keepalive".into())).await;
    let wait = Duration::from_secs(10);
    loop {
        match tokio::time::timeout(wait, c.ws.next()).await {
            Ok(Some(Ok(Message::Pong(p)))) => {
                assert_eq!(&p[..], b"keepalive");
                break;
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    c.ws.send(Message::Close(None)).await.expect("send close");
    loop {
        match tokio::time::timeout(wait, c.ws.next()).await {
            Ok(Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected the close reply, got {other:?}"),
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderation_refusals_each_get_their_ack() {
    let s = start(|c| {
        c.chat.tick_ms = 20;
        c.chat.user_rate_per_s = 1000.0;
        c.chat.user_burst = 1000;
        c.chat.max_text_chars = 10;
        c.chat.blocked_words = vec!["GlobalBad".into()];
    })
    .await;
    let token = s.token("u1", "demo");
    let (mut c, _) = Client::join(&s, "demo", Some(&token), Format::Json).await;
    let mut id = 0;
    let mut next = || {
        id += 1;
        id
    };

    assert_eq!(
        c.say_and_ack(next(), "0123456789x").await.status,
        AckStatus::TooLong
    );
    assert_eq!(
        c.say_and_ack(next(), "   ").await.status,
        AckStatus::Invalid
    );
    assert_eq!(
        c.say_and_ack(next(), "globalbad!").await.status,
        AckStatus::Filtered
    );

    let (status, body) = s
        .admin(
            Method::PUT,
            "/api/rooms/demo/blocked-words",
            Some(serde_json::json!({"words": ["Spam", " spam "]})),
        )
        .await;
    assert_eq!(
        (status, body["words"].clone()),
        (200, serde_json::json!(["spam"]))
    );
    let (status, body) = s
        .admin(Method::GET, "/api/rooms/demo/blocked-words", None)
        .await;
    assert_eq!(
        (status, body["words"].clone()),
        (200, serde_json::json!(["spam"]))
    );
    assert_eq!(
        c.say_and_ack(next(), "buy SPAM").await.status,
        AckStatus::Filtered
    );

    let (status, body) = s
        .admin(
            Method::POST,
            "/api/rooms/demo/mutes/u1",
            Some(serde_json::json!({"seconds": 600})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ack = c.say_and_ack(next(), "muted?").await;
    assert_eq!(ack.status, AckStatus::Muted);
    assert!(ack.retry_after_ms.is_some_and(|ms| ms > 500_000));
    assert_eq!(
        s.admin(Method::DELETE, "/api/rooms/demo/mutes/u1", None)
            .await
            .0,
        200
    );
    // A mute without a body has no expiry.
    assert_eq!(
        s.admin(Method::POST, "/api/rooms/demo/mutes/u1", None)
            .await
            .0,
        200
    );
    let ack = c.say_and_ack(next(), "muted 2").await;
    assert_eq!((ack.status, ack.retry_after_ms), (AckStatus::Muted, None));
    assert_eq!(
        s.admin(Method::DELETE, "/api/rooms/demo/mutes/u1", None)
            .await
            .0,
        200
    );

    assert_eq!(
        s.admin(Method::POST, "/api/rooms/demo/bans/u1", None)
            .await
            .0,
        200
    );
    assert_eq!(
        c.say_and_ack(next(), "banned?").await.status,
        AckStatus::Banned
    );
    assert_eq!(
        s.admin(Method::DELETE, "/api/rooms/demo/bans/u1", None)
            .await
            .0,
        200
    );

    let (status, _) = s
        .admin(
            Method::PUT,
            "/api/rooms/demo/slow-mode",
            Some(serde_json::json!({"seconds": 30})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        c.say_and_ack(next(), "first").await.status,
        AckStatus::Accepted
    );
    let ack = c.say_and_ack(next(), "second").await;
    assert_eq!(ack.status, AckStatus::SlowMode);
    assert!(ack.retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 30_000));

    let stats = s.stats("demo").await;
    for reason in ["too_long", "invalid", "muted", "banned", "slow_mode"] {
        assert!(
            stats["refused"][reason].as_u64().unwrap_or(0) >= 1,
            "{reason}: {stats}"
        );
    }
    assert_eq!(stats["refused"]["filtered"], 2);
    let (status, snap) = s
        .admin(Method::GET, "/api/rooms/demo/moderation", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(snap["slow_mode_s"], 30);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_message_broadcasts_a_moderation_event() {
    let s = start(|c| c.chat.tick_ms = 20).await;
    let token = s.token("u1", "demo");
    let (mut c, _) = Client::join(&s, "demo", Some(&token), Format::Proto).await;
    let (mut watcher, _) = Client::join(&s, "demo", None, Format::Json).await;
    c.say(1, "regrettable").await;
    let seq = c
        .events_until(|e| danmaku_text(e) == Some("regrettable"))
        .await
        .last()
        .unwrap()
        .seq;
    let (status, body) = s
        .admin(
            Method::POST,
            &format!("/api/rooms/demo/messages/{seq}/delete"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    for client in [&mut c, &mut watcher] {
        let events = client
            .events_until(|e| matches!(e.body, Body::Moderation(m) if m.delete_seq == seq))
            .await;
        assert_eq!(events.last().unwrap().priority, Priority::System);
    }
    let (status, body) = s
        .admin(Method::POST, "/api/rooms/demo/messages/999999/delete", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_delivered"))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_checks_the_admin_key_and_hands_out_guest_tokens() {
    let s = start(|c| c.chat.tick_ms = 20).await;
    let url = format!("{}/api/rooms/demo/system", s.http);
    let body = serde_json::json!({"text": "hi"});
    let resp = s.api.post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = s
        .api
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let (status, err) = s
        .admin(Method::POST, "/api/rooms/nope/system", Some(body.clone()))
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, err) = s
        .admin(
            Method::POST,
            "/api/rooms/demo/gifts",
            Some(serde_json::json!({"user": "u"})),
        )
        .await;
    assert_eq!(status, 422, "{err}");

    // Gifts are high or low by value.
    let gift = |value: u64| serde_json::json!({"user":"u2","name":"Bo","gift_id":"rocket","gift_name":"Rocket","count":1,"value":value});
    let (status, r) = s
        .admin(Method::POST, "/api/rooms/demo/gifts", Some(gift(500)))
        .await;
    assert_eq!((status, r["priority"].as_str()), (202, Some("gift_high")));
    let (status, r) = s
        .admin(Method::POST, "/api/rooms/demo/gifts", Some(gift(5)))
        .await;
    assert_eq!((status, r["priority"].as_str()), (202, Some("gift_low")));

    let resp = s
        .api
        .post(format!("{}/api/rooms/demo/guest-token", s.http))
        .json(&serde_json::json!({"name": "Visitor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let guest: serde_json::Value = resp.json().await.unwrap();
    let user = guest["user"].as_str().unwrap().to_string();
    assert!(user.starts_with("guest-"), "{user}");
    let (mut c, welcome) = Client::join(&s, "demo", guest["token"].as_str(), Format::Json).await;
    assert_eq!(welcome.user, user);
    c.say(1, "a guest speaks").await;
    assert_eq!(c.ack(1).await.status, AckStatus::Accepted);
    let events = c
        .events_until(|e| danmaku_text(e) == Some("a guest speaks"))
        .await;
    assert!(matches!(&events.last().unwrap().body, Body::Danmaku(d) if d.name == "Visitor"));
    // The guest token is for this room only.
    let mut elsewhere = Client::connect(&s, "other", guest["token"].as_str(), Format::Json).await;
    assert_eq!(
        elsewhere.error_and_close().await,
        ("wrong_room".to_string(), 1008)
    );
    s.stop().await;

    let s = start(|c| c.auth.guest_tokens = false).await;
    let resp = s
        .api
        .post(format!("{}/api/rooms/demo/guest-token", s.http))
        .json(&serde_json::json!({"name": "Visitor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_feed_hands_every_delivered_event_with_its_encoded_bytes() {
    use barrage::chat::codec::{decode_server_binary, decode_server_text};
    let s = start(|c| c.chat.tick_ms = 20).await;
    // What every socket reads: a member's feed of the room's shared batches.
    let room = s.server.state.chat.room("demo").expect("open room");
    let mut feed = room.join(Format::Json, None);
    assert!(s.server.state.chat.room("nope").is_err());
    for i in 0..3 {
        s.system("demo", &format!("fed {i}")).await;
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let batch = tokio::time::timeout(chat_common::WAIT, feed.batches.recv())
            .await
            .expect("a batch in time")
            .expect("no lag");
        assert_eq!(&*batch.room, "demo");
        assert_eq!(batch.first_seq, batch.events[0].seq);
        assert_eq!(batch.last_seq, batch.events.last().unwrap().seq);
        assert!(batch.tick_ms >= batch.events[0].ts_ms);
        let expected = ServerFrame::Batch {
            events: batch.events.clone(),
        };
        assert_eq!(
            decode_server_text(std::str::from_utf8(&batch.json).unwrap()).unwrap(),
            expected
        );
        assert_eq!(decode_server_binary(&batch.proto).unwrap(), expected);
        seen.extend(batch.events.iter().map(|e| e.seq));
    }
    assert_eq!(seen, vec![1, 2, 3]);

    let metrics = common::metrics_text(&s.api, &s.http).await;
    for name in [
        "barrage_chat_online",
        "barrage_chat_batch_events_total",
        "barrage_chat_queue_length",
        "barrage_chat_delivered_events_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    s.stop().await;
}
