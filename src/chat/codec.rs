//! Bytes to typed frames and back, for both wire formats. Client frames are decoded with
//! validation into [`ClientFrame`]; server frames are encoded from [`ServerFrame`]; a tick's
//! batch is encoded once per format ([`encode_batch`]) and then shared by every socket.
//!
//! The client-side half (encode client frames, decode server frames) serves tests and the
//! load generator.

use bytes::Bytes;
use prost::Message as _;

use super::pb;
use super::protocol::{batch_to_pb, BatchRef, ClientFrame, ConvertError, Event, ServerFrame};

/// The format a socket reads and writes (`?format=`): JSON text frames or protobuf binary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Format {
    #[default]
    Json,
    Proto,
}

impl Format {
    /// The name used in URLs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Proto => "proto",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "json" => Ok(Format::Json),
            "proto" | "protobuf" => Ok(Format::Proto),
            other => Err(format!("unknown format `{other}` (json or proto)")),
        }
    }
}

/// One encoded WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    /// A JSON text frame.
    Text(String),
    /// A protobuf binary frame.
    Binary(Bytes),
}

/// Why bytes from a peer are not a frame.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("text frame is not a JSON frame: {0}")]
    Json(#[from] serde_json::Error),
    #[error("binary frame is not a protobuf frame: {0}")]
    Proto(#[from] prost::DecodeError),
    #[error("protobuf frame does not fit the protocol: {0}")]
    Convert(#[from] ConvertError),
}

/// A client's JSON text frame.
pub fn decode_client_text(text: &str) -> Result<ClientFrame, DecodeError> {
    Ok(serde_json::from_str(text)?)
}

/// A client's protobuf binary frame.
pub fn decode_client_binary(bytes: &[u8]) -> Result<ClientFrame, DecodeError> {
    Ok(ClientFrame::try_from(pb::ClientFrame::decode(bytes)?)?)
}

/// Encodes a server frame for one socket.
pub fn encode_server(frame: &ServerFrame, format: Format) -> Encoded {
    match format {
        Format::Json => Encoded::Text(to_json(frame)),
        Format::Proto => Encoded::Binary(pb::ServerFrame::from(frame).encode_to_vec().into()),
    }
}

/// A batch frame in both formats, encoded once for every socket of the room.
#[derive(Debug, Clone)]
pub struct EncodedBatch {
    /// `{"type":"batch","events":[...]}`.
    pub json: String,
    /// `ServerFrame{batch}` in protobuf.
    pub proto: Bytes,
}

/// Encodes a batch frame once per format.
pub fn encode_batch(events: &[Event]) -> EncodedBatch {
    let frame = pb::ServerFrame {
        frame: Some(pb::server_frame::Frame::Batch(batch_to_pb(events))),
    };
    EncodedBatch {
        json: to_json(&BatchRef { events }),
        proto: frame.encode_to_vec().into(),
    }
}

/// A client frame, for test clients and the load generator.
pub fn encode_client(frame: &ClientFrame, format: Format) -> Encoded {
    match format {
        Format::Json => Encoded::Text(to_json(frame)),
        Format::Proto => Encoded::Binary(pb::ClientFrame::from(frame).encode_to_vec().into()),
    }
}

/// A server's JSON text frame, for test clients and the load generator.
pub fn decode_server_text(text: &str) -> Result<ServerFrame, DecodeError> {
    Ok(serde_json::from_str(text)?)
}

/// A server's protobuf binary frame, for test clients and the load generator.
pub fn decode_server_binary(bytes: &[u8]) -> Result<ServerFrame, DecodeError> {
    Ok(ServerFrame::try_from(pb::ServerFrame::decode(bytes)?)?)
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Our frames are structs, strings and numbers with string keys: serialising cannot fail.
    serde_json::to_string(value).expect("protocol types always serialise to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::protocol::*;
    use proptest::prelude::*;

    fn sample_events() -> Vec<Event> {
        vec![
            Event {
                seq: 1201,
                ts_ms: 1_764_000_000_000,
                stream_ms: 53_210,
                priority: Priority::Danmaku,
                body: Body::Danmaku(Danmaku {
                    user: "u1".into(),
                    name: "Ann".into(),
                    text: "666".into(),
                    color: 16_777_215,
                    mode: Mode::Scroll,
                }),
            },
            Event {
                seq: 1202,
                ts_ms: 1_764_000_000_001,
                stream_ms: 53_211,
                priority: Priority::System,
                body: Body::System(SystemMessage {
                    text: "Welcome!".into(),
                }),
            },
            Event {
                seq: 1203,
                ts_ms: 1_764_000_000_002,
                stream_ms: 53_212,
                priority: Priority::GiftHigh,
                body: Body::Gift(Gift {
                    user: "u2".into(),
                    name: "Bo".into(),
                    gift_id: "rocket".into(),
                    gift_name: "Rocket".into(),
                    count: 1,
                    value: 500,
                }),
            },
            Event {
                seq: 1204,
                ts_ms: 1_764_000_000_003,
                stream_ms: 53_213,
                priority: Priority::System,
                body: Body::Moderation(Moderation { delete_seq: 1201 }),
            },
        ]
    }

    #[test]
    fn client_json_matches_the_design_shapes() {
        assert_eq!(
            decode_client_text(r#"{"type":"hello","resume_from":1200}"#).unwrap(),
            ClientFrame::Hello {
                resume_from: Some(1200)
            }
        );
        assert_eq!(
            decode_client_text(r#"{"type":"hello"}"#).unwrap(),
            ClientFrame::Hello { resume_from: None }
        );
        assert_eq!(
            decode_client_text(
                r#"{"type":"send","client_id":7,"text":"666","color":16777215,"mode":"scroll"}"#
            )
            .unwrap(),
            ClientFrame::Send(SendDanmaku {
                client_id: 7,
                text: "666".into(),
                color: WHITE,
                mode: Mode::Scroll,
                stream_ms: None,
            })
        );
        assert_eq!(
            decode_client_text(r#"{"type":"heartbeat"}"#).unwrap(),
            ClientFrame::Heartbeat
        );
        for bad in [
            "",
            "{}",
            "[]",
            r#"{"type":"nope"}"#,
            r#"{"type":"send","client_id":-1,"text":"x"}"#,
            r#"{"type":"send","client_id":1,"text":"x","mode":"sideways"}"#,
            r#"{"type":"hello","resume_from":"x"}"#,
        ] {
            assert!(decode_client_text(bad).is_err(), "{bad} decoded");
        }
    }

    /// The access frames as docs/PROTOCOL.md shows them.
    #[test]
    fn access_frames_match_the_protocol_doc() {
        assert_eq!(
            decode_client_text(r#"{"type":"auth","token":"eyJ.x.y"}"#).unwrap(),
            ClientFrame::Auth {
                token: "eyJ.x.y".into()
            }
        );
        assert_eq!(
            decode_client_text(r#"{"type":"delete","request_id":5,"seq":1201}"#).unwrap(),
            ClientFrame::Delete(DeleteRequest {
                request_id: 5,
                seq: 1201
            })
        );
        assert_eq!(
            decode_client_text(r#"{"type":"mute","request_id":6,"user":"u1","seconds":600}"#)
                .unwrap(),
            ClientFrame::Mute(MuteRequest {
                request_id: 6,
                user: "u1".into(),
                seconds: Some(600)
            })
        );
        assert!(decode_client_text(r#"{"type":"mute","request_id":6}"#).is_err());
        let json = |f: &ServerFrame| match encode_server(f, Format::Json) {
            Encoded::Text(t) => serde_json::from_str::<serde_json::Value>(&t).unwrap(),
            Encoded::Binary(_) => unreachable!(),
        };
        let expired = ServerFrame::Auth(AuthState {
            status: AuthStatus::Expired,
            code: "token_expired".into(),
            message: "m".into(),
            user: "u1".into(),
            role: "viewer".into(),
            expires_at_s: 0,
            can_moderate: false,
        });
        assert_eq!(
            json(&expired),
            serde_json::json!({"type":"auth","status":"expired","code":"token_expired","message":"m",
                               "user":"u1","role":"viewer","can_moderate":false})
        );
        let ok = ServerFrame::Reply(Reply {
            request_id: 5,
            ok: true,
            code: String::new(),
            message: String::new(),
        });
        assert_eq!(
            json(&ok),
            serde_json::json!({"type":"reply","request_id":5,"ok":true})
        );
        let welcome = json(&ServerFrame::Welcome(sample_welcome()));
        assert_eq!(welcome["can_moderate"], true);
    }

    #[test]
    fn server_json_matches_the_design_shapes() {
        let batch = encode_batch(&sample_events());
        let value: serde_json::Value = serde_json::from_str(&batch.json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"type":"batch","events":[
                {"seq":1201,"ts_ms":1764000000000u64,"stream_ms":53210,"priority":"danmaku",
                 "danmaku":{"user":"u1","name":"Ann","text":"666","color":16777215,"mode":"scroll"}},
                {"seq":1202,"ts_ms":1764000000001u64,"stream_ms":53211,"priority":"system","system":{"text":"Welcome!"}},
                {"seq":1203,"ts_ms":1764000000002u64,"stream_ms":53212,"priority":"gift_high",
                 "gift":{"user":"u2","name":"Bo","gift_id":"rocket","gift_name":"Rocket","count":1,"value":500}},
                {"seq":1204,"ts_ms":1764000000003u64,"stream_ms":53213,"priority":"system","moderation":{"delete_seq":1201}}]})
        );
        let json = |f: &ServerFrame| match encode_server(f, Format::Json) {
            Encoded::Text(t) => serde_json::from_str::<serde_json::Value>(&t).unwrap(),
            Encoded::Binary(_) => unreachable!(),
        };
        assert_eq!(
            json(&ServerFrame::Ack(Ack {
                client_id: 7,
                status: AckStatus::Accepted,
                retry_after_ms: None
            })),
            serde_json::json!({"type":"ack","client_id":7,"status":"accepted"})
        );
        assert_eq!(
            json(&ServerFrame::Ack(Ack {
                client_id: 8,
                status: AckStatus::RateLimited,
                retry_after_ms: Some(900)
            })),
            serde_json::json!({"type":"ack","client_id":8,"status":"rate_limited","retry_after_ms":900})
        );
        assert_eq!(
            json(&ServerFrame::Heartbeat { online: 42 }),
            serde_json::json!({"type":"heartbeat","online":42})
        );
        assert_eq!(
            json(&ServerFrame::Gap {
                from_seq: 900,
                to_seq: 1100
            }),
            serde_json::json!({"type":"gap","from_seq":900,"to_seq":1100})
        );
        assert_eq!(
            json(&ServerFrame::Error {
                code: "bad_token".into(),
                message: "m".into()
            }),
            serde_json::json!({"type":"error","code":"bad_token","message":"m"})
        );
        let welcome = json(&ServerFrame::Welcome(sample_welcome()));
        assert_eq!(welcome["type"], "welcome");
        assert_eq!(welcome["room"], "demo");
        assert_eq!(welcome["seq"], 1200);
        assert_eq!(welcome["online"], 42);
        assert_eq!(welcome["max_text_chars"], 100, "limits are flattened");
        assert_eq!(welcome["hls_url"], "http://h/hls/demo/live.m3u8");
        assert_eq!(welcome["cdn_bases"][0]["url"], "http://h");
    }

    fn sample_welcome() -> Welcome {
        Welcome {
            room: "demo".into(),
            user: "u1".into(),
            seq: 1200,
            online: 42,
            limits: Limits {
                can_send: true,
                user_rate_per_s: 1.0,
                user_burst: 3,
                max_text_chars: 100,
                slow_mode_s: 0,
                max_frame_bytes: 4096,
                heartbeat_s: 30,
                idle_timeout_s: 70,
                muted: false,
                banned: false,
                can_moderate: true,
            },
            hls_url: "http://h/hls/demo/live.m3u8".into(),
            cdn_bases: vec![CdnBase {
                url: "http://h".into(),
                weight: 1,
            }],
        }
    }

    #[test]
    fn every_server_frame_round_trips_in_both_formats() {
        let frames = vec![
            ServerFrame::Welcome(sample_welcome()),
            ServerFrame::Batch {
                events: sample_events(),
            },
            ServerFrame::Ack(Ack {
                client_id: 3,
                status: AckStatus::SlowMode,
                retry_after_ms: Some(5),
            }),
            ServerFrame::Heartbeat { online: 1 },
            ServerFrame::Gap {
                from_seq: 1,
                to_seq: 2,
            },
            ServerFrame::Error {
                code: "c".into(),
                message: "m".into(),
            },
            ServerFrame::Auth(AuthState {
                status: AuthStatus::Ok,
                code: String::new(),
                message: String::new(),
                user: "u1".into(),
                role: "moderator".into(),
                expires_at_s: 1_764_003_600,
                can_moderate: true,
            }),
            ServerFrame::Auth(AuthState {
                status: AuthStatus::Refused,
                code: "wrong_room".into(),
                message: "m".into(),
                user: String::new(),
                role: String::new(),
                expires_at_s: 0,
                can_moderate: false,
            }),
            ServerFrame::Reply(Reply {
                request_id: 5,
                ok: false,
                code: "forbidden".into(),
                message: "m".into(),
            }),
        ];
        for f in frames {
            let text = match encode_server(&f, Format::Json) {
                Encoded::Text(t) => t,
                Encoded::Binary(_) => unreachable!(),
            };
            assert_eq!(decode_server_text(&text).unwrap(), f);
            let bin = match encode_server(&f, Format::Proto) {
                Encoded::Binary(b) => b,
                Encoded::Text(_) => unreachable!(),
            };
            assert_eq!(decode_server_binary(&bin).unwrap(), f);
        }
        let batch = encode_batch(&sample_events());
        assert_eq!(
            decode_server_binary(&batch.proto).unwrap(),
            ServerFrame::Batch {
                events: sample_events()
            }
        );
    }

    /// The protobuf bytes shown in docs/PROTOCOL.md.
    #[test]
    fn protobuf_examples_in_the_protocol_doc_are_exact() {
        let bytes = |f: &ClientFrame| match encode_client(f, Format::Proto) {
            Encoded::Binary(b) => b.to_vec(),
            Encoded::Text(_) => unreachable!(),
        };
        assert_eq!(
            bytes(&ClientFrame::Hello {
                resume_from: Some(1200)
            }),
            [0x0a, 0x03, 0x08, 0xb0, 0x09]
        );
        assert_eq!(bytes(&ClientFrame::Heartbeat), [0x1a, 0x00]);
        let send = ClientFrame::Send(SendDanmaku {
            client_id: 7,
            text: "666".into(),
            color: WHITE,
            mode: Mode::Scroll,
            stream_ms: None,
        });
        assert_eq!(
            bytes(&send),
            [0x12, 0x0c, 0x08, 0x07, 0x12, 0x03, 0x36, 0x36, 0x36, 0x18, 0xff, 0xff, 0xff, 0x07]
        );
        let ack = ServerFrame::Ack(Ack {
            client_id: 7,
            status: AckStatus::RateLimited,
            retry_after_ms: Some(900),
        });
        let Encoded::Binary(b) = encode_server(&ack, Format::Proto) else {
            unreachable!()
        };
        assert_eq!(
            b.to_vec(),
            [0x1a, 0x07, 0x08, 0x07, 0x10, 0x01, 0x18, 0x84, 0x07]
        );
    }

    #[test]
    fn garbage_binary_is_an_error_not_a_panic() {
        for bad in [
            &[0xff_u8, 0xff, 0xff][..],
            &[0x0a, 0x05, 0x01],
            &[],
            &[0x12, 0x02, 0x20, 0x09],
        ] {
            assert!(decode_client_binary(bad).is_err(), "{bad:?} decoded");
        }
    }

    fn arb_send() -> impl Strategy<Value = ClientFrame> {
        (
            any::<u64>(),
            ".{0,40}",
            0u32..=0xFF_FF_FF,
            prop_oneof![Just(Mode::Scroll), Just(Mode::Top), Just(Mode::Bottom)],
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(client_id, text, color, mode, stream_ms)| {
                ClientFrame::Send(SendDanmaku {
                    client_id,
                    text,
                    color,
                    mode,
                    stream_ms,
                })
            })
    }

    fn arb_client() -> impl Strategy<Value = ClientFrame> {
        prop_oneof![
            proptest::option::of(any::<u64>())
                .prop_map(|resume_from| ClientFrame::Hello { resume_from }),
            Just(ClientFrame::Heartbeat),
            arb_send(),
            ".{0,80}".prop_map(|token| ClientFrame::Auth { token }),
            (any::<u64>(), any::<u64>()).prop_map(|(request_id, seq)| ClientFrame::Delete(
                DeleteRequest { request_id, seq }
            )),
            (any::<u64>(), ".{0,20}", proptest::option::of(any::<u64>())).prop_map(
                |(request_id, user, seconds)| ClientFrame::Mute(MuteRequest {
                    request_id,
                    user,
                    seconds
                })
            ),
        ]
    }

    proptest! {
        #[test]
        fn client_frames_round_trip_in_both_formats(frame in arb_client()) {
            for format in [Format::Json, Format::Proto] {
                let decoded = match encode_client(&frame, format) {
                    Encoded::Text(t) => decode_client_text(&t).unwrap(),
                    Encoded::Binary(b) => decode_client_binary(&b).unwrap(),
                };
                prop_assert_eq!(&decoded, &frame);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_client_binary(&bytes);
            let _ = decode_client_text(&String::from_utf8_lossy(&bytes));
        }
    }
}
