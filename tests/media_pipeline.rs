//! The HLS pipeline end to end with real peers: a recorded ffmpeg push goes through the
//! `Broadcaster` exactly as RTMP ingest would hand it over, into a temp-dir store; then the
//! playlists are re-parsed and ffprobe/ffmpeg read and decode the stored media.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hls_m3u8::types::PlaylistType;
use hls_m3u8::MediaPlaylist;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use barrage::broadcast::Broadcaster;
use barrage::config::HlsConfig;
use barrage::ingest::{MediaMessage, PublishRequest, StreamMetadata};
use barrage::media::flv_file::read_flv;
use barrage::rooms::{hash_key, RoomDirectory, RoomRecord};
use barrage::rooms::{LiveChange, LiveRegistry};
use barrage::storage::Storage;

const KEY: &str = "live_pipeline_test";

/// One Prometheus recorder for this test binary, to read the playlist delay histogram.
fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("no other recorder in this test binary");
        handle
    })
}

/// Runs a real peer tool; a missing tool fails the test with how to install it.
fn run_tool(tool: &str, args: &[&str]) -> std::process::Output {
    match Command::new(tool).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{tool}` is not installed; this test needs it: apt-get install ffmpeg")
        }
        Err(e) => panic!("cannot run {tool}: {e}"),
    }
}

fn ffmpeg_push() -> Vec<MediaMessage> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ffmpeg_push_6s.flv");
    let file = Bytes::from(std::fs::read(path).expect("test data present"));
    read_flv(&file)
        .expect("valid FLV")
        .iter()
        .filter_map(|t| t.to_media_message())
        .collect()
}

fn parse(text: &str) -> MediaPlaylist<'static> {
    MediaPlaylist::try_from(text)
        .unwrap_or_else(|e| panic!("playlist does not parse: {e}\n{text}"))
        .into_owned()
}

async fn object(storage: &Storage, key: &str) -> Bytes {
    storage
        .get_bytes(key)
        .await
        .expect("store readable")
        .unwrap_or_else(|| panic!("missing object {key}"))
}

async fn text(storage: &Storage, key: &str) -> String {
    String::from_utf8(object(storage, key).await.to_vec()).expect("utf-8 playlist")
}

/// A quantile of a Prometheus summary line, e.g. `name{quantile="0.99"} 0.0021`.
fn quantile(rendered: &str, name: &str, q: &str) -> Option<f64> {
    let prefix = format!("{name}{{quantile=\"{q}\"}} ");
    rendered
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_push_becomes_playable_hls() {
    let metrics = metrics();
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
    let live = Arc::new(LiveRegistry::new());
    let hls = HlsConfig {
        target_segment_s: 2.0,
        window_segments: 6,
        max_segment_bytes: 64 << 20,
        max_segment_wall_s: 60,
        part_ms: 300,
    };
    let broadcaster = Broadcaster::new(
        rooms,
        live.clone(),
        storage.clone(),
        hls,
        "live".into(),
        std::time::Duration::ZERO,
    );
    let mut changes = live.subscribe();

    let publication = broadcaster
        .publish(&PublishRequest {
            app: "live".into(),
            stream_key: KEY.into(),
            peer: "127.0.0.1:50000".parse().unwrap(),
        })
        .await
        .expect("publish accepted");
    let session = publication.session.clone();
    publication
        .media
        .send(vec![MediaMessage::Metadata(StreamMetadata {
            width: Some(320),
            height: Some(180),
            framerate: Some(30.0),
            video_kbps: Some(300.0),
            audio_kbps: Some(64.0),
            encoder: Some("Lavf59.27.100".into()),
            ..StreamMetadata::default()
        })])
        .await
        .unwrap();
    for message in ffmpeg_push() {
        publication.media.send(vec![message]).await.unwrap();
    }

    // While live: two segments are cut (at the keyframes at 2 s and 4 s), the registry knows
    // the stream, and live.m3u8 is an open sliding window.
    let info = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match live.get("demo") {
                Some(info) if info.segments >= 2 => return info,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("two segments while live");
    assert_eq!(info.session, session);
    assert_eq!((info.width, info.height), (Some(320), Some(180)));
    assert_eq!(info.video_codec.as_deref(), Some("avc1.64000d"));
    assert_eq!(info.audio_codec.as_deref(), Some("mp4a.40.2"));
    assert_eq!(info.announced_kbps, Some(364.0));
    assert!(info.first_frame_at.is_some() && info.first_frame_ms.is_some());
    let live_text = text(&storage, "hls/demo/live.m3u8").await;
    let live_playlist = parse(&live_text);
    assert!(!live_playlist.has_end_list, "{live_text}");
    assert_eq!(live_playlist.playlist_type, None);
    assert_eq!(live_playlist.media_sequence, 1);
    assert!(live_text.contains(&format!("#EXT-X-MAP:URI=\"{session}/init.mp4\"")));
    assert!(live_text.contains(&format!("\n{session}/000001.m4s\n")));
    let event = parse(&text(&storage, &format!("hls/demo/{session}/index.m3u8")).await);
    assert_eq!(event.playlist_type, Some(PlaylistType::Event));
    assert!(!event.has_end_list);

    // End of stream: the sender is dropped, the last segment is flushed, playlists finalised.
    drop(publication);
    let vod_key = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(LiveChange::Ended { info, vod_key, .. }) = changes.recv().await {
                if info.session == session {
                    return vod_key;
                }
            }
        }
    })
    .await
    .expect("session ended");
    let vod_key = vod_key.expect("a VOD playlist");
    assert_eq!(vod_key, format!("hls/demo/{session}/index.m3u8"));
    assert!(live.get("demo").is_none());

    let vod_text = text(&storage, &vod_key).await;
    let vod = parse(&vod_text);
    assert!(vod.has_end_list, "{vod_text}");
    assert_eq!(vod.playlist_type, Some(PlaylistType::Vod));
    assert_eq!(vod.media_sequence, 1);
    let durations: Vec<f64> = vod
        .segments
        .values()
        .map(|s| s.duration.duration().as_secs_f64())
        .collect();
    assert_eq!(durations.len(), 3, "{vod_text}");
    for d in &durations[..durations.len() - 1] {
        assert!((d - 2.0).abs() < 0.1, "segment of {d} s:\n{vod_text}");
    }
    let longest = durations.iter().map(|d| d.round() as u64).max().unwrap();
    assert_eq!(vod.target_duration, Duration::from_secs(longest.max(2)));
    let uris: Vec<String> = vod.segments.values().map(|s| s.uri().to_string()).collect();
    assert_eq!(uris, vec!["000001.m4s", "000002.m4s", "000003.m4s"]);
    assert_eq!(vod_text.matches("#EXT-X-MAP:URI=\"init.mp4\"").count(), 1);
    assert_eq!(vod_text.matches("#EXT-X-PROGRAM-DATE-TIME").count(), 3);

    let ended_live_text = text(&storage, "hls/demo/live.m3u8").await;
    assert!(parse(&ended_live_text).has_end_list, "{ended_live_text}");

    // init + segments, concatenated, is a valid fragmented MP4 of the whole push.
    let mut concat = object(&storage, &format!("hls/demo/{session}/init.mp4"))
        .await
        .to_vec();
    for uri in &uris {
        concat.extend_from_slice(&object(&storage, &format!("hls/demo/{session}/{uri}")).await);
    }
    let mp4 = dir.path().join("concat.mp4");
    std::fs::write(&mp4, &concat).unwrap();
    let mp4 = mp4.to_str().unwrap();
    let probe = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            mp4,
        ],
    );
    let stderr = String::from_utf8_lossy(&probe.stderr);
    assert!(
        probe.status.success() && stderr.trim().is_empty(),
        "ffprobe: {stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let streams = json["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{json}");
    let video = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(320), Some(180))
    );
    let audio = streams.iter().find(|s| s["codec_type"] == "audio").unwrap();
    assert_eq!(audio["codec_name"], "aac");
    assert_eq!(audio["sample_rate"], "48000");
    let duration: f64 = json["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 6.0).abs() < 0.5, "duration {duration}");

    let decode = run_tool("ffmpeg", &["-v", "error", "-i", mp4, "-f", "null", "-"]);
    let stderr = String::from_utf8_lossy(&decode.stderr);
    assert!(
        decode.status.success() && stderr.trim().is_empty(),
        "ffmpeg decode: {stderr}"
    );

    // Decoding our fMP4 gives exactly the pictures and sound of decoding the original FLV.
    let flv = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ffmpeg_push_6s.flv");
    for stream in ["0:v", "0:a"] {
        let md5 = |input: &str| {
            let out = run_tool(
                "ffmpeg",
                &["-v", "error", "-i", input, "-map", stream, "-f", "md5", "-"],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert_eq!(
            md5(mp4),
            md5(flv),
            "decoded {stream} differs from the source"
        );
    }

    // The VOD playlist itself plays in ffmpeg's HLS demuxer, and so does the ended live one.
    for playlist in [vod_key.as_str(), "hls/demo/live.m3u8"] {
        let path = dir.path().join(playlist);
        let path = path.to_str().unwrap();
        let out = run_tool("ffmpeg", &["-v", "error", "-i", path, "-f", "null", "-"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{playlist}: {stderr}"
        );
    }

    // Keyframe -> live playlist delay on the local store (a benchmark goal, printed, not asserted).
    let rendered = metrics.render();
    let name = "barrage_hls_playlist_delay_seconds";
    if let (Some(p50), Some(max)) = (
        quantile(&rendered, name, "0.5"),
        quantile(&rendered, name, "1"),
    ) {
        eprintln!(
            "keyframe -> live playlist delay on the local store: p50 {:.2} ms, max {:.2} ms",
            p50 * 1000.0,
            max * 1000.0
        );
    }
    assert!(
        rendered.contains("barrage_hls_segments_total"),
        "{rendered}"
    );
    assert!(Path::new(dir.path()).join(&vod_key).exists());
    broadcaster.wait_idle().await;
}
