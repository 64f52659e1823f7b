//! Bytes from the socket to whole RTMP messages: our [`ChunkGuard`] frames and bounds each
//! chunk, then the crate's `ChunkUnpacketizer` reassembles messages and decodes timestamps
//! (deltas to absolute). One whole chunk goes in at a time, under `catch_unwind`, and its
//! answer is checked against what the guard expects.

use bytes::BytesMut;
use rtmp::chunk::errors::UnpackErrorValue;
use rtmp::chunk::unpacketizer::{ChunkUnpacketizer, UnpackResult};
use rtmp::chunk::ChunkInfo;

use super::chunk_guard::{ChunkGuard, ChunkLimits, GuardedChunk};
use super::error::{catch_crate_panic, IngestError};

/// Reads messages from a connection's incoming bytes (sans-I/O).
pub struct MessageReader {
    /// Bytes read from the socket and not yet framed; bounded by one chunk plus one read.
    input: BytesMut,
    guard: ChunkGuard,
    unpacketizer: ChunkUnpacketizer,
}

impl MessageReader {
    /// A reader for a new connection, bounded by `limits`.
    pub fn new(limits: ChunkLimits) -> MessageReader {
        MessageReader {
            input: BytesMut::new(),
            guard: ChunkGuard::new(limits),
            unpacketizer: ChunkUnpacketizer::new(),
        }
    }

    /// Where socket reads append (the handshake takes its bytes from here first).
    pub fn input_mut(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Applies the peer's SetChunkSize to the guard and the unpacketizer.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), IngestError> {
        self.guard.set_chunk_size(size)?;
        self.unpacketizer.update_max_chunk_size(size as usize);
        Ok(())
    }

    /// The next whole message, or `None` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<ChunkInfo>, IngestError> {
        while let Some(chunk) = self.guard.next_chunk(&mut self.input)? {
            if let Some(message) = self.unpack(chunk)? {
                return Ok(Some(message));
            }
        }
        Ok(None)
    }

    fn unpack(&mut self, chunk: GuardedChunk) -> Result<Option<ChunkInfo>, IngestError> {
        const STEP: &str = "unpacking a chunk";
        let unpacketizer = &mut self.unpacketizer;
        let result = catch_crate_panic(STEP, || {
            unpacketizer.extend_data(&chunk.bytes);
            unpacketizer.read_chunks()
        })?;
        let out_of_step = |what: String| IngestError::Crate {
            step: STEP,
            message: format!("unpacketizer out of step with the chunk guard: {what}"),
        };
        match result {
            Ok(UnpackResult::Chunks(mut messages)) => {
                let message = match (messages.pop(), messages.is_empty()) {
                    (Some(message), true) if chunk.completes_message => message,
                    _ => return Err(out_of_step("unexpected message(s)".into())),
                };
                let header = &message.message_header;
                if header.msg_type_id != chunk.message_type
                    || header.msg_length != chunk.message_length
                    || message.payload.len() != chunk.message_length as usize
                {
                    return Err(out_of_step(format!(
                        "type {} length {} (payload {}), expected type {} length {}",
                        header.msg_type_id,
                        header.msg_length,
                        message.payload.len(),
                        chunk.message_type,
                        chunk.message_length
                    )));
                }
                Ok(Some(message))
            }
            Err(e) if matches!(e.value, UnpackErrorValue::EmptyChunks) => {
                if chunk.completes_message {
                    return Err(out_of_step("a finished message was not returned".into()));
                }
                Ok(None)
            }
            Ok(_) => Err(out_of_step("unexpected result".into())),
            Err(e) => Err(IngestError::crate_error(STEP, e)),
        }
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

    /// (type, timestamp, length) of every message, splitting the input at `cuts`.
    fn read_all(bytes: &[u8], cuts: &[usize]) -> Vec<(u8, u32, usize)> {
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
                let h = &m.message_header;
                if h.msg_type_id == 1 {
                    reader.set_chunk_size(4096).unwrap();
                }
                out.push((h.msg_type_id, h.timestamp, m.payload.len()));
            }
        }
        out
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

    proptest! {
        /// However TCP splits the stream, the same messages come out.
        #[test]
        fn any_split_gives_the_same_messages(cuts in prop::collection::vec(any::<usize>(), 0..12)) {
            let bytes = stream();
            prop_assert_eq!(read_all(&bytes, &cuts), read_all(&bytes, &[]));
        }
    }
}
