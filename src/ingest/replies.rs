//! What ingest says to a publisher, written with the crate's writers into the [`Outbox`].
//! Each writer gets a fresh packetizer, so every message starts with a full (format 0) header.

use bytesio::bytes_writer::AsyncBytesWriter;
use rtmp::chunk::define::{chunk_type, csid_type, CHUNK_SIZE};
use rtmp::chunk::packetizer::ChunkPacketizer;
use rtmp::chunk::ChunkInfo;
use rtmp::messages::define::msg_type_id;
use rtmp::netconnection::writer::NetConnection;
use rtmp::netstream::writer::NetStreamWriter;
use rtmp::protocol_control_messages::writer::ProtocolControlMessagesWriter;
use rtmp::session::define::{peer_bandwidth_limit_type, CAPABILITIES, FMSVER};
use rtmp::user_control_messages::writer::EventMessagesWriter;
use xflv::amf0::amf0_writer::Amf0Writer;

use super::error::IngestError;
use super::outbox::{CrateIo, Outbox};

/// The chunk size we send with (the crate's packetizer always uses it); announced first.
pub const OUTGOING_CHUNK_SIZE: u32 = CHUNK_SIZE;

/// Window announced to the peer (WindowAckSize and SetPeerBandwidth), as common servers do.
pub const ANNOUNCED_WINDOW: u32 = 2_500_000;

/// The message stream id `createStream` hands out (the crate's `write_on_status` uses 1).
pub const PUBLISH_STREAM_ID: u32 = 1;

/// Writes answers for one connection.
pub struct Replies {
    io: CrateIo,
}

impl Replies {
    /// Replies that land in `outbox`.
    pub fn new(outbox: &Outbox) -> Replies {
        Replies {
            io: outbox.crate_io(),
        }
    }

    fn control(&self) -> ProtocolControlMessagesWriter {
        ProtocolControlMessagesWriter::new(AsyncBytesWriter::new(self.io.clone()))
    }

    fn events(&self) -> EventMessagesWriter {
        EventMessagesWriter::new(AsyncBytesWriter::new(self.io.clone()))
    }

    /// Announces our chunk size right after the handshake.
    pub async fn set_chunk_size(&self) -> Result<(), IngestError> {
        self.control()
            .write_set_chunk_size(OUTGOING_CHUNK_SIZE)
            .await
            .map_err(|e| IngestError::crate_error("writing SetChunkSize", e))
    }

    /// Acknowledges `received` bytes (the count wraps at 2^32, as the protocol says).
    pub async fn acknowledgement(&self, received: u64) -> Result<(), IngestError> {
        self.control()
            .write_acknowledgement(received as u32)
            .await
            .map_err(|e| IngestError::crate_error("writing an Acknowledgement", e))
    }

    /// Answers a ping request with its timestamp.
    pub async fn ping_response(&self, timestamp: u32) -> Result<(), IngestError> {
        self.events()
            .write_ping_response(timestamp)
            .await
            .map_err(|e| IngestError::crate_error("writing a ping response", e))
    }

    /// WindowAckSize, SetPeerBandwidth and `_result` NetConnection.Connect.Success.
    pub async fn connect_success(
        &self,
        transaction_id: f64,
        object_encoding: f64,
    ) -> Result<(), IngestError> {
        let step = |e| IngestError::crate_error("writing the connect answer", e);
        let mut control = self.control();
        control
            .write_window_acknowledgement_size(ANNOUNCED_WINDOW)
            .await
            .map_err(step)?;
        control
            .write_set_peer_bandwidth(ANNOUNCED_WINDOW, peer_bandwidth_limit_type::DYNAMIC)
            .await
            .map_err(step)?;
        NetConnection::new(self.io.clone())
            .write_connect_response(
                &transaction_id,
                FMSVER,
                &CAPABILITIES,
                "NetConnection.Connect.Success",
                "status",
                "Connection succeeded.",
                &object_encoding,
            )
            .await
            .map_err(|e| IngestError::crate_error("writing the connect answer", e))
    }

    /// `_error` NetConnection.Connect.Rejected (ffmpeg prints the description and exits).
    pub async fn connect_rejected(
        &self,
        transaction_id: f64,
        description: &str,
    ) -> Result<(), IngestError> {
        NetConnection::new(self.io.clone())
            .error(
                &transaction_id,
                "NetConnection.Connect.Rejected",
                "error",
                description,
            )
            .await
            .map_err(|e| IngestError::crate_error("writing the connect refusal", e))
    }

    /// `_result` for `createStream` with [`PUBLISH_STREAM_ID`].
    pub async fn create_stream_result(&self, transaction_id: f64) -> Result<(), IngestError> {
        NetConnection::new(self.io.clone())
            .write_create_stream_response(&transaction_id, &f64::from(PUBLISH_STREAM_ID))
            .await
            .map_err(|e| IngestError::crate_error("writing the createStream answer", e))
    }

    /// `_result` with a null: the answer to `releaseStream` and `FCPublish`.
    pub async fn empty_result(&self, transaction_id: f64) -> Result<(), IngestError> {
        let step = |e: &dyn std::fmt::Display| IngestError::crate_error("writing a _result", e);
        let mut amf = Amf0Writer::new();
        amf.write_string(&"_result".to_string())
            .map_err(|e| step(&e))?;
        amf.write_number(&transaction_id).map_err(|e| step(&e))?;
        amf.write_null().map_err(|e| step(&e))?;
        let body = amf.extract_current_bytes();
        let mut chunk = ChunkInfo::new(
            csid_type::COMMAND_AMF0_AMF3,
            chunk_type::TYPE_0,
            0,
            body.len() as u32,
            msg_type_id::COMMAND_AMF0,
            0,
            body,
        );
        ChunkPacketizer::new(self.io.clone())
            .write_chunk(&mut chunk)
            .await
            .map_err(|e| step(&e))
    }

    /// StreamBegin and onStatus NetStream.Publish.Start: OBS and ffmpeg start sending media.
    pub async fn publish_start(&self, transaction_id: f64) -> Result<(), IngestError> {
        self.events()
            .write_stream_begin(PUBLISH_STREAM_ID)
            .await
            .map_err(|e| IngestError::crate_error("writing StreamBegin", e))?;
        self.on_status(
            transaction_id,
            "status",
            "NetStream.Publish.Start",
            "Publishing.",
        )
        .await
    }

    /// onStatus NetStream.Publish.BadName (level error) with the refusal as description.
    pub async fn publish_refused(
        &self,
        transaction_id: f64,
        description: &str,
    ) -> Result<(), IngestError> {
        self.on_status(
            transaction_id,
            "error",
            "NetStream.Publish.BadName",
            description,
        )
        .await
    }

    /// onStatus NetStream.Publish.Rejected (level error) with the reason as description, for
    /// a publish refused after it started (a codec this server does not carry). ffmpeg prints
    /// "Server error: <description>"; OBS's RTMP library closes on this code and logs it.
    pub async fn publish_rejected(&self, description: &str) -> Result<(), IngestError> {
        self.on_status(0.0, "error", "NetStream.Publish.Rejected", description)
            .await
    }

    /// onStatus NetStream.Play.Failed: this server only ingests.
    pub async fn play_refused(&self, transaction_id: f64) -> Result<(), IngestError> {
        self.on_status(
            transaction_id,
            "error",
            "NetStream.Play.Failed",
            "play is not supported: this server only accepts publishers; watch over HLS",
        )
        .await
    }

    async fn on_status(
        &self,
        transaction_id: f64,
        level: &str,
        code: &str,
        description: &str,
    ) -> Result<(), IngestError> {
        NetStreamWriter::new(self.io.clone())
            .write_on_status(&transaction_id, level, code, description)
            .await
            .map_err(|e| IngestError::crate_error("writing onStatus", e))
    }
}
