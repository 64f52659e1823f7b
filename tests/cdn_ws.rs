//! Danmaku to the CDN end to end: a real ffmpeg push makes the room live, viewers and senders
//! use real WebSockets, and the batch files read back over HTTP hold exactly the delivered
//! events, contiguous across files, with stream times that follow the video. The XML export
//! holds them too. Run against the local store and a real S3-protocol server.

mod chat_common;
mod common;

use std::time::Duration;

use barrage::cdn::{BatchFile, IndexFile};
use barrage::chat::codec::Format;
use barrage::chat::protocol::{Body, Event};
use barrage::testutil::S3Server;
use chat_common::{start, Client, TestServer};
use common::{poll, push_generated};

async fn get_json<T: serde::de::DeserializeOwned>(s: &TestServer, path: &str) -> Option<T> {
    let r = s.api.get(format!("{}{path}", s.http)).send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json().await.ok()
}

async fn run(server: TestServer) {
    let key = server.server.state.secrets.stream_keys["demo"].clone();
    let pusher = push_generated(
        &format!("rtmp://{}/live/{key}", server.server.rtmp_addr),
        12,
    );
    let live = poll(Duration::from_secs(20), "room live with frames", || async {
        server
            .server
            .state
            .live
            .get("demo")
            .filter(|l| l.first_frame_at.is_some())
    })
    .await;

    let (mut viewer, _) = Client::join(&server, "demo", None, Format::Json).await;
    // Twelve senders, one message each, spread over several periods; plus system and gift.
    let mut expected_texts = Vec::new();
    for i in 0..12u64 {
        let token = server.token(&format!("sender{i}"), "demo");
        let (mut c, _) = Client::join(&server, "demo", Some(&token), Format::Json).await;
        let text = format!("hello <{i}> & 666");
        let ack = c.say_and_ack(i + 1, &text).await;
        assert_eq!(
            ack.status,
            barrage::chat::protocol::AckStatus::Accepted,
            "{ack:?}"
        );
        expected_texts.push(text);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    server.system("demo", "Welcome to the show").await;
    let (status, body) = server
        .admin(
            reqwest::Method::POST,
            "/api/rooms/demo/gifts",
            Some(
                serde_json::json!({"user":"g1","name":"Gia","gift_id":"rocket",
                "gift_name":"Rocket","count":1,"value":500}),
            ),
        )
        .await;
    assert!(status < 300, "{body}");
    let received: Vec<Event> = viewer
        .events_until(|e| matches!(&e.body, Body::Gift(_)))
        .await;
    let last_seq = received.last().unwrap().seq;

    // The files catch up within a few periods.
    let index: IndexFile = poll(
        Duration::from_secs(15),
        "index covering the gift",
        || async {
            let index: IndexFile = get_json(&server, "/danmaku/demo/index.json").await?;
            let last: BatchFile = get_json(
                &server,
                &format!("/danmaku/demo/{}/{}.json", index.session, index.latest),
            )
            .await?;
            (last.to_seq >= last_seq).then_some(index)
        },
    )
    .await;
    assert_eq!(index.session, live.session, "files follow the live session");
    assert!(index.live && index.active);

    let mut from_files = Vec::new();
    let mut next_from = None;
    for n in 1..=index.latest {
        let path = format!("/danmaku/demo/{}/{n}.json", index.session);
        let file: BatchFile = get_json(&server, &path).await.expect(&path);
        let resp = server
            .api
            .get(format!("{}{path}", server.http))
            .send()
            .await
            .unwrap();
        assert!(resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable"));
        if let Some(expected) = next_from {
            assert_eq!(file.from_seq, expected, "file {n} continues file {}", n - 1);
        }
        next_from = Some(file.to_seq + 1);
        assert_eq!(file.to_seq + 1 - file.from_seq, file.events.len() as u64);
        from_files.extend(file.events);
    }
    // Exactly the events the socket received (the viewer joined before the first send).
    let sent: Vec<serde_json::Value> = received
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let first = sent[0]["seq"].as_u64().unwrap();
    let files_from_first: Vec<serde_json::Value> = from_files
        .into_iter()
        .filter(|e| e["seq"].as_u64().unwrap() >= first && e["seq"].as_u64().unwrap() <= last_seq)
        .collect();
    assert_eq!(files_from_first, sent);
    // Stream time is stamped at acceptance; priorities may let a system message or gift overtake
    // queued danmaku, so the order to check is within one queue (the danmaku).
    let stream_times: Vec<u64> = sent
        .iter()
        .filter(|e| e["priority"] == "danmaku")
        .map(|e| e["stream_ms"].as_u64().unwrap())
        .collect();
    assert!(stream_times[0] > 0, "events carry stream time while live");
    assert!(
        stream_times.windows(2).all(|w| w[0] <= w[1]),
        "{stream_times:?}"
    );

    // While the broadcast is on there is no export (it is made once, when the session ends).
    let resp = server
        .api
        .get(format!(
            "{}/api/rooms/demo/sessions/{}/danmaku.xml",
            server.http, live.session
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    // The push ends; the session's XML export holds every comment, as text.
    let (ok, stderr) =
        tokio::task::spawn_blocking(move || common::wait_child(pusher, Duration::from_secs(40)))
            .await
            .unwrap();
    assert!(ok, "{stderr}");
    let xml = poll(Duration::from_secs(15), "xml export", || async {
        let r = server
            .api
            .get(format!(
                "{}/api/rooms/demo/sessions/{}/danmaku.xml",
                server.http, live.session
            ))
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        let text = r.text().await.ok()?;
        text.contains("Rocket").then_some(text)
    })
    .await;
    let doc = roxmltree::Document::parse(&xml).expect("the export is well-formed XML");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("d"))
        .map(|n| n.text().unwrap_or("").to_string())
        .collect();
    for t in &expected_texts {
        assert!(texts.contains(t), "{t} in {texts:?}");
    }
    assert!(texts.iter().any(|t| t == "Welcome to the show"));
    assert!(texts.iter().any(|t| t.contains("Rocket")));
    assert_eq!(texts.len(), expected_texts.len() + 2);
    // Built once and stored: later requests read that one object.
    let stored = server
        .server
        .state
        .storage
        .get_bytes(&barrage::cdn::xml_export::xml_key("demo", &live.session))
        .await
        .unwrap()
        .expect("the export is stored");
    assert_eq!(std::str::from_utf8(&stored).unwrap(), xml);

    // After the broadcast, the replay listing counts every file of its session (a player
    // fetches 1..=batches).
    let (index, listed) = poll(
        Duration::from_secs(15),
        "the last file, recorded",
        || async {
            let index: IndexFile = get_json(&server, "/danmaku/demo/index.json").await?;
            let page: serde_json::Value = get_json(&server, "/api/rooms/demo/sessions").await?;
            let listed = page["sessions"]
                .as_array()?
                .iter()
                .find(|s| s["session"] == live.session.as_str())?["batches"]
                .as_u64()?;
            (index.session == live.session && listed == index.latest).then_some((index, listed))
        },
    )
    .await;
    assert_eq!(listed, index.latest);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_match_the_sockets_on_the_local_store() {
    let server = start(|c| c.cdn.period_ms = 300).await;
    run(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_match_the_sockets_on_an_s3_server() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(dir.path());
    let server = start(|c| {
        c.cdn.period_ms = 300;
        s3.configure(c, "cdn");
    })
    .await;
    run(server).await;
    assert!(dir
        .path()
        .join("barrage/cdn/danmaku/demo/index.json")
        .is_file());
}
