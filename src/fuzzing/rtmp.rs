//! RTMP harnesses: the whole server session from the first byte, and one message through our
//! AMF0 pre-check and the crate's parser.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::BytesMut;
use bytesio::bytes_reader::BytesReader;
use rtmp::chunk::ChunkInfo;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use xflv::amf0::amf0_reader::Amf0Reader;

use super::media::feed_publication;
use super::memory_peer::{MemoryPeer, KEPT_OUTPUT};
use crate::config::{Config, RtmpConfig};
use crate::ingest::amf0_guard::check_values;
use crate::ingest::chunk_guard::ChunkLimits;
use crate::ingest::message::{parse_message, IncomingMessage};
use crate::ingest::reader::MessageReader;
use crate::ingest::{
    serve_connection, ImmediateGate, IngestError, Publication, PublishRefusal, PublishRequest,
    SessionEnd,
};

/// The stream key the fuzz gate refuses (to reach the refusal path); every other key publishes.
pub const REFUSED_KEY: &str = "refuse";

/// Room for each publication's media, as small as the broadcaster's so backpressure is hit.
const MEDIA_CHANNEL: usize = 8;

/// A plain RTMP handshake from the client side (C0 = 3, C1 and C2 of zeros), which the server
/// accepts: seeds put it in front of what a peer sends after the handshake.
pub fn plain_handshake() -> Vec<u8> {
    let mut bytes = vec![3u8];
    bytes.resize(1 + 2 * 1536, 0);
    bytes
}

/// Runs one RTMP server session over `data` as everything the peer sends (handshake first),
/// with a gate that accepts any key but [`REFUSED_KEY`] and muxes what is published. Checks:
/// no panic escapes, the session ends (it cannot wait: the peer reads as closed at the end of
/// the input), and the publication's consumer sees the channel close.
pub fn rtmp_session(data: &[u8]) {
    let _ = run_session(data);
}

/// What one session did: how it ended, how many media messages its publications delivered,
/// and how many bytes it answered with (for tests that check the harness reaches media).
#[derive(Debug)]
pub struct SessionReport {
    pub end: Result<SessionEnd, IngestError>,
    pub media_messages: usize,
    pub written: usize,
}

/// [`rtmp_session`], reporting what happened.
pub fn run_session(data: &[u8]) -> SessionReport {
    let gate = Arc::new(FuzzGate::default());
    runtime().block_on(async {
        let mut peer = MemoryPeer::new(data);
        let end = serve_connection(
            &mut peer,
            SocketAddr::from(([127, 0, 0, 1], 1935)),
            rtmp_config(),
            gate.clone(),
        )
        .await;
        // The session is gone, and with it the publication's sender: each consumer ends.
        let mut media_messages = 0;
        for consumer in gate.take_consumers() {
            match consumer.await {
                Ok(n) => media_messages += n,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            }
        }
        if peer.written <= KEPT_OUTPUT {
            check_server_output(&peer.output);
        }
        SessionReport {
            end,
            media_messages,
            written: peer.written,
        }
    })
}

/// Our answers are well-formed RTMP whatever the peer sent: S0+S1+S2 (version 3), then whole
/// chunked messages that our own reader and parser accept, with nothing left over.
fn check_server_output(output: &[u8]) {
    const S0S1S2: usize = 1 + 2 * 1536;
    if output.is_empty() {
        return;
    }
    assert!(output.len() >= S0S1S2, "a partial handshake answer");
    assert_eq!(output[0], 3, "S0 version");
    let mut reader = MessageReader::new(ChunkLimits {
        max_chunk_size: 1 << 16,
        max_message_bytes: 1 << 20,
        max_chunk_streams: 16,
    });
    reader.input_mut().extend_from_slice(&output[S0S1S2..]);
    loop {
        match reader.next_message() {
            Ok(Some(message)) => match parse_message(message) {
                Ok(IncomingMessage::SetChunkSize(size)) => {
                    if let Err(e) = reader.set_chunk_size(size) {
                        panic!("our SetChunkSize {size} is refused: {e}");
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("our answer does not parse: {e}"),
            },
            Ok(None) => break,
            Err(e) => panic!("our answer is not a valid chunk stream: {e}"),
        }
    }
    assert!(
        reader.input_mut().is_empty(),
        "our answer ends in a partial chunk"
    );
}

/// One message through `parse_message`: the first byte is the RTMP message type id, the rest
/// its payload. Also checks the AMF0 guard's contract on the payload: a body it passes is read
/// by the crate's `Amf0Reader` to the end, without error or panic, as the same number of
/// top-level values (the guard exists because the crate's reader can abort the process, so a
/// disagreement means the guard's model of the crate is wrong).
pub fn amf0_message(data: &[u8]) {
    let Some((&type_id, body)) = data.split_first() else {
        return;
    };
    if let Ok(count) = check_values(body) {
        let owned = BytesMut::from(body);
        let read = std::panic::catch_unwind(move || {
            Amf0Reader::new(BytesReader::new(owned))
                .read_all()
                .map(|values| values.len())
                .map_err(|e| e.to_string())
        });
        match read {
            Ok(Ok(n)) => assert_eq!(
                n, count,
                "the AMF0 guard counted {count} values, the crate read {n}"
            ),
            Ok(Err(e)) => panic!("the AMF0 guard passed a body the crate cannot read: {e}"),
            Err(_) => panic!("the AMF0 guard passed a body on which the crate panics"),
        }
    }
    let message = ChunkInfo::new(3, 0, 0, body.len() as u32, type_id, 1, BytesMut::from(body));
    let _ = parse_message(message);
}

/// The whole messages in `after_handshake` (what a client sends after the handshake), as
/// `(type id, payload)`, read with the production chunk limits; stops at the first error. The
/// seed corpus of [`amf0_message`] is made with it from captured and hostile sessions.
pub fn split_messages(after_handshake: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let config = rtmp_config();
    let mut reader = MessageReader::new(ChunkLimits {
        max_chunk_size: config.max_chunk_size,
        max_message_bytes: config.max_message_bytes,
        max_chunk_streams: config.max_chunk_streams,
    });
    reader.input_mut().extend_from_slice(after_handshake);
    let mut out = Vec::new();
    while let Ok(Some(message)) = reader.next_message() {
        let type_id = message.message_header.msg_type_id;
        let payload = message.payload.to_vec();
        if type_id == 1 && payload.len() >= 4 {
            let size = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            if reader.set_chunk_size(size).is_err() {
                break;
            }
        }
        out.push((type_id, payload));
    }
    out
}

/// One current-thread runtime for every input (building one per input would dominate).
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread tokio runtime")
    })
}

/// The production `[rtmp]` limits (config/default.toml), so the fuzzer tests what we ship.
fn rtmp_config() -> Arc<RtmpConfig> {
    static CONFIG: OnceLock<Arc<RtmpConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let config = Config::from_toml_str("")
                .expect("the embedded config/default.toml loads (config tests check it)");
            Arc::new(config.rtmp)
        })
        .clone()
}

/// Accepts every key but [`REFUSED_KEY`]; each publication's media goes to a muxer task.
#[derive(Default)]
struct FuzzGate {
    consumers: Mutex<Vec<JoinHandle<usize>>>,
}

impl FuzzGate {
    fn take_consumers(&self) -> Vec<JoinHandle<usize>> {
        std::mem::take(&mut *crate::sync::lock(&self.consumers))
    }
}

impl ImmediateGate for FuzzGate {
    fn decide(&self, request: &PublishRequest) -> Result<Publication, PublishRefusal> {
        if request.stream_key == REFUSED_KEY {
            return Err(PublishRefusal::UnknownKey);
        }
        let (media, rx) = mpsc::channel(MEDIA_CHANNEL);
        let consumer = tokio::spawn(feed_publication(rx));
        crate::sync::lock(&self.consumers).push(consumer);
        Ok(Publication {
            room: "fuzz".into(),
            session: "fuzz-session".into(),
            media,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_captured_publish_runs_through_the_session() {
        let mut input = plain_handshake();
        input.extend_from_slice(include_bytes!(
            "../../tests/data/ffmpeg5_publish_first_32k.bin"
        ));
        let report = run_session(&input);
        assert!(
            matches!(report.end, Ok(SessionEnd::PeerClosed)),
            "{report:?}"
        );
        assert!(report.media_messages > 10, "{report:?}");
        assert!(report.written > 3073, "{report:?}");
        let mut refused = plain_handshake();
        refused.extend_from_slice(include_bytes!(
            "../../tests/data/hostile_play_without_name.bin"
        ));
        assert!(matches!(
            run_session(&refused).end,
            Ok(SessionEnd::PlayRefused)
        ));
        rtmp_session(&input[..5000]);
        rtmp_session(&[]);
        rtmp_session(b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn amf_messages_of_any_type() {
        for type_id in 0..=255u8 {
            amf0_message(&[type_id]);
            amf0_message(&[type_id, 0x02, 0, 1, b'x']);
            amf0_message(&[type_id, 0x0a, 0xff, 0xff, 0xff, 0xff]);
        }
    }
}
