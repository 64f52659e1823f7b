//! Attacks from the security review (docs/RELIABILITY.md, "Security review") that worked
//! before and are refused now, each against a real server over real sockets.

mod chat_common;
mod common;
mod rtmp_bytes;

use std::net::IpAddr;

use chat_common::start;

/// A client whose requests leave from `ip` (any 127.x.y.z is this machine on Linux).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client")
}

async fn mint_guest(client: &reqwest::Client, http: &str) -> (u16, serde_json::Value) {
    let resp = client
        .post(format!("{http}/api/rooms/demo/guest-token"))
        .json(&serde_json::json!({"name": "Visitor"}))
        .send()
        .await
        .expect("guest-token request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// Before: 100 guest tokens in a burst from one address, 100 answered 200 (a fresh identity
/// each, past per-user limits, mutes and bans). Now the address gets its 5 and then 429 with
/// `retry_after_ms`; another address still gets its own, and the node's total bounds a script
/// spread over many addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_token_burst_gets_429_per_address_and_in_total() {
    let s = start(|c| {
        c.auth.guest_tokens_per_ip_per_min = 5;
        c.auth.guest_tokens_per_min = 20;
    })
    .await;
    let one = client_from("127.0.0.1");
    let mut statuses = Vec::new();
    let mut refusal = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, body) = mint_guest(&one, &s.http).await;
        if status == 429 {
            refusal = body;
        }
        statuses.push(status);
    }
    // The limit refills one token per 12 s: a few more could pass only if the burst took
    // minutes.
    assert!(statuses[..5].iter().all(|s| *s == 200), "{statuses:?}");
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 90, "{refused} of 100 refused: {statuses:?}");
    assert_eq!(
        refusal["error"]["code"], "too_many_guest_tokens",
        "{refusal}"
    );
    assert!(
        refusal["error"]["retry_after_ms"].as_u64().unwrap_or(0) > 0,
        "{refusal}"
    );
    let (status, _) = mint_guest(&client_from("127.0.0.2"), &s.http).await;
    assert_eq!(status, 200, "another address has its own budget");

    // Many addresses, one request each: the node's total (20 a minute, 6 already taken)
    // refuses the rest.
    let mut ok = 0;
    let mut total_refusal = serde_json::Value::Null;
    for i in 0..40 {
        let (status, body) = mint_guest(&client_from(&format!("127.0.1.{}", i + 1)), &s.http).await;
        match status {
            200 => ok += 1,
            429 => total_refusal = body,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok <= 24, "{ok} of 40 passed the node's total");
    assert!(
        total_refusal["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("auth.guest_tokens_per_min"),
        "{total_refusal}"
    );
}

/// Before: `?page=` near usize::MAX overflowed `(page - 1) * per_page` (a 500 on PostgreSQL,
/// a panic in debug builds). Now every paged route answers 400 `bad_page`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_page_numbers_are_a_bad_request() {
    let s = start(|_| {}).await;
    let huge = usize::MAX;
    for path in [
        format!("/api/rooms?page={huge}"),
        format!("/api/rooms/demo/sessions?page={huge}&per_page=100"),
        format!("/api/rooms/demo/audit?page={}", huge / 2),
    ] {
        let (status, body) = s.admin(reqwest::Method::GET, &path, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_page")),
            "{path}: {body}"
        );
    }
    let (status, _) = s
        .admin(
            reqwest::Method::GET,
            "/api/rooms/demo/sessions?page=2",
            None,
        )
        .await;
    assert_eq!(status, 200);
}

/// Before: a guest could be called "System" or "Sys\u{200B}tem", or wrap its name in a
/// right-to-left override, and read as the room's own voice. Now such names are refused, and
/// names from other tokens are shown without invisible characters (unit tests in chat::names).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_names_cannot_pass_for_the_service_or_hide_characters() {
    let s = start(|_| {}).await;
    let client = client_from("127.0.0.1");
    for (name, code) in [
        ("System", "reserved_name"),
        ("H o s t", "reserved_name"),
        ("Sys\u{200B}tem", "bad_name"),
        ("\u{202E}nimda", "bad_name"),
    ] {
        let resp = client
            .post(format!("{}/api/rooms/demo/guest-token", s.http))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{name:?}: {body}"
        );
    }
    let (status, body) = mint_guest(&client, &s.http).await;
    assert_eq!((status, body["name"].as_str()), (200, Some("Visitor")));
}

/// Publishes `key` to the server's RTMP port by hand; whether it was accepted.
async fn publishes(s: &chat_common::TestServer, key: &str) -> bool {
    let mut stream = tokio::net::TcpStream::connect(s.server.rtmp_addr)
        .await
        .expect("rtmp connect");
    rtmp_bytes::client_handshake(&mut stream)
        .await
        .expect("handshake");
    rtmp_bytes::publish_started(&mut stream, key).await
}

/// Before: secrets.toml said "delete a line to make a new one", but a regenerated config-room
/// stream key never reached the database (the catalog only took keys set in config), so the
/// new key was refused and the old one (or an API-rotated one) kept working. Now the key
/// generated at that start replaces the stored digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_key_line_makes_a_new_key_that_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let config = barrage::testutil::test_config(dir.path());
    let s = chat_common::start_config(config.clone()).await;
    let first = s.server.state.secrets.stream_keys["demo"].clone();
    // Rotated through the API: the stored key is no longer the kept one.
    let (status, rotated) = s
        .admin(reqwest::Method::POST, "/api/rooms/demo/rotate-key", None)
        .await;
    assert_eq!(status, 200, "{rotated}");
    let rotated = rotated["stream_key"].as_str().unwrap().to_string();
    s.server.stop().await;

    let path = dir.path().join("secrets.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.contains(&first))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(kept, text, "the stream key line was there");
    std::fs::write(&path, kept).unwrap();

    let s = chat_common::start_config(config).await;
    let second = s.server.state.secrets.stream_keys["demo"].clone();
    assert_ne!(second, first, "a new key was generated");
    assert!(
        !publishes(&s, &rotated).await,
        "the API-rotated key is replaced"
    );
    assert!(
        !publishes(&s, &first).await,
        "the deleted key no longer publishes"
    );
    assert!(publishes(&s, &second).await, "the new key publishes");
}

/// Before: a publisher with a valid key whose timestamps never advanced grew the segment
/// being filled without bound (a forced cut needed millions of frames). Now it is cut off
/// once the segment holds `hls.max_segment_bytes`: the server closes its connection long
/// before it could send 32 times that, the room ends, and the cut-off is counted by reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_with_frozen_timestamps_is_cut_off() {
    use barrage::media::flv_file::{read_flv, FlvTagKind};
    use tokio::io::AsyncWriteExt;
    const BOUND: usize = 1 << 20;
    let s = start(|c| c.hls.max_segment_bytes = BOUND).await;
    let key = s.server.state.secrets.stream_keys["demo"].clone();
    let push = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ffmpeg_push_6s.flv"
    ))
    .unwrap();
    let video: Vec<bytes::Bytes> = read_flv(&bytes::Bytes::from(push))
        .unwrap()
        .into_iter()
        .filter(|t| t.kind == FlvTagKind::Video)
        .map(|t| t.body)
        .collect();
    let mut stream = tokio::net::TcpStream::connect(s.server.rtmp_addr)
        .await
        .unwrap();
    rtmp_bytes::client_handshake(&mut stream).await.unwrap();
    assert!(rtmp_bytes::publish_started(&mut stream, &key).await);
    // The config and first keyframe, then every later frame again and again, all at 0 ms.
    let mut sent = 0usize;
    let mut refused = false;
    for body in video.iter().take(2).chain(video.iter().skip(2).cycle()) {
        let message = rtmp_bytes::chunked(6, 9, 1, body, 128);
        if stream.write_all(&message).await.is_err() {
            refused = true;
            break;
        }
        sent += body.len();
        if sent > 32 * BOUND {
            break;
        }
    }
    assert!(
        refused,
        "still accepted after {sent} bytes of frozen frames"
    );
    common::poll(
        std::time::Duration::from_secs(20),
        "the room ends",
        || async { s.server.state.live.get("demo").is_none().then_some(()) },
    )
    .await;
    let metrics = common::metrics_text(&s.api, &s.http).await;
    assert!(
        metrics.contains("barrage_publishers_cut_off_total{reason=\"segment_bytes\"}"),
        "the cut-off is counted"
    );
}
