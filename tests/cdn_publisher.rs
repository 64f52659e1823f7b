//! The danmaku file publisher against real stores: files are contiguous and complete, and a
//! store outage delays files without losing or duplicating any.

use std::sync::Arc;
use std::time::Duration;

use barrage::cdn::publisher::{CdnPublisher, PublisherSettings};
use barrage::cdn::weights::WeightedBases;
use barrage::cdn::{BatchFile, CdnEvent, IndexFile};
use barrage::db::Database;
use barrage::rooms::LiveRegistry;
use barrage::storage::Storage;
use barrage::testutil::{test_config, S3Server};

fn event(seq: u64) -> CdnEvent {
    CdnEvent {
        seq,
        ts_ms: 1_764_000_000_000 + seq as i64,
        stream_ms: seq * 10,
        json: serde_json::value::to_raw_value(
            &serde_json::json!({"seq": seq, "priority": "danmaku",
            "danmaku": {"user": "u", "text": format!("m{seq}"), "mode": "scroll", "color": 1}}),
        )
        .unwrap(),
    }
}

async fn publisher(
    storage: Storage,
    dir: &std::path::Path,
    live: Arc<LiveRegistry>,
) -> Arc<CdnPublisher> {
    let db = Database::open(&format!("sqlite://{}/t.db", dir.display()))
        .await
        .unwrap();
    CdnPublisher::start(
        storage,
        db,
        live,
        PublisherSettings {
            period: Duration::from_millis(200),
            max_pending: 1000,
            bases: Arc::new(WeightedBases::new(vec![])),
            hls_base: None,
            written: None,
        },
        Arc::new(|_: &str| 1),
    )
}

/// Reads every file of the index's session and checks contiguity; returns the events' seqs.
async fn read_all(storage: &Storage, room: &str) -> (IndexFile, Vec<u64>) {
    let index: IndexFile = serde_json::from_slice(
        &storage
            .get_bytes(&IndexFile::key(room))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let mut seqs = Vec::new();
    let mut next_from = None;
    for n in 1..=index.latest {
        let key = BatchFile::key(room, &index.session, n);
        let body = storage
            .get_bytes(&key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{key} missing"));
        let file: BatchFile = serde_json::from_slice(&body).unwrap();
        assert_eq!(file.n, n);
        if let Some(expected) = next_from {
            assert_eq!(
                file.from_seq, expected,
                "file {n} continues the previous one"
            );
        }
        next_from = Some(file.to_seq + 1);
        assert!(file.start_ms <= file.end_ms);
        for e in &file.events {
            seqs.push(e["seq"].as_u64().unwrap());
        }
    }
    (index, seqs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_files_hold_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(&dir.path().join("objects")).unwrap();
    let live = Arc::new(LiveRegistry::new());
    let p = publisher(storage.clone(), dir.path(), live).await;
    for seq in 1..=30u64 {
        p.deliver("r", vec![event(seq)]);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.shutdown(Duration::from_secs(10)).await;
    let (index, seqs) = read_all(&storage, "r").await;
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
    assert!(index.latest >= 2, "several periods: {}", index.latest);
    assert!(index.session.starts_with("chat-"));
    assert!(!index.active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_outage_delays_files_but_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3Server::start(&dir.path().join("s3"));
    let mut config = test_config(dir.path());
    s3.configure(&mut config, "cdn");
    let storage = Storage::from_config(&config).unwrap();
    let live = Arc::new(LiveRegistry::new());
    let info = live.try_begin("r").unwrap();
    let p = publisher(storage.clone(), dir.path(), live.clone()).await;
    let mut seq = 0u64;
    let mut send = |n: u64| {
        for _ in 0..n {
            seq += 1;
            p.deliver("r", vec![event(seq)]);
        }
    };
    send(5);
    tokio::time::sleep(Duration::from_millis(600)).await;
    s3.stop();
    for _ in 0..10 {
        send(3);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    s3.restart();
    send(4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    live.end("r", &info.session, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.shutdown(Duration::from_secs(30)).await;
    let (index, seqs) = read_all(&storage, "r").await;
    assert_eq!(index.session, info.session, "files follow the live session");
    assert!(index.live);
    assert_eq!(
        seqs,
        (1..=39).collect::<Vec<_>>(),
        "every event once, in order"
    );
}
