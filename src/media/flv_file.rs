//! An FLV *file* reader: turns a recorded push (like `tests/data/ffmpeg_push_6s.flv`) into the
//! [`MediaMessage`]s RTMP ingest would deliver (tag bodies with their 32-bit ms timestamps), so
//! tests and benchmarks replay real encoder output without a socket.

use bytes::Bytes;

use super::MediaMessage;

/// Why an FLV file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvFileError {
    #[error("not an FLV file (no `FLV` signature)")]
    NotFlv,
    #[error("FLV file truncated at byte {0}")]
    Truncated(usize),
}

/// The kind of an FLV tag (its TagType byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlvTagKind {
    Audio,
    Video,
    /// Script data (`onMetaData`), or a tag type this reader does not know.
    Script,
    Other(u8),
}

/// One tag of an FLV file.
#[derive(Debug, Clone, PartialEq)]
pub struct FlvFileTag {
    pub kind: FlvTagKind,
    /// Timestamp in ms, including the extended (upper) byte: what RTMP would carry.
    pub timestamp: u32,
    pub body: Bytes,
}

impl FlvFileTag {
    /// The message ingest would hand over for this tag (None for script data).
    pub fn to_media_message(&self) -> Option<MediaMessage> {
        match self.kind {
            FlvTagKind::Video => Some(MediaMessage::Video {
                timestamp: self.timestamp,
                body: self.body.clone(),
            }),
            FlvTagKind::Audio => Some(MediaMessage::Audio {
                timestamp: self.timestamp,
                body: self.body.clone(),
            }),
            FlvTagKind::Script | FlvTagKind::Other(_) => None,
        }
    }
}

/// Reads every tag of an FLV file: the 9-byte header, then PreviousTagSize + 11-byte tag
/// header + body, repeated.
pub fn read_flv(file: &Bytes) -> Result<Vec<FlvFileTag>, FlvFileError> {
    if file.get(..3) != Some(b"FLV".as_slice()) {
        return Err(FlvFileError::NotFlv);
    }
    let header_len = file
        .get(5..9)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or(FlvFileError::Truncated(file.len()))?;
    let mut pos = header_len;
    let mut tags = Vec::new();
    loop {
        // PreviousTagSize (4 bytes), then a tag or the end of the file.
        pos = pos.checked_add(4).ok_or(FlvFileError::Truncated(pos))?;
        if pos == file.len() {
            return Ok(tags);
        }
        let header = file
            .get(pos..pos + 11)
            .ok_or(FlvFileError::Truncated(pos))?;
        let kind = match header[0] & 0x1f {
            8 => FlvTagKind::Audio,
            9 => FlvTagKind::Video,
            18 => FlvTagKind::Script,
            other => FlvTagKind::Other(other),
        };
        let size =
            (usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]);
        let timestamp = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let start = pos + 11;
        let end = start + size;
        if end > file.len() {
            return Err(FlvFileError::Truncated(pos));
        }
        tags.push(FlvFileTag {
            kind,
            timestamp,
            body: file.slice(start..end),
        });
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn ffmpeg_push() -> Bytes {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ffmpeg_push_6s.flv");
        Bytes::from(
            std::fs::read(path).expect("tests/data/ffmpeg_push_6s.flv is in the repository"),
        )
    }

    #[test]
    fn reads_the_ffmpeg_push() {
        let tags = read_flv(&ffmpeg_push()).unwrap();
        let count = |k: FlvTagKind| tags.iter().filter(|t| t.kind == k).count();
        // 180 pictures + sequence header + end of sequence; 283 AAC frames + config.
        assert_eq!(count(FlvTagKind::Video), 182);
        assert_eq!(count(FlvTagKind::Audio), 284);
        assert_eq!(count(FlvTagKind::Script), 1);
        assert!(tags.iter().filter_map(|t| t.to_media_message()).count() == 466);
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert_eq!(
            read_flv(&Bytes::from_static(b"xyz")),
            Err(FlvFileError::NotFlv)
        );
        let file = ffmpeg_push();
        assert!(matches!(
            read_flv(&file.slice(..file.len() - 10)),
            Err(FlvFileError::Truncated(_))
        ));
    }
}
