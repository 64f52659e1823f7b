//! State that survives a restart, on SQLite (default) and PostgreSQL: a room made through the
//! API, its stream and host keys, its host_gifts setting, a mute and a blocked word, the audit
//! log, a config room's host key rotated through the API, and the list of earlier broadcasts.

mod chat_common;
mod common;

use std::time::Duration;

use barrage::chat::codec::Format;
use barrage::chat::protocol::AckStatus;
use barrage::config::Config;
use barrage::testutil::{test_config, ScratchPostgres};
use chat_common::Client;
use common::{poll, push_generated, wait_child};
use serde_json::{json, Value};

/// Pushes a few seconds with `key` into room `room` and waits for the session to end.
async fn broadcast(s: &chat_common::TestServer, room: &str, key: &str) -> String {
    let pusher = push_generated(&format!("rtmp://{}/live/{key}", s.server.rtmp_addr), 4);
    let session = poll(Duration::from_secs(20), "room live", || async {
        s.server.state.live.get(room).map(|l| l.session)
    })
    .await;
    let (ok, stderr) =
        tokio::task::spawn_blocking(move || wait_child(pusher, Duration::from_secs(30)))
            .await
            .unwrap();
    assert!(ok, "the key publishes: {stderr}");
    poll(Duration::from_secs(20), "session ended", || async {
        s.server.state.live.get(room).is_none().then_some(())
    })
    .await;
    session
}

async fn survives_a_restart(config: Config) {
    // First life: make a room, moderate it, broadcast once.
    let s = chat_common::start_config(config.clone()).await;
    let (status, made) = s
        .admin(
            reqwest::Method::POST,
            "/api/rooms",
            Some(json!({"id":"show","title":"The Show"})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let key = made["stream_key"].as_str().unwrap().to_string();
    let (status, body) = s
        .admin(
            reqwest::Method::POST,
            "/api/rooms/show/mutes/u-muted",
            Some(json!({"seconds": 3600})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s
        .admin(
            reqwest::Method::PUT,
            "/api/rooms/show/blocked-words",
            Some(json!({"words":["BadWord"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let host_key = made["host_key"].as_str().unwrap().to_string();
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/api/rooms/show/bans/u-banned",
            Some(&host_key),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s
        .admin(
            reqwest::Method::PUT,
            "/api/rooms/show/settings",
            Some(json!({"host_gifts": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The config room's generated host key is kept in secrets.toml; rotated, the new one stays.
    let kept_demo_key = s.host_key("demo");
    let secrets = std::fs::read_to_string(config.data_dir.join("secrets.toml")).unwrap();
    assert!(
        secrets.contains(&kept_demo_key),
        "host_keys.demo is in secrets.toml"
    );
    let (status, rotated) = s
        .call(
            reqwest::Method::POST,
            "/api/rooms/demo/host-key",
            Some(&kept_demo_key),
            None,
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let demo_key = rotated["host_key"].as_str().unwrap().to_string();
    let first_session = broadcast(&s, "show", &key).await;
    s.stop().await;

    // Second life on the same data: the key, the mute and the word all still hold.
    let s = chat_common::start_config(config).await;
    assert_eq!(
        s.server.state.rooms.get("show").map(|r| r.title),
        Some("The Show".to_string())
    );
    let muted = s.token("u-muted", "show");
    let (mut c, _) = Client::join(&s, "show", Some(&muted), Format::Json).await;
    assert_eq!(c.say_and_ack(1, "hi").await.status, AckStatus::Muted);
    let other = s.token("u-other", "show");
    let (mut c, _) = Client::join(&s, "show", Some(&other), Format::Json).await;
    assert_eq!(
        c.say_and_ack(2, "what a badword here").await.status,
        AckStatus::Filtered
    );
    assert_eq!(
        c.say_and_ack(3, "fine words").await.status,
        AckStatus::Accepted
    );
    let audit = |key: String, room: &'static str| {
        let s = &s;
        async move {
            s.call(
                reqwest::Method::GET,
                &format!("/api/rooms/{room}/audit"),
                Some(&key),
                None,
            )
            .await
        }
    };
    let (status, log) = audit(host_key.clone(), "show").await;
    assert_eq!(
        status, 200,
        "the made room's host key still opens it: {log}"
    );
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["room_settings", "ban", "blocked_words", "mute"]);
    assert_eq!(log["entries"][2]["actor"], "admin key");
    assert_eq!(log["entries"][1]["actor"], "host key");
    let (_, room) = s
        .call(reqwest::Method::GET, "/api/rooms/show", None, None)
        .await;
    assert_eq!(room["host_gifts"], true);
    assert_eq!(
        audit(demo_key, "demo").await.0,
        200,
        "the rotated host key stays"
    );
    assert_eq!(
        audit(kept_demo_key, "demo").await.0,
        403,
        "the kept (rotated-out) host key does not come back"
    );
    let second_session = broadcast(&s, "show", &key).await;
    let sessions: Value = s
        .api
        .get(format!("{}/api/rooms/show/sessions", s.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["session"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        vec![second_session.as_str(), first_session.as_str()]
    );
    assert!(sessions["sessions"][1]["ended_ms"].is_i64());
    assert!(sessions["sessions"][1]["vod_key"]
        .as_str()
        .unwrap()
        .ends_with("index.m3u8"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    survives_a_restart(test_config(dir.path())).await;
    assert!(dir.path().join("barrage.db").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pg = ScratchPostgres::create().await;
    let mut config = test_config(dir.path());
    config.db.url = pg.url.clone();
    survives_a_restart(config).await;
    assert!(!dir.path().join("barrage.db").exists());
    pg.drop_database().await;
}
