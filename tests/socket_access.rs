//! Tokens and rights on live sockets, with real WebSocket clients: a socket whose token runs
//! out is told so and cannot send until it hands over a fresh one (`auth`), a refused renewal
//! leaves it as it was, a moderator deletes and mutes from the socket (in both formats) and
//! every viewer sees the deletion, a viewer's or another room's token cannot, and each act is
//! in the room's audit log with who did it and through which door.

mod chat_common;

use std::time::Duration;

use barrage::auth::Role;
use barrage::chat::codec::Format;
use barrage::chat::protocol::{
    AckStatus, AuthState, AuthStatus, Body, ClientFrame, DeleteRequest, MuteRequest, Reply,
    ServerFrame,
};
use chat_common::{start, Client, Incoming, WAIT};
use reqwest::Method;

const HOUR: Duration = Duration::from_secs(3600);

/// The next `auth` frame.
async fn auth_state(c: &mut Client) -> AuthState {
    c.until(|f| match f {
        ServerFrame::Auth(a) => Some(a.clone()),
        _ => None,
    })
    .await
}

/// The reply to `request_id`.
async fn reply(c: &mut Client, request_id: u64) -> Reply {
    c.until(|f| match f {
        ServerFrame::Reply(r) if r.request_id == request_id => Some(r.clone()),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn an_expired_token_stops_sending_until_a_fresh_one_comes_over_the_socket() {
    let ts = start(|_| {}).await;
    // A token whose `exp` is now: good for the 5 s of leeway, then it runs out on the socket.
    let short = ts.token_as("u1", Role::Viewer, Some("demo"), Duration::ZERO);
    let (mut c, welcome) = Client::join(&ts, "demo", Some(&short), Format::Json).await;
    assert_eq!(welcome.user, "u1");
    assert!(welcome.limits.can_send && !welcome.limits.can_moderate);

    // The server says when the token runs out, without being asked.
    let expired = auth_state(&mut c).await;
    assert_eq!(expired.status, AuthStatus::Expired, "{expired:?}");
    assert_eq!(expired.code, "token_expired");
    assert!(expired.message.contains("auth"), "{expired:?}");
    let ack = c.say_and_ack(1, "after expiry").await;
    assert_eq!(ack.status, AckStatus::Unauthenticated);

    // A token for another room is refused; the socket stays open and still cannot send.
    let elsewhere = ts.token_as("u1", Role::Viewer, Some("other"), HOUR);
    c.send_frame(&ClientFrame::Auth { token: elsewhere }).await;
    let refused = auth_state(&mut c).await;
    assert_eq!(
        (refused.status, refused.code.as_str()),
        (AuthStatus::Refused, "wrong_room")
    );
    c.send_frame(&ClientFrame::Auth {
        token: "garbage".into(),
    })
    .await;
    assert_eq!(auth_state(&mut c).await.code, "bad_token");
    assert_eq!(
        c.say_and_ack(2, "still expired").await.status,
        AckStatus::Unauthenticated
    );

    // A fresh token for the room: sending works again, on the same socket.
    let fresh = ts.token_as("u1", Role::Viewer, Some("demo"), HOUR);
    c.send_frame(&ClientFrame::Auth { token: fresh }).await;
    let ok = auth_state(&mut c).await;
    assert_eq!(ok.status, AuthStatus::Ok, "{ok:?}");
    assert_eq!((ok.user.as_str(), ok.role.as_str()), ("u1", "viewer"));
    assert!(ok.expires_at_s > 0 && !ok.can_moderate);
    assert_eq!(
        c.say_and_ack(3, "renewed").await.status,
        AckStatus::Accepted
    );
    let events = c
        .events_until(|e| matches!(&e.body, Body::Danmaku(d) if d.text == "renewed"))
        .await;
    assert!(!events
        .iter()
        .any(|e| matches!(&e.body, Body::Danmaku(d) if d.text != "renewed")));

    // A token of another user: the socket sends as that user from now on (documented).
    let other_user = ts.token_as("u2", Role::Viewer, Some("demo"), HOUR);
    c.send_frame(&ClientFrame::Auth { token: other_user }).await;
    assert_eq!(auth_state(&mut c).await.user, "u2");
    assert_eq!(c.say_and_ack(4, "as u2").await.status, AckStatus::Accepted);
    let events = c
        .events_until(|e| matches!(&e.body, Body::Danmaku(d) if d.text == "as u2"))
        .await;
    let Body::Danmaku(d) = &events.last().unwrap().body else {
        unreachable!()
    };
    assert_eq!(d.user, "u2");

    // An anonymous reader can join the chat the same way.
    let (mut reader, welcome) = Client::join(&ts, "demo", None, Format::Proto).await;
    assert!(!welcome.limits.can_send);
    assert_eq!(
        reader.say_and_ack(1, "anon").await.status,
        AckStatus::Unauthenticated
    );
    let token = ts.token_as("u3", Role::Viewer, Some("demo"), HOUR);
    reader.send_frame(&ClientFrame::Auth { token }).await;
    assert_eq!(auth_state(&mut reader).await.status, AuthStatus::Ok);
    assert_eq!(
        reader.say_and_ack(2, "joined").await.status,
        AckStatus::Accepted
    );
    ts.stop().await;
}

#[tokio::test]
async fn moderators_delete_and_mute_from_the_socket_and_it_is_audited() {
    let ts = start(|_| {}).await;
    let moderator = ts.token_as("mod-1", Role::Moderator, Some("demo"), HOUR);
    let (mut m, welcome) = Client::join(&ts, "demo", Some(&moderator), Format::Json).await;
    assert!(welcome.limits.can_moderate, "{welcome:?}");
    let viewer_token = ts.token("u1", "demo");
    let (mut viewer, w) = Client::join(&ts, "demo", Some(&viewer_token), Format::Proto).await;
    assert!(!w.limits.can_moderate);
    let (mut reader, _) = Client::join(&ts, "demo", None, Format::Json).await;

    // The viewer says something; everyone gets it; the moderator deletes it.
    assert_eq!(
        viewer.say_and_ack(1, "rude words").await.status,
        AckStatus::Accepted
    );
    let said = |e: &barrage::chat::protocol::Event| matches!(&e.body, Body::Danmaku(d) if d.text == "rude words");
    let seq = m
        .events_until(said)
        .await
        .into_iter()
        .find(said)
        .unwrap()
        .seq;
    reader.events_until(said).await;
    m.send_frame(&ClientFrame::Delete(DeleteRequest { request_id: 7, seq }))
        .await;
    let r = reply(&mut m, 7).await;
    assert!(r.ok, "{r:?}");
    for c in [&mut m, &mut viewer, &mut reader] {
        c.events_until(|e| matches!(e.body, Body::Moderation(d) if d.delete_seq == seq))
            .await;
    }

    // A seq not delivered yet: refused with the API's code.
    m.send_frame(&ClientFrame::Delete(DeleteRequest {
        request_id: 8,
        seq: 1_000_000,
    }))
    .await;
    assert_eq!(reply(&mut m, 8).await.code, "not_delivered");

    // The moderator mutes the viewer (protobuf socket on the viewer's side).
    m.send_frame(&ClientFrame::Mute(MuteRequest {
        request_id: 9,
        user: "u1".into(),
        seconds: Some(600),
    }))
    .await;
    assert!(reply(&mut m, 9).await.ok);
    assert_eq!(
        viewer.say_and_ack(2, "again").await.status,
        AckStatus::Muted
    );
    // Bounds are the API's.
    m.send_frame(&ClientFrame::Mute(MuteRequest {
        request_id: 10,
        user: "u1".into(),
        seconds: Some(0),
    }))
    .await;
    assert_eq!(reply(&mut m, 10).await.code, "bad_field");

    // A viewer's token moderates nothing; neither does an anonymous socket.
    viewer
        .send_frame(&ClientFrame::Delete(DeleteRequest { request_id: 1, seq }))
        .await;
    let r = reply(&mut viewer, 1).await;
    assert_eq!(r.code, "forbidden", "{r:?}");
    assert!(r.message.contains("viewer token"), "{r:?}");
    reader
        .send_frame(&ClientFrame::Delete(DeleteRequest { request_id: 1, seq }))
        .await;
    assert_eq!(reply(&mut reader, 1).await.code, "unauthenticated");

    // A moderator of another room cannot even join this one with that token; one without a
    // room claim joins (and sends) but moderates nothing.
    let other = ts.token_as("mod-2", Role::Moderator, Some("other"), HOUR);
    let mut c = Client::connect(&ts, "demo", Some(&other), Format::Json).await;
    assert_eq!(c.error_and_close().await, ("wrong_room".to_string(), 1008));
    let unscoped = ts.token_as("mod-3", Role::Moderator, None, HOUR);
    let (mut u, w) = Client::join(&ts, "demo", Some(&unscoped), Format::Json).await;
    assert!(!w.limits.can_moderate);
    u.send_frame(&ClientFrame::Mute(MuteRequest {
        request_id: 1,
        user: "u1".into(),
        seconds: None,
    }))
    .await;
    let r = reply(&mut u, 1).await;
    assert!(r.message.contains("no room claim"), "{r:?}");

    // The audit log, for the host: the socket's acts with their moderator, and an API one.
    let (status, _) = ts
        .admin(Method::POST, "/api/rooms/demo/bans/u5", None)
        .await;
    assert_eq!(status, 200);
    let host = ts.host_key("demo");
    let (status, log) = ts
        .call(
            Method::GET,
            "/api/rooms/demo/audit?per_page=10",
            Some(&host),
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let brief: Vec<(String, String, String, String, String)> = entries
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (s("actor"), s("role"), s("action"), s("target"), s("via"))
        })
        .collect();
    let row = |a: &str, r: &str, act: &str, t: &str, v: &str| {
        (
            a.to_string(),
            r.to_string(),
            act.to_string(),
            t.to_string(),
            v.to_string(),
        )
    };
    assert_eq!(
        brief,
        vec![
            row("admin key", "admin", "ban", "u5", "api"),
            row("mod-1", "moderator", "mute", "u1 for 600 s", "socket"),
            row(
                "mod-1",
                "moderator",
                "delete",
                &format!("seq {seq}"),
                "socket"
            ),
        ],
        "newest first; refused acts are not in the log"
    );
    assert_eq!(log["total"], 3);
    assert!(entries
        .iter()
        .all(|e| e["room"] == "demo" && e["at_ms"].as_i64() > Some(0)));
    // A moderator cannot read it.
    let (status, _) = ts
        .call(Method::GET, "/api/rooms/demo/audit", Some(&moderator), None)
        .await;
    assert_eq!(status, 403);
    ts.stop().await;
}

/// The token's timer shares the socket's one timer with the idle timeout: a socket with a
/// long token that goes quiet is still closed as idle.
#[tokio::test]
async fn a_socket_with_a_token_still_times_out_when_idle() {
    let ts = start(|c| c.chat.idle_timeout_s = 1).await;
    let token = ts.token_as("u1", Role::Viewer, Some("demo"), HOUR);
    let (mut c, _) = Client::join(&ts, "demo", Some(&token), Format::Json).await;
    let end = tokio::time::timeout(WAIT, async {
        loop {
            if let Incoming::Close(code, _) = c.next().await {
                return code;
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(end, 4408);
    ts.stop().await;
}
