//! Rooms API over real HTTP, and that rooms survive a restart on the same data directory.

use barrage::testutil::{test_config, TEST_ADMIN_KEY};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// `POST /api/rooms` with `key` as the bearer (None: no Authorization header) and `body` as the
/// JSON text.
async fn post_rooms(
    http: &reqwest::Client,
    base: &str,
    key: Option<&str>,
    body: impl Into<String>,
) -> reqwest::Response {
    let mut request = http
        .post(format!("{base}/api/rooms"))
        .header("content-type", "application/json")
        .body(body.into());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn rooms_are_made_listed_rotated_closed_and_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = barrage::app::start(test_config(dir.path())).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let http = client();

    // Writes need the admin key.
    let r = post_rooms(
        &http,
        &base,
        None,
        json!({"id":"concert","title":"Concert"}).to_string(),
    )
    .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let r = post_rooms(
        &http,
        &base,
        Some("wrong"),
        json!({"id":"concert","title":"Concert"}).to_string(),
    )
    .await;
    assert_eq!(r.status(), 403);

    let r = post_rooms(
        &http,
        &base,
        Some(TEST_ADMIN_KEY),
        json!({"id":"concert","title":"Concert"}).to_string(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    let key = made["stream_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("live_"));
    assert_eq!(made["obs"]["stream_key"], key.as_str());
    assert!(made["obs"]["server"].as_str().unwrap().ends_with("/live"));
    assert_eq!(made["room"]["id"], "concert");

    // Same id again: conflict; bad id: 400; bad JSON: 400 with a code; huge body: 413.
    let again = post_rooms(
        &http,
        &base,
        Some(TEST_ADMIN_KEY),
        json!({"id":"concert","title":"x"}).to_string(),
    )
    .await;
    assert_eq!(again.status(), 409);
    let bad = post_rooms(
        &http,
        &base,
        Some(TEST_ADMIN_KEY),
        json!({"id":"Bad Id","title":"x"}).to_string(),
    )
    .await;
    assert_eq!(bad.status(), 400);
    let garbage = post_rooms(&http, &base, Some(TEST_ADMIN_KEY), "{not json").await;
    assert_eq!(garbage.status(), 400);
    let v: Value = garbage.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bad_json");
    let huge = post_rooms(
        &http,
        &base,
        Some(TEST_ADMIN_KEY),
        format!("{{\"title\":\"{}\"}}", "x".repeat(200_000)),
    )
    .await;
    assert_eq!(huge.status(), 413);

    // Listed (public), paged.
    let list: Value = http
        .get(format!("{base}/api/rooms?per_page=1&page=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 2, "{list}");
    assert_eq!(list["rooms"].as_array().unwrap().len(), 1);
    let one: Value = http
        .get(format!("{base}/api/rooms/concert"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["title"], "Concert");
    assert!(one.get("stream_key").is_none());
    assert_eq!(
        http.get(format!("{base}/api/rooms/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Rotation replaces the key at once.
    let rotated: Value = http
        .post(format!("{base}/api/rooms/concert/rotate-key"))
        .bearer_auth(TEST_ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_key = rotated["stream_key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert_eq!(
        server.state.rooms.room_for_key(&new_key).as_deref(),
        Some("concert")
    );
    assert_eq!(server.state.rooms.room_for_key(&key), None);

    // Close hides it from the list and refuses its key.
    let r = http
        .post(format!("{base}/api/rooms/demo/close"))
        .bearer_auth(TEST_ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = http
        .get(format!("{base}/api/rooms"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    server.stop().await;

    // Restart on the same data directory: the room, its rotated key and the closure remain.
    let server = barrage::app::start(test_config(dir.path())).await.unwrap();
    assert_eq!(
        server.state.rooms.room_for_key(&new_key).as_deref(),
        Some("concert")
    );
    assert_eq!(server.state.rooms.room_for_key(&key), None);
    assert!(server.state.rooms.get("demo").unwrap().closed);
    let base = format!("http://{}", server.http_addr);
    let sessions: Value = client()
        .get(format!("{base}/api/rooms/concert/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["total"], 0);
    server.stop().await;
}

#[tokio::test]
async fn an_unwritable_database_is_a_clear_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let file = dir.path().join("corrupt.db");
    std::fs::write(&file, vec![0x17u8; 4096]).unwrap();
    config.db.url = format!("sqlite://{}", file.display());
    let err = barrage::app::start(config).await.err().unwrap().to_string();
    assert!(err.contains("corrupt.db"), "{err}");
}
