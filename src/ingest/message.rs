//! One reassembled RTMP message -> an [`IncomingMessage`]. AMF bodies pass our size limit and
//! [`check_values`] before the crate's `MessageParser`/`Amf0Reader` read them; every crate call
//! runs under `catch_unwind`.

use bytes::{Bytes, BytesMut};
use bytesio::bytes_reader::BytesReader;
use rtmp::chunk::ChunkInfo;
use rtmp::messages::define::{msg_type_id, RtmpMessageData};
use rtmp::messages::parser::MessageParser;
use tracing::warn;
use xflv::amf0::amf0_reader::Amf0Reader;

use super::amf0_guard::{check_values, Amf0Violation};
use super::commands::Command;
use super::error::{catch_crate_panic, IngestError, ProtocolError};
use super::metadata;
use crate::media::StreamMetadata;

/// Largest command or data (AMF) message accepted. Real ones are under 1 KiB; the bound keeps
/// what the crate's reader allocates for a body small (a few MiB at worst).
pub const MAX_AMF_MESSAGE_BYTES: usize = 64 * 1024;

/// User control event type of a ping request (RTMP 7.1.7); we answer with a ping response.
const USER_CONTROL_PING_REQUEST: u16 = 6;

/// What a message means to the session.
#[derive(Debug)]
pub enum IncomingMessage {
    SetChunkSize(u32),
    /// The peer's acknowledgement window: it expects an Acknowledgement after this many bytes.
    WindowAckSize(u32),
    PingRequest(u32),
    Command(Command),
    Metadata(StreamMetadata),
    Video {
        timestamp: u32,
        body: Bytes,
    },
    Audio {
        timestamp: u32,
        body: Bytes,
    },
    /// Acknowledgements, aborts, peer bandwidth, other events and data, aggregates.
    Ignored {
        type_id: u8,
    },
}

/// Interprets one whole message from the reader.
pub fn parse_message(message: ChunkInfo) -> Result<IncomingMessage, IngestError> {
    let type_id = message.message_header.msg_type_id;
    let timestamp = message.message_header.timestamp;
    match type_id {
        msg_type_id::USER_CONTROL_EVENT => Ok(parse_user_control(&message.payload)),
        msg_type_id::COMMAND_AMF0 | msg_type_id::COMMAND_AMF3 => {
            // AMF3 commands start with one format byte, then AMF0 (as the crate reads them).
            let skip = usize::from(type_id == msg_type_id::COMMAND_AMF3);
            if !check_amf_body("command", &message.payload, skip)? {
                return Ok(IncomingMessage::Ignored { type_id });
            }
            match parse_with_crate(message, "parsing a command")? {
                RtmpMessageData::Amf0Command {
                    command_name,
                    transaction_id,
                    command_object,
                    others,
                } => Ok(IncomingMessage::Command(Command::from_amf(
                    &command_name,
                    &transaction_id,
                    &command_object,
                    &others,
                )?)),
                _ => Ok(IncomingMessage::Ignored { type_id }),
            }
        }
        msg_type_id::DATA_AMF0 | msg_type_id::DATA_AMF3 => {
            let skip = usize::from(type_id == msg_type_id::DATA_AMF3);
            if !check_amf_body("data", &message.payload, skip)? {
                return Ok(IncomingMessage::Ignored { type_id });
            }
            let mut raw = message.payload;
            let _ = raw.split_to(skip.min(raw.len()));
            let values = catch_crate_panic("reading a data message", move || {
                Amf0Reader::new(BytesReader::new(raw)).read_all()
            })?
            .map_err(|e| ProtocolError::BadCommand(format!("unreadable data message: {e}")))?;
            Ok(match metadata::from_data_values(&values) {
                Some(meta) => IncomingMessage::Metadata(meta),
                None => IncomingMessage::Ignored { type_id },
            })
        }
        msg_type_id::AUDIO | msg_type_id::VIDEO => {
            match parse_with_crate(message, "parsing a media message")? {
                RtmpMessageData::AudioData { data } => Ok(IncomingMessage::Audio {
                    timestamp,
                    body: data.freeze(),
                }),
                RtmpMessageData::VideoData { data } => Ok(IncomingMessage::Video {
                    timestamp,
                    body: data.freeze(),
                }),
                _ => Ok(IncomingMessage::Ignored { type_id }),
            }
        }
        msg_type_id::SET_CHUNK_SIZE | msg_type_id::WIN_ACKNOWLEDGEMENT_SIZE => {
            match parse_with_crate(message, "parsing a control message")? {
                RtmpMessageData::SetChunkSize { chunk_size } => {
                    Ok(IncomingMessage::SetChunkSize(chunk_size))
                }
                RtmpMessageData::WindowAcknowledgementSize { size } => {
                    Ok(IncomingMessage::WindowAckSize(size))
                }
                _ => Ok(IncomingMessage::Ignored { type_id }),
            }
        }
        _ => Ok(IncomingMessage::Ignored { type_id }),
    }
}

/// Size limit, then the AMF0 walk, on `payload[skip..]`. `Ok(false)`: a well-formed body
/// with a marker neither we nor the crate read (undefined, date, AMF3 objects): the message is
/// skipped, not the connection, since some encoders put such values in metadata. Everything
/// else the walk refuses (huge counts, deep nesting, truncation) closes the connection.
fn check_amf_body(
    kind: &'static str,
    payload: &BytesMut,
    skip: usize,
) -> Result<bool, ProtocolError> {
    if payload.len() > MAX_AMF_MESSAGE_BYTES {
        return Err(ProtocolError::AmfMessageTooLarge {
            kind,
            length: payload.len(),
            limit: MAX_AMF_MESSAGE_BYTES,
        });
    }
    match check_values(payload.get(skip..).unwrap_or_default()) {
        Ok(_) => Ok(true),
        Err(violation @ Amf0Violation::UnknownMarker { .. }) => {
            warn!(kind, %violation, "skipping an AMF message the parser cannot read");
            Ok(false)
        }
        Err(violation) => Err(violation.into()),
    }
}

/// The crate's `MessageParser`, panics caught, errors mapped; `Ignored`-worthy types give
/// `RtmpMessageData::Unknow`.
fn parse_with_crate(
    message: ChunkInfo,
    step: &'static str,
) -> Result<RtmpMessageData, IngestError> {
    let parsed = catch_crate_panic(step, move || MessageParser::new(message).parse())?;
    match parsed {
        Ok(Some(data)) => Ok(data),
        Ok(None) => Ok(RtmpMessageData::Unknow),
        Err(e) if step == "parsing a command" => {
            Err(ProtocolError::BadCommand(format!("unreadable command: {e}")).into())
        }
        Err(e) => Err(IngestError::crate_error(step, e)),
    }
}

/// User control events: only a ping request needs an answer. (The crate's reader refuses
/// ping events, so these six bytes are read here.)
fn parse_user_control(payload: &[u8]) -> IncomingMessage {
    match payload {
        [a, b, t0, t1, t2, t3, ..] if u16::from_be_bytes([*a, *b]) == USER_CONTROL_PING_REQUEST => {
            IncomingMessage::PingRequest(u32::from_be_bytes([*t0, *t1, *t2, *t3]))
        }
        _ => IncomingMessage::Ignored {
            type_id: msg_type_id::USER_CONTROL_EVENT,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(type_id: u8, timestamp: u32, payload: &[u8]) -> ChunkInfo {
        ChunkInfo::new(
            3,
            0,
            timestamp,
            payload.len() as u32,
            type_id,
            0,
            BytesMut::from(payload),
        )
    }

    fn amf_string(s: &str) -> Vec<u8> {
        let mut v = vec![2];
        v.extend((s.len() as u16).to_be_bytes());
        v.extend(s.as_bytes());
        v
    }

    fn amf_number(n: f64) -> Vec<u8> {
        let mut v = vec![0];
        v.extend(n.to_be_bytes());
        v
    }

    #[test]
    fn commands_are_typed() {
        let mut body = amf_string("publish");
        body.extend(amf_number(5.0));
        body.push(5);
        body.extend(amf_string("good"));
        body.extend(amf_string("live"));
        let parsed = parse_message(message(20, 0, &body)).unwrap();
        assert!(matches!(
            parsed,
            IncomingMessage::Command(Command::Publish { stream_name: Some(ref k), .. }) if k == "good"
        ));
    }

    #[test]
    fn a_huge_count_is_refused_before_the_crate() {
        let mut body = amf_string("connect");
        body.extend(amf_number(1.0));
        body.push(0x0a);
        body.extend(u32::MAX.to_be_bytes());
        let err = parse_message(message(20, 0, &body)).unwrap_err();
        assert!(
            matches!(err, IngestError::Protocol(ProtocolError::Amf0(_))),
            "{err}"
        );
    }

    #[test]
    fn an_unreadable_marker_skips_the_message_not_the_connection() {
        let mut body = amf_string("onMetaData");
        body.extend([0x03, 0, 4]);
        body.extend(b"date");
        body.push(0x0b); // AMF0 date: neither we nor the crate read it
        body.extend([0u8; 10]);
        body.extend([0, 0, 9]);
        assert!(matches!(
            parse_message(message(18, 0, &body)).unwrap(),
            IncomingMessage::Ignored { type_id: 18 }
        ));
    }

    #[test]
    fn oversized_amf_is_refused() {
        let body = vec![5u8; MAX_AMF_MESSAGE_BYTES + 1];
        assert!(matches!(
            parse_message(message(18, 0, &body)),
            Err(IngestError::Protocol(
                ProtocolError::AmfMessageTooLarge { .. }
            ))
        ));
    }

    #[test]
    fn media_keeps_its_timestamp_and_body() {
        match parse_message(message(9, 1234, &[0x17, 1, 0, 0, 0])).unwrap() {
            IncomingMessage::Video { timestamp, body } => {
                assert_eq!(timestamp, 1234);
                assert_eq!(&body[..], &[0x17, 1, 0, 0, 0]);
            }
            other => panic!("{other:?}"),
        }
    }

    /// Replays what ffmpeg 5.1 sent after the handshake (captured by the integration tests'
    /// `capture_ffmpeg_publish`) through the reader and parser, without a socket.
    #[test]
    fn replays_a_captured_ffmpeg_publish() {
        use super::super::chunk_guard::ChunkLimits;
        use super::super::reader::MessageReader;

        let capture = include_bytes!("../../tests/data/ffmpeg5_publish_first_32k.bin");
        let mut reader = MessageReader::new(ChunkLimits {
            max_chunk_size: 65536,
            max_message_bytes: 1 << 20,
            max_chunk_streams: 16,
        });
        let mut commands = Vec::new();
        let mut metadata = None;
        let (mut avc_header, mut aac_header, mut media) = (false, false, 0);
        for piece in capture.chunks(1000) {
            reader.input_mut().extend_from_slice(piece);
            while let Some(raw) = reader.next_message().unwrap() {
                match parse_message(raw).unwrap() {
                    IncomingMessage::SetChunkSize(size) => reader.set_chunk_size(size).unwrap(),
                    IncomingMessage::Command(c) => commands.push(c),
                    IncomingMessage::Metadata(m) => metadata = Some(m),
                    IncomingMessage::Video { body, .. } => {
                        avc_header |= body[..2] == [0x17, 0];
                        media += 1;
                    }
                    IncomingMessage::Audio { body, .. } => {
                        aac_header |= body[..2] == [0xAF, 0];
                        media += 1;
                    }
                    _ => {}
                }
            }
        }
        let names: Vec<&str> = commands
            .iter()
            .map(|c| match c {
                Command::Connect { .. } => "connect",
                Command::ReleaseStream { .. } => "releaseStream",
                Command::FcPublish { .. } => "FCPublish",
                Command::CreateStream { .. } => "createStream",
                Command::Publish { .. } => "publish",
                _ => "other",
            })
            .collect();
        assert_eq!(
            names,
            [
                "connect",
                "releaseStream",
                "FCPublish",
                "createStream",
                "publish"
            ]
        );
        assert!(matches!(
            &commands[0],
            Command::Connect { app: Some(app), flash_ver: Some(v), .. }
                if app == "live" && v.contains("Lavf")
        ));
        let metadata = metadata.expect("no onMetaData");
        assert_eq!((metadata.width, metadata.height), (Some(320), Some(180)));
        assert!(metadata.encoder.unwrap_or_default().starts_with("Lavf"));
        assert!(avc_header && aac_header, "sequence headers missing");
        assert!(media > 10, "only {media} media messages in 32 KiB");
    }

    #[test]
    fn metadata_and_control() {
        let mut body = amf_string("@setDataFrame");
        body.extend(amf_string("onMetaData"));
        body.extend([8, 0, 0, 0, 1, 0, 5]);
        body.extend(b"width");
        body.extend(amf_number(320.0));
        body.extend([0, 0, 9]);
        match parse_message(message(18, 0, &body)).unwrap() {
            IncomingMessage::Metadata(m) => assert_eq!(m.width, Some(320)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_message(message(4, 0, &[0, 6, 0, 0, 1, 0])).unwrap(),
            IncomingMessage::PingRequest(256)
        ));
        assert!(matches!(
            parse_message(message(4, 0, &[0, 7])).unwrap(),
            IncomingMessage::Ignored { type_id: 4 }
        ));
        assert!(matches!(
            parse_message(message(1, 0, &[0, 0, 16, 0])).unwrap(),
            IncomingMessage::SetChunkSize(4096)
        ));
        // A short SetChunkSize is the crate's error, not a panic.
        assert!(parse_message(message(1, 0, &[0])).is_err());
    }
}
