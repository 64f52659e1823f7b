//! A viewer socket split in two after the handshake: tungstenite reads the client's frames
//! (masking, size limits, UTF-8 checks, ping and close replies), and the server's frames go
//! straight to the upgraded stream as bytes encoded once for every socket.
//!
//! Why: with tungstenite on the write side too, every socket copied every batch into its own
//! write buffer (`Frame::format_into_buf`) and registered wakers through tokio-tungstenite's
//! compat layer on each send. A server frame is unmasked, so the frame a room delivers is
//! the same bytes for every socket of a format: [`server_frame`] builds it once per batch
//! ([`crate::chat::fanout::DeliveredBatch::frame`]) and each socket writes that shared `Bytes`.
//!
//! The replies tungstenite makes while reading (pong, close) are captured by [`ReadSide`] and
//! written by the socket's owner between its own frames, so the two writers never interleave
//! inside a frame.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::Message;
use ws_read::WebSocketStream;

/// The upgraded connection of a viewer.
pub type Io = TokioIo<Upgraded>;

/// WebSocket opcodes the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
}

/// One complete, unmasked, unfragmented server frame (RFC 6455 5.2): FIN + opcode, the
/// payload length in the shortest form, then the payload.
pub fn server_frame(op: OpCode, payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut out = BytesMut::with_capacity(len + 10);
    out.put_u8(0x80 | op as u8);
    if len < 126 {
        out.put_u8(len as u8);
    } else if len <= u16::MAX as usize {
        out.put_u8(126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    out.put_slice(payload);
    out.freeze()
}

/// A close frame with `code` and `reason` (cut to the 123 bytes a control frame allows, at a
/// character boundary).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    server_frame(OpCode::Close, &payload)
}

/// The read half as tungstenite's stream: reads go to the connection, and what tungstenite
/// writes (its pong and close replies) is kept in `replies` for the owner to send.
pub struct ReadSide {
    read: ReadHalf<Io>,
    replies: Vec<u8>,
}

impl AsyncRead for ReadSide {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReadSide {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.replies.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A viewer's connection after the handshake.
pub struct SplitSocket {
    reader: WebSocketStream<ReadSide>,
    writer: WriteHalf<Io>,
}

impl SplitSocket {
    /// Wraps an upgraded connection; `config` limits what the client may send.
    pub async fn new(io: Io, config: WebSocketConfig) -> SplitSocket {
        let (read, writer) = tokio::io::split(io);
        let side = ReadSide {
            read,
            replies: Vec::new(),
        };
        let reader = WebSocketStream::from_raw_socket(side, Role::Server, Some(config)).await;
        SplitSocket { reader, writer }
    }

    /// The next client message (None once the connection is closed). Control frames come
    /// through too; their replies are queued for [`SplitSocket::send_replies`].
    pub async fn recv(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        let msg = self.reader.next().await;
        if msg.is_some() {
            // tungstenite writes a pong or close reply on its next read or flush: have it now
            // (into `replies`, which never blocks).
            let _ = self.reader.flush().await;
        }
        msg
    }

    /// Whether replies wait to be sent.
    pub fn has_replies(&self) -> bool {
        !self.reader.get_ref().replies.is_empty()
    }

    /// Writes the replies tungstenite made (pong, close) to the connection.
    pub async fn send_replies(&mut self) -> io::Result<()> {
        let replies = std::mem::take(&mut self.reader.get_mut().replies);
        if replies.is_empty() {
            return Ok(());
        }
        self.writer.write_all(&replies).await
    }

    /// Writes one complete server frame: pending replies first, then `frame`.
    pub async fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        if self.has_replies() {
            self.send_replies().await?;
        }
        self.writer.write_all(frame).await
    }

    /// Sends pending replies and shuts the write side down (the TCP FIN).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.send_replies().await?;
        self.writer.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a server frame back with tungstenite's own frame reader.
    fn parse(bytes: &[u8]) -> (tungstenite::protocol::frame::Frame, usize) {
        let mut cursor = io::Cursor::new(bytes);
        let (header, len) = tungstenite::protocol::frame::FrameHeader::parse(&mut cursor)
            .unwrap()
            .unwrap();
        let start = cursor.position() as usize;
        assert_eq!(start + len as usize, bytes.len(), "one whole frame");
        let frame = tungstenite::protocol::frame::Frame::from_payload(
            header,
            Bytes::copy_from_slice(&bytes[start..]),
        );
        (frame, start)
    }

    #[test]
    fn frames_of_every_length_form_parse_back_unmasked() {
        for len in [0usize, 1, 125, 126, 127, 1031, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let bytes = server_frame(OpCode::Binary, &payload);
            let (frame, header_len) = parse(&bytes);
            let want_header = match len {
                0..=125 => 2,
                126..=65535 => 4,
                _ => 10,
            };
            assert_eq!(header_len, want_header, "len {len}");
            assert!(frame.header().is_final);
            assert!(frame.header().mask.is_none());
            assert_eq!(frame.payload(), &payload[..]);
        }
    }

    #[test]
    fn a_close_frame_carries_code_and_a_reason_cut_at_a_character() {
        let bytes = close_frame(4410, "room_closed");
        let (frame, _) = parse(&bytes);
        assert_eq!(&frame.payload()[..2], &4410u16.to_be_bytes());
        assert_eq!(&frame.payload()[2..], b"room_closed");
        let long = "é".repeat(100);
        let (frame, _) = parse(&close_frame(1000, &long));
        assert!(frame.payload().len() <= 125);
        assert!(std::str::from_utf8(&frame.payload()[2..]).is_ok());
    }
}
