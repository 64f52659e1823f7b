//! Objects are served at their key's path with the headers players and CDNs need, from the
//! local store and from a real S3-protocol server alike.

mod common;

use barrage::testutil::{test_config, S3Server};
use bytes::Bytes;

async fn check_serving(config: barrage::config::Config) {
    let server = barrage::app::start(config).await.unwrap();
    let storage = &server.state.storage;
    storage
        .put(
            "hls/demo/s1/index.m3u8",
            Bytes::from_static(b"#EXTM3U\n#EXT-X-ENDLIST\n"),
        )
        .await
        .unwrap();
    storage
        .put("hls/demo/s1/000001.m4s", Bytes::from(vec![7u8; 1000]))
        .await
        .unwrap();
    storage
        .put("danmaku/demo/index.json", Bytes::from_static(b"{\"n\":1}"))
        .await
        .unwrap();
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::new();

    let r = http
        .get(format!("{base}/hls/demo/s1/index.m3u8"))
        .header("Origin", "https://player.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(r.headers()["cache-control"], "public, max-age=1");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"'), "{etag}");
    let r = http
        .get(format!("{base}/hls/demo/s1/index.m3u8"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    let r = http
        .get(format!("{base}/hls/demo/s1/000001.m4s"))
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/1000");
    assert_eq!(r.headers()["content-type"], "video/iso.segment");
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    assert_eq!(r.bytes().await.unwrap().len(), 10);

    let r = http
        .get(format!("{base}/danmaku/demo/index.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["cache-control"], "public, max-age=1");

    // Offline room, unknown room, path tricks.
    let r = http
        .get(format!("{base}/hls/demo/live.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("offline"));
    let r = http
        .get(format!("{base}/hls/nope/live.m3u8"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("no room nope"));
    let r = http
        .get(format!("{base}/hls/demo/..%2F..%2Fsecrets.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let metrics = common::metrics_text(&http, &base).await;
    assert!(
        metrics.contains("barrage_storage_put_bytes_total"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn objects_from_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    check_serving(test_config(dir.path())).await;
    // Local objects live under the data directory at their key.
    assert!(dir.path().join("hls/demo/s1/000001.m4s").is_file());
}

#[tokio::test]
async fn objects_from_an_s3_server() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start(&dir.path().join("s3"));
    let mut config = test_config(&dir.path().join("data"));
    s3.configure(&mut config, "");
    check_serving(config).await;
    assert!(dir
        .path()
        .join("s3/barrage/hls/demo/s1/000001.m4s")
        .is_file());
}
