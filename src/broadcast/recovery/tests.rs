//! Recovery on a temp-dir store: whose sessions, what a crash leaves, what comes back.

use super::*;
use crate::hls::playlist::{ListedSegment, SessionPlaylists};

/// Stores a playlist.
async fn put_text(storage: &Storage, key: &str, text: String) {
    storage.put(key, Bytes::from(text)).await.unwrap();
}

/// What a writer leaves when killed after listing `n` segments: the segments, the init
/// and an EVENT playlist (bytes that are not real media: nothing here reads them).
async fn leave_a_crashed_session(storage: &Storage, room: &str, session: &str, n: u64) {
    let keys = SessionKeys::new(room, session);
    let mut lists = SessionPlaylists::new(session, 2.0);
    storage
        .put(&keys.init(), Bytes::from_static(b"init"))
        .await
        .unwrap();
    for i in 1..=n {
        storage
            .put(&keys.segment(i), Bytes::from_static(b"seg"))
            .await
            .unwrap();
        lists.push(ListedSegment {
            file: SessionKeys::segment_file(i),
            duration: 2.0,
            program_date_time: chrono::DateTime::from_timestamp_millis(1_000 + i as i64 * 2_000)
                .unwrap(),
            independent: true,
            discontinuity: false,
        });
    }
    let event = lists.session_playlist(SessionState::Live).unwrap();
    put_text(storage, &keys.session_playlist(), event).await;
    let live = lists.live_playlist(6, false).unwrap();
    put_text(storage, &keys.live_playlist(), live).await;
}

#[tokio::test]
async fn on_a_shared_database_only_this_nodes_sessions_are_finished() {
    let scratch = crate::testutil::ScratchPostgres::create().await;
    let db = Database::open(&scratch.url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::local(dir.path()).unwrap();
    let hls = HlsConfig {
        target_segment_s: 2.0,
        window_segments: 6,
        max_segment_bytes: 64 << 20,
        max_segment_wall_s: 60,
        part_ms: 0,
    };
    db.session_started("r1", "mine", 1_000, "node-a")
        .await
        .unwrap();
    db.session_started("r2", "theirs", 1_000, "node-b")
        .await
        .unwrap();
    leave_a_crashed_session(&storage, "r1", "mine", 3).await;
    leave_a_crashed_session(&storage, "r2", "theirs", 2).await;

    let recovered = recover_interrupted(&db, &storage, "node-a", &hls)
        .await
        .unwrap();
    assert_eq!(recovered.len(), 1);
    let r = &recovered[0];
    assert_eq!((r.room.as_str(), r.session.as_str()), ("r1", "mine"));
    assert_eq!((r.segments, r.added), (3, 0));
    assert!(r.live_closed);
    // Ended at the end of its last segment (listed at 7 s + 2 s).
    assert_eq!(r.ended_ms, 9_000);
    let mine = db.get_session("r1", "mine").await.unwrap().unwrap();
    assert_eq!(mine.vod_key.as_deref(), Some("hls/r1/mine/index.m3u8"));
    assert_eq!(mine.ended_ms, Some(9_000));
    let vod = storage
        .get_bytes("hls/r1/mine/index.m3u8")
        .await
        .unwrap()
        .unwrap();
    let vod = String::from_utf8(vod.to_vec()).unwrap();
    assert!(
        vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && vod.contains("#EXT-X-ENDLIST"),
        "{vod}"
    );

    // The other node's session is left as it was: open, its playlists live.
    let theirs = db.get_session("r2", "theirs").await.unwrap().unwrap();
    assert_eq!(theirs.ended_ms, None);
    let live = storage
        .get_bytes("hls/r2/live.m3u8")
        .await
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(&live).contains("ENDLIST"));
    // Nothing is left for node a to do.
    assert!(recover_interrupted(&db, &storage, "node-a", &hls)
        .await
        .unwrap()
        .is_empty());
    db.close().await;
    scratch.drop_database().await;
}

#[tokio::test]
async fn a_segment_stored_but_never_listed_joins_the_vod() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&format!("sqlite://{}/b.db", dir.path().display()))
        .await
        .unwrap();
    let storage = Storage::local(&dir.path().join("store")).unwrap();
    db.session_started("r", "s", 0, "n").await.unwrap();
    // A real session's objects: the recorded push through a writer's muxer.
    let flv = Bytes::from(
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ffmpeg_push_6s.flv"
        ))
        .unwrap(),
    );
    let mut muxer = crate::media::StreamMuxer::new(2000);
    let mut events = Vec::new();
    for tag in crate::media::flv_file::read_flv(&flv).unwrap() {
        if let Some(m) = tag.to_media_message() {
            events.extend(match m {
                crate::media::MediaMessage::Video { timestamp, body } => {
                    muxer.push_video(timestamp, &body).unwrap()
                }
                crate::media::MediaMessage::Audio { timestamp, body } => {
                    muxer.push_audio(timestamp, &body).unwrap()
                }
                _ => Vec::new(),
            });
        }
    }
    events.extend(muxer.finish().unwrap());
    let keys = SessionKeys::new("r", "s");
    let mut lists = SessionPlaylists::new("s", 2.0);
    for e in events {
        match e {
            crate::media::MuxEvent::Init(init) => {
                storage.put(&keys.init(), init.bytes).await.unwrap()
            }
            crate::media::MuxEvent::Segment(seg) => {
                storage
                    .put(&keys.segment(seg.sequence), seg.bytes)
                    .await
                    .unwrap();
                // The crash came after segment 3 was stored, before it was listed.
                if seg.sequence < 3 {
                    lists.push(ListedSegment {
                        file: SessionKeys::segment_file(seg.sequence),
                        duration: seg.duration,
                        program_date_time: chrono::DateTime::from_timestamp_millis(
                            seg.start_ms as i64,
                        )
                        .unwrap(),
                        independent: seg.independent,
                        discontinuity: false,
                    });
                    let event = lists.session_playlist(SessionState::Live).unwrap();
                    put_text(&storage, &keys.session_playlist(), event).await;
                }
            }
            _ => {}
        }
    }
    let recovered = recover_interrupted(
        &db,
        &storage,
        "n",
        &HlsConfig {
            target_segment_s: 2.0,
            window_segments: 6,
            max_segment_bytes: 64 << 20,
            max_segment_wall_s: 60,
            part_ms: 0,
        },
    )
    .await
    .unwrap();
    assert_eq!((recovered[0].segments, recovered[0].added), (3, 1));
    let vod = storage
        .get_bytes(&keys.session_playlist())
        .await
        .unwrap()
        .unwrap();
    let vod = hls_m3u8::MediaPlaylist::try_from(std::str::from_utf8(&vod).unwrap())
        .unwrap()
        .into_owned();
    assert!(vod.has_end_list);
    assert_eq!(vod.segments.num_elements(), 3);
    assert!(
        (vod.duration().as_secs_f64() - 6.0).abs() < 0.1,
        "{:?}",
        vod.duration()
    );
    // No live playlist was ever written for it: nothing to close.
    assert!(!recovered[0].live_closed);
}
