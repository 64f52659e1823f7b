//! Where the crate's writers put their bytes. They want an
//! `Arc<Mutex<Box<dyn TNetIO>>>`; ours only appends to a buffer, and the session writes that
//! buffer to the socket itself, with a write timeout. So a peer that stops reading cannot hang
//! a session inside the crate, and every crate write completes at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use bytesio::bytesio::{NetType, TNetIO};
use bytesio::bytesio_errors::{BytesIOError, BytesIOErrorValue};

use crate::sync::lock;

/// The `TNetIO` handle the crate's writers take.
pub type CrateIo = Arc<tokio::sync::Mutex<Box<dyn TNetIO + Send + Sync>>>;

/// Bytes waiting to be written to the peer.
#[derive(Clone, Default)]
pub struct Outbox {
    pending: Arc<Mutex<BytesMut>>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// A handle for the crate's writers; what they write lands here.
    pub fn crate_io(&self) -> CrateIo {
        Arc::new(tokio::sync::Mutex::new(Box::new(OutboxIo {
            pending: self.pending.clone(),
        })))
    }

    /// Takes everything written so far.
    pub fn take(&self) -> BytesMut {
        lock(&self.pending).split()
    }
}

/// Write-only `TNetIO` over the outbox (the trait is `async_trait`; written out by hand to
/// avoid a dependency for three methods).
struct OutboxIo {
    pending: Arc<Mutex<BytesMut>>,
}

type BoxedFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl TNetIO for OutboxIo {
    fn write<'life0, 'async_trait>(
        &'life0 mut self,
        bytes: Bytes,
    ) -> BoxedFuture<'async_trait, Result<(), BytesIOError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        lock(&self.pending).extend_from_slice(&bytes);
        Box::pin(std::future::ready(Ok(())))
    }

    fn read<'life0, 'async_trait>(
        &'life0 mut self,
    ) -> BoxedFuture<'async_trait, Result<BytesMut, BytesIOError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(std::future::ready(Err(not_readable())))
    }

    fn read_timeout<'life0, 'async_trait>(
        &'life0 mut self,
        _duration: Duration,
    ) -> BoxedFuture<'async_trait, Result<BytesMut, BytesIOError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(std::future::ready(Err(not_readable())))
    }

    fn get_net_type(&self) -> NetType {
        NetType::TCP
    }
}

fn not_readable() -> BytesIOError {
    BytesIOError {
        value: BytesIOErrorValue::NoneReturn,
    }
}
