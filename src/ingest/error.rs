//! Why an RTMP connection ended early. The `rtmp` crate's errors are `failure`-based (not
//! `std::error::Error`), so they are turned into text with context at the boundary.

use std::time::Duration;

use super::amf0_guard::Amf0Violation;
use super::publish::PublishRefusal;

/// Something the peer sent that breaks the protocol or our bounds; the connection is closed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    #[error("handshake version byte is {0} (expected 3: plain RTMP)")]
    HandshakeVersion(u8),
    #[error("SetChunkSize {size} is outside 1..={limit}")]
    ChunkSize { size: u32, limit: u32 },
    #[error("message of {length} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge { length: u32, limit: u32 },
    #[error("more than {limit} chunk stream ids on one connection")]
    TooManyChunkStreams { limit: usize },
    #[error(
        "chunk stream {csid} (format {format}) interrupts the unfinished message on chunk stream \
         {open_csid}: interleaved messages are not supported"
    )]
    InterleavedChunks {
        open_csid: u32,
        csid: u32,
        format: u8,
    },
    #[error("first chunk on chunk stream {csid} has format {format}; it must be 0")]
    MissingChunkHeader { csid: u32, format: u8 },
    #[error("{kind} message of {length} bytes exceeds the AMF limit of {limit} bytes")]
    AmfMessageTooLarge {
        kind: &'static str,
        length: usize,
        limit: usize,
    },
    #[error("{0}")]
    Amf0(#[from] Amf0Violation),
    #[error("{0}")]
    BadCommand(String),
}

impl ProtocolError {
    /// Metric label (`barrage_rtmp_protocol_errors_total{kind}`).
    pub fn kind(&self) -> &'static str {
        match self {
            ProtocolError::HandshakeVersion(_) => "bad_handshake",
            ProtocolError::ChunkSize { .. } => "chunk_size",
            ProtocolError::MessageTooLarge { .. } => "message_too_large",
            ProtocolError::TooManyChunkStreams { .. } => "too_many_chunk_streams",
            ProtocolError::InterleavedChunks { .. } => "interleaved_chunks",
            ProtocolError::MissingChunkHeader { .. } => "bad_chunk_header",
            ProtocolError::AmfMessageTooLarge { .. } => "amf_too_large",
            ProtocolError::Amf0(_) => "amf0",
            ProtocolError::BadCommand(_) => "bad_command",
        }
    }
}

/// Why one RTMP session ended with an error; logged once and counted by [`IngestError::kind`].
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The socket failed (a reset peer, say): not counted as a protocol error.
    #[error("{action}: {source}")]
    Io {
        action: &'static str,
        source: std::io::Error,
    },
    #[error("peer did not finish the handshake and publish within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("no data from the peer for {0:?}")]
    IdleTimeout(Duration),
    #[error("writing to the peer took longer than {0:?}")]
    WriteTimeout(Duration),
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The crate returned an error (its `failure` text, with the step that failed).
    #[error("rtmp crate error in {step}: {message}")]
    Crate { step: &'static str, message: String },
    /// The crate panicked; `catch_unwind` kept the panic inside this connection.
    #[error("rtmp crate panicked in {step}: {message}")]
    CratePanic { step: &'static str, message: String },
    #[error("publish refused: {0}")]
    Refused(PublishRefusal),
}

impl IngestError {
    /// Maps a crate error (anything `Display`, which every `failure::Fail` is) with the step.
    pub fn crate_error(step: &'static str, error: impl std::fmt::Display) -> IngestError {
        IngestError::Crate {
            step,
            message: error.to_string(),
        }
    }

    /// Metric label for `barrage_rtmp_protocol_errors_total{kind}`; `None` for endings that are
    /// not the peer's fault or are counted elsewhere (socket errors, refusals).
    pub fn kind(&self) -> Option<&'static str> {
        match self {
            IngestError::Io { .. } | IngestError::Refused(_) => None,
            IngestError::HandshakeTimeout(_) => Some("handshake_timeout"),
            IngestError::IdleTimeout(_) => Some("idle_timeout"),
            IngestError::WriteTimeout(_) => Some("write_timeout"),
            IngestError::Protocol(p) => Some(p.kind()),
            IngestError::Crate { .. } => Some("crate_error"),
            IngestError::CratePanic { .. } => Some("crate_panic"),
        }
    }
}

/// Runs one synchronous step of the crate, turning a panic into [`IngestError::CratePanic`].
///
/// The crate's parsers index and subtract on wire data; a panic there must end this connection
/// only. (Allocation failures and stack overflows abort instead: the guards prevent those.)
pub fn catch_crate_panic<T>(step: &'static str, f: impl FnOnce() -> T) -> Result<T, IngestError> {
    let _contained = CrateStep::enter();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        IngestError::CratePanic {
            step,
            message: panic_message(payload.as_ref()),
        }
    })
}

thread_local! {
    /// How many crate steps run under `catch_unwind` on this thread right now.
    static CRATE_STEPS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Marks this thread as inside a crate step whose panics are caught, until dropped. A panic
/// hook reads it ([`in_contained_crate_step`]): the fuzz harness stays quiet about panics
/// that end one connection by design, and still reports every other panic.
pub struct CrateStep(());

impl CrateStep {
    /// Enters a crate step on this thread (left when the marker is dropped).
    pub fn enter() -> CrateStep {
        CRATE_STEPS.with(|n| n.set(n.get() + 1));
        CrateStep(())
    }
}

impl Drop for CrateStep {
    fn drop(&mut self) {
        CRATE_STEPS.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Whether a panic on this thread now would be caught at a crate step boundary.
pub fn in_contained_crate_step() -> bool {
    CRATE_STEPS.with(|n| n.get() > 0)
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_step_becomes_an_error() {
        let err = catch_crate_panic("unit", || -> u32 { panic!("boom {}", 7) }).unwrap_err();
        assert!(
            matches!(err, IngestError::CratePanic { step: "unit", ref message } if message == "boom 7")
        );
        assert_eq!(err.kind(), Some("crate_panic"));
        assert_eq!(catch_crate_panic("unit", || 5).unwrap(), 5);
    }
}
