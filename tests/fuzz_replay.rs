//! The CI-sized fuzz run: every committed seed (`fuzz/corpus/<target>/`) and every regression
//! input (`fuzz/regressions/<target>/`, one file per crash the fuzzer found) goes through the
//! same harness the fuzz target calls (`barrage::fuzzing`), in a plain `cargo test`, with no
//! fuzzer build. A harness panics on a finding, so a regression that comes back fails here
//! with the file's name.
//!
//! The seeds are built from real traffic under tests/data (the captured ffmpeg publish, the
//! hostile payloads, the 6 s ffmpeg FLV) plus a few hand-made sessions; this test also checks
//! the committed copies match. Regenerate them with
//! `BARRAGE_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_replay`.

mod rtmp_bytes;
use rtmp_bytes::{amf_number, amf_string, chunked, command, connect_body};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use barrage::chat::codec::{decode_client_text, encode_client, Encoded, Format};
use barrage::fuzzing::{
    encode_media_record, plain_handshake, split_messages, MediaRecordKind, API_BODY_ROUTES,
    REFUSED_KEY, TARGETS,
};
use barrage::media::flv::AvcConfig;
use barrage::media::flv_file::{read_flv, FlvTagKind};
use bytes::Bytes;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn test_data(name: &str) -> Vec<u8> {
    let path = root().join("tests/data").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Files of a folder, sorted by name (none if it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != "README.md"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_regression_input_passes_its_harness() {
    let mut runs = 0;
    for (target, harness) in TARGETS {
        let seeds = files(&root().join("fuzz/corpus").join(target));
        assert!(!seeds.is_empty(), "no seeds for fuzz target {target}");
        let regressions = files(&root().join("fuzz/regressions").join(target));
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap();
            let outcome = std::panic::catch_unwind(|| harness(&data));
            assert!(
                outcome.is_ok(),
                "fuzz target {target} fails on {}",
                path.display()
            );
            runs += 1;
        }
        eprintln!(
            "{target}: {} seeds, {} regression inputs",
            seeds.len(),
            regressions.len()
        );
    }
    // Every folder belongs to a target (a renamed target must move its inputs).
    for kind in ["fuzz/corpus", "fuzz/regressions"] {
        for entry in std::fs::read_dir(root().join(kind)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name != "README.md" {
                assert!(
                    TARGETS.iter().any(|(t, _)| *t == name),
                    "{kind}/{name} is not a fuzz target"
                );
            }
        }
    }
    assert!(runs > 20, "only {runs} inputs replayed");
}

#[test]
fn committed_seeds_match_what_they_are_built_from() {
    let write = std::env::var_os("BARRAGE_WRITE_FUZZ_SEEDS").is_some();
    for (target, seeds) in seed_corpus() {
        let dir = root().join("fuzz/corpus").join(target);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
        }
        for (name, bytes) in seeds {
            let path = dir.join(&name);
            if write {
                std::fs::write(&path, &bytes).unwrap();
                continue;
            }
            let saved = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (regenerate: BARRAGE_WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_replay)",
                    path.display()
                )
            });
            assert!(saved == bytes, "{} differs from its source", path.display());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds.

type Seeds = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

fn seed_corpus() -> Seeds {
    let mut seeds = Seeds::new();
    seeds.insert("rtmp_session", rtmp_seeds());
    seeds.insert("amf0_message", amf0_seeds());
    seeds.insert("media_tags", media_seeds());
    seeds.insert("chat_frame", chat_seeds());
    seeds.insert("api_body", api_seeds());
    seeds
}

const HOSTILE: [&str; 9] = [
    "hostile_amf0_huge_count.bin",
    "hostile_amf0_nested_20000.bin",
    "hostile_interleaved_chunk_streams.bin",
    "hostile_play_without_name.bin",
    "hostile_set_chunk_size_0.bin",
    "hostile_set_chunk_size_2_31.bin",
    "hostile_message_length_2_24.bin",
    "hostile_too_many_chunk_streams.bin",
    "hostile_random_bytes.bin",
];

fn after_handshake(bytes: &[u8]) -> Vec<u8> {
    let mut v = plain_handshake();
    v.extend_from_slice(bytes);
    v
}

fn rtmp_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("handshake_only.bin".into(), plain_handshake()),
        (
            "ffmpeg5_publish.bin".into(),
            after_handshake(&test_data("ffmpeg5_publish_first_32k.bin")),
        ),
    ];
    for name in HOSTILE {
        let bytes = test_data(name);
        // The noise is sent instead of a handshake; the others after one.
        let session = if name == "hostile_random_bytes.bin" {
            bytes
        } else {
            after_handshake(&bytes)
        };
        out.push((name.to_string(), session));
    }
    // A refused key, and a publish with control messages, a ping and a second publish.
    let mut refused = chunked(3, 20, 0, &connect_body("live"), 128);
    refused.extend(chunked(3, 20, 0, &command("createStream", 2.0, &[]), 128));
    refused.extend(chunked(
        8,
        20,
        1,
        &command("publish", 3.0, &[REFUSED_KEY]),
        128,
    ));
    out.push(("publish_refused.bin".into(), after_handshake(&refused)));
    let mut control = chunked(2, 1, 0, &4096u32.to_be_bytes(), 128);
    control.extend(chunked(2, 5, 0, &4096u32.to_be_bytes(), 4096));
    control.extend(chunked(2, 4, 0, &[0, 6, 0, 0, 0, 9], 4096));
    control.extend(chunked(3, 20, 0, &connect_body("live"), 4096));
    control.extend(chunked(8, 20, 1, &command("publish", 4.0, &["key"]), 4096));
    control.extend(chunked(4, 9, 1, &[0x17, 2, 0, 0, 0], 4096));
    control.extend(chunked(8, 20, 1, &command("publish", 5.0, &["key"]), 4096));
    out.push((
        "control_and_publish_twice.bin".into(),
        after_handshake(&control),
    ));
    // A well-formed `connect` whose command object nests 10,000 objects, closed (60 KiB, under
    // the AMF size limit): only the depth limit stands between it and the crate's recursion.
    out.push((
        "connect_nested_10000_closed.bin".into(),
        after_handshake(&chunked(3, 20, 0, &nested_connect(10_000), 128)),
    ));
    out
}

/// `connect`, transaction 1, then `depth` nested objects (each the value of key ""), closed.
fn nested_connect(depth: usize) -> Vec<u8> {
    let mut body = amf_string("connect");
    body.extend(amf_number(1.0));
    body.push(0x03);
    for _ in 1..depth {
        body.extend([0, 0, 0x03]);
    }
    for _ in 0..depth {
        body.extend([0, 0, 9]);
    }
    body
}

fn amf0_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut sources = vec![(
        "ffmpeg5".to_string(),
        test_data("ffmpeg5_publish_first_32k.bin"),
    )];
    for name in [
        "hostile_amf0_huge_count.bin",
        "hostile_amf0_nested_20000.bin",
    ] {
        sources.push((name.trim_end_matches(".bin").to_string(), test_data(name)));
    }
    for (source, bytes) in sources {
        for (i, (type_id, payload)) in split_messages(&bytes).into_iter().enumerate() {
            if type_id == 8 || type_id == 9 {
                continue; // media: the other targets
            }
            let mut seed = vec![type_id];
            seed.extend(payload);
            out.push((format!("{source}_{i:02}_type{type_id}.bin"), seed));
        }
    }
    // Deep but well-formed: refused by the depth limit alone.
    let mut nested = vec![20u8];
    nested.extend(nested_connect(10_000));
    out.push(("nested_objects_10000_closed.bin".into(), nested));
    // An AMF3 command (format byte, then AMF0), and a ping request.
    let mut amf3 = vec![17u8, 0];
    amf3.extend(command("createStream", 2.0, &[]));
    out.push(("amf3_command.bin".into(), amf3));
    out.push(("ping_request.bin".into(), vec![4, 0, 6, 0, 0, 1, 0]));
    out
}

fn media_seeds() -> Vec<(String, Vec<u8>)> {
    let file = Bytes::from(test_data("ffmpeg_push_6s.flv"));
    let tags = read_flv(&file).expect("the 6 s FLV reads");
    let record = |tag: &barrage::media::flv_file::FlvFileTag, timestamp: u32, out: &mut Vec<u8>| {
        let kind = match tag.kind {
            FlvTagKind::Video => MediaRecordKind::Video,
            FlvTagKind::Audio => MediaRecordKind::Audio,
            _ => return,
        };
        encode_media_record(kind, timestamp, &tag.body, out);
    };
    let mut out = Vec::new();

    // Up to the second keyframe (2 s) and a little past it: one segment is cut.
    let mut first = Vec::new();
    for tag in tags.iter().filter(|t| t.timestamp <= 2100) {
        record(tag, tag.timestamp, &mut first);
    }
    out.push(("ffmpeg_first_2100ms.bin".into(), first));

    // Sequence headers and the first few frames.
    let mut start = Vec::new();
    for tag in tags.iter().take(12) {
        record(tag, tag.timestamp, &mut start);
    }
    out.push(("ffmpeg_first_12_tags.bin".into(), start.clone()));

    // The same, with timestamps just below 2^32 so the clock wraps.
    let mut wrap = Vec::new();
    for tag in tags.iter().filter(|t| t.timestamp <= 600) {
        record(tag, tag.timestamp.wrapping_add(u32::MAX - 300), &mut wrap);
    }
    out.push(("ffmpeg_timestamps_wrap.bin".into(), wrap));

    // Audio only (the stream decides it has no video after 1 s).
    let mut audio = Vec::new();
    for tag in tags
        .iter()
        .filter(|t| t.kind == FlvTagKind::Audio && t.timestamp <= 1500)
    {
        record(tag, tag.timestamp, &mut audio);
    }
    out.push(("ffmpeg_audio_only_1500ms.bin".into(), audio));

    // The codec configs on their own: the SPS and the AudioSpecificConfig.
    let mut configs = Vec::new();
    for tag in &tags {
        match (tag.kind, tag.body.get(..2)) {
            (FlvTagKind::Video, Some([0x17, 0])) => {
                let config = AvcConfig::parse(tag.body.slice(5..)).expect("ffmpeg's avcC");
                for sps in &config.avcc.sequence_parameter_sets {
                    encode_media_record(MediaRecordKind::Sps, 0, sps, &mut configs);
                }
            }
            (FlvTagKind::Audio, Some([_, 0])) => {
                encode_media_record(
                    MediaRecordKind::AudioConfig,
                    0,
                    &tag.body[2..],
                    &mut configs,
                );
            }
            _ => {}
        }
    }
    out.push(("ffmpeg_codec_configs.bin".into(), configs));
    out
}

/// The client frames of the wire protocol (docs/DESIGN.md), each as a JSON text frame (first
/// byte 0) and as the protobuf binary frame the same client would send (first byte 1).
fn chat_seeds() -> Vec<(String, Vec<u8>)> {
    let frames = [
        ("hello", r#"{"type":"hello"}"#),
        ("hello_resume", r#"{"type":"hello","resume_from":105}"#),
        (
            "send",
            r#"{"type":"send","client_id":7,"text":"666","color":16777215,"mode":"scroll"}"#,
        ),
        (
            "send_top_with_position",
            r#"{"type":"send","client_id":8,"text":"前方高能","color":16711680,"mode":"top","stream_ms":53210}"#,
        ),
        (
            "send_defaults",
            r#"{"type":"send","client_id":9,"text":"hi"}"#,
        ),
        ("heartbeat", r#"{"type":"heartbeat"}"#),
        (
            "auth",
            r#"{"type":"auth","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2ln"}"#,
        ),
        ("delete", r#"{"type":"delete","request_id":5,"seq":1201}"#),
        (
            "mute",
            r#"{"type":"mute","request_id":6,"user":"u1","seconds":600}"#,
        ),
        (
            "mute_no_expiry",
            r#"{"type":"mute","request_id":7,"user":"u2"}"#,
        ),
    ];
    let mut out = Vec::new();
    for (name, json) in frames {
        let mut text = vec![0u8];
        text.extend_from_slice(json.as_bytes());
        out.push((format!("{name}.json.bin"), text));
        let frame = decode_client_text(json).expect("a protocol frame");
        let Encoded::Binary(proto) = encode_client(&frame, Format::Proto) else {
            panic!("protobuf frames are binary")
        };
        let mut binary = vec![1u8];
        binary.extend_from_slice(&proto);
        out.push((format!("{name}.proto.bin"), binary));
    }
    out
}

/// Real bodies of every API route that takes one (README examples), first byte = route index.
fn api_seeds() -> Vec<(String, Vec<u8>)> {
    let bodies: &[(&str, &str)] = &[
        ("create_room", r#"{"id":"concert","title":"Concert"}"#),
        ("create_room", r#"{"title":"No id given"}"#),
        (
            "gift",
            r#"{"user":"u2","name":"Bo","gift_id":"rocket","gift_name":"Rocket","count":1,"value":500}"#,
        ),
        ("gift", r#"{"user":"u3","gift_id":"heart","value":1}"#),
        ("system", r#"{"text":"Welcome!"}"#),
        ("mute", r#"{"seconds":600}"#),
        ("mute", ""),
        ("blocked_words", r#"{"words":["spam","Bad Word"]}"#),
        ("slow_mode", r#"{"seconds":5}"#),
        ("guest_token", r#"{"name":"Ann"}"#),
        ("guest_token", ""),
        ("room_settings", r#"{"host_gifts":true}"#),
    ];
    let mut out = Vec::new();
    for (i, (route, body)) in bodies.iter().enumerate() {
        let index = API_BODY_ROUTES
            .iter()
            .position(|r| r == route)
            .expect("a route of the harness");
        let mut seed = vec![index as u8];
        seed.extend_from_slice(body.as_bytes());
        out.push((format!("{route}_{i:02}.bin"), seed));
    }
    out
}
