//! The gate's decisions and a session's objects, on a temp-dir store.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::media::flv_file::read_flv;
use crate::media::MediaMessage;
use crate::rooms::live::LiveChange;
use crate::rooms::{hash_key, RoomRecord};

const KEY: &str = "live_testkey";
const OTHER_KEY: &str = "live_otherkey";

struct Fixture {
    dir: tempfile::TempDir,
    storage: Storage,
    live: Arc<LiveRegistry>,
    broadcaster: Arc<Broadcaster>,
}

fn fixture() -> Fixture {
    fixture_with_grace(Duration::ZERO)
}

/// A gate whose broadcasts wait `grace` for a publisher that left.
fn fixture_with_grace(grace: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path()).unwrap();
    let rooms = Arc::new(RoomDirectory::new());
    rooms.upsert(RoomRecord {
        id: "demo".into(),
        title: "Demo".into(),
        key_hash: hash_key(KEY),
        host_key_hash: String::new(),
        host_gifts: false,
        created_ms: 0,
        closed: false,
    });
    rooms.upsert(RoomRecord {
        id: "other".into(),
        title: "Other".into(),
        key_hash: hash_key(OTHER_KEY),
        host_key_hash: String::new(),
        host_gifts: false,
        created_ms: 0,
        closed: false,
    });
    let live = Arc::new(LiveRegistry::new());
    let broadcaster = Broadcaster::new(
        rooms,
        live.clone(),
        storage.clone(),
        HlsConfig {
            target_segment_s: 2.0,
            window_segments: 6,
            max_segment_bytes: 64 << 20,
            max_segment_wall_s: 60,
            part_ms: 0,
        },
        "live".into(),
        grace,
    );
    Fixture {
        dir,
        storage,
        live,
        broadcaster,
    }
}

fn request(app: &str, key: &str) -> PublishRequest {
    PublishRequest {
        app: app.into(),
        stream_key: key.into(),
        peer: "127.0.0.1:50000".parse().unwrap(),
    }
}

/// Waits for the registry to report the end of `session`.
async fn ended(
    live: &LiveRegistry,
    mut changes: tokio::sync::broadcast::Receiver<LiveChange>,
    session: &str,
) -> Option<String> {
    let wait = async {
        loop {
            if let Ok(LiveChange::Ended { info, vod_key, .. }) = changes.recv().await {
                if info.session == session {
                    return vod_key;
                }
            }
        }
    };
    let vod = tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("session did not end");
    assert!(live.list().iter().all(|i| i.session != session));
    vod
}

/// The recorded ffmpeg push (6 s: three 2 s segments) as media messages.
fn recorded_push() -> Vec<MediaMessage> {
    let file = Bytes::from(
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ffmpeg_push_6s.flv"
        ))
        .unwrap(),
    );
    read_flv(&file)
        .unwrap()
        .iter()
        .filter_map(|t| t.to_media_message())
        .collect()
}

#[tokio::test]
async fn the_gate_refuses_wrong_app_unknown_key_and_a_second_publisher() {
    let f = fixture();
    let b = f.broadcaster.clone();
    assert!(matches!(
        b.publish(&request("app", KEY)).await,
        Err(PublishRefusal::WrongApp { app, expected }) if app == "app" && expected == "live"
    ));
    assert!(matches!(
        b.publish(&request("live", "live_nope")).await,
        Err(PublishRefusal::UnknownKey)
    ));
    assert!(matches!(
        b.publish(&request("live", "")).await,
        Err(PublishRefusal::UnknownKey)
    ));
    let first = b.publish(&request("live", KEY)).await.unwrap();
    assert_eq!(first.room, "demo");
    assert_eq!(f.live.get("demo").unwrap().session, first.session);
    assert!(matches!(
        b.publish(&request("live", KEY)).await,
        Err(PublishRefusal::AlreadyLive { room }) if room == "demo"
    ));

    // The first session ends (nothing was sent: no VOD); then the room can publish again.
    let changes = f.live.subscribe();
    let session = first.session.clone();
    drop(first);
    assert_eq!(ended(&f.live, changes, &session).await, None);
    let second = b.publish(&request("live", KEY)).await.unwrap();
    assert_ne!(second.session, session);

    // Shutdown: the live session is finalised and new publishes are refused.
    drop(second);
    b.wait_idle().await;
    assert_eq!(b.running_sessions(), 0);
    assert!(f.live.get("demo").is_none());
    assert!(matches!(
        b.publish(&request("live", KEY)).await,
        Err(PublishRefusal::ShuttingDown)
    ));
}

#[tokio::test]
async fn shutdown_finalises_a_session_whose_publisher_is_still_connected() {
    let f = fixture();
    let publication = f.broadcaster.publish(&request("live", KEY)).await.unwrap();
    let file = Bytes::from(
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ffmpeg_push_6s.flv"
        ))
        .unwrap(),
    );
    for tag in read_flv(&file).unwrap() {
        if let Some(m) = tag.to_media_message() {
            publication.media.send(vec![m]).await.unwrap();
        }
    }
    // The sender is still held: wait_idle must not hang on it.
    tokio::time::timeout(Duration::from_secs(20), f.broadcaster.wait_idle())
        .await
        .expect("wait_idle hung");
    let session = &publication.session;
    let vod = f
        .storage
        .get_bytes(&format!("hls/demo/{session}/index.m3u8"))
        .await
        .unwrap()
        .unwrap();
    let vod = String::from_utf8(vod.to_vec()).unwrap();
    assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
    assert_eq!(vod.matches(".m4s").count(), 3, "{vod}");
    assert!(publication
        .media
        .send(vec![MediaMessage::Metadata(Default::default())])
        .await
        .is_err());
}

#[tokio::test]
async fn invalid_media_never_ends_the_session() {
    let f = fixture();
    let changes = f.live.subscribe();
    let publication = f.broadcaster.publish(&request("live", KEY)).await.unwrap();
    for i in 0..50u32 {
        let junk = Bytes::from(vec![(i % 256) as u8; (i as usize) % 7]);
        publication
            .media
            .send(vec![MediaMessage::Video {
                timestamp: i,
                body: junk.clone(),
            }])
            .await
            .unwrap();
        publication
            .media
            .send(vec![MediaMessage::Audio {
                timestamp: i,
                body: junk,
            }])
            .await
            .unwrap();
    }
    assert!(f.live.get("demo").is_some());
    let session = publication.session.clone();
    drop(publication);
    assert_eq!(ended(&f.live, changes, &session).await, None);
}

#[tokio::test]
async fn a_failed_put_is_retried_until_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path()).unwrap();
    // A file where a folder must go makes the put fail until it is removed.
    std::fs::write(dir.path().join("hls"), b"in the way").unwrap();
    let blocker = dir.path().join("hls");
    let unblock = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        std::fs::remove_file(blocker).unwrap();
    });
    // No wall-clock assertion: whether the first attempt met the blocker depends on
    // scheduling; what must hold is that the put is not given up while it is there.
    store::put_with_retry(
        &storage,
        "hls/demo/s/000001.m4s",
        Bytes::from_static(b"seg"),
    )
    .await
    .unwrap();
    unblock.await.unwrap();
    assert!(storage
        .get_bytes("hls/demo/s/000001.m4s")
        .await
        .unwrap()
        .is_some());
    // A key the store refuses is not retried.
    assert!(store::put_with_retry(&storage, "../x", Bytes::new())
        .await
        .is_err());
}

#[tokio::test]
async fn a_writer_that_dies_still_frees_the_room() {
    let f = fixture();
    let info = f.live.try_begin("demo").unwrap();
    let settings = writer::SessionSettings {
        room: "demo".into(),
        session: info.session.clone(),
        target_segment_s: 2.0,
        window_segments: 6,
        part_ms: 0,
    };
    let writer = SessionWriter::new(settings, f.storage.clone(), f.live.clone());
    let (media, receiver) = mpsc::channel(4);
    let task = tokio::spawn(writer.run(receiver, CancellationToken::new()));
    media
        .send(vec![MediaMessage::Metadata(Default::default())])
        .await
        .unwrap();
    tokio::task::yield_now().await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(f.live.get("demo").is_none());
    assert!(f.live.try_begin("demo").is_ok());
}

#[tokio::test]
async fn a_segment_the_store_refuses_is_listed_as_a_gap() {
    let f = fixture();
    let changes = f.live.subscribe();
    let publication = f.broadcaster.publish(&request("live", KEY)).await.unwrap();
    let session = publication.session.clone();
    // A folder where segment 2 must go: every put of it fails, retries included.
    let dir = f.dir.path().join(format!("hls/demo/{session}/000002.m4s"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = Bytes::from(
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ffmpeg_push_6s.flv"
        ))
        .unwrap(),
    );
    for tag in read_flv(&file).unwrap() {
        if let Some(m) = tag.to_media_message() {
            publication.media.send(vec![m]).await.unwrap();
        }
    }
    drop(publication);
    let vod_key = ended(&f.live, changes, &session).await.unwrap();
    let vod = String::from_utf8(
        f.storage
            .get_bytes(&vod_key)
            .await
            .unwrap()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        vod.contains("000001.m4s") && vod.contains("000003.m4s"),
        "{vod}"
    );
    assert!(!vod.contains("000002.m4s"), "{vod}");
    // Its time is listed as a gap, not a silent hole; the media timeline goes on.
    assert_eq!(vod.matches("#EXT-X-GAP\n").count(), 1, "{vod}");
    assert_eq!(vod.matches("#EXT-X-DISCONTINUITY\n").count(), 0, "{vod}");
    assert!(vod.contains("#EXT-X-ENDLIST"));
}

#[tokio::test]
async fn two_rooms_broadcast_side_by_side() {
    let f = fixture();
    let file = Bytes::from(
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ffmpeg_push_6s.flv"
        ))
        .unwrap(),
    );
    let messages: Vec<MediaMessage> = read_flv(&file)
        .unwrap()
        .iter()
        .filter_map(|t| t.to_media_message())
        .collect();
    let a = f.broadcaster.publish(&request("live", KEY)).await.unwrap();
    let b = f
        .broadcaster
        .publish(&request("live", OTHER_KEY))
        .await
        .unwrap();
    assert_eq!((a.room.as_str(), b.room.as_str()), ("demo", "other"));
    // Interleave the two publishes message by message.
    for m in &messages {
        a.media.send(vec![m.clone()]).await.unwrap();
        b.media.send(vec![m.clone()]).await.unwrap();
    }
    let sessions = [
        (a.room.clone(), a.session.clone()),
        (b.room.clone(), b.session.clone()),
    ];
    drop((a, b));
    f.broadcaster.wait_idle().await;
    for (room, session) in sessions {
        let live = f
            .storage
            .get_bytes(&format!("hls/{room}/live.m3u8"))
            .await
            .unwrap()
            .unwrap();
        let live = String::from_utf8(live.to_vec()).unwrap();
        assert_eq!(
            live.matches(&format!("{session}/0000")).count(),
            3,
            "{live}"
        );
        assert!(live.contains("#EXT-X-ENDLIST"));
    }
}

mod reconnect;
