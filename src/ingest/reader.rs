//! Bytes from the socket to whole RTMP messages: our [`ChunkGuard`] frames and bounds each
//! chunk, then the reader decodes timestamps (deltas to absolute, per chunk stream) and joins
//! the chunks' payloads into the message, copying each payload byte once.
//!
//! Timestamps follow the rtmp crate's `ChunkUnpacketizer`, which this replaced (it copied
//! every payload three times and was a tenth of ingest CPU): a format 0 header sets the time
//! and clears the delta, formats 1 and 2 set the delta and add it, a format 3 chunk starting a
//! message adds the stream's last delta again, and a format 3 chunk re-reads the extended
//! timestamp when the header it inherits had one. The tests check the two agree.

use std::collections::HashMap;

use bytes::BytesMut;
use rtmp::chunk::ChunkInfo;

use super::chunk_guard::{ChunkGuard, ChunkLimits, GuardedChunk};
use super::error::IngestError;

/// What the extended timestamp of a chunk stream's format 3 chunks stands for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Extended {
    #[default]
    None,
    /// The absolute time (the inherited header was format 0).
    Absolute,
    /// The delta (the inherited header was format 1 or 2).
    Delta,
}

/// What one chunk stream's headers set: its time, and its message stream id (format 0 sets
/// it, the other formats inherit it).
#[derive(Debug, Clone, Copy, Default)]
struct StreamState {
    timestamp: u32,
    delta: u32,
    extended: Extended,
    stream_id: u32,
}

impl StreamState {
    /// Applies a chunk's header; `starts_message`: no earlier chunk of its message came.
    fn apply(&mut self, chunk: &GuardedChunk, starts_message: bool) {
        // For formats 0-2 the guard reads an extended timestamp exactly when the 24-bit field
        // holds the mark.
        let long = chunk.extended_timestamp.is_some();
        if let Some(id) = chunk.message_stream_id {
            self.stream_id = id;
        }
        match chunk.format {
            0 => {
                self.delta = 0;
                self.extended = if long {
                    Extended::Absolute
                } else {
                    Extended::None
                };
                self.timestamp = chunk.extended_timestamp.unwrap_or(chunk.timestamp_field);
            }
            1 | 2 => {
                self.extended = if long {
                    Extended::Delta
                } else {
                    Extended::None
                };
                self.delta = chunk.extended_timestamp.unwrap_or(chunk.timestamp_field);
                self.timestamp = self.timestamp.wrapping_add(self.delta);
            }
            _ => {
                match (self.extended, chunk.extended_timestamp) {
                    (Extended::Absolute, Some(t)) => self.timestamp = t,
                    (Extended::Delta, Some(d)) => self.delta = d,
                    _ => {}
                }
                if starts_message {
                    self.timestamp = self.timestamp.wrapping_add(self.delta);
                }
            }
        }
    }
}

/// A message whose first chunks came (its payload so far is the reader's `payloads`).
#[derive(Debug)]
struct Partial {
    timestamp: u32,
    stream_id: u32,
}

/// Room taken at a time for message payloads: a real-time 3 Mbit/s stream fills it about six
/// times a second, where one allocation per message meant about eighty.
const PAYLOAD_BLOCK_BYTES: usize = 64 * 1024;

/// Reads messages from a connection's incoming bytes (sans-I/O).
pub struct MessageReader {
    /// Bytes read from the socket and not yet framed; bounded by one chunk plus one read.
    input: BytesMut,
    guard: ChunkGuard,
    streams: HashMap<u32, StreamState>,
    /// The message being joined (the guard refuses interleaving, so there is at most one).
    partial: Option<Partial>,
    /// Holds the partial message's payload; a whole message is split off it, so messages
    /// share blocks of [`PAYLOAD_BLOCK_BYTES`] (a block is freed when its last message is).
    payloads: BytesMut,
}

impl MessageReader {
    /// A reader for a new connection, bounded by `limits`.
    pub fn new(limits: ChunkLimits) -> MessageReader {
        MessageReader {
            input: BytesMut::new(),
            guard: ChunkGuard::new(limits),
            streams: HashMap::new(),
            partial: None,
            payloads: BytesMut::new(),
        }
    }

    /// Where socket reads append (the handshake takes its bytes from here first).
    pub fn input_mut(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Applies the peer's SetChunkSize.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), IngestError> {
        self.guard.set_chunk_size(size)?;
        Ok(())
    }

    /// The next whole message, or `None` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<ChunkInfo>, IngestError> {
        while let Some(chunk) = self.guard.next_chunk(&mut self.input)? {
            if let Some(message) = self.join(chunk) {
                return Ok(Some(message));
            }
        }
        Ok(None)
    }

    /// Adds a chunk to its message; the message once it is whole.
    fn join(&mut self, chunk: GuardedChunk) -> Option<ChunkInfo> {
        let starts_message = self.partial.is_none();
        let stream = self.streams.entry(chunk.csid).or_default();
        stream.apply(&chunk, starts_message);
        let (timestamp, stream_id) = (stream.timestamp, stream.stream_id);
        let partial = self.partial.take().unwrap_or_else(|| {
            // Room for the whole message (the guard bounds its length): the first message,
            // or a full block, takes a new block; else `reserve` keeps to this block, takes it
            // back if no message holds it any more, or takes a new one of at least a block
            // (the size the buffer was made with).
            let length = chunk.message_length as usize;
            if self.payloads.capacity() == 0 {
                self.payloads = BytesMut::with_capacity(PAYLOAD_BLOCK_BYTES.max(length));
            } else {
                self.payloads.reserve(length);
            }
            Partial {
                timestamp,
                stream_id,
            }
        });
        self.payloads.extend_from_slice(chunk.payload());
        if !chunk.completes_message {
            self.partial = Some(partial);
            return None;
        }
        Some(ChunkInfo::new(
            chunk.csid,
            chunk.format,
            partial.timestamp,
            chunk.message_length,
            chunk.message_type,
            partial.stream_id,
            self.payloads.split(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::chunk_guard::tests::{fmt0, LIMITS};
    use super::*;
    use proptest::prelude::*;

    /// connect (multi-chunk), SetChunkSize 4096, a video message at 4096 with a format 1
    /// delta, an audio message with extended timestamp.
    fn stream() -> Vec<u8> {
        let mut v = fmt0(3, 0, 200, 20, 0);
        v.extend([7u8; 128]);
        v.push(0xC3);
        v.extend([7u8; 72]);
        v.extend(fmt0(2, 0, 4, 1, 0));
        v.extend(4096u32.to_be_bytes());
        v.extend(fmt0(6, 1000, 5000, 9, 1));
        v.extend([0x17u8; 4096]);
        v.push(0xC6);
        v.extend([0x27u8; 904]);
        v.extend([0x46, 0, 0, 40, 0, 0, 3, 9]); // format 1: +40 ms, 3 bytes, video
        v.extend([0x27u8, 1, 0]);
        v.extend(fmt0(4, 0x0123_4567, 2, 8, 1));
        v.extend([0xAF, 1]);
        v
    }

    /// Every message read, splitting the input at `cuts` (a SetChunkSize is applied).
    fn read_split(bytes: &[u8], cuts: &[usize]) -> Vec<ChunkInfo> {
        let mut reader = MessageReader::new(LIMITS);
        let mut out = Vec::new();
        let mut start = 0;
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        ends.push(bytes.len());
        ends.sort_unstable();
        for end in ends {
            reader
                .input_mut()
                .extend_from_slice(&bytes[start..end.max(start)]);
            start = end.max(start);
            while let Some(m) = reader.next_message().unwrap() {
                if m.message_header.msg_type_id == 1 {
                    reader.set_chunk_size(4096).unwrap();
                }
                out.push(m);
            }
        }
        out
    }

    /// (type, timestamp, length) of every message, splitting the input at `cuts`.
    fn read_all(bytes: &[u8], cuts: &[usize]) -> Vec<(u8, u32, usize)> {
        read_split(bytes, cuts)
            .iter()
            .map(|m| {
                let h = &m.message_header;
                (h.msg_type_id, h.timestamp, m.payload.len())
            })
            .collect()
    }

    #[test]
    fn reassembles_messages_and_decodes_timestamps() {
        assert_eq!(
            read_all(&stream(), &[]),
            vec![
                (20, 0, 200),
                (1, 0, 4),
                (9, 1000, 5000),
                (9, 1040, 3),
                (8, 0x0123_4567, 2)
            ]
        );
    }

    #[test]
    fn interleaving_is_an_error_not_a_panic() {
        let mut bytes = fmt0(3, 0, 300, 20, 0);
        bytes.extend([0u8; 128]);
        bytes.extend(fmt0(4, 0, 10, 20, 0));
        bytes.extend([0u8; 10]);
        let mut reader = MessageReader::new(LIMITS);
        reader.input_mut().extend_from_slice(&bytes);
        assert!(matches!(
            reader.next_message(),
            Err(IngestError::Protocol(_))
        ));
    }

    /// The rtmp crate's unpacketizer behind our guard, one chunk at a time: how messages were
    /// read before [`MessageReader`] joined them itself (the oracle for timestamps).
    fn read_with_crate(bytes: &[u8]) -> Vec<(u8, u32, u32, Vec<u8>)> {
        use rtmp::chunk::unpacketizer::{ChunkUnpacketizer, UnpackResult};
        let mut guard = ChunkGuard::new(LIMITS);
        let mut unpacketizer = ChunkUnpacketizer::new();
        let mut input = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(chunk) = guard.next_chunk(&mut input).unwrap() {
            unpacketizer.extend_data(&chunk.bytes);
            if let Ok(UnpackResult::Chunks(messages)) = unpacketizer.read_chunks() {
                out.extend(messages.iter().map(summary));
            }
        }
        out
    }

    /// What the two readers must agree on: type, timestamp, stream id and payload.
    fn summary(m: &ChunkInfo) -> (u8, u32, u32, Vec<u8>) {
        let h = &m.message_header;
        (
            h.msg_type_id,
            h.timestamp,
            h.msg_streamd_id,
            m.payload.to_vec(),
        )
    }

    /// One message to encode: chunk stream, the format of its first chunk (when the stream's
    /// last header allows it), type, length, and the timestamp or delta it carries.
    type Spec = (u8, u8, u8, usize, u32, u32);

    /// Encodes messages at chunk size 128 with every header format, extended timestamps
    /// included (a time at or past 0xFFFFFF), as an encoder following the spec would.
    fn encode(specs: &[Spec]) -> Vec<u8> {
        let mut out = Vec::new();
        // Per chunk stream: (length, type, extended timestamp carried).
        let mut last: HashMap<u8, (usize, u8, bool)> = HashMap::new();
        for (i, &(csid, format, type_id, length, time, ext_value)) in specs.iter().enumerate() {
            let prev = last.get(&csid).copied();
            let format = match (format, prev) {
                (_, None) => 0,
                (2 | 3, Some((l, t, _))) if l != length || t != type_id => 1,
                (f, _) => f,
            };
            let payload: Vec<u8> = (0..length).map(|b| (b + i) as u8).collect();
            let extended = match format {
                0..=2 => time >= 0xFF_FFFF,
                _ => prev.is_some_and(|p| p.2),
            };
            let field = time.min(0xFF_FFFF).to_be_bytes();
            out.push((format << 6) | csid);
            match format {
                0 => {
                    out.extend(&field[1..]);
                    out.extend(&(length as u32).to_be_bytes()[1..]);
                    out.push(type_id);
                    out.extend(1u32.to_le_bytes());
                }
                1 => {
                    out.extend(&field[1..]);
                    out.extend(&(length as u32).to_be_bytes()[1..]);
                    out.push(type_id);
                }
                2 => out.extend(&field[1..]),
                _ => {}
            }
            let ext = if format < 3 { time } else { ext_value };
            if extended {
                out.extend(ext.to_be_bytes());
            }
            for (n, piece) in payload.chunks(128).enumerate() {
                if n > 0 {
                    out.push(0xC0 | csid);
                    if extended {
                        out.extend(ext.to_be_bytes());
                    }
                }
                out.extend(piece);
            }
            last.insert(csid, (length, type_id, extended));
        }
        out
    }

    fn spec() -> impl Strategy<Value = Spec> {
        let time = prop_oneof![0u32..5000, 0xFF_FFF0u32..0x0100_0100, any::<u32>()];
        (
            prop::sample::select(vec![3u8, 4, 6]),
            0u8..4,
            prop::sample::select(vec![8u8, 9, 18]),
            prop::sample::select(vec![1usize, 2, 127, 128, 129, 300, 600]),
            time,
            any::<u32>(),
        )
    }

    proptest! {
        /// Our join gives the messages, timestamps and stream ids the crate's unpacketizer gave,
        /// whatever the header formats, extended timestamps and TCP splits.
        #[test]
        fn same_messages_as_the_crate(
            specs in prop::collection::vec(spec(), 1..24),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let bytes = encode(&specs);
            let ours: Vec<_> = read_split(&bytes, &cuts).iter().map(summary).collect();
            prop_assert_eq!(ours.len(), specs.len());
            prop_assert_eq!(ours, read_with_crate(&bytes));
        }

        /// However TCP splits the stream, the same messages come out.
        #[test]
        fn any_split_gives_the_same_messages(cuts in prop::collection::vec(any::<usize>(), 0..12)) {
            let bytes = stream();
            prop_assert_eq!(read_all(&bytes, &cuts), read_all(&bytes, &[]));
        }
    }
}
