//! Chunk framing: every chunk header parsed and bounded before its message is assembled.
//!
//! The rtmp crate's `ChunkUnpacketizer` keeps one partial payload for all chunk streams,
//! trusts message lengths and chunk sizes from the wire, loses bytes when a multi-byte basic
//! header is split across reads, and copies each payload three times. So this guard parses
//! every chunk header itself (the crate's rules: which header fields a format inherits, when
//! an extended timestamp follows), refuses what we do not accept (see [`ProtocolError`]) as
//! soon as the header is in, and hands [`super::reader::MessageReader`] one whole chunk at a
//! time with its header fields. Refused: a message longer than `max_message_bytes`,
//! more than `max_chunk_streams` chunk stream ids, a first chunk on a stream that is not
//! format 0, and a chunk of another stream (or a new header) in the middle of a message —
//! interleaving, which the crate cannot reassemble (it would subtract past zero). OBS
//! (librtmp) and ffmpeg send each message's chunks back to back.

use std::collections::HashMap;

use bytes::BytesMut;

use super::error::ProtocolError;

/// The chunk size both directions start with (RTMP 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// A 24-bit timestamp field with this value means a 4-byte extended timestamp follows.
const EXTENDED_TIMESTAMP_MARK: u32 = 0xFF_FFFF;

/// Bounds from `[rtmp]` config.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    /// Largest chunk size a SetChunkSize may announce.
    pub max_chunk_size: u32,
    /// Largest message length a header may claim.
    pub max_message_bytes: u32,
    /// Distinct chunk stream ids a connection may use (the crate keeps a header per id).
    pub max_chunk_streams: usize,
}

/// The header fields a chunk stream's next chunks inherit.
#[derive(Debug, Clone, Copy)]
struct StreamHeader {
    message_length: u32,
    message_type: u8,
    /// The last format 0/1/2 header carried an extended timestamp, so format 3 chunks do too.
    extended_timestamp: bool,
}

/// A message whose chunks have started but not finished.
#[derive(Debug, Clone, Copy)]
struct OpenMessage {
    csid: u32,
    remaining: u32,
}

/// One whole chunk (header and payload) that passed the guard.
#[derive(Debug)]
pub struct GuardedChunk {
    /// The chunk as it came from the wire: basic header, message header, payload.
    pub bytes: BytesMut,
    /// Its chunk stream id.
    pub csid: u32,
    /// Type id and total length of the message this chunk belongs to.
    pub message_type: u8,
    pub message_length: u32,
    /// This chunk carries the message's last payload byte.
    pub completes_message: bool,
    /// The header format (0-3).
    pub format: u8,
    /// The 24-bit timestamp field of a format 0, 1 or 2 header (absolute for format 0, a
    /// delta for 1 and 2); 0 for format 3.
    pub timestamp_field: u32,
    /// The 4-byte extended timestamp, when the chunk carries one.
    pub extended_timestamp: Option<u32>,
    /// The message stream id of a format 0 header.
    pub message_stream_id: Option<u32>,
    /// Where the payload starts in `bytes`.
    pub payload_start: usize,
}

impl GuardedChunk {
    /// The chunk's share of its message's payload.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.payload_start..]
    }
}

/// Parses and bounds chunk headers for one connection (sans-I/O).
#[derive(Debug)]
pub struct ChunkGuard {
    limits: ChunkLimits,
    chunk_size: u32,
    streams: HashMap<u32, StreamHeader>,
    open: Option<OpenMessage>,
}

impl ChunkGuard {
    /// A guard for a new connection (chunk size 128, no chunk streams yet).
    pub fn new(limits: ChunkLimits) -> ChunkGuard {
        ChunkGuard {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            open: None,
        }
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies a SetChunkSize from the peer; 0 and sizes above `max_chunk_size` are refused.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ProtocolError> {
        if size == 0 || size > self.limits.max_chunk_size {
            return Err(ProtocolError::ChunkSize {
                size,
                limit: self.limits.max_chunk_size,
            });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Takes the next whole chunk off the front of `input`. `Ok(None)`: more bytes are needed
    /// (nothing is consumed). Errors come as soon as the offending header is complete.
    pub fn next_chunk(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<Option<GuardedChunk>, ProtocolError> {
        let buf = &input[..];
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let format = first >> 6;
        let (csid, mut pos) = match first & 0x3f {
            0 => match buf.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(None),
            },
            1 => match (buf.get(1), buf.get(2)) {
                (Some(&lo), Some(&hi)) => (64 + u32::from(lo) + 256 * u32::from(hi), 3),
                _ => return Ok(None),
            },
            id => (u32::from(id), 1),
        };

        let previous = self.streams.get(&csid).copied();
        match self.open {
            Some(open) if open.csid != csid || format != 3 => {
                return Err(ProtocolError::InterleavedChunks {
                    open_csid: open.csid,
                    csid,
                    format,
                });
            }
            Some(_) => {}
            None if previous.is_none() => {
                if format != 0 {
                    return Err(ProtocolError::MissingChunkHeader { csid, format });
                }
                if self.streams.len() >= self.limits.max_chunk_streams {
                    return Err(ProtocolError::TooManyChunkStreams {
                        limit: self.limits.max_chunk_streams,
                    });
                }
            }
            None => {}
        }

        let header_len = match format {
            0 => 11,
            1 => 7,
            2 => 3,
            _ => 0,
        };
        let Some(fields) = buf.get(pos..pos + header_len) else {
            return Ok(None);
        };
        pos += header_len;
        let u24 = |b: &[u8]| u32::from_be_bytes([0, b[0], b[1], b[2]]);
        let header = match (format, previous) {
            (0, _) => StreamHeader {
                message_length: u24(&fields[3..6]),
                message_type: fields[6],
                extended_timestamp: u24(&fields[0..3]) == EXTENDED_TIMESTAMP_MARK,
            },
            (1, Some(_)) => StreamHeader {
                message_length: u24(&fields[3..6]),
                message_type: fields[6],
                extended_timestamp: u24(&fields[0..3]) == EXTENDED_TIMESTAMP_MARK,
            },
            (2, Some(prev)) => StreamHeader {
                extended_timestamp: u24(&fields[0..3]) == EXTENDED_TIMESTAMP_MARK,
                ..prev
            },
            (_, Some(prev)) => prev,
            // Unreachable: a stream without a header was required to start with format 0.
            (_, None) => return Err(ProtocolError::MissingChunkHeader { csid, format }),
        };

        let remaining = match self.open {
            Some(open) => open.remaining,
            None => {
                if header.message_length > self.limits.max_message_bytes {
                    return Err(ProtocolError::MessageTooLarge {
                        length: header.message_length,
                        limit: self.limits.max_message_bytes,
                    });
                }
                header.message_length
            }
        };
        let extended_at = pos;
        if header.extended_timestamp {
            pos += 4;
        }
        let payload_len = remaining.min(self.chunk_size);
        let total = pos + payload_len as usize;
        if buf.len() < total {
            return Ok(None);
        }

        self.streams.insert(csid, header);
        let left = remaining - payload_len;
        self.open = (left > 0).then_some(OpenMessage {
            csid,
            remaining: left,
        });
        let extended_timestamp = header.extended_timestamp.then(|| {
            u32::from_be_bytes([
                buf[extended_at],
                buf[extended_at + 1],
                buf[extended_at + 2],
                buf[extended_at + 3],
            ])
        });
        let timestamp_field = if format < 3 { u24(&fields[0..3]) } else { 0 };
        let message_stream_id = (format == 0)
            .then(|| u32::from_le_bytes([fields[7], fields[8], fields[9], fields[10]]));
        Ok(Some(GuardedChunk {
            bytes: input.split_to(total),
            csid,
            message_type: header.message_type,
            message_length: header.message_length,
            completes_message: left == 0,
            format,
            timestamp_field,
            extended_timestamp,
            message_stream_id,
            payload_start: total - payload_len as usize,
        }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const LIMITS: ChunkLimits = ChunkLimits {
        max_chunk_size: 65536,
        max_message_bytes: 1 << 20,
        max_chunk_streams: 4,
    };

    /// A format 0 header (1-byte basic header).
    pub(crate) fn fmt0(csid: u8, timestamp: u32, length: u32, type_id: u8, stream: u32) -> Vec<u8> {
        let mut v = vec![csid & 0x3f];
        v.extend(&timestamp.min(0xFF_FFFF).to_be_bytes()[1..]);
        v.extend(&length.to_be_bytes()[1..]);
        v.push(type_id);
        v.extend(stream.to_le_bytes());
        if timestamp >= 0xFF_FFFF {
            v.extend(timestamp.to_be_bytes());
        }
        v
    }

    fn take_all(guard: &mut ChunkGuard, input: &mut BytesMut) -> Vec<GuardedChunk> {
        let mut out = Vec::new();
        while let Some(c) = guard.next_chunk(input).unwrap() {
            out.push(c);
        }
        out
    }

    #[test]
    fn splits_a_message_into_its_chunks() {
        let mut guard = ChunkGuard::new(LIMITS);
        let mut bytes = fmt0(3, 0, 300, 20, 0);
        bytes.extend([1u8; 128]);
        bytes.push(0xC3); // format 3, csid 3
        bytes.extend([2u8; 128]);
        bytes.push(0xC3);
        bytes.extend([3u8; 44]);
        let mut input = BytesMut::from(&bytes[..]);
        let chunks = take_all(&mut guard, &mut input);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].bytes.len(), 12 + 128);
        assert!(!chunks[0].completes_message && !chunks[1].completes_message);
        assert!(chunks[2].completes_message);
        assert_eq!(chunks[2].message_length, 300);
        assert!(input.is_empty());
    }

    #[test]
    fn waits_for_a_whole_chunk_without_consuming() {
        let mut guard = ChunkGuard::new(LIMITS);
        let mut bytes = fmt0(3, 0, 10, 20, 0);
        bytes.extend([0u8; 10]);
        for cut in 0..bytes.len() {
            let mut input = BytesMut::from(&bytes[..cut]);
            assert!(guard.next_chunk(&mut input).unwrap().is_none());
            assert_eq!(input.len(), cut);
        }
    }

    #[test]
    fn refuses_a_huge_message_from_its_header_alone() {
        let mut guard = ChunkGuard::new(LIMITS);
        let mut input = BytesMut::from(&fmt0(4, 0, 0xFF_FFFF, 9, 1)[..]);
        assert_eq!(
            guard.next_chunk(&mut input).unwrap_err(),
            ProtocolError::MessageTooLarge {
                length: 0xFF_FFFF,
                limit: 1 << 20
            }
        );
    }

    #[test]
    fn refuses_interleaved_and_restarted_messages() {
        let mut first = fmt0(3, 0, 300, 20, 0);
        first.extend([0u8; 128]);
        // Another chunk stream in the middle: the crate's unchecked subtraction.
        let mut guard = ChunkGuard::new(LIMITS);
        let mut bytes = first.clone();
        bytes.extend(fmt0(4, 0, 10, 20, 0));
        bytes.extend([0u8; 10]);
        let mut input = BytesMut::from(&bytes[..]);
        assert!(guard.next_chunk(&mut input).unwrap().is_some());
        assert!(matches!(
            guard.next_chunk(&mut input),
            Err(ProtocolError::InterleavedChunks {
                open_csid: 3,
                csid: 4,
                ..
            })
        ));
        // A new header on the same stream in the middle.
        let mut guard = ChunkGuard::new(LIMITS);
        let mut bytes = first;
        bytes.extend([0x43, 0, 0, 0, 0, 0, 10, 20]); // format 1, csid 3, length 10
        let mut input = BytesMut::from(&bytes[..]);
        assert!(guard.next_chunk(&mut input).unwrap().is_some());
        assert!(matches!(
            guard.next_chunk(&mut input),
            Err(ProtocolError::InterleavedChunks { format: 1, .. })
        ));
    }

    #[test]
    fn a_new_stream_must_start_with_format_0_and_streams_are_limited() {
        let mut guard = ChunkGuard::new(LIMITS);
        let mut input = BytesMut::from(&[0x45u8, 0, 0, 0, 0, 0, 4, 9][..]);
        assert_eq!(
            guard.next_chunk(&mut input).unwrap_err(),
            ProtocolError::MissingChunkHeader { csid: 5, format: 1 }
        );
        let mut guard = ChunkGuard::new(LIMITS);
        let mut bytes = Vec::new();
        for csid in 3..3 + LIMITS.max_chunk_streams as u8 + 1 {
            bytes.extend(fmt0(csid, 0, 4, 3, 0));
            bytes.extend([0u8; 4]);
        }
        let mut input = BytesMut::from(&bytes[..]);
        for _ in 0..LIMITS.max_chunk_streams {
            assert!(guard.next_chunk(&mut input).unwrap().is_some());
        }
        assert_eq!(
            guard.next_chunk(&mut input).unwrap_err(),
            ProtocolError::TooManyChunkStreams { limit: 4 }
        );
    }

    #[test]
    fn extended_timestamps_and_long_basic_headers() {
        let mut guard = ChunkGuard::new(LIMITS);
        // csid 320 in the 3-byte form, extended timestamp, 200 bytes in two chunks.
        let mut bytes = vec![0x01, 0x00, 0x01];
        bytes.extend(&fmt0(0, 0x0100_0000, 200, 9, 1)[1..]);
        bytes.extend([0u8; 128]);
        bytes.extend([0xC1, 0x00, 0x01]);
        bytes.extend(0x0100_0000u32.to_be_bytes()); // format 3 repeats the extended timestamp
        bytes.extend([0u8; 72]);
        // csid 70 in the 2-byte form.
        bytes.extend([0x00, 6]);
        bytes.extend(&fmt0(0, 5, 1, 8, 1)[1..]);
        bytes.push(0xAF);
        let mut input = BytesMut::from(&bytes[..]);
        let chunks = take_all(&mut guard, &mut input);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].csid, 320);
        assert_eq!(chunks[1].bytes.len(), 3 + 4 + 72);
        assert!(chunks[1].completes_message);
        assert_eq!(chunks[2].csid, 70);
        assert!(input.is_empty());
    }

    #[test]
    fn chunk_size_bounds() {
        let mut guard = ChunkGuard::new(LIMITS);
        assert!(guard.set_chunk_size(0).is_err());
        assert!(guard.set_chunk_size(1 << 31).is_err());
        assert!(guard.set_chunk_size(65537).is_err());
        guard.set_chunk_size(4096).unwrap();
        assert_eq!(guard.chunk_size(), 4096);
    }
}
