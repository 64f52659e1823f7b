//! barrage: a live room in one service. RTMP in from OBS, HLS out through object storage, and a
//! danmaku/chat engine delivering over WebSocket and as CDN files. See README.md and docs/.

pub mod app;
pub mod auth;
/// Load generators behind `barrage bench` (feature `bench`).
#[cfg(feature = "bench")]
pub mod bench;
pub mod broadcast;
pub mod cdn;
pub mod chat;
pub(crate) mod clock;
pub mod cluster;
pub mod config;
pub mod conn_limits;
pub mod db;
pub mod download;
/// Fuzz harnesses (used by `fuzz/` and the corpus replay test; feature `testing`); not part
/// of the service.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod hls;
pub mod http;
pub mod ingest;
pub mod live_flv;
pub mod media;
pub mod node_identity;
pub mod proc_stats;
pub mod rights;
pub mod rooms;
pub mod secret_strength;
pub mod secrets;
pub mod series;
pub mod state;
pub mod storage;
pub(crate) mod sync;
/// Real peers and scratch state for tests and benchmarks (feature `testing`; unit tests too).
#[cfg(any(test, feature = "testing"))]
pub mod testutil;
pub mod thumbnails;
