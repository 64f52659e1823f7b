//! The server side of the RTMP handshake, driven through the crate's `HandshakeServer`.
//!
//! The crate's handshaker consumes C0 before it knows C1 is complete (and C0 again on the next
//! try), so it only works when C0+C1 arrive in one piece. We hand it exactly C0+C1 (1537
//! bytes), then exactly C2 (1536 bytes), and check the version byte ourselves first. Its
//! S0+S1+S2 land in the outbox.

use bytes::BytesMut;
use futures::FutureExt;
use rtmp::handshake::define::{ServerHandshakeState, RTMP_HANDSHAKE_SIZE};
use rtmp::handshake::handshake_server::HandshakeServer;

use super::error::{panic_message, CrateStep, IngestError, ProtocolError};
use super::outbox::Outbox;

/// The only C0 version we accept (3: plain RTMP; 6 would be RTMPE).
const RTMP_VERSION: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    AwaitC0C1,
    AwaitC2,
    Done,
}

/// One connection's handshake (sans-I/O apart from the outbox).
pub struct Handshake {
    server: HandshakeServer,
    stage: Stage,
}

impl Handshake {
    /// A handshake whose answers go to `outbox`.
    pub fn new(outbox: &Outbox) -> Handshake {
        Handshake {
            server: HandshakeServer::new(outbox.crate_io()),
            stage: Stage::AwaitC0C1,
        }
    }

    /// Takes what it needs from the front of `input`; `Ok(true)` once C2 is in. Bytes after
    /// C2 (the first chunks) stay in `input`.
    pub async fn advance(&mut self, input: &mut BytesMut) -> Result<bool, IngestError> {
        if self.stage == Stage::AwaitC0C1 {
            match input.first() {
                None => return Ok(false),
                Some(&version) if version != RTMP_VERSION => {
                    return Err(ProtocolError::HandshakeVersion(version).into())
                }
                Some(_) => {}
            }
            if input.len() < 1 + RTMP_HANDSHAKE_SIZE {
                return Ok(false);
            }
            let c0c1 = input.split_to(1 + RTMP_HANDSHAKE_SIZE);
            self.step(&c0c1).await?;
            self.stage = Stage::AwaitC2;
        }
        if self.stage == Stage::AwaitC2 {
            if input.len() < RTMP_HANDSHAKE_SIZE {
                return Ok(false);
            }
            let c2 = input.split_to(RTMP_HANDSHAKE_SIZE);
            self.step(&c2).await?;
            if !matches!(self.server.state(), ServerHandshakeState::Finish) {
                return Err(IngestError::crate_error(
                    "handshake",
                    "handshaker did not finish after C2",
                ));
            }
            self.stage = Stage::Done;
        }
        Ok(self.stage == Stage::Done)
    }

    /// Feeds bytes and runs the crate's handshake step (it completes at once: the outbox never
    /// waits), panics caught.
    async fn step(&mut self, bytes: &[u8]) -> Result<(), IngestError> {
        self.server.extend_data(bytes);
        // The crate's step never waits (its writes land in the outbox), so the marker is not
        // held across a real suspension.
        let contained = CrateStep::enter();
        let outcome = std::panic::AssertUnwindSafe(self.server.handshake())
            .catch_unwind()
            .await;
        drop(contained);
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(IngestError::crate_error("handshake", e)),
            Err(payload) => Err(IngestError::CratePanic {
                step: "handshake",
                message: panic_message(payload.as_ref()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_a_plain_c1_in_any_split_and_keeps_what_follows() {
        let mut client = vec![RTMP_VERSION];
        client.extend((0..RTMP_HANDSHAKE_SIZE).map(|i| (i % 251) as u8)); // C1
        client.extend([0u8; RTMP_HANDSHAKE_SIZE]); // C2
        client.extend([0x02, 0xAA]); // the first chunk bytes
        for split in [1, 700, 1537, 2000, client.len()] {
            let outbox = Outbox::new();
            let mut handshake = Handshake::new(&outbox);
            let mut input = BytesMut::from(&client[..split]);
            let mut done = handshake.advance(&mut input).await.unwrap();
            input.extend_from_slice(&client[split..]);
            if !done {
                done = handshake.advance(&mut input).await.unwrap();
            }
            assert!(done, "split {split}");
            assert_eq!(&input[..], &[0x02, 0xAA]);
            let answer = outbox.take();
            assert_eq!(answer.len(), 1 + 2 * RTMP_HANDSHAKE_SIZE);
            assert_eq!(answer[0], RTMP_VERSION);
            // S2 echoes C1 in the plain handshake.
            assert_eq!(
                &answer[1 + RTMP_HANDSHAKE_SIZE..],
                &client[1..1 + RTMP_HANDSHAKE_SIZE]
            );
        }
    }

    #[tokio::test]
    async fn refuses_other_versions_at_the_first_byte() {
        let outbox = Outbox::new();
        let mut handshake = Handshake::new(&outbox);
        let mut input = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert!(matches!(
            handshake.advance(&mut input).await,
            Err(IngestError::Protocol(ProtocolError::HandshakeVersion(b'G')))
        ));
    }
}
