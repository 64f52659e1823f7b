//! RTMP ingest: accepts publishers (OBS, ffmpeg) and hands their media to a [`PublishGate`].

pub mod publish;

pub use publish::*;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::RtmpConfig;

/// Accepts RTMP connections until `shutdown`. (Skeleton: replaced by the session loop.)
pub async fn serve(
    listener: TcpListener,
    _config: Arc<RtmpConfig>,
    _gate: Arc<dyn PublishGate>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => {
                if let Ok((socket, _)) = accepted { drop(socket); }
            }
        }
    }
}
