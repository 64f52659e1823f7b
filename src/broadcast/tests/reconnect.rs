//! A publisher that drops and comes back within the grace continues its session.

use mp4_atom::{Decode, Moof};

use super::*;
use crate::media::fmp4::VIDEO_TRACK_ID;
use crate::rooms::LiveInfo;

/// Waits until the room's broadcast waits for its publisher.
async fn until_reconnecting(live: &LiveRegistry) -> LiveInfo {
    let wait = async {
        loop {
            match live.get("demo") {
                Some(info) if info.reconnecting => return info,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("the broadcast never waited for its publisher")
}

/// Media segments (numbered objects, not gap entries) a playlist lists.
fn media_segments(playlist: &str) -> usize {
    playlist
        .lines()
        .filter(|l| l.ends_with(".m4s") && !l.ends_with("gap.m4s"))
        .count()
}

async fn text(storage: &Storage, key: &str) -> String {
    let body = storage.get_bytes(key).await.unwrap().expect(key);
    String::from_utf8(body.to_vec()).unwrap()
}

/// (video tfdt in 90 kHz ticks, summed video sample durations) of a stored segment.
async fn video_timing(storage: &Storage, key: &str) -> (u64, u64) {
    let body = storage.get_bytes(key).await.unwrap().expect(key);
    let mut buf: &[u8] = &body;
    let moof = Moof::decode(&mut buf).unwrap();
    let traf = moof
        .traf
        .iter()
        .find(|t| t.tfhd.track_id == VIDEO_TRACK_ID)
        .unwrap();
    let base = traf.tfdt.as_ref().unwrap().base_media_decode_time;
    let total = traf.trun[0]
        .samples
        .iter()
        .map(|s| u64::from(s.duration.unwrap()))
        .sum();
    (base, total)
}

#[tokio::test]
async fn a_publish_within_the_grace_continues_the_same_session() {
    let f = fixture_with_grace(Duration::from_secs(3600));
    let changes = f.live.subscribe();
    let push = recorded_push();

    let first = f.broadcaster.publish(&request("live", KEY)).await.unwrap();
    let session = first.session.clone();
    for m in &push {
        first.media.send(vec![m.clone()]).await.unwrap();
    }
    drop(first);
    let waiting = until_reconnecting(&f.live).await;
    assert_eq!(waiting.session, session);
    assert_eq!(waiting.segments, 3);
    // While it waits: every segment listed, nothing ended.
    let live = text(&f.storage, "hls/demo/live.m3u8").await;
    assert_eq!(media_segments(&live), 3, "{live}");
    assert!(!live.contains("#EXT-X-ENDLIST"), "{live}");
    let index = format!("hls/demo/{session}/index.m3u8");
    let event = text(&f.storage, &index).await;
    assert!(event.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{event}");
    assert!(!event.contains("#EXT-X-ENDLIST"), "{event}");

    // The publisher comes back (its encoder starts its timestamps from 0 again).
    let second = f.broadcaster.publish(&request("live", KEY)).await.unwrap();
    assert_eq!(second.session, session);
    for m in &push {
        second.media.send(vec![m.clone()]).await.unwrap();
    }
    drop(second);
    let waiting = until_reconnecting(&f.live).await;
    assert_eq!(waiting.reconnects, 1);
    assert_eq!(waiting.segments, 6);
    let event = text(&f.storage, &index).await;
    assert_eq!(media_segments(&event), 6, "{event}");
    assert!(
        event.contains("000003.m4s\n")
            && event.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-2.mp4\"\n"),
        "{event}"
    );
    let live = text(&f.storage, "hls/demo/live.m3u8").await;
    assert!(live.contains(&format!("{session}/000006.m4s")), "{live}");
    assert!(!live.contains("#EXT-X-ENDLIST"), "{live}");

    // Part 2 goes on the media timeline after part 1 plus the time nobody published, and the
    // playlist timeline (gap entries for that time) puts it at the same place.
    let seg = |n: u64| format!("hls/demo/{session}/{n:06}.m4s");
    let (base3, duration3) = video_timing(&f.storage, &seg(3)).await;
    let (base4, _) = video_timing(&f.storage, &seg(4)).await;
    assert!(
        base4 >= base3 + duration3,
        "part 2 at {base4}, part 1 ends at {}",
        base3 + duration3
    );
    let parsed = hls_m3u8::MediaPlaylist::try_from(event.as_str()).unwrap();
    let before_part2: f64 = parsed
        .segments
        .values()
        .take_while(|s| !s.uri().ends_with("000004.m4s"))
        .map(|s| s.duration.duration().as_secs_f64())
        .sum();
    let (base1, _) = video_timing(&f.storage, &seg(1)).await;
    let on_playlist_ms = (base1 as f64 / 90.0 + before_part2 * 1000.0).round();
    let on_media_ms = (base4 as f64 / 90.0).round();
    assert!(
        (on_playlist_ms - on_media_ms).abs() <= 2.0,
        "part 2 at {on_playlist_ms} ms on the playlist, {on_media_ms} ms in its media:\n{event}"
    );
    assert!(f
        .storage
        .get_bytes(&format!("hls/demo/{session}/init-2.mp4"))
        .await
        .unwrap()
        .is_some());

    // Shutdown ends the wait: one session, one VOD with both parts.
    f.broadcaster.wait_idle().await;
    let vod_key = ended(&f.live, changes, &session).await.unwrap();
    assert_eq!(vod_key, index);
    let vod = text(&f.storage, &vod_key).await;
    assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
    assert_eq!(media_segments(&vod), 6, "{vod}");
    assert_eq!(vod.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{vod}");
    assert_eq!(vod.matches("#EXT-X-MAP").count(), 2, "{vod}");
    let parsed = hls_m3u8::MediaPlaylist::try_from(vod.as_str()).unwrap();
    let media: f64 = parsed
        .segments
        .values()
        .filter(|s| !s.uri().ends_with("gap.m4s"))
        .map(|s| s.duration.duration().as_secs_f64())
        .sum();
    assert!((media - 12.0).abs() < 0.2, "VOD media of {media} s");
}

#[tokio::test]
async fn without_a_publisher_the_broadcast_ends_after_the_grace() {
    let f = fixture_with_grace(Duration::from_millis(300));
    let changes = f.live.subscribe();
    let publication = f.broadcaster.publish(&request("live", KEY)).await.unwrap();
    let session = publication.session.clone();
    for m in recorded_push() {
        publication.media.send(vec![m]).await.unwrap();
    }
    drop(publication);
    let vod_key = ended(&f.live, changes, &session).await.unwrap();
    let vod = text(&f.storage, &vod_key).await;
    assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
    assert_eq!(media_segments(&vod), 3, "{vod}");
    assert!(!vod.contains("GAP"), "{vod}");
    assert!(!vod.contains("DISCONTINUITY"), "{vod}");
    let live = text(&f.storage, "hls/demo/live.m3u8").await;
    assert!(live.contains("#EXT-X-ENDLIST"), "{live}");
    // The next publish is a new broadcast.
    let next = f.broadcaster.publish(&request("live", KEY)).await.unwrap();
    assert_ne!(next.session, session);
}

#[tokio::test]
async fn another_room_never_continues_a_waiting_session() {
    let f = fixture_with_grace(Duration::from_secs(3600));
    let publication = f.broadcaster.publish(&request("live", KEY)).await.unwrap();
    let session = publication.session.clone();
    drop(publication);
    until_reconnecting(&f.live).await;
    let other = f
        .broadcaster
        .publish(&request("live", OTHER_KEY))
        .await
        .unwrap();
    assert_eq!(other.room, "other");
    assert_ne!(other.session, session);
    assert!(matches!(
        f.broadcaster.publish(&request("live", "live_nope")).await,
        Err(PublishRefusal::UnknownKey)
    ));
    drop(other);
    f.broadcaster.wait_idle().await;
}
