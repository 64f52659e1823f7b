//! Turns accepted publishes into HLS in object storage. (Skeleton: replaced by the writer.)

use std::sync::Arc;

use crate::config::HlsConfig;
use crate::ingest::{Publication, PublishGate, PublishRefusal, PublishRequest};
use crate::live::LiveRegistry;
use crate::rooms::RoomDirectory;
use crate::storage::Storage;

/// Authorises publishes and runs one HLS writer per live session.
#[derive(Debug)]
pub struct Broadcaster {
    #[allow(dead_code)]
    rooms: Arc<RoomDirectory>,
}

impl Broadcaster {
    pub fn new(
        rooms: Arc<RoomDirectory>,
        _live: Arc<LiveRegistry>,
        _storage: Storage,
        _hls: HlsConfig,
        _app: String,
    ) -> Arc<Broadcaster> {
        Arc::new(Broadcaster { rooms })
    }

    /// Waits until every live session has written its final playlist.
    pub async fn wait_idle(&self) {}
}

impl PublishGate for Broadcaster {
    fn open(&self, _request: &PublishRequest) -> Result<Publication, PublishRefusal> {
        Err(PublishRefusal::UnknownKey)
    }
}
