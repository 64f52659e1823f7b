//! One RTMP connection, from handshake to the end of its publish.
//!
//! The session reads bytes with a deadline (the handshake timeout until a publish starts, the
//! idle timeout always), turns them into messages through [`MessageReader`] and
//! [`parse_message`], answers commands with [`Replies`], and forwards media into the
//! [`Publication`] the gate handed out. Dropping the session drops the publication: that is how
//! the consumer learns the publish ended, whatever the reason.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant, Sleep};
use tracing::{debug, info, trace, warn, Span};

use super::chunk_guard::ChunkLimits;
use super::commands::Command;
use super::error::{IngestError, ProtocolError};
use super::handshake::Handshake;
use super::low_water::LowWater;
use super::message::{parse_message, IncomingMessage};
use super::outbox::Outbox;
use super::publish::{
    MediaBatch, Publication, PublishGate, PublishRefusal, PublishRequest, MEDIA_BATCH_MAX,
    MEDIA_BATCH_MAX_AGE,
};
use super::reader::MessageReader;
use super::replies::{Replies, ANNOUNCED_WINDOW};
use super::telemetry;
use crate::config::RtmpConfig;
use crate::conn_limits::ConnectionPermit;
use crate::media::codec_support::{self, UnsupportedCodec};
use crate::media::{MediaMessage, StreamMetadata};

/// Room made in the input buffer before each socket read.
const READ_BUFFER_BYTES: usize = 32 * 1024;
/// Smallest acknowledgement window we honour (a smaller one would ask for an ack per read).
const MIN_ACK_WINDOW: u32 = 4096;
/// After answering a refusal: how long, and how many bytes, we read while the peer takes in
/// the answer and closes (closing on unread bytes would reset the connection and could lose
/// the answer).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_MAX_BYTES: usize = 1 << 20;

/// How a session ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The peer closed the connection.
    PeerClosed,
    /// The peer sent `deleteStream`.
    StreamDeleted,
    /// `connect` or `publish` was refused; the peer was told why.
    Refused,
    /// The peer asked to `play`; it was told that is not supported.
    PlayRefused,
    /// The consumer stopped receiving the publication's media.
    ConsumerGone,
}

/// Whether to keep reading after a message.
enum Flow {
    Continue,
    Close(SessionEnd),
}

/// One connection's state. Generic over the byte stream so that tests and fuzz targets drive
/// the very same loop from memory; the listener uses a `TcpStream`.
pub struct Session<S = TcpStream> {
    stream: S,
    peer: SocketAddr,
    config: Arc<RtmpConfig>,
    gate: Arc<dyn PublishGate>,
    /// Answers waiting to be written; the crate's writers fill it.
    outbox: Outbox,
    replies: Replies,
    reader: MessageReader,
    /// The application from `connect`, once accepted.
    app: Option<String>,
    /// The live publish, if any; dropped to end it.
    publication: Option<Publication>,
    /// Media read but not yet handed to the publication (see `MediaBatch`).
    batch: MediaBatch,
    /// When the oldest message in `batch` arrived (None while it is empty).
    batch_since: Option<Instant>,
    /// `onMetaData` sent before the publish was accepted, delivered when it is.
    pending_metadata: Option<StreamMetadata>,
    /// Reads must finish by this instant until a publish starts (`handshake_timeout_s`).
    setup_deadline: Option<Instant>,
    /// When the last read returned (the idle timeout runs from here).
    last_read: Instant,
    /// Fires at the read deadline (made at the first read, see `read_more`).
    read_timer: Option<Pin<Box<Sleep>>>,
    /// Bytes read so far, and at the last Acknowledgement we sent.
    received: u64,
    acknowledged: u64,
    /// The peer's window: it expects an Acknowledgement every this many bytes.
    ack_window: u32,
    bytes_received: metrics::Counter,
    /// Fewer wake-ups while publishing (a real socket only).
    low_water: Option<LowWater>,
    /// The connection's place in the listener's limits: marked authenticated when a publish
    /// is accepted (never evicted after that), released when the session is dropped.
    permit: Option<ConnectionPermit>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// A session for an accepted socket; the setup deadline starts now.
    pub fn new(
        stream: S,
        peer: SocketAddr,
        config: Arc<RtmpConfig>,
        gate: Arc<dyn PublishGate>,
    ) -> Session<S> {
        let outbox = Outbox::new();
        let limits = ChunkLimits {
            max_chunk_size: config.max_chunk_size,
            max_message_bytes: config.max_message_bytes,
            max_chunk_streams: config.max_chunk_streams,
        };
        Session {
            stream,
            peer,
            replies: Replies::new(&outbox),
            outbox,
            reader: MessageReader::new(limits),
            app: None,
            publication: None,
            batch: Vec::new(),
            batch_since: None,
            pending_metadata: None,
            setup_deadline: Some(Instant::now() + Duration::from_secs(config.handshake_timeout_s)),
            last_read: Instant::now(),
            read_timer: None,
            received: 0,
            acknowledged: 0,
            ack_window: ANNOUNCED_WINDOW,
            bytes_received: telemetry::bytes_received(),
            low_water: None,
            permit: None,
            config,
            gate,
        }
    }

    /// Holds the connection's place in the limits for as long as the session lives.
    pub fn with_permit(mut self, permit: ConnectionPermit) -> Self {
        self.permit = Some(permit);
        self
    }

    /// Lets the session move the socket's receive low-water mark while a publish is live.
    pub fn with_low_water(mut self, low_water: LowWater) -> Self {
        self.low_water = Some(low_water);
        self
    }

    /// Serves the connection until it ends; an error says what the peer did wrong. Media
    /// already read is handed over whatever the end.
    pub async fn run(mut self) -> Result<SessionEnd, IngestError> {
        let end = self.serve().await;
        self.hand_over().await;
        end
    }

    async fn serve(&mut self) -> Result<SessionEnd, IngestError> {
        let mut handshake = Handshake::new(&self.outbox);
        while !handshake.advance(self.reader.input_mut()).await? {
            self.flush().await?;
            if self.read_more().await? == 0 {
                return Ok(SessionEnd::PeerClosed);
            }
        }
        drop(handshake); // its buffers (about 6 KiB) are not needed again
        self.replies.set_chunk_size().await?;
        self.flush().await?;
        debug!("handshake done");
        loop {
            while let Some(raw) = self.reader.next_message()? {
                let flow = self.handle(parse_message(raw)?).await?;
                self.flush().await?;
                if let Flow::Close(end) = flow {
                    if end != SessionEnd::ConsumerGone {
                        self.close_gracefully().await;
                    }
                    return Ok(end);
                }
            }
            if self
                .batch_since
                .is_some_and(|t| t.elapsed() >= MEDIA_BATCH_MAX_AGE)
            {
                if let Flow::Close(end) = self.hand_over().await {
                    return Ok(end);
                }
            }
            if self.read_more().await? == 0 {
                return Ok(SessionEnd::PeerClosed);
            }
            self.acknowledge_if_due().await?;
        }
    }

    async fn handle(&mut self, message: IncomingMessage) -> Result<Flow, IngestError> {
        match message {
            IncomingMessage::SetChunkSize(size) => {
                self.reader.set_chunk_size(size)?;
                debug!(size, "peer set its chunk size");
            }
            IncomingMessage::WindowAckSize(size) => self.ack_window = size.max(MIN_ACK_WINDOW),
            IncomingMessage::PingRequest(timestamp) => {
                self.replies.ping_response(timestamp).await?
            }
            IncomingMessage::Command(command) => return self.on_command(command).await,
            IncomingMessage::Metadata(metadata) => {
                debug!(?metadata, "stream metadata");
                if self.publication.is_some() {
                    return self.metadata(metadata).await;
                }
                self.pending_metadata = Some(metadata);
            }
            IncomingMessage::Video { timestamp, body } => {
                if let Some(unsupported) =
                    self.publishing_then(|| codec_support::check_video_tag(&body))
                {
                    return self.refuse_codec(unsupported).await;
                }
                if !body.is_empty() {
                    return self.deliver(MediaMessage::Video { timestamp, body }).await;
                }
            }
            IncomingMessage::Audio { timestamp, body } => {
                if let Some(unsupported) =
                    self.publishing_then(|| codec_support::check_audio_tag(&body))
                {
                    return self.refuse_codec(unsupported).await;
                }
                if !body.is_empty() {
                    return self.deliver(MediaMessage::Audio { timestamp, body }).await;
                }
            }
            IncomingMessage::Ignored { type_id } => trace!(type_id, "ignored message"),
        }
        Ok(Flow::Continue)
    }

    async fn on_command(&mut self, command: Command) -> Result<Flow, IngestError> {
        match command {
            Command::Connect {
                transaction_id,
                app,
                tc_url,
                flash_ver,
                object_encoding,
            } => {
                if self.app.is_some() {
                    return Err(ProtocolError::BadCommand("connect sent twice".into()).into());
                }
                let app = app.unwrap_or_default();
                debug!(?app, ?tc_url, ?flash_ver, "connect");
                if app != self.config.app {
                    let refusal = PublishRefusal::WrongApp {
                        app: app.chars().take(64).collect(),
                        expected: self.config.app.clone(),
                    };
                    self.log_refusal(&refusal);
                    self.replies
                        .connect_rejected(transaction_id, &refusal.to_string())
                        .await?;
                    return Ok(Flow::Close(SessionEnd::Refused));
                }
                self.replies
                    .connect_success(transaction_id, object_encoding)
                    .await?;
                self.app = Some(app);
            }
            Command::ReleaseStream { transaction_id } | Command::FcPublish { transaction_id } => {
                self.replies.empty_result(transaction_id).await?
            }
            Command::CreateStream { transaction_id } => {
                if self.app.is_none() {
                    return Err(
                        ProtocolError::BadCommand("createStream before connect".into()).into(),
                    );
                }
                self.replies.create_stream_result(transaction_id).await?;
            }
            Command::Publish {
                transaction_id,
                stream_name,
                publish_type,
            } => {
                return self
                    .on_publish(transaction_id, stream_name, publish_type)
                    .await
            }
            Command::FcUnpublish { .. } | Command::CloseStream { .. } => {
                self.hand_over().await;
                self.end_publish("the publisher unpublished")
            }
            Command::DeleteStream { .. } => {
                self.hand_over().await;
                self.end_publish("the publisher deleted its stream");
                return Ok(Flow::Close(SessionEnd::StreamDeleted));
            }
            Command::Play {
                transaction_id,
                stream_name,
            } => {
                warn!(
                    peer = %self.peer,
                    has_stream_name = stream_name.is_some(),
                    "play refused: this server only accepts publishers"
                );
                self.replies.play_refused(transaction_id).await?;
                return Ok(Flow::Close(SessionEnd::PlayRefused));
            }
            Command::Other { name, .. } => debug!(command = ?name, "ignoring command"),
        }
        Ok(Flow::Continue)
    }

    /// Asks the gate; answers Publish.Start or Publish.BadName (then the session closes).
    async fn on_publish(
        &mut self,
        transaction_id: f64,
        stream_name: Option<String>,
        publish_type: Option<String>,
    ) -> Result<Flow, IngestError> {
        let Some(app) = self.app.clone() else {
            return Err(ProtocolError::BadCommand("publish before connect".into()).into());
        };
        if self.publication.is_some() {
            return Err(
                ProtocolError::BadCommand("publish while already publishing".into()).into(),
            );
        }
        let stream_key = stream_name.unwrap_or_default();
        let decision = if stream_key.is_empty() {
            Err(PublishRefusal::UnknownKey)
        } else {
            let request = PublishRequest {
                app,
                stream_key,
                peer: self.peer,
            };
            self.gate.open(&request).await
        };
        match decision {
            Ok(publication) => {
                Span::current().record("room", publication.room.as_str());
                info!(
                    room = %publication.room,
                    session = %publication.session,
                    ?publish_type,
                    "publish started"
                );
                telemetry::publish_started();
                if let Some(permit) = &self.permit {
                    permit.authenticated();
                }
                self.replies.publish_start(transaction_id).await?;
                self.setup_deadline = None;
                self.publication = Some(publication);
                if let Some(low_water) = &mut self.low_water {
                    low_water.start(self.received);
                }
                match self.pending_metadata.take() {
                    Some(metadata) => self.metadata(metadata).await,
                    None => Ok(Flow::Continue),
                }
            }
            Err(refusal) => {
                self.log_refusal(&refusal);
                self.replies
                    .publish_refused(transaction_id, &refusal.to_string())
                    .await?;
                Ok(Flow::Close(SessionEnd::Refused))
            }
        }
    }

    /// Runs a codec check while a publish is live (media before a publish is ignored anyway).
    fn publishing_then(
        &self,
        check: impl FnOnce() -> Option<UnsupportedCodec>,
    ) -> Option<UnsupportedCodec> {
        self.publication.as_ref().and_then(|_| check())
    }

    /// Delivers the stream's metadata, unless it announces a codec this server does not carry.
    async fn metadata(&mut self, metadata: StreamMetadata) -> Result<Flow, IngestError> {
        let announced = codec_support::check_announced(
            metadata.video_codec.as_ref(),
            metadata.audio_codec.as_ref(),
        );
        match announced {
            Some(unsupported) => self.refuse_codec(unsupported).await,
            None => self.deliver(MediaMessage::Metadata(metadata)).await,
        }
    }

    /// Ends a publish that uses a codec this server does not carry: the broadcast is told
    /// (it ends at once and notes why for the host console), the publisher gets
    /// NetStream.Publish.Rejected saying what to change, and the connection closes.
    async fn refuse_codec(&mut self, unsupported: UnsupportedCodec) -> Result<Flow, IngestError> {
        let message = unsupported.message();
        telemetry::publish_refused(unsupported.code());
        if let Some(p) = &self.publication {
            warn!(
                room = %p.room,
                session = %p.session,
                peer = %self.peer,
                codec = %unsupported.name(),
                "publish refused: {message}"
            );
        }
        self.batch.push(MediaMessage::Refused(message.clone()));
        if let Flow::Close(end) = self.hand_over().await {
            return Ok(Flow::Close(end));
        }
        self.end_publish("refused for its codec");
        self.replies.publish_rejected(&message).await?;
        Ok(Flow::Close(SessionEnd::Refused))
    }

    fn log_refusal(&self, refusal: &PublishRefusal) {
        telemetry::publish_refused(refusal.reason());
        warn!(peer = %self.peer, reason = refusal.reason(), "publish refused: {refusal}");
    }

    /// Adds to the batch for the publication, handing the batch over when it is due (waiting
    /// when the consumer is behind: backpressure).
    async fn deliver(&mut self, message: MediaMessage) -> Result<Flow, IngestError> {
        if self.publication.is_none() {
            trace!("media before publish ignored");
            return Ok(Flow::Continue);
        }
        let urgent = message.is_urgent();
        if self.batch.is_empty() {
            self.batch_since = Some(Instant::now());
        }
        self.batch.push(message);
        if urgent || self.batch.len() >= MEDIA_BATCH_MAX {
            return Ok(self.hand_over().await);
        }
        Ok(Flow::Continue)
    }

    /// Sends the batch to the publication, if there is one and the batch is not empty.
    async fn hand_over(&mut self) -> Flow {
        let Some(publication) = &self.publication else {
            self.batch.clear();
            return Flow::Continue;
        };
        if self.batch.is_empty() {
            return Flow::Continue;
        }
        self.batch_since = None;
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(MEDIA_BATCH_MAX));
        if publication.media.send(batch).await.is_err() {
            info!(room = %publication.room, "the consumer closed the publication");
            self.publication = None;
            return Flow::Close(SessionEnd::ConsumerGone);
        }
        Flow::Continue
    }

    /// Reads more bytes into the reader's input; 0 means the peer closed.
    ///
    /// The deadline is one timer kept for the whole connection and moved only when it fires
    /// (to the last read plus the idle timeout): a timer armed and cleared around every read
    /// was a measurable share of ingest CPU.
    async fn read_more(&mut self) -> Result<usize, IngestError> {
        let input = self.reader.input_mut();
        input.reserve(READ_BUFFER_BYTES);
        loop {
            let deadline = self.read_deadline();
            let timer = self
                .read_timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            tokio::select! {
                biased;
                read = self.stream.read_buf(self.reader.input_mut()) => {
                    let n = read.map_err(|source| IngestError::Io {
                        action: "reading from the peer",
                        source,
                    })?;
                    self.last_read = Instant::now();
                    self.received += n as u64;
                    self.bytes_received.increment(n as u64);
                    if let Some(low_water) = &mut self.low_water {
                        low_water.on_read(self.received);
                    }
                    return Ok(n);
                }
                () = timer.as_mut() => {
                    if Instant::now() >= deadline {
                        return Err(self.timed_out());
                    }
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }

    /// When the current read must have finished: the idle timeout after the last read, or
    /// the setup deadline while no publish has started, whichever comes first.
    fn read_deadline(&self) -> Instant {
        let idle = self.last_read + Duration::from_secs(self.config.idle_timeout_s);
        self.setup_deadline.map_or(idle, |setup| setup.min(idle))
    }

    fn timed_out(&self) -> IngestError {
        match self.setup_deadline {
            Some(setup) if Instant::now() >= setup => {
                IngestError::HandshakeTimeout(Duration::from_secs(self.config.handshake_timeout_s))
            }
            _ => IngestError::IdleTimeout(Duration::from_secs(self.config.idle_timeout_s)),
        }
    }

    /// Sends an Acknowledgement once a window's worth of bytes came in, so publishers that
    /// wait for them (the spec's flow control) never stall.
    async fn acknowledge_if_due(&mut self) -> Result<(), IngestError> {
        if self.received - self.acknowledged >= u64::from(self.ack_window) {
            self.acknowledged = self.received;
            self.replies.acknowledgement(self.received).await?;
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes the outbox to the socket (bounded by the idle timeout).
    async fn flush(&mut self) -> Result<(), IngestError> {
        let pending = self.outbox.take();
        if pending.is_empty() {
            return Ok(());
        }
        let limit = Duration::from_secs(self.config.idle_timeout_s);
        match timeout(limit, self.stream.write_all(&pending)).await {
            Err(_) => Err(IngestError::WriteTimeout(limit)),
            Ok(Err(source)) => Err(IngestError::Io {
                action: "writing to the peer",
                source,
            }),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Half-closes and reads until the peer closes too (bounded), so our last answer is read.
    async fn close_gracefully(&mut self) {
        let _ = self.stream.shutdown().await;
        let mut scratch = vec![0u8; 4096];
        let mut drained = 0;
        let _ = timeout(LINGER, async {
            while drained < LINGER_MAX_BYTES {
                match self.stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        })
        .await;
    }
}

impl<S> Session<S> {
    fn end_publish(&mut self, why: &str) {
        if let Some(low_water) = &mut self.low_water {
            low_water.stop();
        }
        if let Some(publication) = self.publication.take() {
            if !self.batch.is_empty() {
                // The session was dropped mid-run (shutdown): hand over what fits, never wait.
                let _ = publication.media.try_send(std::mem::take(&mut self.batch));
            }
            info!(room = %publication.room, session = %publication.session, "publish ended: {why}");
        }
    }
}

impl<S> Drop for Session<S> {
    fn drop(&mut self) {
        self.end_publish("the connection closed");
    }
}
