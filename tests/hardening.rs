//! Attacks from the security review (docs/RELIABILITY.md, "Security review") that worked
//! before and are refused now, each against a real server over real sockets.

mod chat_common;

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
