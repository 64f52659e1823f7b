//! HLS playlists for the media segments (`hls_m3u8`): the live sliding window and the session
//! playlist that becomes a VOD when the stream ends, plus the Low-Latency HLS lines
//! ([`low_latency`]) written beside them.

pub mod live_edge;
pub mod low_latency;
pub mod playlist;
