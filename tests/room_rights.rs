//! Every API route against every kind of credential, over real HTTP: the admin key, the host
//! key of the room and of another room, moderator tokens of the room and of another room, a
//! host token, a viewer token, and none. The expected status of each pair is the table below
//! (401 with no credential, 403 with one that does not open the call, 2xx where it does);
//! a guard reads the routers in src/http and fails when an `/api` route is missing from it.
//! Also: a host key cannot see or make other rooms, its rotation kills the old key at once,
//! gifts with a host key follow the room's `host_gifts`, and `GET /api/whoami`.

mod chat_common;

use std::collections::BTreeSet;
use std::time::Duration;

use barrage::auth::Role;
use chat_common::{start, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

/// The credentials, in the table's column order.
const COLUMNS: [&str; 8] = [
    "admin key",
    "host key",
    "other room's host key",
    "moderator token",
    "other room's moderator token",
    "host token",
    "viewer token",
    "none",
];

/// Statuses by column: the same for everyone (public routes).
const PUBLIC: [u16; 8] = [200; 8];
/// Admin key only.
const ADMIN: [u16; 8] = [200, 403, 403, 403, 403, 403, 403, 401];
/// The admin key and the room's host key.
const KEYS: [u16; 8] = [200, 200, 403, 403, 403, 403, 403, 401];
/// Keys and host tokens of the room.
const HOST_WORK: [u16; 8] = [200, 200, 403, 403, 403, 200, 403, 401];
/// Keys, moderator and host tokens of the room.
const MODERATION: [u16; 8] = [200, 200, 403, 200, 403, 200, 403, 401];

/// `status` with 2xx answers replaced by `ok` (202 for queued writes, 201 for made rooms).
const fn with_ok(row: [u16; 8], ok: u16) -> [u16; 8] {
    let mut out = row;
    let mut i = 0;
    while i < 8 {
        if out[i] == 200 {
            out[i] = ok;
        }
        i += 1;
    }
    out
}

/// One route: method, path template, body, expected status per column. Rows run in this
/// order, each against every credential; close and reopen come last. `{room}` is demo,
/// `{user}` a user, `{seq}` a delivered seq, `{session}` a session that does not exist.
#[rustfmt::skip]
const TABLE: &[(&str, &str, Option<&str>, [u16; 8])] = &[
    ("GET",    "/api/rooms", None, PUBLIC),
    ("POST",   "/api/rooms", Some(r#"{"id":"made-by-table","title":"T"}"#), with_ok(ADMIN, 201)),
    ("GET",    "/api/whoami", None, [200, 200, 200, 200, 200, 200, 200, 401]),
    ("GET",    "/api/cluster", None, PUBLIC),
    ("GET",    "/api/rooms/{room}", None, PUBLIC),
    ("GET",    "/api/rooms/{room}/sessions", None, PUBLIC),
    // No such session: 404 for everyone (the route is public; credentials do not matter).
    ("GET",    "/api/rooms/{room}/sessions/{session}/danmaku.xml", None, [404; 8]),
    // Like danmaku.xml: a public download, and this session does not exist.
    ("GET",    "/api/rooms/{room}/sessions/{session}/download.mp4", None, [404; 8]),
    ("GET",    "/api/rooms/{room}/stats", None, PUBLIC),
    ("GET",    "/api/rooms/{room}/series", None, HOST_WORK),
    ("GET",    "/api/rooms/{room}/connect", None, PUBLIC),
    ("POST",   "/api/rooms/{room}/guest-token", Some(r#"{"name":"Ann"}"#), PUBLIC),
    ("POST",   "/api/rooms/{room}/system", Some(r#"{"text":"from the table"}"#), with_ok(HOST_WORK, 202)),
    // host_gifts is off: only the admin key posts gifts (see the test below for on).
    ("POST",   "/api/rooms/{room}/gifts", Some(r#"{"user":"u2","gift_id":"rocket","value":500}"#), with_ok(ADMIN, 202)),
    ("POST",   "/api/rooms/{room}/mutes/{user}", Some(r#"{"seconds":60}"#), MODERATION),
    ("DELETE", "/api/rooms/{room}/mutes/{user}", None, MODERATION),
    ("POST",   "/api/rooms/{room}/bans/{user}", None, MODERATION),
    ("DELETE", "/api/rooms/{room}/bans/{user}", None, MODERATION),
    ("POST",   "/api/rooms/{room}/messages/{seq}/delete", None, with_ok(MODERATION, 202)),
    ("GET",    "/api/rooms/{room}/blocked-words", None, MODERATION),
    ("PUT",    "/api/rooms/{room}/blocked-words", Some(r#"{"words":["spam"]}"#), MODERATION),
    ("PUT",    "/api/rooms/{room}/slow-mode", Some(r#"{"seconds":0}"#), MODERATION),
    ("GET",    "/api/rooms/{room}/moderation", None, MODERATION),
    ("GET",    "/api/rooms/{room}/audit", None, HOST_WORK),
    ("PUT",    "/api/rooms/{room}/settings", Some(r#"{"host_gifts":false}"#), ADMIN),
    ("POST",   "/api/rooms/{room}/rotate-key", None, KEYS),
    ("POST",   "/api/rooms/{room}/host-key", None, KEYS),
    ("POST",   "/api/rooms/{room}/close", None, KEYS),
    ("POST",   "/api/rooms/{room}/open", None, KEYS),
];

/// The credentials of one run; the host key of demo changes when a row rotates it.
struct Credentials {
    admin: String,
    host: String,
    host_other: String,
    moderator: String,
    moderator_other: String,
    host_token: String,
    viewer: String,
}

impl Credentials {
    fn of(ts: &TestServer) -> Credentials {
        let hour = Duration::from_secs(3600);
        Credentials {
            admin: ts.admin_key.clone(),
            host: ts.host_key("demo"),
            host_other: ts.host_key("other"),
            moderator: ts.token_as("mod-1", Role::Moderator, Some("demo"), hour),
            moderator_other: ts.token_as("mod-2", Role::Moderator, Some("other"), hour),
            host_token: ts.token_as("host-1", Role::Host, Some("demo"), hour),
            viewer: ts.token_as("viewer-1", Role::Viewer, Some("demo"), hour),
        }
    }

    fn column(&self, i: usize) -> Option<&str> {
        Some(match i {
            0 => &self.admin,
            1 => &self.host,
            2 => &self.host_other,
            3 => &self.moderator,
            4 => &self.moderator_other,
            5 => &self.host_token,
            6 => &self.viewer,
            _ => return None,
        })
    }
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("an HTTP method")
}

/// Every `/api` route (method and path) the routers in src/http declare.
fn declared_api_routes() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("src/http") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("read a router");
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            let call = &rest[at + ".route(".len()..];
            // The call's arguments: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let end = call
                .char_indices()
                .find_map(|(i, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    (depth == 0).then_some(i)
                })
                .expect("a closed .route(...)");
            let args = &call[..end];
            rest = &call[end..];
            let Some(path) = args.split('"').nth(1).filter(|p| p.starts_with("/api")) else {
                continue;
            };
            for verb in ["get", "post", "put", "delete", "patch"] {
                let called = args.match_indices(&format!("{verb}(")).any(|(i, _)| {
                    i == 0 || !args[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if called {
                    routes.insert((verb.to_uppercase(), path.to_string()));
                }
            }
        }
    }
    routes
}

#[test]
fn the_table_covers_every_api_route() {
    let declared = declared_api_routes();
    assert!(
        declared.len() >= 25,
        "the guard found too few routes: {declared:?}"
    );
    let tabled: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = declared.difference(&tabled).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in TABLE: {missing:?}"
    );
    let stale: Vec<_> = tabled.difference(&declared).collect();
    assert!(
        stale.is_empty(),
        "rows for routes that do not exist: {stale:?}"
    );
}

#[tokio::test]
async fn every_route_answers_every_credential_as_the_table_says() {
    // Every credential asks for a guest token from 127.0.0.1: more than the per-address limit
    // (which tests/hardening.rs checks).
    let ts = start(|c| c.auth.guest_tokens_per_ip_per_min = 100).await;
    let mut creds = Credentials::of(&ts);
    // A delivered event to delete.
    ts.system("demo", "first").await;
    ts.wait_seq("demo", 1).await;

    let mut wrong = Vec::new();
    for (verb, template, body, expected) in TABLE {
        let path = template
            .replace("{room}", "demo")
            .replace("{user}", "u-target")
            .replace("{seq}", "1")
            .replace("{session}", "no-such-session");
        for (i, want) in expected.iter().enumerate() {
            let body = body.map(|b| serde_json::from_str::<Value>(b).expect("a JSON body"));
            let (status, answer) = ts.call(method(verb), &path, creds.column(i), body).await;
            if status != *want {
                wrong.push(format!(
                    "{verb} {path} with {}: {status}, want {want}: {answer}",
                    COLUMNS[i]
                ));
            }
            if status >= 400 && status != 404 {
                let message = answer["error"]["message"].as_str().unwrap_or("");
                assert!(
                    !message.is_empty() && answer["error"]["code"].is_string(),
                    "{verb} {path} with {}: a refusal must be a JSON error that says why: {answer}",
                    COLUMNS[i]
                );
            }
            if status == 200 && *template == "/api/rooms/{room}/host-key" {
                // The new key opens the room from now on (and the old one no longer does).
                let old = std::mem::replace(
                    &mut creds.host,
                    answer["host_key"]
                        .as_str()
                        .expect("a new host key")
                        .to_string(),
                );
                let (status, _) = ts
                    .call(Method::GET, "/api/rooms/demo/audit", Some(&old), None)
                    .await;
                assert_eq!(status, 403, "the rotated-out host key still opens the room");
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    ts.stop().await;
}

#[tokio::test]
async fn host_keys_open_their_room_only_and_gifts_follow_host_gifts() {
    let ts = start(|_| {}).await;
    let host = ts.host_key("demo");
    let gift = json!({"user":"u2","name":"Bo","gift_id":"rocket","value":500});

    // Who the key is: the console asks this to show one room.
    let (status, me) = ts.call(Method::GET, "/api/whoami", Some(&host), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        me,
        json!({"credential":"host_key","role":"host","room":"demo"})
    );
    let (_, me) = ts
        .call(Method::GET, "/api/whoami", Some(&ts.admin_key), None)
        .await;
    assert_eq!(me, json!({"credential":"admin_key","role":"admin"}));
    let (status, me) = ts
        .call(Method::GET, "/api/whoami", Some("nonsense"), None)
        .await;
    assert_eq!(status, 403, "{me}");

    // A host key makes no rooms and touches no other room.
    let (status, answer) = ts
        .call(
            Method::POST,
            "/api/rooms",
            Some(&host),
            Some(json!({"title":"x"})),
        )
        .await;
    assert_eq!(status, 403);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("admin key"),
        "{answer}"
    );
    let (status, answer) = ts
        .call(
            Method::POST,
            "/api/rooms/other/system",
            Some(&host),
            Some(json!({"text":"x"})),
        )
        .await;
    assert_eq!(status, 403);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("room demo's host key, not room other's"),
        "{message}"
    );

    // Gifts: refused until the admin allows the room's host key to post them.
    let gifts = "/api/rooms/demo/gifts";
    let (status, answer) = ts
        .call(Method::POST, gifts, Some(&host), Some(gift.clone()))
        .await;
    assert_eq!(status, 403);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("host_gifts"));
    let (status, _) = ts
        .call(
            Method::PUT,
            "/api/rooms/demo/settings",
            Some(&host),
            Some(json!({"host_gifts": true})),
        )
        .await;
    assert_eq!(status, 403, "a host cannot allow itself gifts");
    let (status, room) = ts
        .admin(
            Method::PUT,
            "/api/rooms/demo/settings",
            Some(json!({"host_gifts": true})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(room["host_gifts"], true);
    let (status, _) = ts
        .call(Method::POST, gifts, Some(&host), Some(gift.clone()))
        .await;
    assert_eq!(status, 202);
    let other_host = ts.host_key("other");
    let (status, _) = ts
        .call(Method::POST, gifts, Some(&other_host), Some(gift))
        .await;
    assert_eq!(status, 403);

    // A room made through the API answers its host key once; the key works at once.
    let (status, made) = ts
        .admin(
            Method::POST,
            "/api/rooms",
            Some(json!({"id":"made","title":"Made"})),
        )
        .await;
    assert_eq!(status, 201);
    let made_key = made["host_key"].as_str().unwrap().to_string();
    assert!(made_key.starts_with("host_"));
    assert_ne!(made_key, made["stream_key"].as_str().unwrap());
    let (status, _) = ts
        .call(Method::GET, "/api/rooms/made/audit", Some(&made_key), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = ts
        .call(Method::GET, "/api/rooms/demo/audit", Some(&made_key), None)
        .await;
    assert_eq!(status, 403);
    // Not shown again anywhere.
    let (_, view) = ts.call(Method::GET, "/api/rooms/made", None, None).await;
    assert!(view.get("host_key").is_none() && !view.to_string().contains(&made_key));

    // Tokens: an expired one says so; a moderator token without a room claim opens nothing.
    let unscoped = ts.token_as("m", Role::Moderator, None, Duration::from_secs(60));
    let (status, answer) = ts
        .call(
            Method::POST,
            "/api/rooms/demo/bans/u9",
            Some(&unscoped),
            None,
        )
        .await;
    assert_eq!(status, 403);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no room claim"));
    ts.stop().await;
}
