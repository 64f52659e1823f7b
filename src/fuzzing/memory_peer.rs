//! A peer made of bytes: what it "sends" is the fuzz input, handed out in reads of varying
//! sizes (so framing that straddles reads is exercised), and what the server writes back is
//! kept (up to a bound) for checks. It never waits: at the end of the input it reads as closed, so a
//! session driven by it ends without touching a timeout.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Read sizes the peer cycles through (chosen per read by a generator seeded from the input
/// length): single bytes, odd sizes, exactly one handshake packet, and large batches.
const READ_SIZES: [usize; 8] = [1, 7, 100, 1536, 1537, 4096, 16_384, 65_536];

/// The in-memory peer.
pub struct MemoryPeer<'a> {
    input: &'a [u8],
    pos: usize,
    /// xorshift state choosing the next read size; deterministic for one input.
    rng: u64,
    /// Bytes the server wrote.
    pub written: usize,
    /// The first [`KEPT_OUTPUT`] bytes the server wrote, for checks on its answers.
    pub output: Vec<u8>,
}

/// How much of the server's answer is kept (a session's answers are a few KiB).
pub const KEPT_OUTPUT: usize = 1 << 20;

impl<'a> MemoryPeer<'a> {
    /// A peer that sends `input`, then closes.
    pub fn new(input: &'a [u8]) -> MemoryPeer<'a> {
        MemoryPeer {
            input,
            pos: 0,
            rng: (input.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            written: 0,
            output: Vec::new(),
        }
    }

    fn next_read_size(&mut self) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        READ_SIZES[(self.rng % READ_SIZES.len() as u64) as usize]
    }
}

impl AsyncRead for MemoryPeer<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let want = self.next_read_size();
        let left = &self.input[self.pos..];
        let n = left.len().min(buf.remaining()).min(want);
        buf.put_slice(&left[..n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemoryPeer<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written += buf.len();
        let room = KEPT_OUTPUT.saturating_sub(self.output.len());
        self.output.extend_from_slice(&buf[..buf.len().min(room)]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn hands_out_everything_then_reads_as_closed() {
        let input: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut peer = MemoryPeer::new(&input);
        let mut got = Vec::new();
        let mut buf = [0u8; 3000];
        loop {
            let n = peer.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, input);
        peer.write_all(b"answer").await.unwrap();
        assert_eq!(peer.written, 6);
    }
}
